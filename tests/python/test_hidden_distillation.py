"""Hidden-state distillation through `compress --recipe ... --teacher`: the bundled SmolLM2-135M
teaches a student built from it by the recipe's first stage (10 evenly spaced layers of 30), so
student block i learns teacher block KEEP[i]. The first step's logged loss equals, computed here
with transformers' teacher and the same layer-dropped student (block outputs taken by forward
hooks):
- SparseML's PerLayerDistillationModifier: task + gain · Σ mean((s − t)²) / (mean(t²) + eps);
- llm-compressor's OutputDistillationModifier with square_head: task + distill_scale · mean over
  pairs of Σ(t − s)² / Σt², distill_scale defaulting to the number of pairs.
With project_features (SparseML's default) the student learns through projections that train
and resume with the run. Stunt's AttentionDistillationModifier adds gain · MiniLM's attention and
value-relation KL at the last block pair (by default), or TinyBERT's MSE of attention maps at
the blocks it names, against transformers' eager attention probabilities and v_proj outputs. Bad input (a block name that does not exist, widths that differ
without a projection, comparisons that are not losses, no teacher) gets one clear error naming
the recipe path."""
import json

import pytest
import torch
import torch.nn.functional as F

from conftest_common import MINILM, run
from test_distillation import GGUF, KEEP, WINDOWS, layer_dropped, reference, windows  # noqa: F401


def write_recipe(tmp_path, modifier, epochs=1):
    """LayerPruningModifier keep_layers 10, then a train stage with `modifier` (YAML)."""
    text = ("student_stage:\n  student_modifiers:\n    - !LayerPruningModifier\n"
            "      keep_layers: 10\n"
            "distill_stage:\n  distill_modifiers:\n    - !EpochRangeModifier\n"
            f"      start_epoch: 0\n      end_epoch: {epochs}\n" + modifier)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def train(tmp_path, windows_path, modifier, *extra, steps=1, learning_rate="1e-5", check=0):
    """`steps` steps of the 4 windows (one step an epoch)."""
    out = tmp_path / "out"
    metrics = tmp_path / "metrics.jsonl"
    result = run("--recipe", write_recipe(tmp_path, modifier, epochs=steps), GGUF, "-o", out,
                 "--dataset", windows_path, "--batch-size", str(WINDOWS), "--max-steps",
                 str(steps), "--learning-rate", learning_rate, "--metrics", metrics, *extra,
                 check=check)
    return out, metrics, result


def block_outputs(model, ids):
    """Every decoder layer's output, as the layers return it (before the final norm)."""
    outputs = []
    hooks = [layer.register_forward_hook(
        lambda _m, _i, out: outputs.append(out[0] if isinstance(out, tuple) else out))
        for layer in model.model.layers]
    with torch.no_grad():
        logits = model(ids).logits
    for h in hooks:
        h.remove()
    return logits, outputs


def first_step(reference, ids):
    teacher, _ = reference
    student = layer_dropped(teacher, KEEP)
    s_logits, s_blocks = block_outputs(student, ids)
    _, t_blocks = block_outputs(teacher, ids)
    task = F.cross_entropy(s_logits[:, :-1].reshape(-1, s_logits.size(-1)), ids[:, 1:].reshape(-1))
    return task, s_blocks, t_blocks


def test_per_layer_first_step_is_sparsemls_loss(reference, windows, tmp_path):
    ids, path = windows
    _, metrics, _ = train(tmp_path, path, (
        "    - !PerLayerDistillationModifier\n      gain: 2.0\n      project_features: false\n"
        "      student_layer_names: [model.layers.3, model.layers.6]\n"), "--teacher", GGUF)
    line = json.loads(metrics.read_text().splitlines()[0])
    task, s_blocks, t_blocks = first_step(reference, ids)
    # One list of names: the teacher's blocks follow from how the student was built.
    term = sum(F.mse_loss(s_blocks[i], t_blocks[KEEP[i]]) / (t_blocks[KEEP[i]].pow(2).mean() + 1e-6)
               for i in (3, 6))
    assert line["task_loss"] == pytest.approx(task.item(), rel=1e-4)
    assert line["hidden_loss"] == pytest.approx(term.item(), rel=1e-4)
    assert line["loss"] == pytest.approx((task + 2.0 * term).item(), rel=1e-4)


