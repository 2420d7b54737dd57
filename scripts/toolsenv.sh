#!/usr/bin/env bash
# Python virtualenv of the object-storage test tools, apart from the shared .venv:
#
#   eval "$(scripts/toolsenv.sh)"   create or refresh .venv-tools, print `export RAYCTL_TOOLS_PYTHON=...`
#
# It holds moto's S3 server (scripts/s3.sh) and, for the Django interop checks of the s3 and gcs
# result backends, Django, django-ray 0.2.0 (--no-deps: Ray is not needed to enqueue, run
# --sync or read results) and the cloud clients django-ray imports (boto3,
# google-cloud-storage). Requirements: scripts/tools-requirements.txt. The interpreter is the
# one scripts/pyenv.sh picks (Python >= 3.12). The venv lives at .venv-tools (gitignored;
# override with RAYCTL_TOOLS_VENV). A stamp of the requirements' hash and the Python version
# skips the reinstall when nothing changed. Progress goes to stderr; stdout carries only the
# export line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${RAYCTL_TOOLS_VENV:-$root/.venv-tools}
req=$root/scripts/tools-requirements.txt
djangoray=django-ray==0.2.0

py=$(scripts/pyenv.sh --which-python)
pyver=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
want="$(cat "$req" | sha256sum | cut -d' ' -f1) $djangoray python-$pyver"
stamp=$venv/.rayctl-tools.stamp

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "toolsenv.sh: $venv is up to date (Python $pyver)" >&2
else
  echo "toolsenv.sh: creating $venv with $py (Python $pyver) and installing $req" >&2
  start=$(date +%s)
  rm -rf "$venv"
  "$py" -m venv "$venv"
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  "${pip[@]}" --upgrade pip >&2
  "${pip[@]}" -r "$req" >&2
  "${pip[@]}" --no-deps "$djangoray" >&2
  echo "$want" >"$stamp"
  echo "toolsenv.sh: installed in $(( $(date +%s) - start ))s" >&2
fi
echo "export RAYCTL_TOOLS_PYTHON='$venv/bin/python'"
