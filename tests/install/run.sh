#!/usr/bin/env bash
# Installs the build tree into a fresh prefix, builds tests/install and the example under
# examples/train-qat-gmp against it with find_package(stunt), runs both, and checks the
# example's checkpoint with compressed-tensors.
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
example="$source_dir/examples/train-qat-gmp"
cmake -S "$example" -B "$work/example-build" -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > "$work/example-configure.log"
cmake --build "$work/example-build" > "$work/example-build.log"
"$work/example-build/train_qat_gmp" "$example/recipe.yaml" "$work/example-out"
"$source_dir/.venv/bin/python" "$here/check_example_output.py" "$work/example-out"
"$work/prefix/bin/compress" --version
