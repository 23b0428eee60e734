"""Structured pruning's CPU speed-up against its FLOP reduction: the real causal LM (SmolLM2-135M,
as ptq_side_by_side.py prepares it) is cut by `compress --recipe` (layers, heads, FFN channels),
then the dense and every pruned model run forward side by side in this one run, taking turns,
with the same random tokens and threads (stunt_model_bench; median of --iters timed forwards,
best of --rounds). Each pruned model's speed-up should track its FLOP reduction within 20%.
Wikitext-2 perplexity (compress eval) shows what each cut costs in quality.

    .venv/bin/python benchmarks/structured_speedup.py [--out out/structured-bench]

FLOPs are the matrix products of one forward (2 per multiply-add): the projections, causal
attention (on average (seq + 1) / 2 keys per query) and the LM head; norms and activations are
left out. Writes results.json and results.md under --out.
"""
import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ptq_side_by_side as bench  # noqa: E402
from machine import cpu_description  # noqa: E402

BENCH = os.environ.get("STUNT_MODEL_BENCH",
                       str(bench.SOURCE_DIR / "build/dev/benchmarks/stunt_model_bench"))

CUTS = {
    "layers": ("every other layer dropped (keep_every: 2: 16 of 30 layers)",
               "LayerPruningModifier:\n      keep_every: 2"),
    "heads": ("3 of 9 query heads per layer (one per key/value group), activation importance",
              "HeadPruningModifier:\n      num_heads: 3"),
    "channels": ("half the FFN channels (1536 -> 768), activation importance",
                 "ChannelPruningModifier:\n      sparsity: 0.5"),
    "heads+channels": ("both of the above",
                       "HeadPruningModifier:\n      num_heads: 3\n"
                       "    ChannelPruningModifier:\n      sparsity: 0.5"),
}


def recipe_text(cut):
    comment, body = CUTS[cut]
    return f"# Structured pruning: {comment}.\nprune_stage:\n  prune_modifiers:\n    {body}\n"


def forward_flops(config, seq):
    """Matrix-product FLOPs of one forward over `seq` tokens of a Llama-family model."""
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim", hidden // heads)
    ffn = config["intermediate_size"]
    keys = (seq + 1) / 2
    per_token_layer = (2 * hidden * heads * head_dim * 2  # q and o
                       + 2 * hidden * kv * head_dim * 2  # k and v
                       + 2 * 2 * keys * heads * head_dim  # scores and weighted values
                       + 2 * 3 * hidden * ffn)  # gate, up, down
    per_token = config["num_hidden_layers"] * per_token_layer + 2 * hidden * config["vocab_size"]
    return per_token * seq


def time_forward(folder, args):
    result = subprocess.run(
        [BENCH, str(folder), "--batch", str(args.batch), "--seq", str(args.seq), "--threads",
         str(args.threads), "--warmup", str(args.warmup), "--iters", str(args.iters)],
        capture_output=True, text=True, check=False, env=bench.thread_env(args.threads))
    if result.returncode != 0:
        sys.exit(f"error: stunt_model_bench failed on {folder}: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])["median_ms"]


def perplexity(compress, folder, args):
    cmd = [str(compress), "eval", str(folder), "--metric", "perplexity", "--data",
           str(bench.WIKITEXT_DIR / "test.txt"), "--seq-len", str(args.eval_seq_len),
           "--max-samples", str(args.eval_samples), "--threads", str(args.threads), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=bench.thread_env(args.threads))
    if r.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout[r.stdout.index("{"):])["perplexity"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=bench.SOURCE_DIR / "out/structured-bench")
    parser.add_argument("--compress", help="the compress CLI (default: the build's)")
    parser.add_argument("--cuts", nargs="+", choices=list(CUTS), default=list(CUTS))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--resume", action="store_true",
                        help="keep pruned models an earlier run made with the same recipe")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="models take turns this many times; the best median is kept")
    parser.add_argument("--num-samples", type=int, default=32, help="calibration samples")
    parser.add_argument("--seq-len", type=int, default=512, help="calibration tokens per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-samples", type=int, default=40)
    parser.add_argument("--eval-seq-len", type=int, default=512)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    (args.out / "recipes").mkdir(exist_ok=True)
    compress = bench.find_compress(args.compress)
    dense = bench.convert_model(compress, args.out)
    data = bench.make_data(argparse.Namespace(
        num_samples=args.num_samples, seq_len=args.seq_len, seed=args.seed,
        eval_samples=args.eval_samples, eval_seq_len=args.eval_seq_len), dense, args.out)

    folders = {"dense": dense}
    for cut in args.cuts:
        recipe = args.out / "recipes" / f"{cut}.yaml"
        recipe.write_text(recipe_text(cut))
        folder = args.out / "models" / cut
        log = args.out / "logs" / f"{cut}.log"
        folders[cut] = folder
        made_with = args.out / "models" / f"{cut}.recipe.yaml"  # the recipe it was made with
        if args.resume and made_with.exists() and made_with.read_text() == recipe.read_text():
            print(f"[{cut}] kept from an earlier run ({folder})", flush=True)
            continue
        cmd = [str(compress), "--recipe", str(recipe), str(dense), "-o", str(folder),
               "--dataset", str(args.out / "calib.safetensors"), "--overwrite"]
        print(f"[{cut}] compress ({log})", flush=True)
        with open(log, "w") as f:
            subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT,
                           env=bench.thread_env(args.threads))
        made_with.write_text(recipe.read_text())

    best = {name: float("inf") for name in folders}
    for round_index in range(args.rounds):
        for name, folder in folders.items():
            ms = time_forward(folder, args)
            best[name] = min(best[name], ms)
            print(f"round {round_index + 1}: {name}: {ms:.1f} ms", flush=True)

    rows = []
    dense_config = json.loads((dense / "config.json").read_text())
    dense_flops = forward_flops(dense_config, args.seq)
    for name, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        flops = forward_flops(config, args.seq)
        row = {"model": name, "forward_ms": best[name],
               "gflops_per_sequence": flops / 1e9,
               "flop_reduction": dense_flops / flops,
               "speedup": best["dense"] / best[name],
               "parameters_bytes": bench.folder_bytes(folder),
               "perplexity": perplexity(compress, folder, args)}
        row["speedup_over_flop_reduction"] = row["speedup"] / row["flop_reduction"]
        rows.append(row)
        print(f"{name}: {row['forward_ms']:.1f} ms, speed-up {row['speedup']:.2f}x, FLOPs "
              f"/{row['flop_reduction']:.2f}, perplexity {row['perplexity']:.2f}", flush=True)

    results = {"command_line": " ".join(sys.argv), "date": datetime.date.today().isoformat(),
               "machine": cpu_description(),
               "threads": args.threads, "batch": args.batch, "seq": args.seq,
               "iters": args.iters, "rounds": args.rounds, "data": data, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| model | forward ms | GFLOP / sequence | FLOP reduction | CPU speed-up | "
             "speed-up / FLOP reduction | wikitext-2 ppl |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        within = "" if r["model"] == "dense" else (
            " ✓" if abs(r["speedup_over_flop_reduction"] - 1) <= 0.2 else " ✗")
        lines.append(f"| {r['model']} | {r['forward_ms']:.1f} | {r['gflops_per_sequence']:.2f} | "
                     f"{r['flop_reduction']:.2f}x | {r['speedup']:.2f}x | "
                     f"{r['speedup_over_flop_reduction']:.2f}{within} | {r['perplexity']:.2f} |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
