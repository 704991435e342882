package drivers

import (
	"errors"
)

// ErrNotConnected means the link to the PLC is down or was never opened;
// the agent should Close, back off and Connect again.
var ErrNotConnected = errors.New("not connected to the PLC")

// ErrNotWritable means a write targeted a tag not marked writable, or of a
// kind the protocol cannot write (an input register, a discrete input).
var ErrNotWritable = errors.New("tag is not writable")

// KeyError is a configuration error in the value of one key, of a device or
// of a tag (Key is then relative to the tag, e.g. "address"), so the
// configuration loader can point at the line that holds it.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }

func (e *KeyError) Unwrap() error { return e.Err }

// KeyErr returns a KeyError for key.
func KeyErr(key string, err error) error { return &KeyError{Key: key, Err: err} }
