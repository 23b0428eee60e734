#!/usr/bin/env bash
# Configures (once) and builds Stunt with the given CMake preset (default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
PRESET=${1:-dev}
TORCH_PREFIX=$(.venv/bin/python -c 'import torch; print(torch.utils.cmake_prefix_path)')
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# Paths under the checkout are hashed relative to it, and the working directory is left out of
# the hash, so a second clone (CI's fresh one) reuses the objects an earlier build cached.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [ ! -f "build/$PRESET/build.ninja" ]; then
  cmake --preset "$PRESET" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DPython3_EXECUTABLE="$PWD/.venv/bin/python"
fi
cmake --build --preset "$PRESET" -j "${STUNT_BUILD_JOBS:-$(nproc)}"
