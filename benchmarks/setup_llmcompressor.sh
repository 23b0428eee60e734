#!/usr/bin/env bash
# Creates .venv-llmcompressor, idempotently: the Python environment in which
# benchmarks/ptq_side_by_side.py runs llm-compressor (and its transformers perplexity
# evaluator). It is separate from .venv because llmcompressor 0.14 pins transformers<=5.17 and
# compressed-tensors==0.19.0; torch is the same pin as scripts/requirements.txt.
#
#     bash benchmarks/setup_llmcompressor.sh
#
# Every version comes from benchmarks/requirements-llmcompressor.txt; pip runs only when that
# file changes (a stamp named by its hash, as scripts/bootstrap.sh does for .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-llmcompressor
REQUIREMENTS=benchmarks/requirements-llmcompressor.txt
TORCH_VERSION=$(sed -n 's/^torch==//p' scripts/requirements.txt)
PYTHON=${PYTHON:-python3}

grep -qx "torch==${TORCH_VERSION}" "$REQUIREMENTS" || {
  echo "setup_llmcompressor: $REQUIREMENTS must pin torch==${TORCH_VERSION}, as" \
    "scripts/requirements.txt does" >&2
  exit 1
}
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_llmcompressor: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.stunt-requirements-$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup_llmcompressor: installing $REQUIREMENTS (torch==${TORCH_VERSION}, llmcompressor)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
  rm -f "$VENV"/.stunt-requirements-*
  touch "$stamp"
fi
"$VENV/bin/python" - "$TORCH_VERSION" <<'EOF'
import importlib.metadata as metadata
import sys

import torch

assert torch.__version__.startswith(sys.argv[1]), torch.__version__
print(f"setup_llmcompressor: ready (torch {torch.__version__}, "
      f"llmcompressor {metadata.version('llmcompressor')}, "
      f"compressed-tensors {metadata.version('compressed-tensors')}, "
      f"transformers {metadata.version('transformers')})")
EOF
