#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl stop edgeagent.service >/dev/null 2>&1 || true
  systemctl disable edgeagent.service >/dev/null 2>&1 || true
fi
