"""Structured pruning through `compress --recipe`: whole layers, attention heads and FFN channels
are cut out of tiny random transformers models, and the smaller folders are checked with
transformers itself:
- it loads them as they are (config and tensor shapes agree);
- they compute exactly what the original computes without the removed parts (the original with
  the pruned heads' or channels' output columns zeroed, or its layer list shortened);
- Stunt's own forward on them agrees with transformers';
- the heads and channels removed are the least important by the documented scores, computed here
  in PyTorch (activation norms; first-order Taylor from transformers' own gradients)."""
import copy
import json

import numpy
import pytest
import torch
import transformers
from safetensors.torch import save_file

from conftest_common import run
from test_model_parity import run_forward

VOCAB = 96


def perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def save_with_calibration(model, folder):
    model.save_pretrained(folder)
    gen = torch.Generator().manual_seed(3)
    calibration = folder / "calibration.safetensors"
    save_file({"input_ids": torch.randint(0, VOCAB, (6, 24), generator=gen)}, str(calibration))
    return calibration


def make_llama(kind, tmp_path_factory):
    """A 4-layer Llama: grouped-query (4 query heads on 2 key/value heads) or plain."""
    torch.manual_seed(0)
    kv = 2 if kind == "gqa" else 4
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=kv, max_position_embeddings=64,
        tie_word_embeddings=False)
    model = perturbed(transformers.LlamaForCausalLM(config))
    folder = tmp_path_factory.mktemp(f"llama-{kind}")
    return model, folder, save_with_calibration(model, folder)


@pytest.fixture(scope="module", params=["gqa", "mha"])
def llama(request, tmp_path_factory):
    return make_llama(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def gqa_llama(tmp_path_factory):
    return make_llama("gqa", tmp_path_factory)


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=3, num_decoder_layers=3,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = perturbed(transformers.T5ForConditionalGeneration(config))
    folder = tmp_path_factory.mktemp("t5")
    return model, folder, save_with_calibration(model, folder)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3,
                                     num_attention_heads=4, intermediate_size=48,
                                     max_position_embeddings=64)
    model = perturbed(transformers.BertModel(config))
    folder = tmp_path_factory.mktemp("bert")
    return model, folder, save_with_calibration(model, folder)


def prune(fixture, tmp_path, modifier, lines, check=0):
    _, folder, calibration = fixture
    tmp_path.mkdir(parents=True, exist_ok=True)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("\n".join(["prune_stage:", "  prune_modifiers:", f"    {modifier}:"] +
                                [f"      {line}" for line in lines]) + "\n")
    out = tmp_path / "out"
    result = run("--recipe", recipe, folder, "-o", out, "--dataset", calibration, check=check)
    return out if check == 0 else result


def inputs(t5=False):
    gen = torch.Generator().manual_seed(5)
    batch = {"input_ids": torch.randint(0, VOCAB, (2, 13), generator=gen)}
    if t5:
        batch["decoder_input_ids"] = torch.randint(0, VOCAB, (2, 7), generator=gen)
    return batch


def logits(model, batch):
    with torch.no_grad():
        out = model(**batch)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def assert_same_function(pruned_folder, reference, model_class, tmp_path, t5=False):
    """transformers loads the pruned folder; it computes what `reference` computes; Stunt's forward
    on the folder agrees."""
    pruned = model_class.from_pretrained(pruned_folder, dtype=torch.float32).eval()
    batch = inputs(t5)
    expected = logits(reference, batch)
    got = logits(pruned, batch)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    stunt = run_forward(pruned_folder, batch, tmp_path)
    key = "logits" if "logits" in stunt else "hidden"
    torch.testing.assert_close(stunt[key], got, rtol=1e-3, atol=1e-4)
    return pruned


def calibration_batches(fixture):
    from safetensors.torch import load_file
    return load_file(str(fixture[2]))["input_ids"]


def activation_scores(model, outputs, unit):
    """Σ over a unit's columns of ‖x_c‖ · ‖W[:, c]‖ for each output projection, one sample per
    forward as the CLI's default calibration batch size runs them."""
    squares = {id(m): torch.zeros(m.in_features, dtype=torch.float64) for m in outputs}

    def accumulate(module, args):
        x = args[0]
        squares[id(module)].add_(x.reshape(-1, x.shape[-1]).double().square().sum(0))

    hooks = [m.register_forward_pre_hook(accumulate) for m in outputs]
    with torch.no_grad():
        for row in calibration_batches_cache:
            model(input_ids=row.unsqueeze(0))
    for h in hooks:
        h.remove()
    return [(squares[id(m)].sqrt() * m.weight.double().norm(dim=0)).reshape(-1, unit).sum(1)
            for m in outputs]


