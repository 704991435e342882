package sparkplug

import (
	"errors"
	"strings"
	"testing"
)

func TestParseState(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want State
	}{
		{`{"online":true,"timestamp":1668114759262}`, State{Online: true, Timestamp: 1668114759262}},
		{` {"timestamp":0,"online":false} `, State{}},
		{`{"online":true,"timestamp":5,"bdSeq":1}`, State{Online: true, Timestamp: 5}}, // unknown fields ignored
	} {
		got, err := ParseState([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseState(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"ONLINE", `"ONLINE"/"OFFLINE"`},
		{"OFFLINE\n", `"ONLINE"/"OFFLINE"`},
		{`{"online":true}`, `missing "timestamp"`},
		{`{"timestamp":1}`, `missing "online"`},
		{`{"online":"yes","timestamp":1}`, "cannot unmarshal"},
		{`{"online":true,"timestamp":-1}`, "cannot unmarshal"},
		{``, "unexpected end of JSON input"},
		{`null`, `missing "online"`},
	} {
		_, err := ParseState([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "parsing STATE payload") {
			t.Errorf("ParseState(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseState([]byte("ONLINE")); !errors.Is(err, ErrLegacyState) {
		t.Errorf("legacy STATE: %v does not wrap ErrLegacyState", err)
	}
}

func TestStateJSON(t *testing.T) {
	for _, s := range []State{{}, {Online: true, Timestamp: 1700000000000}, {Timestamp: 1<<64 - 1}} {
		b := s.JSON()
		got, err := ParseState(b)
		if err != nil || got != s {
			t.Errorf("%+v → %s → %+v, %v", s, b, got, err)
		}
	}
	if got := string(State{Online: true, Timestamp: 42}.JSON()); got != `{"online":true,"timestamp":42}` {
		t.Errorf("JSON() = %s", got)
	}
}

func TestNextBdSeq(t *testing.T) {
	for prev, want := range map[uint64]uint64{0: 1, 1: 2, 254: 255, 255: 0} {
		if got := NextBdSeq(prev); got != want {
			t.Errorf("NextBdSeq(%d) = %d, want %d", prev, got, want)
		}
	}
}
