package uplink

import (
	"fmt"
	"testing"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/sparkplug"
)

// A device's pending DDATA becomes instance metrics whose members are
// unique by name and share one historical flag: a tag that changed twice
// in one message, or history beside live data, starts another instance.
func TestInstancesSplit(t *testing.T) {
	s := &session{cfg: &config.Config{}}
	ds := &devState{alias: 40, tmpl: &tmplDef{name: "press"}}
	m := func(name string, v uint64, hist bool) sparkplug.Metric {
		return sparkplug.Metric{Name: name, Alias: 41, HasAlias: true, Type: sparkplug.TypeUInt16, Int: v, Timestamp: 1000 + v, Historical: hist}
	}
	pend := []sparkplug.Metric{m("speed", 1, true), m("temp", 2, true), m("speed", 3, true), m("temp", 4, false), m("speed", 5, false)}
	got := s.instances(ds, pend)
	var shape []string
	for _, x := range got {
		if x.Name != "press" || x.Alias != 40 || !x.HasAlias || x.Type != sparkplug.TypeTemplate {
			t.Errorf("instance metric %q alias %d (%v) type %s, want press 40 Template", x.Name, x.Alias, x.HasAlias, x.Type)
		}
		tp, err := sparkplug.DecodeTemplate(x.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if tp.Ref != "press" || tp.IsDefinition {
			t.Errorf("template_ref %q, is_definition %v", tp.Ref, tp.IsDefinition)
		}
		s := fmt.Sprintf("hist=%v ts=%d", x.Historical, x.Timestamp)
		for _, mm := range tp.Metrics {
			if mm.HasAlias {
				t.Errorf("member %s has an alias", mm.Name)
			}
			s += fmt.Sprintf(" %s=%s", mm.Name, mm.ValueString())
		}
		shape = append(shape, s)
	}
	want := []string{"hist=true ts=1002 speed=1 temp=2", "hist=true ts=1003 speed=3", "hist=false ts=1005 temp=4 speed=5"}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		t.Errorf("instances\n got %q\nwant %q", shape, want)
	}
}
