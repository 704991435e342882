package modbus

import (
	"log/slog"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/edgeagent/edgeagent/drivers"
)

// ConfigFromYAML builds the drivers.Config the agent would hand the factory
// for one device entry, decoding strictly the way the agent does: common
// keys are taken out, the rest goes to Decode, tags to DecodeTags.
func ConfigFromYAML(t testing.TB, src string) drivers.Config {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(src), &m); err != nil {
		t.Fatalf("test yaml: %v", err)
	}
	cfg := drivers.Config{ID: "dev", Logger: slog.New(slog.DiscardHandler), Timeout: time.Second}
	if id, ok := m["id"].(string); ok {
		cfg.ID = id
	}
	if to, ok := m["timeout"].(string); ok {
		d, err := time.ParseDuration(to)
		if err != nil {
			t.Fatalf("test yaml: %v", err)
		}
		cfg.Timeout = d
	}
	tags := m["tags"]
	for _, k := range []string{"id", "driver", "poll", "timeout", "tags", "tag_map"} {
		delete(m, k)
	}
	strict := func(v any, dst any) error {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		return yaml.UnmarshalWithOptions(b, dst, yaml.Strict())
	}
	cfg.Decode = func(v any) error { return strict(m, v) }
	cfg.DecodeTags = func(v any) error {
		if tags == nil {
			return nil
		}
		return strict(tags, v)
	}
	return cfg
}
