package uplink

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edgeagent/edgeagent/sparkplug"
)

// bdSeqStore keeps the last bdSeq used, so that every CONNECT, across
// restarts too, carries the previous one plus one (Sparkplug hosts and
// the TCK check the increment).
type bdSeqStore struct {
	path string
	prev []byte // the file before the last next(); nil if there was none
}

// next returns the bdSeq for the coming CONNECT and persists it first, so
// a crash right after CONNECT cannot reuse it.
func (s *bdSeqStore) next() (uint64, error) {
	v := uint64(0)
	b, err := os.ReadFile(s.path)
	s.prev = b
	switch {
	case err == nil:
		prev, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
		if perr != nil {
			return 0, fmt.Errorf("reading bdSeq from %s: %q is not 0..255; delete the file to restart at 0", s.path, strings.TrimSpace(string(b)))
		}
		v = sparkplug.NextBdSeq(prev)
	case !os.IsNotExist(err):
		return 0, fmt.Errorf("reading bdSeq: %w", err)
	}
	if err := writeFileAtomic(s.path, []byte(strconv.FormatUint(v, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("persisting bdSeq: %w", err)
	}
	return v, nil
}

// undo takes back the last next() when its CONNECT never left: a dial that
// failed sent nothing, and bdSeq counts CONNECT packets.
func (s *bdSeqStore) undo() error {
	if s.prev == nil {
		return os.Remove(s.path)
	}
	return writeFileAtomic(s.path, s.prev)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