def taylor_scores(model, outputs, unit):
    """|Σ_unit Σ_i W ∂L/∂W| per sample (next-token loss), summed."""
    scores = [torch.zeros(m.in_features // unit, dtype=torch.float64) for m in outputs]
    for row in calibration_batches_cache:
        model.zero_grad()
        ids = row.unsqueeze(0)
        model(input_ids=ids, labels=ids).loss.backward()
        for s, m in zip(scores, outputs):
            s.add_((m.weight.double() * m.weight.grad.double()).sum(0).reshape(-1, unit).sum(1)
                   .abs())
    return scores


calibration_batches_cache = None


def lowest(scores, count, groups=1):
    """The indices of the `count` lowest scores (per group of equal size), sorted."""
    size = len(scores) // groups
    dropped = []
    for g in range(groups):
        order = torch.sort(scores[g * size:(g + 1) * size], stable=True)[1][:count // groups]
        dropped += (order + g * size).tolist()
    return sorted(dropped)


@pytest.mark.parametrize("importance", ["activation", "taylor"])
def test_head_pruning_removes_the_least_important_heads(llama, tmp_path, importance):
    global calibration_batches_cache
    model, _, _ = llama
    kv = model.config.num_key_value_heads
    prune_count = 2  # one per key/value group with GQA, any two without
    out = prune(llama, tmp_path, "HeadPruningModifier",
                [f"num_heads: {prune_count}", f"importance: {importance}"])
    config = json.loads((out / "config.json").read_text())
    assert config["num_attention_heads"] == 2
    assert config["num_key_value_heads"] == (kv if kv < 4 else 2)
    assert config["head_dim"] == 8

    calibration_batches_cache = calibration_batches(llama)
    outputs = [layer.self_attn.o_proj for layer in model.model.layers]
    if importance == "activation":
        scores = activation_scores(model, outputs, 8)
    else:
        scratch = copy.deepcopy(model)  # its gradients are thrown away
        scores = taylor_scores(scratch, [layer.self_attn.o_proj for layer in scratch.model.layers],
                               8)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for layer, s in zip(reference.model.layers, scores):
            for head in lowest(s, prune_count, groups=kv if kv < 4 else 1):
                layer.self_attn.o_proj.weight[:, head * 8:(head + 1) * 8] = 0
    assert_same_function(out, reference, transformers.AutoModelForCausalLM, tmp_path)


def test_channel_pruning_removes_the_least_important_channels(llama, tmp_path):
    global calibration_batches_cache
    model, _, _ = llama
    out = prune(llama, tmp_path, "ChannelPruningModifier", ["sparsity: 0.25"])
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 36
    calibration_batches_cache = calibration_batches(llama)
    outputs = [layer.mlp.down_proj for layer in model.model.layers]
    scores = activation_scores(model, outputs, 1)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for layer, s in zip(reference.model.layers, scores):
            layer.mlp.down_proj.weight[:, lowest(s, 12)] = 0
    assert_same_function(out, reference, transformers.AutoModelForCausalLM, tmp_path)


@pytest.mark.parametrize("lines, kept", [(["layers: [1, 2]"], [0, 3]),
                                         (["keep_every: 2"], [0, 2, 3]),
                                         (["keep_every: 2", "keep_last: false"], [0, 2]),
                                         (['layers: ["re:model.layers.[12]$"]'], [0, 3]),
                                         # distil-whisper's pick: numpy's linspace as integers
                                         (["keep_layers: 3"],
                                          numpy.linspace(0, 3, 3, dtype=int).tolist()),
                                         (["keep_layers: 2"], [0, 3])])
def test_layer_pruning_drops_whole_layers(llama, tmp_path, lines, kept):
    model, _, _ = llama
    out = prune(llama, tmp_path, "LayerPruningModifier", lines)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == len(kept)
    reference = copy.deepcopy(model)
    reference.model.layers = torch.nn.ModuleList([reference.model.layers[i] for i in kept])
    for i, layer in enumerate(reference.model.layers):
        layer.self_attn.layer_idx = i
    reference.config.num_hidden_layers = len(kept)
    assert_same_function(out, reference, transformers.AutoModelForCausalLM, tmp_path)


def test_t5_decoder_only_layer_pruning_keeps_the_position_bias(t5, tmp_path):
    """Deep encoder, shallow decoder: decoder block 0 (the owner of the relative-position bias)
    and block 2 go; the bias moves to the surviving block, now block 0."""
    model, _, _ = t5
    out = prune(t5, tmp_path, "LayerPruningModifier", ["stack: decoder", "layers: [0, 2]"])
    config = json.loads((out / "config.json").read_text())
    assert (config["num_layers"], config["num_decoder_layers"]) == (3, 1)
    reference = copy.deepcopy(model)
    blocks = reference.decoder.block
    survivor = blocks[1]
    attention = survivor.layer[0].SelfAttention
    attention.has_relative_attention_bias = True
    attention.relative_attention_bias = blocks[0].layer[0].SelfAttention.relative_attention_bias
    for layer in survivor.layer[:2]:
        module = getattr(layer, "SelfAttention", None) or layer.EncDecAttention
        module.layer_idx = 0
    reference.decoder.block = torch.nn.ModuleList([survivor])
    reference.config.num_decoder_layers = 1
    pruned = assert_same_function(out, reference, transformers.T5ForConditionalGeneration,
                                  tmp_path, t5=True)
    assert len(pruned.encoder.block) == 3 and len(pruned.decoder.block) == 1


def test_t5_heads_and_channels(t5, tmp_path):
    """Heads: self-attention keeps one set per stack (they share the position bias), cross
    attention its own; the FFN (gated) loses channels in every block."""
    model, _, _ = t5
    heads = prune(t5, tmp_path / "heads", "HeadPruningModifier", ["sparsity: 0.25"])
    config = json.loads((heads / "config.json").read_text())
    assert (config["num_heads"], config["d_kv"]) == (3, 8)
    pruned = transformers.T5ForConditionalGeneration.from_pretrained(heads).eval()
    assert pruned.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.shape[1] \
        == 3
    # Same function as the original with the removed heads' o columns zeroed: find them from the
    # kept q rows.
    reference = copy.deepcopy(model)
    with torch.no_grad():
        for stack, new_stack in ((reference.encoder, pruned.encoder),
                                 (reference.decoder, pruned.decoder)):
            for block, new_block in zip(stack.block, new_stack.block):
                for layer, new_layer in zip(block.layer, new_block.layer):
                    attn = getattr(layer, "SelfAttention", getattr(layer, "EncDecAttention", None))
                    if attn is None:
                        continue
                    new_attn = getattr(new_layer, "SelfAttention",
                                       getattr(new_layer, "EncDecAttention", None))
                    q = attn.q.weight.reshape(4, 8, -1)
                    new_q = new_attn.q.weight.reshape(3, 8, -1)
                    kept = [h for h in range(4) if any(torch.equal(q[h], n) for n in new_q)]
                    assert len(kept) == 3
                    for h in set(range(4)) - set(kept):
                        attn.o.weight[:, h * 8:(h + 1) * 8] = 0
    assert_same_function(heads, reference, transformers.T5ForConditionalGeneration,
                         tmp_path / "heads", t5=True)
    channels = prune(t5, tmp_path / "channels", "ChannelPruningModifier", ["num_channels: 16"])
    assert json.loads((channels / "config.json").read_text())["d_ff"] == 32
    transformers.T5ForConditionalGeneration.from_pretrained(channels)


def test_bert_channels_and_layers(bert, tmp_path):
    model, _, _ = bert
    out = prune(bert, tmp_path / "layers", "LayerPruningModifier", ["layers: [1]"])
    reference = copy.deepcopy(model)
    reference.encoder.layer = torch.nn.ModuleList([reference.encoder.layer[i] for i in (0, 2)])
    assert_same_function(out, reference, transformers.AutoModel, tmp_path / "layers")
    out = prune(bert, tmp_path / "channels", "ChannelPruningModifier", ["sparsity: 0.5"])
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 24
    transformers.AutoModel.from_pretrained(out)


@pytest.mark.parametrize("fixture, modifier, lines, message", [
    ("gqa_llama", "LayerPruningModifier", ["layers: [4]"], "layer index 4 is out of range"),
    ("gqa_llama", "LayerPruningModifier", ["layers: [0, 1, 2, 3]"], "leaves no model"),
    ("gqa_llama", "LayerPruningModifier", ['layers: ["model.layers.9"]'], "names no layer"),
    ("gqa_llama", "LayerPruningModifier", ["keep_layers: 5"], "more layers than"),
    ("gqa_llama", "HeadPruningModifier", ["num_heads: 4"], "leaves no attention"),
    ("gqa_llama", "HeadPruningModifier", ["sparsity: 1.0"], "sparsity"),
    ("gqa_llama", "ChannelPruningModifier", ["num_channels: 48"], "leaves no FFN"),
    ("t5", "LayerPruningModifier", ["layers: [1]"], "stack: decoder"),
    ("t5", "HeadPruningModifier", ["num_heads: 1", "importance: taylor"],
     "use importance: activation"),
    ("bert", "HeadPruningModifier", ["num_heads: 1"], "would not load"),
])
def test_bad_structured_pruning_gets_one_clear_error(request, tmp_path, fixture, modifier, lines,
                                                     message):
    result = prune(request.getfixturevalue(fixture), tmp_path, modifier, lines, check=1)
    assert message in result.stderr, result.stderr
    assert modifier in result.stderr and "recipe.yaml" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_gqa_head_count_must_split_over_groups(tmp_path, tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                      num_hidden_layers=1, num_attention_heads=4,
                                      num_key_value_heads=2, max_position_embeddings=64)
    model = perturbed(transformers.LlamaForCausalLM(config))
    folder = tmp_path_factory.mktemp("gqa1")
    fixture = (model, folder, save_with_calibration(model, folder))
    result = prune(fixture, tmp_path, "HeadPruningModifier", ["num_heads: 1"], check=1)
    assert "use a multiple of 2" in result.stderr, result.stderr


def test_structured_pruning_after_another_modifier_is_refused(gqa_llama, tmp_path):
    _, folder, calibration = gqa_llama
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("prune_stage:\n  prune_modifiers:\n"
                      "    QuantizationModifier: {targets: [Linear], ignore: [lm_head], "
                      "scheme: W8A16}\n"
                      "    LayerPruningModifier: {layers: [1]}\n")
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", calibration,
                 check=1)
    assert "must come before every other modifier" in result.stderr, result.stderr
