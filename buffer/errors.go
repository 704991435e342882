package buffer

import "errors"

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("buffer closed")

// ErrTooLarge means a single record is larger than the buffer's MaxBytes cap (with RecordOverhead) and can never be stored.
var ErrTooLarge = errors.New("record larger than the buffer cap")

// ErrLocked means another process holds the buffer file open (bbolt's exclusive lock was not granted within about 1 s).
var ErrLocked = errors.New("buffer file locked by another process")

// ErrNotBuffer means the file is a valid bbolt database that is not an edgeagent buffer, or of a newer format; it is left untouched.
var ErrNotBuffer = errors.New("file is not an edgeagent buffer of a known format")
