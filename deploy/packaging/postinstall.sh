#!/bin/sh
# rayworker package: create the rayworker user (sysusers.d entry), let it read its
# configuration, and tell systemd about the units. Nothing is enabled or started: configure
# /etc/rayworker/rayworker.env first, then `systemctl enable --now rayworker`.
set -e
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers /usr/lib/sysusers.d/rayworker.conf || true
elif ! getent passwd rayworker >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/rayworker --no-create-home --shell /usr/sbin/nologin rayworker || true
fi
if getent group rayworker >/dev/null 2>&1; then
  chgrp rayworker /etc/rayworker /etc/rayworker/rayworker.env 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
