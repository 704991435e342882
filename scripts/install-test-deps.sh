#!/usr/bin/env bash
# Installs what `make test` needs when it is missing: Mosquitto (the real
# central broker the end-to-end tests run against), Node.js and npm, the
# npm decoder the Sparkplug cross-check uses, and node-opcua for the OPC UA
# test server (scripts/opcua-testserver, run by internal/testutil).
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if command -v npm >/dev/null 2>&1 && [ ! -d scripts/sparkplug-crosscheck/node_modules ]; then
  (cd scripts/sparkplug-crosscheck && npm ci --silent --no-audit --no-fund)
fi
if command -v npm >/dev/null 2>&1 && [ ! -d scripts/opcua-testserver/node_modules/node-opcua ]; then
  (cd scripts/opcua-testserver && npm ci --silent --no-audit --no-fund)
fi
