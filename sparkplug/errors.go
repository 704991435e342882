package sparkplug

import "errors"

// ErrInvalidTopic means a topic does not have the Sparkplug B 3.0 form
// spBv1.0/<group>/<type>/<node>[/<device>] or spBv1.0/STATE/<host>.
var ErrInvalidTopic = errors.New("not a Sparkplug B topic")

// ErrInvalidID means a group, edge node, device or host id is empty, not
// UTF-8, or contains one of + / #.
var ErrInvalidID = errors.New("invalid Sparkplug id")

// ErrTypeMismatch means a metric or property value is absent, is carried in a
// field that cannot hold its datatype, or is out of the datatype's range.
var ErrTypeMismatch = errors.New("value does not match datatype")

// ErrLegacyState means a STATE payload is the Sparkplug 2.2 plain "ONLINE" or
// "OFFLINE" string, replaced in 3.0 by JSON.
var ErrLegacyState = errors.New(`legacy Sparkplug 2.2 "ONLINE"/"OFFLINE" STATE payload (Sparkplug 3.0 hosts send {"online":bool,"timestamp":ms})`)

// ErrInvalidTemplate means a Template breaks a rule of Sparkplug 3.0 ch.6
// §Template (see Template.Validate).
var ErrInvalidTemplate = errors.New("invalid Sparkplug template")
