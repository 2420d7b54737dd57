#!/usr/bin/env bash
# Throwaway S3 server (moto's, from .venv-tools: scripts/toolsenv.sh) for the object-storage tests.
#
#   scripts/s3.sh start [DIR]   start one, print `export RAYCTL_S3_...=...` lines
#   scripts/s3.sh stop DIR      stop it and delete DIR
#   scripts/s3.sh run CMD...    start one, run CMD with its variables exported, stop it
#
# The server listens on 127.0.0.1 on a free port and checks credentials and signatures like S3
# (moto's IAM authentication): the script creates one IAM user allowed s3:* and exports its
# keys, so a test can use them, or refuse-worthy ones, against the same server. Exports:
# RAYCTL_S3_ENDPOINT (http://127.0.0.1:PORT), RAYCTL_S3_ACCESS_KEY_ID,
# RAYCTL_S3_SECRET_ACCESS_KEY, RAYCTL_S3_DIR, and RAYCTL_TOOLS_PYTHON (scripts/toolsenv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "s3.sh: no free port found" >&2
  return 1
}

start() {
  local dir port py i
  dir=${1:-$(mktemp -d /tmp/rayctl-s3.XXXXXX)}
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  eval "$(scripts/toolsenv.sh)"
  py=$RAYCTL_TOOLS_PYTHON
  port=$(free_port)
  # The first 3 requests (the IAM setup below) run unauthenticated; every later one must be
  # signed with a known key. setsid: the server gets a process group of its own for stop.
  INITIAL_NO_AUTH_ACTION_COUNT=3 setsid "$(dirname "$py")/moto_server" -H 127.0.0.1 -p "$port" \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  for i in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if [ "$i" = 120 ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "s3.sh: moto's server did not listen on 127.0.0.1:$port within 60s:" >&2
      tail -n 40 "$dir/server.log" >&2
      stop "$dir" keep
      return 1
    fi
    sleep 0.5
  done
  if ! "$py" - "http://127.0.0.1:$port" >"$dir/keys" 2>"$dir/setup.log" <<'PY'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="rayctl-tests")
iam.put_user_policy(UserName="rayctl-tests", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="rayctl-tests")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
  then
    echo "s3.sh: creating the test IAM user failed:" >&2
    cat "$dir/setup.log" >&2
    stop "$dir" keep
    return 1
  fi
  read -r id secret <"$dir/keys"
  echo "export RAYCTL_S3_ENDPOINT='http://127.0.0.1:$port'"
  echo "export RAYCTL_S3_ACCESS_KEY_ID='$id'"
  echo "export RAYCTL_S3_SECRET_ACCESS_KEY='$secret'"
  echo "export RAYCTL_S3_DIR='$dir'"
  echo "export RAYCTL_TOOLS_PYTHON='$py'"
  echo "s3.sh: S3 (moto) at http://127.0.0.1:$port" >&2
}

stop() {
  local dir=${1:?usage: s3.sh stop DIR} keep=${2:-} pid i
  [ -d "$dir" ] || return 0
  if [ -f "$dir/pid" ]; then
    pid=$(cat "$dir/pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 25); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  if [ -z "$keep" ]; then rm -rf "$dir"; fi
}

run() {
  local env
  env=$(start)
  eval "$env"
  # shellcheck disable=SC2064
  trap "stop '$RAYCTL_S3_DIR'" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  run) run "$@" ;;
  *) echo "usage: scripts/s3.sh start [DIR] | stop DIR | run CMD..." >&2; exit 2 ;;
esac
