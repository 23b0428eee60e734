"""LogarithmicEqualizationModifier checked against llm-compressor 0.13's formula, computed here
from the float model's activations: per channel j of a norm's output (the balance layers'
input), the dynamic range r_j = max x_j - min x_j over the calibration tokens, the scale
s_j = max(r_j / log2(2 + r_j), 1e-5) (`SmoothQuantModifier._calculate_smoothing_scales` with
algorithm log_equalization, then MINIMUM_SMOOTHING_SCALE), divided out of the norm's weight
and multiplied into each balance layer's input columns. llm-compressor 0.13 made the modifier an
alias of SmoothQuantModifier(algorithm: log_equalization); both spellings must give the same
checkpoint. The model's outputs, loaded by transformers, do not change."""
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file

from test_ptq_reference import VOCAB, compress, tiny_llama  # noqa: F401 (a fixture)

# llm-compressor's default Llama mappings: (smooth norm, parent, balance layers).
MAPPINGS = [("input_layernorm", "self_attn", ("q_proj", "k_proj", "v_proj")),
            ("post_attention_layernorm", "mlp", ("gate_proj", "up_proj"))]
MINIMUM_SMOOTHING_SCALE = 1e-5  # llm-compressor's smoothquant/base.py


def activation_ranges(model, ids):
    """Per (layer index, norm): max - min of each channel of the norm's output over all tokens."""
    captured = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        for norm, _, _ in MAPPINGS:
            hooks.append(getattr(layer, norm).register_forward_hook(
                lambda m, a, out, key=(i, norm): captured.setdefault(key, []).append(
                    out.reshape(-1, out.shape[-1]))))
    with torch.no_grad():
        for row in ids:  # one sample per forward, as llm-compressor's calibration loop
            model(input_ids=row[None], use_cache=False)
    for hook in hooks:
        hook.remove()
    return {key: torch.cat(x).amax(0) - torch.cat(x).amin(0) for key, x in captured.items()}


def log_equalization_scales(ranges):
    return torch.clamp(ranges / torch.log2(2 + ranges), min=MINIMUM_SMOOTHING_SCALE)


def smoothquant_scales(ranges, weights, alpha=0.5):
    """SmoothQuant's formula on the same ranges, to show the test tells the two apart."""
    w = 2.0 * torch.stack([x.abs().amax(0) for x in weights]).amax(0)
    return torch.clamp(torch.where(w > 0, ranges.pow(alpha) / w.pow(1 - alpha), ranges),
                       min=MINIMUM_SMOOTHING_SCALE)


SPELLINGS = {
    "LogarithmicEqualizationModifier": ("LogarithmicEqualizationModifier", []),
    "SmoothQuantModifier-algorithm": ("SmoothQuantModifier", ["algorithm: log_equalization"]),
    "with-mappings": ("LogarithmicEqualizationModifier", [
        "mappings:",
        "  - [['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm']",
        "  - [['re:.*gate_proj', 're:.*up_proj'], 're:.*post_attention_layernorm']"]),
}


@pytest.fixture(scope="module")
def reference(tiny_llama):
    model, _, calibration = tiny_llama
    ids = load_file(str(calibration))["input_ids"]
    ranges = activation_ranges(model, ids)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(5)
        probe = torch.randint(0, VOCAB, (2, 17), generator=gen)
        logits = model(input_ids=probe).logits
    return ranges, probe, logits


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_log_equalization_follows_llmcompressor_formula(tiny_llama, tmp_path, reference,
                                                        spelling):
    model, _, _ = tiny_llama
    modifier, body = SPELLINGS[spelling]
    out = compress(tiny_llama, tmp_path, modifier, body or ["ignore: []"])
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    got = load_file(str(out / "model.safetensors"))
    original = model.state_dict()
    ranges, probe, logits = reference
    changed = set()
    for (i, norm), r in ranges.items():
        parent, balance = next((p, b) for n, p, b in MAPPINGS if n == norm)
        s = log_equalization_scales(r)
        prefix = f"model.layers.{i}"
        # Not vacuous: the scales move weights, and SmoothQuant's would move them otherwise.
        assert (s - 1).abs().max() > 0.1, (i, norm)
        weights = [original[f"{prefix}.{parent}.{b}.weight"] for b in balance]
        other = smoothquant_scales(r, weights)
        assert ((other - s).abs() / s).max() > 0.01, (i, norm)
        key = f"{prefix}.{norm}.weight"
        torch.testing.assert_close(got[key], original[key] / s, rtol=1e-5, atol=0)
        changed.add(key)
        for b, w in zip(balance, weights):
            key = f"{prefix}.{parent}.{b}.weight"
            torch.testing.assert_close(got[key], w * s, rtol=1e-5, atol=0)
            changed.add(key)
    # Everything else is as it was.
    assert set(got) == set(original)
    for key, value in got.items():
        if key not in changed:
            assert torch.equal(value, original[key]), key
    # Smoothing moves scale between norms and weights: transformers computes the same logits.
    smoothed = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(smoothed(input_ids=probe).logits, logits, rtol=1e-4,
                                   atol=1e-4)