def test_output_distillation_first_step_is_llmcompressors_square_head(reference, windows,
                                                                      tmp_path):
    ids, path = windows
    _, metrics, _ = train(tmp_path, path, (
        "    - !OutputDistillationModifier\n      targets: ['re:model\\.layers\\.\\d+$']\n"
        "      comparison: square_head\n      orig_scale: 0.5\n"), "--teacher", GGUF)
    line = json.loads(metrics.read_text().splitlines()[0])
    task, s_blocks, t_blocks = first_step(reference, ids)
    terms = [(t_blocks[KEEP[i]] - s).pow(2).sum() / t_blocks[KEEP[i]].pow(2).sum()
             for i, s in enumerate(s_blocks)]
    mean = torch.stack(terms).mean()
    assert len(terms) == 10
    assert line["hidden_loss"] == pytest.approx(mean.item(), rel=1e-4)
    # distill_scale left at 1.0 becomes the number of pairs, as llm-compressor sets it.
    assert line["loss"] == pytest.approx((0.5 * task + 10 * mean).item(), rel=1e-4)


def test_projections_train_and_lower_the_hidden_loss(windows, tmp_path):
    """project_features (SparseML's default) starts from a random projection, seeded by the run:
    the first step's loss is the same in every run, and training brings it down."""
    _, path = windows
    modifier = ("    - !PerLayerDistillationModifier\n      gain: 1.0\n"
                "      student_layer_names: [model.layers.8]\n")
    losses = []
    for steps in (1, 1, 10):
        folder = tmp_path / str(len(losses))
        folder.mkdir()
        _, metrics, _ = train(folder, path, modifier, "--teacher", GGUF, steps=steps,
                              learning_rate="1e-3")
        losses.append(json.loads(metrics.read_text().splitlines()[-1])["hidden_loss"])
    assert losses[0] == losses[1], losses
    # SmolLM2's hidden states carry a few huge activations that a fresh projection must learn
    # to reproduce, so 10 steps only start the descent.
    assert losses[2] < losses[0], losses


