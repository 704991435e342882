package sparkplug

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Namespace is the first topic level of every Sparkplug B topic.
const Namespace = "spBv1.0"

// MessageType is the message_type level of a topic.
type MessageType string

// Sparkplug B message types.
const (
	NBIRTH MessageType = "NBIRTH"
	NDEATH MessageType = "NDEATH"
	DBIRTH MessageType = "DBIRTH"
	DDEATH MessageType = "DDEATH"
	NDATA  MessageType = "NDATA"
	DDATA  MessageType = "DDATA"
	NCMD   MessageType = "NCMD"
	DCMD   MessageType = "DCMD"
	STATE  MessageType = "STATE"
)

// device reports whether topics of this type carry a device_id; known
// reports whether the type exists at all.
func (t MessageType) device() (device, known bool) {
	switch t {
	case DBIRTH, DDEATH, DDATA, DCMD:
		return true, true
	case NBIRTH, NDEATH, NDATA, NCMD, STATE:
		return false, true
	}
	return false, false
}

// Topic is a parsed Sparkplug B topic. Host is set only for STATE, which has
// no group, node or device.
type Topic struct {
	Group  string
	Type   MessageType
	Node   string
	Device string
	Host   string // STATE only
}

// String formats the topic: spBv1.0/<group>/<type>/<node>[/<device>], or
// spBv1.0/STATE/<host>. It does not validate; see Validate.
func (t Topic) String() string {
	if t.Type == STATE {
		return Namespace + "/STATE/" + t.Host
	}
	s := Namespace + "/" + t.Group + "/" + string(t.Type) + "/" + t.Node
	if t.Device != "" {
		s += "/" + t.Device
	}
	return s
}

// Validate checks that the type is known, that exactly the ids the type needs
// are set, and that each is a valid id (CheckID).
func (t Topic) Validate() error {
	device, known := t.Type.device()
	switch {
	case !known:
		return fmt.Errorf("%w: unknown message type %q", ErrInvalidTopic, t.Type)
	case t.Type == STATE:
		if t.Group != "" || t.Node != "" || t.Device != "" {
			return fmt.Errorf("%w: STATE has only a host id", ErrInvalidTopic)
		}
		return CheckID("host id", t.Host)
	case t.Host != "":
		return fmt.Errorf("%w: host id %q outside STATE", ErrInvalidTopic, t.Host)
	case !device && t.Device != "":
		return fmt.Errorf("%w: %s has no device id, got %q", ErrInvalidTopic, t.Type, t.Device)
	}
	if err := CheckID("group id", t.Group); err != nil {
		return err
	}
	if err := CheckID("edge node id", t.Node); err != nil {
		return err
	}
	if device {
		return CheckID("device id", t.Device)
	}
	return nil
}

// ParseTopic parses and validates a Sparkplug B 3.0 topic. A group named
// "STATE" is allowed: spBv1.0/STATE/<host> is STATE only with three levels.
func ParseTopic(s string) (Topic, error) {
	t, err := splitTopic(s)
	if err == nil {
		err = t.Validate()
	}
	if err != nil {
		return Topic{}, fmt.Errorf("parsing topic %q: %w", s, err)
	}
	return t, nil
}

func splitTopic(s string) (Topic, error) {
	p := strings.Split(s, "/")
	if len(p) < 3 || p[0] != Namespace {
		return Topic{}, fmt.Errorf("%w: want %s/<group>/<type>/<node>[/<device>] or %s/STATE/<host>", ErrInvalidTopic, Namespace, Namespace)
	}
	if len(p) == 3 && p[1] == string(STATE) {
		return Topic{Type: STATE, Host: p[2]}, nil
	}
	t := Topic{Group: p[1], Type: MessageType(p[2])}
	device, known := t.Type.device()
	switch {
	case !known || t.Type == STATE:
		return Topic{}, fmt.Errorf("%w: unknown message type %q", ErrInvalidTopic, p[2])
	case device && len(p) != 5:
		return Topic{}, fmt.Errorf("%w: %s needs %s/<group>/%s/<node>/<device>", ErrInvalidTopic, t.Type, Namespace, t.Type)
	case !device && len(p) != 4:
		return Topic{}, fmt.Errorf("%w: %s needs %s/<group>/%s/<node>", ErrInvalidTopic, t.Type, Namespace, t.Type)
	}
	t.Node = p[3]
	if device {
		t.Device = p[4]
	}
	return t, nil
}

// CheckID validates a group, edge node, device or host id: non-empty, valid
// UTF-8, and free of the MQTT separators and wildcards + / #. what names the
// id in the error, e.g. "group id".
func CheckID(what, id string) error {
	var reason string
	switch {
	case id == "":
		reason = "is empty"
	case !utf8.ValidString(id):
		reason = "is not valid UTF-8"
	default:
		i := strings.IndexAny(id, "+/#")
		if i < 0 {
			return nil
		}
		reason = fmt.Sprintf("contains %q", id[i:i+1])
	}
	return fmt.Errorf("%w: %s %q %s", ErrInvalidID, what, id, reason)
}
