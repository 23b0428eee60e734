#!/usr/bin/env bash
# Installs the build tree into a fresh prefix, builds tests/install against it with
# find_package(stunt), and runs the program.
set -euo pipefail
build_dir=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
torch_prefix=$("$source_dir/.venv/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$here" -B "$work/build" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
"$work/build/use_stunt" "$work"
test -f "$work/w.safetensors"
"$work/prefix/bin/compress" --version
