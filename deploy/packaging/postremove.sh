#!/bin/sh
# rayworker package: forget the removed units. The rayworker user, /etc/rayworker and
# /var/lib/rayworker are kept (as most daemons' packages do); remove them by hand.
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
