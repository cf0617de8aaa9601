#!/usr/bin/env bash
# Create (or reuse) the Python environment for Meta's reference SAM 2 (PyPI sam2==1.1.0, CPU).
# Only the fixture generator needs it; CI and `cargo test` never do.
#
#   tools/reference/setup.sh                         # venv at tools/reference/.venv
#   VENV=/some/where tools/reference/setup.sh        # or elsewhere (relative paths: repo root)
#   PYTHON=python3.11 tools/reference/setup.sh       # interpreter for a new venv
#
# Idempotent: an existing venv is reused, pinned packages already present are not reinstalled,
# and sam2 is only installed when missing. About 2.7 GB to download, 4.4 GB on disk (torch's
# CUDA runtime wheels are needed to import it, even on CPU).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

VENV=${VENV:-tools/reference/.venv}
PYTHON=${PYTHON:-python3}
case "$VENV" in /*) ;; *) VENV="$REPO/$VENV" ;; esac  # absolute: the check below runs from /

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

"$VENV/bin/python" -m pip install --disable-pip-version-check -r "$HERE/requirements.txt"

if [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("sam2"))' 2>/dev/null || true)" != "1.1.0" ]; then
    # No CUDA extension (sam2._C): only used for hole filling, which the reference skips on CPU.
    # --no-build-isolation: its setup.py must see the torch installed above.
    # --no-deps: keep the pinned versions.
    SAM2_BUILD_CUDA=0 "$VENV/bin/python" -m pip install --disable-pip-version-check \
        --no-build-isolation --no-deps sam2==1.1.0
fi

# Run the check from / so that no local directory named sam2 can shadow the package.
(cd / && "$VENV/bin/python" -c '
import importlib.metadata as m
import torch, torchvision, sam2, hydra, safetensors, PIL
from sam2.build_sam import build_sam2
print("reference environment ok: sam2", m.version("sam2"), "torch", torch.__version__,
      "torchvision", torchvision.__version__)
')
echo "use: $VENV/bin/python tools/reference/make_fixtures.py"
