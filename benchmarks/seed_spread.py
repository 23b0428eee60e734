#!/usr/bin/env python3
"""How much of a perplexity gap between Stunt and llm-compressor is the calibration draw.

Runs ptq_side_by_side.py or prune_side_by_side.py once per seed (each seed draws other
calibration windows; both tools get the same ones) and tabulates, per method, each seed's
perplexity for both tools and Stunt's difference, then the mean over the seeds. At 4 bits one
draw can move either tool's perplexity by a percent, so a single seed's difference says little.
Wall times are not compared here: the side-by-side scripts measure those.

  .venv/bin/python benchmarks/seed_spread.py --bench ptq --seeds 0 1 2 3 \\
      --methods gptq-w4a16-actorder -- --evaluator transformers --num-samples 32

Arguments after `--` go to the side-by-side script. Each seed writes OUT/seed-S; the summary
goes to OUT/spread.json and OUT/spread.md.

How far rounding alone moves the reference: rerun llm-compressor with PyTorch's scalar CPU
kernels and compare it with an earlier spread over the same seeds,

  .venv/bin/python benchmarks/seed_spread.py --bench prune --seeds 0 1 2 3 4 \\
      --methods wanda-50 --out out/spread-scalar --reference out/spread -- \\
      --evaluator transformers --num-samples 32 --llmcompressor-env ATEN_CPU_CAPABILITY=default
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys

SOURCE_DIR = pathlib.Path(__file__).resolve().parent.parent
TOOLS = ("stunt", "llmcompressor")


def perplexity(results, method, tool):
    run = results["runs"].get(method, {}).get(tool, {})
    value = run.get("eval", {}).get(results.get("eval_key"), {}).get("perplexity")
    if value is None:
        raise SystemExit(f"error: no {tool} perplexity for {method} in {results['out']}; see the "
                         f"logs there")
    return value


def reference_run(folder, seed):
    path = folder / f"seed-{seed}" / "results.json"
    if not path.exists():
        raise SystemExit(f"error: --reference {folder}: no {path}; it must be an earlier "
                         f"seed_spread.py --out over the same seeds")
    results = json.loads(path.read_text())
    results["out"] = str(path.parent)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--bench", choices=["ptq", "prune"], required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/seed-spread")
    parser.add_argument("--reference", type=pathlib.Path,
                        help="an earlier --out over the same seeds: also tabulate how far this "
                             "run's llm-compressor perplexity is from that run's")
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="-- then arguments for the side-by-side script")
    args = parser.parse_args()
    passthrough = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if any(a in ("--seed", "--out", "--methods", "--repeat") for a in passthrough):
        parser.error("--seed, --out, --methods and --repeat are set per seed by this script")
    script = SOURCE_DIR / f"benchmarks/{args.bench}_side_by_side.py"

    # Read before the long runs, so that a wrong --reference fails at once.
    references = {seed: reference_run(args.reference, seed) for seed in args.seeds
                  } if args.reference else {}
    rows = {m: [] for m in args.methods}
    for seed in args.seeds:
        out = args.out / f"seed-{seed}"
        command = [sys.executable, str(script), "--seed", str(seed), "--out", str(out),
                   "--methods", *args.methods, "--resume", *passthrough]
        print(f"seed {seed}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            raise SystemExit(f"error: the side-by-side run for seed {seed} failed; see {out}/logs")
        results = json.loads((out / "results.json").read_text())
        results["out"] = str(out)
        for method in args.methods:
            stunt, llmc = (perplexity(results, method, tool) for tool in TOOLS)
            row = {"seed": seed, "stunt": stunt, "llmcompressor": llmc,
                   "difference_pct": 100 * (stunt / llmc - 1)}
            if references:
                row["reference_llmcompressor"] = perplexity(references[seed], method,
                                                            "llmcompressor")
                row["reference_shift_pct"] = 100 * (llmc / row["reference_llmcompressor"] - 1)
            rows[method].append(row)

    summary = {"command_line": " ".join(sys.argv), "bench": args.bench, "methods": {}}
    lines = ["| method | seed | Stunt ppl | llm-compressor ppl | difference |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for method, per_seed in rows.items():
        differences = [r["difference_pct"] for r in per_seed]
        mean_stunt = statistics.fmean(r["stunt"] for r in per_seed)
        mean_llmc = statistics.fmean(r["llmcompressor"] for r in per_seed)
        summary["methods"][method] = {
            "seeds": per_seed, "mean_stunt": mean_stunt, "mean_llmcompressor": mean_llmc,
            "mean_difference_pct": statistics.fmean(differences),
            "difference_of_means_pct": 100 * (mean_stunt / mean_llmc - 1),
            "stdev_difference_pct": statistics.stdev(differences) if len(differences) > 1 else 0.0}
        for r in per_seed:
            lines.append(f"| {method} | {r['seed']} | {r['stunt']:.4f} | {r['llmcompressor']:.4f} "
                         f"| {r['difference_pct']:+.2f}% |")
        s = summary["methods"][method]
        lines.append(f"| {method} | mean of {len(per_seed)} | {mean_stunt:.4f} | {mean_llmc:.4f} "
                     f"| {s['difference_of_means_pct']:+.2f}% (per-seed differences: mean "
                     f"{s['mean_difference_pct']:+.2f}%, sd {s['stdev_difference_pct']:.2f}) |")
    if args.reference:
        lines += ["", f"llm-compressor here against llm-compressor in {args.reference}:", "",
                  "| method | seed | here | there | shift |", "| --- | ---: | ---: | ---: | ---: |"]
        for method, per_seed in rows.items():
            for r in per_seed:
                lines.append(f"| {method} | {r['seed']} | {r['llmcompressor']:.4f} | "
                             f"{r['reference_llmcompressor']:.4f} | "
                             f"{r['reference_shift_pct']:+.2f}% |")
            shifts = [abs(r["reference_shift_pct"]) for r in per_seed]
            summary["methods"][method]["mean_abs_reference_shift_pct"] = statistics.fmean(shifts)
            lines.append(f"| {method} | mean of {len(per_seed)} | | | "
                         f"{statistics.fmean(shifts):.2f}% (absolute) |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "spread.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "spread.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
