#!/bin/sh
# Regenerates sparkplug_b.pb.go from sparkplug_b.proto. Needs protoc (Debian
# protobuf-compiler) and protoc-gen-go v1.36.12, the version go.mod pins
# google.golang.org/protobuf to. The output is committed, so builds need neither.
set -eu
cd "$(dirname "$0")"
PATH="$(go env GOPATH)/bin:$PATH" protoc \
	--proto_path=. \
	--go_out=. \
	--go_opt=paths=source_relative \
	--go_opt=Msparkplug_b.proto=github.com/edgeagent/edgeagent/sparkplug/sparkplugpb \
	sparkplug_b.proto
