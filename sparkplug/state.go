package sparkplug

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// State is the Sparkplug 3.0 Primary Host STATE payload, published retained
// on spBv1.0/STATE/<host_id>.
type State struct {
	Online    bool   `json:"online"`
	Timestamp uint64 `json:"timestamp"` // UTC ms of the host's CONNECT
}

// ParseState parses a STATE payload. Both fields are required; unknown fields
// are ignored. The Sparkplug 2.2 strings "ONLINE" and "OFFLINE" fail with
// ErrLegacyState.
func ParseState(b []byte) (State, error) {
	if s := string(bytes.TrimSpace(b)); s == "ONLINE" || s == "OFFLINE" {
		return State{}, fmt.Errorf("parsing STATE payload: %w", ErrLegacyState)
	}
	var v struct {
		Online    *bool   `json:"online"`
		Timestamp *uint64 `json:"timestamp"`
	}
	err := json.Unmarshal(b, &v)
	switch {
	case err != nil:
	case v.Online == nil:
		err = errors.New(`missing "online"`)
	case v.Timestamp == nil:
		err = errors.New(`missing "timestamp"`)
	}
	if err != nil {
		return State{}, fmt.Errorf("parsing STATE payload %.64q: %w", b, err)
	}
	return State{Online: *v.Online, Timestamp: *v.Timestamp}, nil
}

// JSON returns the payload as a host publishes it:
// {"online":true,"timestamp":1700000000000}.
func (s State) JSON() []byte {
	b := append(make([]byte, 0, 48), `{"online":`...)
	b = strconv.AppendBool(b, s.Online)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendUint(b, s.Timestamp, 10)
	return append(b, '}')
}

// NextBdSeq returns the bdSeq for the next MQTT CONNECT: prev+1, wrapping
// 255 to 0.
func NextBdSeq(prev uint64) uint64 { return (prev + 1) % 256 }
