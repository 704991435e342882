#!/bin/sh
set -e
getent group edgeagent >/dev/null || groupadd --system edgeagent
getent passwd edgeagent >/dev/null || useradd --system --gid edgeagent --home-dir /var/lib/edgeagent --shell /usr/sbin/nologin edgeagent
