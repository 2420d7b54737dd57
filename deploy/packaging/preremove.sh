#!/bin/sh
# rayworker package: on removal (not on upgrade) stop the workers; each drains its running
# tasks on SIGTERM before it exits.
set -e
case "$1" in
  upgrade|1) exit 0 ;; # deb upgrade / rpm upgrade ($1 = remaining versions)
esac
if [ -d /run/systemd/system ]; then
  systemctl stop 'rayworker.service' 'rayworker@*.service' 2>/dev/null || true
  systemctl disable 'rayworker.service' 2>/dev/null || true
fi
exit 0
