# edgeagent build. `make demo` shows it working; `make test` proves it.
MODULE  := github.com/edgeagent/edgeagent
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Debian versions must start with a digit: v1.2.3 → 1.2.3, an untagged
# commit abc123 → 0.0.0~gitabc123.
DEB_VERSION := $(shell echo $(VERSION) | sed -E 's/^v//; /^[0-9]/!s/^/0.0.0~git/')
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION)
GOBUILD := CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)"
PLATFORMS := linux/amd64 linux/arm64 linux/arm/7

.PHONY: all build test test-32bit bench demo cross proto lint deb clean

all: build

build:
	$(GOBUILD) -o dist/edgeagent ./cmd/edgeagent

# Installs Mosquitto (and the npm cross-check decoder) if missing, then
# runs every test with the race detector, and the pure packages as 32-bit
# binaries.
test:
	scripts/install-test-deps.sh
	go vet ./...
	go vet -tags demo ./cmd/edgeagent
	go test -race -count=1 -timeout 15m ./...
	go test -race -count=1 -tags demo -run Demo ./cmd/edgeagent
	$(MAKE) --no-print-directory test-32bit

test-32bit:
	scripts/test-32bit.sh

bench:
	scripts/install-test-deps.sh
	go test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 20m ./agent/ 
	go test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 20m ./agent/scan/
	go test -run '^$$' -bench . -benchmem -timeout 20m ./sparkplug/... ./buffer/... ./drivers/... ./agent/record/ ./agent/config/

demo:
	go run -tags demo ./cmd/edgeagent demo

cross:
	@for p in $(PLATFORMS); do \
	  os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
	  out=dist/edgeagent-$$os-$$arch$$( [ "$$arch" = arm ] && echo v$$arm ); \
	  echo "building $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$( [ "$$arch" = arm ] && echo $$arm ) \
	    go build -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/edgeagent || exit 1; \
	done

# Regenerates the Sparkplug protobuf code (committed, so builds need neither
# protoc nor protoc-gen-go): apt-get install protobuf-compiler;
# go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
proto:
	PATH="$$PATH:$$(go env GOPATH)/bin" protoc -I sparkplug/sparkplugpb \
	  --go_out=sparkplug/sparkplugpb --go_opt=paths=source_relative \
	  --go_opt=Msparkplug_b.proto=$(MODULE)/sparkplug/sparkplugpb \
	  sparkplug/sparkplugpb/sparkplug_b.proto

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	go vet -tags demo ./cmd/edgeagent

deb: cross
	@command -v nfpm >/dev/null || go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.44.0
	@for arch in amd64 arm64 arm; do \
	  bin=dist/edgeagent-linux-$$arch$$( [ "$$arch" = arm ] && echo v7 ); \
	  debarch=$$( [ "$$arch" = arm ] && echo armhf || echo $$arch ); \
	  mkdir -p dist/pkg && cp $$bin dist/pkg/edgeagent; \
	  VERSION=$(DEB_VERSION) ARCH=$$debarch PATH="$$PATH:$$(go env GOPATH)/bin" \
	    nfpm package -f packaging/nfpm.yaml -p deb -t dist/ || exit 1; \
	done

clean:
	rm -rf dist .demo
