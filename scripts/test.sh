#!/usr/bin/env bash
# README command 2: sets everything up on a fresh machine, builds Stunt with its tests, and runs
# the whole suite: unit tests, CLI integration tests, checks against the reference Python
# libraries, the find_package check, and the fuzzers (FUZZ_SECONDS each, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/bootstrap.sh
bash scripts/build.sh dev
(cd build/dev && ctest --output-on-failure -j "$(nproc)" --timeout 900)
bash tests/fuzz/run.sh
echo "test.sh: everything passed in $(( $(date +%s) - start ))s"
