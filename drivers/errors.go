package drivers

import "errors"

// ErrNotConnected means the link to the PLC is down or was never opened;
// the agent should Close, back off and Connect again.
var ErrNotConnected = errors.New("not connected to the PLC")

// ErrNotWritable means a write targeted a tag not marked writable, or of a
// kind the protocol cannot write (an input register, a discrete input).
var ErrNotWritable = errors.New("tag is not writable")
