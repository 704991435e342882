package modbus

import (
	"testing"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
)

// ConfigFromYAML builds the drivers.Config the agent would hand the factory
// for one device entry, decoding exactly as the agent's loader does.
func ConfigFromYAML(t testing.TB, src string) drivers.Config {
	t.Helper()
	cfg, err := config.DriverConfig(src)
	if err != nil {
		t.Fatalf("test yaml: %v", err)
	}
	return cfg
}
