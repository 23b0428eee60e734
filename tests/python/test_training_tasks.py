"""The sentence-embedding and sequence-to-sequence training tasks through the CLI.

* `--task seq2seq`: the loss of a step equals transformers' T5ForConditionalGeneration loss on the
  same padded batch (labels padded with -100, decoder inputs shifted right), and a tiny T5 learns
  to copy while pruned (held-out perplexity, `--eval-data`); `--task auto` picks it for T5.
* `--task sentence-embedding`: pairs with a score give sentence-transformers'
  CosineSimilarityLoss (mean pooling, cosine, squared error), texts with a target embedding its
  MSELoss; both equal the formula written on transformers' BertModel. Mixed records are refused
  with file and line.

The tiny models use MiniLM's WordPiece tokenizer."""
import json
import random
import shutil

import pytest
import torch
import transformers

from conftest_common import MINILM, run
from test_training_classification import TOKENIZER_FILES, write_jsonl, write_recipe
WORDS = ["match", "goal", "team", "market", "shares", "profit", "bank", "the", "a", "after",
         "with", "year", "new", "said", "on", "cup", "season", "growth"]
HOLD_ZEROS = "    ConstantPruningModifier:\n      targets: ['{}']\n"


def save_with_tokenizer(model, folder):
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=30522, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2,
        num_heads=4, dropout_rate=0.0, pad_token_id=0, eos_token_id=102,
        decoder_start_token_id=0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    return model, save_with_tokenizer(model, tmp_path_factory.mktemp("t5"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    return model, save_with_tokenizer(model, tmp_path_factory.mktemp("bert"))


def sentences(count, seed, low=2, high=7):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))
            for _ in range(count)]


def one_step_loss(folder, data, recipe, task, tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
        *(["--task", task] if task else []), "--batch-size", "8", "--max-steps", "1",
        "--seq-len", "16", "--metrics", metrics, check=0)
    return json.loads(metrics.read_text().splitlines()[-1])["loss"]


@pytest.mark.parametrize("task", ["seq2seq", None], ids=["seq2seq", "auto"])
def test_seq2seq_loss_equals_t5_for_conditional_generation(tiny_t5, task, tmp_path):
    model, folder = tiny_t5
    texts = sentences(8, seed=1)
    targets = sentences(8, seed=2, low=1, high=5)
    data = write_jsonl(tmp_path / "train.jsonl",
                       [{"text": t, "target": g} for t, g in zip(texts, targets)])
    recipe = write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS.format("re:.*DenseReluDense.wi"))
    loss = one_step_loss(folder, data, recipe, task, tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    labels = tokenizer(text_target=targets, padding=True, truncation=True, max_length=16,
                       return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    assert (labels == -100).any(), "the targets should need padding"
    with torch.no_grad():
        expected = model(**batch, labels=labels).loss.item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_t5_student_learns_the_teachers_generations_from_labels(tiny_t5, tmp_path):
    """Pseudo-labels for an encoder-decoder: `compress label --kind generate` output trains a T5
    with --labels (its prompts as sources, its generations as targets); the first step's loss
    equals transformers' on those pairs."""
    model, folder = tiny_t5
    texts = sentences(8, seed=5)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    run("label", folder, "--data", corpus, "--kind", "generate", "--max-new-tokens", "5",
        "-o", tmp_path / "labels", check=0)
    generations = [json.loads(line)["generation"]
                   for line in (tmp_path / "labels" / "shard-000000.jsonl").read_text().splitlines()]
    assert len(generations) == 8 and any(generations)
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS.format("re:.*DenseReluDense.wi")),
        folder, "-o", tmp_path / "out", "--labels", tmp_path / "labels", "--batch-size", "8",
        "--max-steps", "1", "--seq-len", "16", "--metrics", metrics, check=0)
    loss = json.loads(metrics.read_text().splitlines()[-1])["loss"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    labels = tokenizer(text_target=generations, padding=True, truncation=True, max_length=16,
                       return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    with torch.no_grad():
        expected = model(**batch, labels=labels).loss.item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_t5_learns_to_copy_while_pruned(tiny_t5, tmp_path):
    _, folder = tiny_t5
    train = [{"text": s, "target": s} for s in sentences(64, seed=3, low=2, high=4)]
    held_out = [{"text": s, "target": s} for s in sentences(16, seed=4, low=2, high=4)]
    data = write_jsonl(tmp_path / "train.jsonl", train)
    evaluation = write_jsonl(tmp_path / "eval.jsonl", held_out)
    recipe = write_recipe(tmp_path / "recipe.yaml", """\
    GMPruningModifier:
      targets: ['re:.*DenseReluDense.w']
      init_sparsity: 0.1
      final_sparsity: 0.5
      start: 0
      end: 4
      update: 1
""")
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data, "--batch-size",
        "8", "--epochs", "10", "--learning-rate", "1e-2", "--seq-len", "16", "--eval-data",
        evaluation, "--eval-every", "8", "--metrics", metrics, check=0)
    evaluated = [line["eval_perplexity"] for line in map(json.loads,
                                                         metrics.read_text().splitlines())
                 if "eval_perplexity" in line]
    assert len(evaluated) == 10
    # Held-out perplexity falls at every evaluation, by more than 20x over the run (the
    # untrained model is near the vocabulary size, 30522).
    assert all(a > b for a, b in zip(evaluated, evaluated[1:])), evaluated
    assert evaluated[-1] < evaluated[0] / 20, evaluated
    out = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "out")
    wi = out.encoder.block[0].layer[1].DenseReluDense.wi.weight
    assert int((wi == 0).sum()) == round(0.5 * wi.numel())


