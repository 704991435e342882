// Package sparkplugpb holds the Go types generated from sparkplug_b.proto, the
// Sparkplug B 3.0 payload schema (proto2, package org.eclipse.tahu.protobuf).
//
// Package sparkplug decodes with these types and uses them in tests to check
// field presence; its encoder writes the wire format directly and does not
// use them. Do not edit sparkplug_b.pb.go: change the .proto and run gen.sh.
package sparkplugpb

//go:generate sh gen.sh
