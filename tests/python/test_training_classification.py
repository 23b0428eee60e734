"""Training a sequence classifier through the CLI (--task classification, JSONL "text" and
"label"): the loss of a step equals transformers' BertForSequenceClassification loss on the same
padded batch; a tiny BERT classifier learns a separable task while pruned gradually to 50% and
trained with W8A8 fake quantization, and its output is a compressed-tensors checkpoint that
`compress eval --metric accuracy` scores; bad labels are refused. The tiny BERT uses MiniLM's
WordPiece tokenizer."""
import json
import random
import shutil

import pytest
import torch
import transformers

from conftest_common import MINILM, SOURCE_DIR, run
from test_ptq_reference import ct_decompress

TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.txt"]
SPORT = ["match", "goal", "team", "league", "coach", "striker", "cup", "season", "win"]
MONEY = ["market", "shares", "profit", "bank", "investors", "prices", "growth", "firm", "sales"]
FILLER = ["the", "a", "after", "with", "and", "this", "year", "new", "said", "on"]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT classifier with 2 classes, dropout off, MiniLM's vocabulary."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, num_labels=2)
    model = transformers.BertForSequenceClassification(config).eval()
    folder = tmp_path_factory.mktemp("bert")
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return model, folder


def records(count, seed):
    """Sentences of sport words (label 0) or money words (label 1) among filler words."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        label = i % 2
        words = rng.sample(SPORT if label == 0 else MONEY, 3) + rng.sample(FILLER, rng.randint(1, 6))
        rng.shuffle(words)
        out.append({"text": " ".join(words), "label": label})
    return out


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_recipe(path, modifiers):
    path.write_text("train_stage:\n  run_type: train\n  train_modifiers:\n" + modifiers)
    return path


HOLD_ZEROS = "    ConstantPruningModifier:\n      targets: ['re:.*intermediate.dense']\n"


def test_the_loss_of_a_step_equals_transformers(tiny_bert, tmp_path):
    model, folder = tiny_bert
    rows = records(8, seed=1)
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS), folder, "-o",
        tmp_path / "out", "--dataset", data, "--task", "classification", "--batch-size", "8",
        "--max-steps", "1", "--seq-len", "16", "--metrics", metrics, check=0)
    loss = json.loads(metrics.read_text().splitlines()[-1])["loss"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=16,
                      return_tensors="pt")
    assert batch["attention_mask"].min() == 0, "the batch should need padding"
    with torch.no_grad():
        expected = model(**batch, labels=torch.tensor([r["label"] for r in rows])).loss.item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_gradual_pruning_and_qat_train_a_classifier(tiny_bert, tmp_path):
    _, folder = tiny_bert
    train = write_jsonl(tmp_path / "train.jsonl", records(64, seed=2))
    held_out = write_jsonl(tmp_path / "eval.jsonl", records(40, seed=3))
    before = run("eval", folder, "--data", held_out, "--metric", "accuracy", "--json", check=0)
    recipe = write_recipe(tmp_path / "recipe.yaml", """\
    GMPruningModifier:
      targets: ['re:.*(intermediate|output).dense', 're:.*attention.self.(query|key|value)']
      init_sparsity: 0.1
      final_sparsity: 0.5
      start: 0
      end: 3
      update: 0.5
    QuantizationModifier:
      start: 0
      ignore: ['classifier', 're:.*pooler.*']
      scheme: W8A8
