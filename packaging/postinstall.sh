#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable edgeagent.service >/dev/null
  # Start only once configured: the packaged config is an example.
  echo "edgeagent: edit /etc/edgeagent/config.yaml, check it with 'edgeagent validate', then 'systemctl start edgeagent'"
fi
