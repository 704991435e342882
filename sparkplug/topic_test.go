package sparkplug

import (
	"errors"
	"strings"
	"testing"
)

func TestParseTopic(t *testing.T) {
	valid := []struct {
		in   string
		want Topic
	}{
		{"spBv1.0/g/NBIRTH/e", Topic{Group: "g", Type: NBIRTH, Node: "e"}},
		{"spBv1.0/g/NDEATH/e", Topic{Group: "g", Type: NDEATH, Node: "e"}},
		{"spBv1.0/g/NDATA/e", Topic{Group: "g", Type: NDATA, Node: "e"}},
		{"spBv1.0/g/NCMD/e", Topic{Group: "g", Type: NCMD, Node: "e"}},
		{"spBv1.0/g/DBIRTH/e/d", Topic{Group: "g", Type: DBIRTH, Node: "e", Device: "d"}},
		{"spBv1.0/g/DDEATH/e/d", Topic{Group: "g", Type: DDEATH, Node: "e", Device: "d"}},
		{"spBv1.0/g/DDATA/e/d", Topic{Group: "g", Type: DDATA, Node: "e", Device: "d"}},
		{"spBv1.0/g/DCMD/e/d", Topic{Group: "g", Type: DCMD, Node: "e", Device: "d"}},
		{"spBv1.0/STATE/host-1", Topic{Type: STATE, Host: "host-1"}},
		{"spBv1.0/STATE/NDATA/e", Topic{Group: "STATE", Type: NDATA, Node: "e"}}, // a group may be called STATE
		{"spBv1.0/Plant 1/DDATA/Line:2/Pümpe ☃", Topic{Group: "Plant 1", Type: DDATA, Node: "Line:2", Device: "Pümpe ☃"}},
	}
	for _, tc := range valid {
		got, err := ParseTopic(tc.in)
		if err != nil {
			t.Errorf("ParseTopic(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseTopic(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("%+v.String() = %q, want %q", got, s, tc.in)
		}
	}

	invalid := []struct {
		in, want string // want: substring of the error
		is       error
	}{
		{"", "not a Sparkplug B topic", ErrInvalidTopic},
		{"spBv1.0", "not a Sparkplug B topic", ErrInvalidTopic},
		{"spAv1.0/g/NDATA/e", "not a Sparkplug B topic", ErrInvalidTopic},
		{"spbv1.0/g/NDATA/e", "not a Sparkplug B topic", ErrInvalidTopic},
		{"STATE/host", "not a Sparkplug B topic", ErrInvalidTopic}, // Sparkplug 2.2 STATE topic
		{"spBv1.0/g/NDATA", "not a Sparkplug B topic", ErrInvalidTopic},
		{"spBv1.0/g/ndata/e", `unknown message type "ndata"`, ErrInvalidTopic},
		{"spBv1.0/g/STATE/e", `unknown message type "STATE"`, ErrInvalidTopic},
		{"spBv1.0/g/NXXX/e", `unknown message type "NXXX"`, ErrInvalidTopic},
		{"spBv1.0/g/NDATA/e/d", "NDATA needs", ErrInvalidTopic},
		{"spBv1.0/g/NBIRTH/e/", "NBIRTH needs", ErrInvalidTopic},
		{"spBv1.0/g/DDATA/e", "DDATA needs", ErrInvalidTopic},
		{"spBv1.0/g/DCMD/e/d/x", "DCMD needs", ErrInvalidTopic},
		{"spBv1.0/STATE/h/x", `unknown message type "h"`, ErrInvalidTopic},
		{"spBv1.0/STATE/", `host id "" is empty`, ErrInvalidID},
		{"spBv1.0//NDATA/e", `group id "" is empty`, ErrInvalidID},
		{"spBv1.0/g/NDATA/", `edge node id "" is empty`, ErrInvalidID},
		{"spBv1.0/g/DDATA/e/", `device id "" is empty`, ErrInvalidID},
		{"spBv1.0/g+/NDATA/e", `group id "g+" contains "+"`, ErrInvalidID},
		{"spBv1.0/g/NDATA/#", `edge node id "#" contains "#"`, ErrInvalidID},
		{"spBv1.0/g/DDATA/e/\xff", `device id "\xff" is not valid UTF-8`, ErrInvalidID},
	}
	for _, tc := range invalid {
		_, err := ParseTopic(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.is) {
			t.Errorf("ParseTopic(%q) error = %v, want %q wrapping %v", tc.in, err, tc.want, tc.is)
		}
	}
}

func TestTopicValidate(t *testing.T) {
	bad := []Topic{
		{Group: "g", Type: "NFOO", Node: "e"},
		{Group: "g", Type: NDATA, Node: "e", Device: "d"},
		{Group: "g", Type: DDATA, Node: "e"},
		{Group: "g", Type: NDATA, Node: "e", Host: "h"},
		{Group: "g", Type: STATE, Host: "h"},
		{Type: STATE},
		{Group: "a/b", Type: NDATA, Node: "e"},
	}
	for _, tp := range bad {
		if err := tp.Validate(); err == nil {
			t.Errorf("%+v.Validate() = nil, want an error", tp)
		}
	}
	if err := (Topic{Group: "g", Type: DCMD, Node: "e", Device: "d"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "Line 1", "ä-ö_ü.1:2", "STATE", "$SYS"} {
		if err := CheckID("device id", id); err != nil {
			t.Errorf("CheckID(%q) = %v", id, err)
		}
	}
	err := CheckID("device id", "a/b")
	if !errors.Is(err, ErrInvalidID) || err.Error() != `invalid Sparkplug id: device id "a/b" contains "/"` {
		t.Errorf("CheckID(a/b) = %v", err)
	}
}