""")
    out = tmp_path / "out"
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", recipe, folder, "-o", out, "--dataset", train, "--batch-size", "8",
        "--epochs", "8", "--learning-rate", "3e-3", "--seq-len", "16", "--eval-data", held_out,
        "--eval-every", "16", "--metrics", metrics, check=0)
    after = run("eval", out, "--data", held_out, "--metric", "accuracy", "--json", check=0)
    assert json.loads(before.stdout)["accuracy"] <= 0.75
    accuracy = json.loads(after.stdout)["accuracy"]
    assert accuracy >= 0.95
    # Held-out accuracy during training: every 16 of the 64 steps; the last one measures the
    # fake-quantized model the checkpoint holds (one of 40 answers may flip with int8 kernels).
    evaluated = {line["step"]: line["eval_accuracy"]
                 for line in map(json.loads, metrics.read_text().splitlines())
                 if "eval_accuracy" in line}
    assert sorted(evaluated) == [16, 32, 48, 64]
    assert abs(evaluated[64] - accuracy) <= 1 / 40 + 1e-9
    config, scheme, weights = ct_decompress(out)
    assert scheme.weights.num_bits == 8 and scheme.input_activations.num_bits == 8
    assert len(weights) == 12  # 6 linear layers per block, 2 blocks
    for name, w in weights.items():
        assert int((w == 0).sum()) >= round(0.5 * w.numel()), name


def test_sparseml_distill_prune_then_qat_recipe_runs_its_stages_as_one_run(tiny_bert, tmp_path):
    """recipes/distill-qat-sparseml.yaml, as SparseML runs a staged recipe: one run of 8 epochs
    (2 steps each) in which distillation and pruning to 60% take epochs 0-6 and quantization-aware
    training with the zeros held takes epochs 6-8."""
    _, folder = tiny_bert
    train = write_jsonl(tmp_path / "train.jsonl", records(16, seed=4))
    out = tmp_path / "out"
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", SOURCE_DIR / "recipes/distill-qat-sparseml.yaml", folder, "-o", out,
        "--teacher", folder, "--dataset", train, "--task", "classification", "--batch-size", "8",
        "--seq-len", "16", "--learning-rate", "3e-3", "--eval-data", train, "--eval-every", "1",
        "--metrics", metrics, check=0)
    lines = {line["step"]: line for line in map(json.loads, metrics.read_text().splitlines())}
    assert sorted(lines) == list(range(1, 17))
    for step, line in lines.items():
        # A step's methods act at the epoch it starts: (step - 1) / 2.
        start = (step - 1) / 2
        assert ("distill_loss" in line) == (start < 6), line
        # Cubic from 0 at epoch 0 to 0.6 at epoch 4, updated once an epoch.
        updated = min(4, int(step / 2))
        assert line["sparsity"] == pytest.approx(0.6 * (1 - (1 - updated / 4) ** 3)), line
    assert any(line["distill_loss"] > 0 for line in lines.values() if "distill_loss" in line)
    config, scheme, weights = ct_decompress(out)
    assert scheme.weights.num_bits == 8
    pruned = [name for name in weights if "attention" in name or "intermediate.dense" in name]
    assert len(pruned) == 10  # query, key, value, attention.output, intermediate; 2 blocks
    for name in pruned:
        w = weights[name]
        assert int((w == 0).sum()) >= round(0.6 * w.numel()), (name, int((w == 0).sum()))


def test_a_method_that_would_start_after_the_run_ends_is_refused(tiny_bert, tmp_path):
    _, folder = tiny_bert
    train = write_jsonl(tmp_path / "train.jsonl", records(16, seed=4))
    recipe = tmp_path / "late.yaml"
    recipe.write_text("prune_stage:\n  prune_modifiers:\n    - !EpochRangeModifier\n"
                      "      start_epoch: 0\n      end_epoch: 2\n"
                      "qat_stage:\n  qat_modifiers:\n    - !QuantizationModifier\n"
                      "      start_epoch: 3\n")
    out = tmp_path / "out"
    result = run("--recipe", recipe, folder, "-o", out, "--dataset", train, "--task",
                 "classification", "--seq-len", "16", check=1)
    assert ("qat_stage.qat_modifiers[0].start_epoch: QuantizationModifier starts at epoch 3, and "
            "training lasts 2 epochs" in result.stderr), result.stderr
    assert not out.exists()


def test_bad_labels_are_refused_with_file_and_line(tiny_bert, tmp_path):
    _, folder = tiny_bert
    rows = records(8, seed=4)
    rows[5] = {"text": rows[5]["text"]}
    data = write_jsonl(tmp_path / "train.jsonl", rows)
    recipe = write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS)
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 "--task", "classification", "--batch-size", "4", check=1)
    assert "train.jsonl:6: no \"label\"" in result.stderr
    rows[5] = {"text": "a match", "label": 4}
    write_jsonl(data, rows)
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 "--batch-size", "4", check=1)
    assert "label 4 is not a class of the model, which has 2" in result.stderr
    assert not (tmp_path / "out").exists()
