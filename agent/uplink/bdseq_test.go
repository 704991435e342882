package uplink

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBdSeqStore(t *testing.T) {
	s := bdSeqStore{path: filepath.Join(t.TempDir(), "state", "bdseq")}
	for want := uint64(0); want < 3; want++ {
		if got, err := s.next(); err != nil || got != want {
			t.Fatalf("next = %d, %v; want %d", got, err, want)
		}
	}
	// A CONNECT that never left gives its bdSeq back.
	if got, _ := s.next(); got != 3 {
		t.Fatalf("next = %d, want 3", got)
	}
	if err := s.undo(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.next(); got != 3 {
		t.Fatalf("after undo next = %d, want 3 again", got)
	}
	// Wraps 255 → 0.
	os.WriteFile(s.path, []byte("255\n"), 0o600)
	if got, _ := s.next(); got != 0 {
		t.Fatalf("after 255: %d, want 0", got)
	}
	// Undo of the very first bdSeq removes the file, so 0 comes again.
	s2 := bdSeqStore{path: filepath.Join(t.TempDir(), "bdseq")}
	s2.next()
	s2.undo()
	if got, _ := s2.next(); got != 0 {
		t.Fatalf("after undoing the first: %d, want 0", got)
	}
	// A damaged file is an error naming the file, not a silent restart at 0.
	os.WriteFile(s.path, []byte("banana"), 0o600)
	if _, err := s.next(); err == nil || !strings.Contains(err.Error(), s.path) {
		t.Fatalf("damaged file: err = %v", err)
	}
}
