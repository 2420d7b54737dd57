# Sourced by the throwaway-server scripts (pg.sh, ray.sh, s3.sh, gcs.sh) and the venv scripts
# (pyenv.sh, toolsenv.sh): what they do alike, written once. Not run on its own.
#
# A server script defines `start [DIR]` (print `export NAME=...` lines, one of them naming the
# server's directory) and `stop DIR [keep]` (stop the server; delete DIR unless keep), and ends
# with `main`. Every function returns an explicit status: a bare `return` in a function called
# from an EXIT trap would return the status of the command that failed before the trap, and
# `set -e` would then abandon the cleanup, leaving the server running.

me=${0##*/}

# free_port: print a port on 127.0.0.1 that nothing listens on.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$(( 20000 + RANDOM % 20000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  echo "$me: no free port found" >&2
  return 1
}

# server_dir DIR PREFIX: print DIR made absolute (created if missing), or a new directory
# /tmp/PREFIX.XXXXXX when DIR is empty.
server_dir() {
  local dir=${1:-$(mktemp -d "/tmp/$2.XXXXXX")}
  mkdir -p "$dir"
  (cd "$dir" && pwd)
}

# await_port DIR PORT TRIES WHAT: wait (TRIES times half a second) until something listens on
# 127.0.0.1:PORT while the server whose PID is in DIR/pid lives; if it does not, print the end
# of its DIR/server.log, stop it (keeping DIR) and fail.
await_port() {
  local dir=$1 port=$2 tries=$3 what=$4 i
  for i in $(seq 1 "$tries"); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [ "$i" = "$tries" ] || ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "$me: $what did not listen on 127.0.0.1:$port within $(( tries / 2 ))s:" >&2
      tail -n 40 "$dir/server.log" >&2
      stop "$dir" keep
      return 1
    fi
    sleep 0.5
  done
  return 0
}

# stop_group DIR KEEP: stop the process group led by the PID in DIR/pid (SIGTERM, SIGKILL after
# 5 s); delete DIR unless KEEP is set.
stop_group() {
  local dir=$1 keep=$2 pid i
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
  return 0
}

# start_until_exit DIRVAR: start a server (the script's `start`), export what it prints, and stop
# it when the script exits, however that happens (the script keeps its status; Ctrl-C exits
# 130, SIGTERM 143, SIGHUP 129). DIRVAR is the exported variable that names its directory.
start_until_exit() {
  local env
  env=$(start)
  eval "$env"
  # shellcheck disable=SC2064
  trap "status=\$?; set +e; stop '${!1}'; exit \$status" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  return 0
}

# main VERBS USAGE ARG...: call the function ARG1 names with the other ARGs when it is one of
# the space-separated VERBS; otherwise print `usage: scripts/<script> USAGE` and exit 2.
main() {
  local verbs=" $1 " usage=$2 cmd=${3:-}
  shift 2
  shift || true
  if [ -n "$cmd" ] && [[ $verbs == *" $cmd "* ]]; then
    "$cmd" "$@"
  else
    echo "usage: scripts/$me $usage" >&2
    exit 2
  fi
}

# python_version PY: print PY's version, x.y.z.
python_version() {
  "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'
}

# ensure_venv VENV STAMP WANT PY REQ [PIP_ARG...]: unless VENV has a python and STAMP holds
# WANT, (re)create VENV with PY, install REQ (a requirements file) into it, then PIP_ARGs (one
# more `pip install`) if given, and write WANT to STAMP. Progress goes to stderr.
ensure_venv() {
  local venv=$1 stamp=$2 want=$3 py=$4 req=$5 pyver start
  shift 5
  pyver=$(python_version "$py")
  if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$me: $venv is up to date (Python $pyver)" >&2
    return 0
  fi
  echo "$me: creating $venv with $py (Python $pyver) and installing $req" >&2
  start=$(date +%s)
  rm -rf "$venv"
  "$py" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip >&2
  "${pip[@]}" -r "$req" >&2
  if [ $# -gt 0 ]; then "${pip[@]}" "$@" >&2; fi
  echo "$want" >"$stamp"
  echo "$me: installed in $(( $(date +%s) - start ))s" >&2
  return 0
}
