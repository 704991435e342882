package config

import (
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/edgeagent/edgeagent/drivers"
)

// DriverConfig builds, from one device written in YAML (its keys as a
// mapping, as under devices:), the drivers.Config the loader hands that
// device's driver: id and timeout taken from the agent's keys, Decode over
// the driver's own keys, Tags over its inline tags. Errors found by Decode
// or Tags.Each come back from them as Errors. It lets a driver's tests
// decode exactly as the agent does.
func DriverConfig(src string) (drivers.Config, error) {
	var errs Errors
	d := newDecoder("device.yaml", &errs)
	l := &loader{}
	root := l.parse(d.file, []byte(src))
	if root == nil {
		return drivers.Config{}, l.errs
	}
	var k deviceKeys
	var rest []pair
	d.structure("", root, reflect.ValueOf(&k).Elem(), &rest)
	if len(errs) > 0 {
		return drivers.Config{}, errs
	}
	restNode := &yaml.Node{Kind: yaml.MappingNode, Line: root.Line, Column: root.Column}
	for _, p := range rest {
		restNode.Content = append(restNode.Content, p.k, p.v)
	}
	timeout := k.Timeout.D()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	poll := k.Poll.D()
	if poll == 0 {
		poll = DefaultPoll
	}
	id := k.ID
	if id == "" {
		id = "dev"
	}
	tags := resolve(k.Tags)
	if tags == nil {
		tags = &yaml.Node{Kind: yaml.SequenceNode}
	}
	if tags.Kind != yaml.SequenceNode {
		return drivers.Config{}, fmt.Errorf("tags: want a list")
	}
	return drivers.Config{
		ID:     id,
		Logger: slog.New(slog.DiscardHandler),
		Decode: func(v any) error {
			n := len(errs)
			if d.decode("", restNode, v) {
				return nil
			}
			return errs[n:]
		},
		Tags:    &nodeTags{d: d, key: "tags", seq: tags},
		Timeout: time.Duration(timeout),
		Poll:    poll,
	}, nil
}
