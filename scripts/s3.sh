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
. scripts/lib.sh

start() {
  local dir port py
  dir=$(server_dir "${1:-}" rayctl-s3)
  eval "$(scripts/toolsenv.sh)"
  py=$RAYCTL_TOOLS_PYTHON
  port=$(free_port)
  # The first 3 requests (the IAM setup below) run unauthenticated; every later one must be
  # signed with a known key. setsid: the server gets a process group of its own for stop.
  INITIAL_NO_AUTH_ACTION_COUNT=3 setsid "$(dirname "$py")/moto_server" -H 127.0.0.1 -p "$port" \
    >"$dir/server.log" 2>&1 &
  echo $! >"$dir/pid"
  await_port "$dir" "$port" 120 "moto's server" || return 1
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
  stop_group "${1:?usage: s3.sh stop DIR}" "${2:-}"
}

run() {
  start_until_exit RAYCTL_S3_DIR
  "$@"
}

main "start stop run" "start [DIR] | stop DIR | run CMD..." "$@"
