// Package config is edgeagent's configuration: the model, loading from
// YAML with every mistake placed at its file:line:col, and validation.
//
// Load reads the configuration file and the tag-map files its devices
// name, decodes the agent's own sections strictly (an unknown key is an
// error, with a suggestion when it looks misspelt), checks every value,
// and builds each device's driver through the drivers registry: the
// driver decodes and checks its own keys and walks the tags one at a
// time (drivers.TagSource), so a device's tags are held once, by its
// driver. Building a driver does no I/O: Load reads files and nothing
// else, and is what `edgeagent validate` and a reload run.
//
// Nothing stops at the first mistake. Load returns Errors, every one
// found, sorted by file and line, each worded for the person who wrote the
// file (keys as written, never a Go type):
//
//	config.yaml:14:9: devices[0] (press-02).tags[3] "pressure": unknown key "adress" (did you mean "address"?)
//	config.yaml:3:13: mqtt.keepalive: "5" is not a duration like 500ms, 2s or 1m
//
// Any valid YAML 1.2 is accepted however it is written: flow or block
// style, anchors, aliases and merge keys (<<).
//
// A Device carries a fingerprint of everything that configures it; a
// reload compares fingerprints to leave unchanged devices running.
package config
