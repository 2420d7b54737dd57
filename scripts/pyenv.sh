#!/usr/bin/env bash
# Python virtualenv for the real-Ray test tier (and the Django interop tier).
#
#   eval "$(scripts/pyenv.sh)"     create or refresh .venv, print `export RAYCTL_PYTHON=...`
#   scripts/pyenv.sh --which-python print the interpreter it would use (scripts/toolsenv.sh)
#
# django-ray 0.2.0 needs Python >= 3.12. The interpreter is RAYCTL_PYTHON_BIN if set, else a
# 3.12.x (else the newest 3.12+) under $PYENV_ROOT/versions, ~/.pyenv/versions or
# /root/.pyenv/versions, else python3.13 / python3.12 / python3 on PATH. The venv lives at .venv
# (gitignored; override with RAYCTL_VENV). Requirements come from python/requirements.txt; a
# stamp file holding the hash of that file and the interpreter version skips the reinstall when
# nothing changed. Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${RAYCTL_VENV:-$root/.venv}
req=$root/python/requirements.txt
. scripts/lib.sh

ok_python() { # ok_python BIN: prints BIN if it runs and is >= 3.12
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1 && echo "$1"
}

find_python() {
  local c d
  if [ -n "${RAYCTL_PYTHON_BIN:-}" ]; then
    ok_python "$RAYCTL_PYTHON_BIN" && return
    echo "pyenv.sh: RAYCTL_PYTHON_BIN=$RAYCTL_PYTHON_BIN is not a runnable Python >= 3.12" >&2
    return 1
  fi
  for d in "${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv; do
    [ -n "$d" ] && [ -d "$d/versions" ] || continue
    # 3.12 first (django-ray 0.2.0's verified version), then newer; newest patch first;
    # only plain CPython x.y.z directories
    for c in $( (ls -d "$d"/versions/3.12.[0-9]* 2>/dev/null | sort -V -r
                 ls -d "$d"/versions/3.[0-9]*.[0-9]* 2>/dev/null | sort -V -r) |
               grep -E '/3\.[0-9]+\.[0-9]+$'); do
      ok_python "$c/bin/python3" && return
    done
  done
  for c in python3.13 python3.12 python3; do
    command -v "$c" >/dev/null 2>&1 && ok_python "$(command -v "$c")" && return
  done
  echo "pyenv.sh: no Python >= 3.12 found (looked in \$PYENV_ROOT/versions, ~/.pyenv/versions," \
    "/root/.pyenv/versions and for python3.13/python3.12/python3 on PATH); django-ray 0.2.0" \
    "requires Python >= 3.12: install one or set RAYCTL_PYTHON_BIN" >&2
  return 1
}

py=$(find_python)
if [ "${1:-}" = --which-python ]; then
  echo "$py"
  exit 0
fi
want="$(sha256sum "$req" | cut -d' ' -f1) python-$(python_version "$py")"
ensure_venv "$venv" "$venv/.rayctl-requirements.stamp" "$want" "$py" "$req"
echo "export RAYCTL_PYTHON='$venv/bin/python'"
echo "export RAYCTL_VENV='$venv'"
