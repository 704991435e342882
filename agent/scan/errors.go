package scan

import "errors"

// ErrWriteQueueFull refuses a write while the device still has many
// writes to apply.
var ErrWriteQueueFull = errors.New("the device has too many writes waiting")

// ErrOffline refuses a write to a device whose PLC is not connected.
var ErrOffline = errors.New("the device is offline")

// ErrOutsideLimits refuses a write below a tag's min or above its max (a
// *LimitError says which).
var ErrOutsideLimits = errors.New("the value is outside the tag's limits")
