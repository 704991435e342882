#!/usr/bin/env bash
# Runs the pure packages' tests as 32-bit binaries: gateways are small, and
# armv7 is one of the targets. As 386 where the kernel runs 386 binaries,
# else as armv7 under qemu-user (installed if missing; Go's 386 runtime
# crashes under qemu-i386 7.2, armv7 under qemu-arm works).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=()
for p in ./sparkplug/... ./buffer/... ./drivers/... ./internal/... ./agent/record/...; do
  if [ -d "${p%/...}" ]; then pkgs+=("$p"); fi
done
# The node-opcua server's own test exercises a node process, not Go code
# on 32 bits.
skip='^TestNodeOPCUA'
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'package main\nfunc main() {}\n' >"$probe/main.go"
(cd "$probe" && CGO_ENABLED=0 GOARCH=386 go build -o probe main.go)
if "$probe/probe" 2>/dev/null; then
  echo "32-bit tests as 386"
  CGO_ENABLED=0 GOARCH=386 go test -count=1 -skip "$skip" "${pkgs[@]}"
  exit
fi
if ! command -v qemu-arm-static >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing qemu-user-static (this kernel does not run 386 binaries)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user-static >/dev/null
fi
echo "32-bit tests as armv7 under qemu-arm-static"
# qemu-user without binfmt_misc cannot re-exec the test binary, which the
# kill -9 test needs for its child; it runs natively in the 64-bit stage.
skip="$skip|^TestCrashKill9\$"
CGO_ENABLED=0 GOARCH=arm GOARM=7 go test -count=1 -skip "$skip" -exec qemu-arm-static "${pkgs[@]}"
