"""Sequence-level distillation (Kim & Rush 2016) from `compress label --kind generate`: the bundled
SmolLM2-135M generates for a few prompts, and a student built from it (10 of 30 layers) trains on
the label folder (`--labels`) with no teacher loaded. The first step's loss equals transformers'
next-token loss on the completions alone: each prompt (the labelling's template over the
corpus text) followed by the teacher's generation in the student's tokenizer and, when the
generation ended on its own, eos; prompt and padding positions are not scored, unless
--prompt-loss asks for the prompts' tokens too. A DistillationModifier beside generation labels
needs the teacher in memory (--teacher), which then gives its distribution at the same tokens
(token-level KD); without it, it is refused: the labels hold text, not probabilities."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest_common import run
from test_distillation import GGUF, KEEP, layer_dropped, reference  # noqa: F401

TEMPLATE = "Article: {text}\nHeadline:"
ARTICLES = [
    "The city council approved a new budget for road repairs on Tuesday.",
    "A local bakery won the national award for the best sourdough bread.",
    "Heavy rain flooded several streets in the north of the town overnight.",
    "The football club signed a young striker from a rival team.",
]
MAX_NEW = 6


@pytest.fixture(scope="module")
def generations(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    corpus = folder / "news.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in ARTICLES))
    run("label", GGUF, "--data", corpus, "--kind", "generate", "--template", TEMPLATE,
        "--max-new-tokens", str(MAX_NEW), "-o", folder / "labels", check=0)
    records = [json.loads(line) for shard in sorted((folder / "labels").glob("shard-*.jsonl"))
               for line in shard.read_text().splitlines()]
    assert len(records) == len(ARTICLES)
    return folder / "labels", records


def write_recipe(tmp_path, extra=""):
    path = tmp_path / "recipe.yaml"
    path.write_text("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
                    "      keep_layers: 10\n"
                    "train_stage:\n  train_modifiers:\n    - !EpochRangeModifier\n"
                    "      start_epoch: 0\n      end_epoch: 1\n" + extra)
    return path


@pytest.mark.parametrize("prompt_loss", [False, True])
def test_first_step_loss_is_the_completions_next_token_loss(reference, generations, tmp_path,
                                                           prompt_loss):
    teacher, tokenizer = reference
    labels, records = generations
    metrics = tmp_path / "metrics.jsonl"
    result = run("--recipe", write_recipe(tmp_path), GGUF, "-o", tmp_path / "out", "--labels",
                 labels, "--batch-size", str(len(ARTICLES)), "--max-steps", "1",
                 "--learning-rate", "1e-5", "--metrics", metrics,
                 *(["--prompt-loss"] if prompt_loss else []), check=0)
    assert "teacher: loading" not in result.stderr
    line = json.loads(metrics.read_text().splitlines()[0])
    rows, scored = [], []
    for article, record in zip(ARTICLES, records):
        prompt = tokenizer(TEMPLATE.format(text=article))["input_ids"]
        completion = tokenizer(record["generation"], add_special_tokens=False)["input_ids"]
        if len(record["tokens"]) < MAX_NEW:
            completion.append(tokenizer.eos_token_id)
        rows.append(prompt + completion)
        scored.append([prompt_loss] * len(prompt) + [True] * len(completion))
    assert all(all(s) for s in scored) if prompt_loss else any(not all(s) for s in scored)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    targets = torch.tensor([[t if k else -100 for t, k in zip(r, s)] + [-100] * (width - len(r))
                            for r, s in zip(rows, scored)])
    student = layer_dropped(teacher, KEEP)
    with torch.no_grad():
        logits = student(ids, attention_mask=mask).logits
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                               targets[:, 1:].reshape(-1), ignore_index=-100)
    assert line["loss"] == pytest.approx(expected.item(), rel=1e-4)


def test_generations_with_the_teacher_in_memory_add_token_level_kd(reference, generations,
                                                                   tmp_path):
    """--teacher beside generation labels: the teacher, loaded, scores the same tokens, and the
    first step's loss is SparseML's mix of the next-token loss and KD at the scored positions."""
    teacher, tokenizer = reference
    labels, records = generations
    metrics = tmp_path / "metrics.jsonl"
    result = run("--recipe", write_recipe(tmp_path, "    - !DistillationModifier\n"
                                                    "      hardness: 0.25\n"
                                                    "      temperature: 3.0\n"),
                 GGUF, "-o", tmp_path / "out", "--labels", labels, "--teacher", GGUF,
                 "--batch-size", str(len(ARTICLES)), "--max-steps", "1", "--learning-rate",
                 "1e-5", "--metrics", metrics, check=0)
    assert "teacher: loading" in result.stderr
    line = json.loads(metrics.read_text().splitlines()[0])
    rows = []
    for article, record in zip(ARTICLES, records):
        prompt = tokenizer(TEMPLATE.format(text=article))["input_ids"]
        completion = tokenizer(record["generation"], add_special_tokens=False)["input_ids"]
        if len(record["tokens"]) < MAX_NEW:
            completion.append(tokenizer.eos_token_id)
        rows.append((prompt, completion))
    width = max(len(p) + len(c) for p, c in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([p + c + [pad] * (width - len(p) - len(c)) for p, c in rows])
    mask = torch.tensor([[1] * (len(p) + len(c)) + [0] * (width - len(p) - len(c))
                         for p, c in rows])
    targets = torch.tensor([[-100] * len(p) + c + [-100] * (width - len(p) - len(c))
                            for p, c in rows])
    student = layer_dropped(teacher, KEEP)
    with torch.no_grad():
        logits = student(ids, attention_mask=mask).logits
        teacher_logits = teacher(ids, attention_mask=mask).logits
    task = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                           targets[:, 1:].reshape(-1), ignore_index=-100)
    scored = targets != -100  # KD at the positions of the learned tokens
    log_p = F.log_softmax(teacher_logits[scored] / 3.0, -1)
    log_q = F.log_softmax(logits[scored] / 3.0, -1)
    kd = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * 9.0
    assert line["task_loss"] == pytest.approx(task.item(), rel=1e-4)
    assert line["distill_loss"] == pytest.approx(kd.item(), rel=1e-4)
    assert line["loss"] == pytest.approx(0.75 * task.item() + 0.25 * kd.item(), rel=1e-4)


def test_a_distillation_modifier_beside_generations_is_refused(generations, tmp_path):
    labels, _ = generations
    out = tmp_path / "out"
    result = run("--recipe", write_recipe(tmp_path, "    - !DistillationModifier\n"
                                                    "      hardness: 0.5\n"),
                 GGUF, "-o", out, "--labels", labels, check=1)
    assert "train_stage.train_modifiers[1]" in result.stderr, result.stderr
    assert "holds labels of kind 'generate'" in result.stderr, result.stderr
    assert "remove the modifier, or name the teacher (--teacher)" in result.stderr
    assert not out.exists()


def test_prompt_loss_without_generations_is_refused(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("\n".join(ARTICLES * 8) + "\n")
    out = tmp_path / "out"
    result = run("--recipe", write_recipe(tmp_path), GGUF, "-o", out, "--dataset", text,
                 "--seq-len", "32", "--prompt-loss", check=1)
    assert "--prompt-loss: the prompts learned are those of a teacher's generations" in \
        result.stderr, result.stderr
    assert not out.exists()