def attentions(model, ids):
    """Every layer's attention probabilities and values ([batch, heads, positions, head_dim],
    shared key/value heads repeated), with eager attention."""
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    groups = config.num_attention_heads // config.num_key_value_heads
    values = []
    hooks = [layer.self_attn.v_proj.register_forward_hook(
        lambda _m, _i, out: values.append(out.unflatten(-1, (-1, head_dim)).transpose(1, 2)
                                          .repeat_interleave(groups, 1)))
        for layer in model.model.layers]
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(ids, output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
        for h in hooks:
            h.remove()
    return out.logits, out.attentions, values


def kl_rows(t, s):
    """Σ_keys t (log t − log s), averaged over heads and queries (0 · log 0 = 0)."""
    return (torch.special.xlogy(t, t) - torch.special.xlogy(t, s)).sum(-1).mean()


def value_relation(v):
    return torch.softmax(v @ v.transpose(-1, -2) / v.shape[-1] ** 0.5, -1)


@pytest.mark.parametrize("loss", ["minilm", "tinybert"])
def test_attention_distillation_first_step(reference, windows, tmp_path, loss):
    teacher, _ = reference
    ids, path = windows
    targets = "      targets: [model.layers.3, model.layers.6]\n" if loss == "tinybert" else ""
    _, metrics, _ = train(tmp_path, path, (
        f"    - !AttentionDistillationModifier\n      loss: {loss}\n      gain: 0.5\n" + targets),
        "--teacher", GGUF)
    line = json.loads(metrics.read_text().splitlines()[0])
    s_logits, s_att, s_val = attentions(layer_dropped(teacher, KEEP), ids)
    _, t_att, t_val = attentions(teacher, ids)
    task = F.cross_entropy(s_logits[:, :-1].reshape(-1, s_logits.size(-1)), ids[:, 1:].reshape(-1))
    if loss == "minilm":
        # The last student block learns the last teacher block.
        term = kl_rows(t_att[29], s_att[9]) + kl_rows(value_relation(t_val[29]),
                                                      value_relation(s_val[9]))
    else:
        term = sum(F.mse_loss(s_att[i], t_att[KEEP[i]]) for i in (3, 6))
    assert line["task_loss"] == pytest.approx(task.item(), rel=1e-4)
    assert line["attention_loss"] == pytest.approx(term.item(), rel=1e-4)
    assert line["loss"] == pytest.approx((task + 0.5 * term).item(), rel=1e-4)


def test_logit_hidden_and_attention_modifiers_share_the_teachers_output(reference, windows,
                                                                       tmp_path):
    """Three modifiers read one teacher forward per batch: each term as alone, mixed in recipe
    order (hardness first, then each addition)."""
    from test_distillation import kd

    teacher, _ = reference
    ids, path = windows
    _, metrics, _ = train(tmp_path, path, (
        "    - !DistillationModifier\n      hardness: 0.25\n      temperature: 3.0\n"
        "    - !PerLayerDistillationModifier\n      gain: 2.0\n      project_features: false\n"
        "      student_layer_names: [model.layers.6]\n"
        "    - !AttentionDistillationModifier\n      gain: 0.5\n"), "--teacher", GGUF)
    line = json.loads(metrics.read_text().splitlines()[0])
    student = layer_dropped(teacher, KEEP)
    s_logits, s_att, s_val = attentions(student, ids)
    t_logits, t_att, t_val = attentions(teacher, ids)
    _, s_blocks = block_outputs(student, ids)
    _, t_blocks = block_outputs(teacher, ids)
    task = F.cross_entropy(s_logits[:, :-1].reshape(-1, s_logits.size(-1)), ids[:, 1:].reshape(-1))
    logit = kd(s_logits, t_logits, 3.0)
    hidden = F.mse_loss(s_blocks[6], t_blocks[KEEP[6]]) / (t_blocks[KEEP[6]].pow(2).mean() + 1e-6)
    attention = kl_rows(t_att[29], s_att[9]) + kl_rows(value_relation(t_val[29]),
                                                       value_relation(s_val[9]))
    assert line["distill_loss"] == pytest.approx(logit.item(), rel=1e-4)
    assert line["hidden_loss"] == pytest.approx(hidden.item(), rel=1e-4)
    assert line["attention_loss"] == pytest.approx(attention.item(), rel=1e-4)
    expected = 0.75 * task + 0.25 * logit + 2.0 * hidden + 0.5 * attention
    assert line["loss"] == pytest.approx(expected.item(), rel=1e-4)


@pytest.fixture(scope="module")
def narrow_teacher(tmp_path_factory):
    """A 2-layer Llama 64 wide with SmolLM2's vocabulary: same tokens, other widths."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("narrow")
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("modifier, extra, message", [
    ("    - !PerLayerDistillationModifier\n      student_layer_names: [model.layers.12]\n",
     ["--teacher", GGUF],
     "'model.layers.12' names no block of the student; its blocks are model.layers.0 to "
     "model.layers.9 (10 blocks)"),
    ("    - !PerLayerDistillationModifier\n      project_features: false\n",
     ["--teacher", "NARROW"],
     "the student's hidden states have 576 features and the teacher's 64"),
    ("    - !PerLayerDistillationModifier\n      gain: 1.0\n", ["--teacher", MINILM],
     "the teacher's vocabulary has 30522 tokens and the student's 49152"),
    ("    - !PerLayerDistillationModifier\n      student_layer_names: [re:.*]\n"
     "      teacher_layer_names: [re:.*]\n", ["--teacher", "NARROW"],
     "'re:.*' names 10 student blocks and 're:.*' 2 teacher blocks"),
    ("    - !OutputDistillationModifier\n      targets: 're:model.layers.*'\n",
     ["--teacher", GGUF], ".comparison: 'kl_divergence' is not implemented"),
    ("    - !PerLayerDistillationModifier\n      gain: 1.0\n", [],
     "name the teacher with --teacher"),
    ("    - !PerLayerDistillationModifier\n      student_layer_names: [model.layers.1]\n"
     "      teacher_layer_names: [model.layers.1, model.layers.2]\n", ["--teacher", GGUF],
     "student_layer_names has 1 names and teacher_layer_names 2"),
    ("    - !AttentionDistillationModifier\n      targets: [[model.layers.9, model.layers.1]]\n",
     ["--teacher", "NARROW"],
     "student block model.layers.9 and teacher block model.layers.1: the student's attention "
     "has 9 heads over 48 queries and 48 keys but the teacher's 4 heads"),
    ("    - !AttentionDistillationModifier\n      loss: tinybert\n"
     "      targets: [model.layers.30]\n", ["--teacher", GGUF],
     "'model.layers.30' names no block of the student; its blocks are model.layers.0 to "
     "model.layers.9 (10 blocks)"),
    ("    - !AttentionDistillationModifier\n      loss: tinybert\n", [],
     "name the teacher with --teacher"),
])
def test_bad_hidden_distillation_gets_one_clear_error(windows, narrow_teacher, tmp_path, modifier,
                                                      extra, message):
    _, path = windows
    extra = [narrow_teacher if e == "NARROW" else e for e in extra]
    out, _, result = train(tmp_path, path, modifier, *extra, check=1)
    assert message in result.stderr, result.stderr
    assert "distill_stage.distill_modifiers[1]" in result.stderr, result.stderr
    assert not out.exists()
