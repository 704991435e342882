package drivers

import (
	"errors"
	"fmt"
)

// ErrNotConnected means the link to the PLC is down or was never opened;
// the agent should Close, back off and Connect again.
var ErrNotConnected = errors.New("not connected to the PLC")

// ErrNotWritable means a write targeted a tag not marked writable, or of a
// kind the protocol cannot write (an input register, a discrete input).
var ErrNotWritable = errors.New("tag is not writable")

// TagError is a configuration error in one tag; Index is its position in
// the device's tag list, so the agent can point at the file and line.
type TagError struct {
	Index int
	Name  string
	Err   error
}

func (e *TagError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("tags[%d]: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("tag %q: %v", e.Name, e.Err)
}

func (e *TagError) Unwrap() error { return e.Err }
