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
. scripts/lib.sh

py=$(scripts/pyenv.sh --which-python)
want="$(sha256sum "$req" | cut -d' ' -f1) $djangoray python-$(python_version "$py")"
ensure_venv "$venv" "$venv/.rayctl-tools.stamp" "$want" "$py" "$req" --no-deps "$djangoray"
echo "export RAYCTL_TOOLS_PYTHON='$venv/bin/python'"