def mean_pool(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def test_pairs_loss_equals_cosine_similarity_loss(tiny_bert, tmp_path):
    model, folder = tiny_bert
    first, second = sentences(8, seed=5), sentences(8, seed=6)
    scores = [round(random.Random(i).uniform(-1, 1), 3) for i in range(8)]
    data = write_jsonl(tmp_path / "pairs.jsonl", [
        {"text": a, "text_pair": b, "score": s} for a, b, s in zip(first, second, scores)])
    recipe = write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS.format("re:.*intermediate.dense"))
    loss = one_step_loss(folder, data, recipe, None, tmp_path)  # auto: a BERT encoder
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    u, v = mean_pool(model, tokenizer, first), mean_pool(model, tokenizer, second)
    expected = torch.nn.functional.mse_loss(torch.cosine_similarity(u, v),
                                            torch.tensor(scores)).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_target_embeddings_loss_equals_mse_loss(tiny_bert, tmp_path):
    model, folder = tiny_bert
    texts = sentences(8, seed=7)
    targets = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    data = write_jsonl(tmp_path / "targets.jsonl", [
        {"text": t, "embedding": e.tolist()} for t, e in zip(texts, targets)])
    recipe = write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS.format("re:.*intermediate.dense"))
    loss = one_step_loss(folder, data, recipe, "sentence-embedding", tmp_path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    expected = torch.nn.functional.mse_loss(mean_pool(model, tokenizer, texts), targets).item()
    assert loss == pytest.approx(expected, rel=1e-5)


def test_bad_embedding_records_are_refused_with_file_and_line(tiny_bert, tmp_path):
    _, folder = tiny_bert
    rows = [{"text": "a match", "text_pair": "the goal", "score": 0.5}] * 3
    rows.append({"text": "a bank", "embedding": [0.0] * 32})
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    recipe = write_recipe(tmp_path / "recipe.yaml", HOLD_ZEROS.format("re:.*intermediate.dense"))
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 "--batch-size", "2", check=1)
    assert "mixed.jsonl:4: expected a pair" in result.stderr
    write_jsonl(data, [{"text": "a match", "text_pair": "the goal"}])
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 "--task", "sentence-embedding", "--batch-size", "1", check=1)
    assert "mixed.jsonl:1: expected \"score\"" in result.stderr
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 "--task", "seq2seq", "--batch-size", "1", check=1)
    assert "needs an encoder-decoder model (T5)" in result.stderr
    assert not (tmp_path / "out").exists()
