"""AWQ's per-channel scales checked against a grid search written out here after llm-compressor
0.13 (`transform/awq/base.py`): per mapping (a smooth module and the layers it feeds), the mean
|x| of each input channel over the calibration tokens, the mean of each channel's weights
normalized per quantization group (duo scaling), scales s = x_mean^r (/ w_mean^(1-r)) normalized
by sqrt(max(s)·min(s)) for r on the grid, and the s whose quantized, rescaled balance layers
Q(W·s)/s give the parent module's outputs the least mean squared error against the float ones.
The scales are then multiplied into the balance layers and divided out of the smooth module;
each decoder layer is calibrated on the outputs of the layers smoothed before it. The
quantization is compressed-tensors' own (calculate_qparams, fake_quantize).

Stunt's chosen scales are read back from the checkpoint: a norm keeps float weights, so
s = norm before / norm after; an up_proj left unquantized shows the up_proj -> down_proj scales
in its rows. Every quantized layer is also compared with round to nearest of the reference's
smoothed weights. The grid points Stunt picked are named, and the grid must matter (the best
point beats identity scales), so the comparison is not vacuous."""
import json

import pytest
import torch
import transformers
from safetensors.torch import load_file

from test_ptq_reference import (LINEAR, compress, ct_decompress, ct_rtn,
                                tiny_llama)  # noqa: F401 (tiny_llama is a fixture)

PARENTS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
           "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}
# llm-compressor's default Llama mappings: (smooth module, balance layers, parent module).
# v_proj -> o_proj drops out under grouped-query attention (v_proj has fewer outputs than o_proj
# has inputs), in llm-compressor as in Stunt.
MAPPINGS = [("input_layernorm", ("q_proj", "k_proj", "v_proj"), "self_attn"),
            ("post_attention_layernorm", ("gate_proj", "up_proj"), "mlp"),
            ("mlp.up_proj", ("down_proj",), "mlp.down_proj")]


def module(layer, path):
    for part in path.split("."):
        layer = getattr(layer, part)
    return layer


def grid(n_grid, duo_scaling):
    """llm-compressor's (ratio, duo) grid."""
    if duo_scaling == "both":
        n = n_grid // 2
        return [(i / (n - 1), duo) for i in range(n) for duo in (False, True)]
    if duo_scaling:
        return [(0.0, False)] + [(i / (n_grid - 2), True) for i in range(n_grid - 1)]
    return [(i / (n_grid - 1), False) for i in range(n_grid)]


def candidate_scales(x_mean, w_mean, ratio, duo):
    if duo:
        s = (x_mean.pow(ratio) / (w_mean.pow(1 - ratio) + 1e-4)).clamp(min=1e-4)
    else:
        s = x_mean.pow(ratio).clamp(min=1e-4).view(-1)
    s = s / (s.max() * s.min()).sqrt()
    s[torch.isinf(s)] = 1
    s[torch.isnan(s)] = 1
    return s


def layer_means(weights, schemes):
    """Mean over all balance rows of |W| normalized by its group's (channel's) largest value."""
    total, rows = 0, 0
    for weight, args in zip(weights, schemes):
        if args is None:
            continue
        chunk = {"group": args.get("group_size"), "channel": weight.shape[1]}[args["strategy"]]
        w = weight.abs().reshape(-1, chunk)
        w = (w / (w.amax(dim=1, keepdim=True) + 1e-6)).reshape(weight.shape)
        total = total + w.sum(0, dtype=torch.float64)
        rows += weight.shape[0]
    return total / rows


def capture(model, index, ids):
    """Decoder layer `index`'s inputs of each mapping's parent (self_attn: its whole call) and of
    each mapping's first balance layer, in one batch of every sample (the loss and the means are
    sums over tokens, so batching changes only their float rounding)."""
    layer = model.model.layers[index]
    calls = {"self_attn": [], "mlp": [], "mlp.down_proj": []}
    activations = {name: [] for name, _, _ in MAPPINGS}
    hooks = [layer.self_attn.register_forward_pre_hook(
        lambda m, a, k: calls["self_attn"].append((a, dict(k))), with_kwargs=True)]
    for parent in ("mlp", "mlp.down_proj"):
        hooks.append(module(layer, parent).register_forward_pre_hook(
            lambda m, a, parent=parent: calls[parent].append((a, {}))))
    for smooth, balance, parent in MAPPINGS:
        first = module(layer, f"{PARENTS[balance[0]]}.{balance[0]}")
        hooks.append(first.register_forward_hook(
            lambda m, a, o, smooth=smooth: activations[smooth].append(a[0].detach().clone())))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    for hook in hooks:
        hook.remove()
    return calls, activations


def run_parent(layer, parent, calls):
    out = []
    with torch.no_grad():
        for args, kwargs in calls:
            y = module(layer, parent)(*args, **kwargs)
            out.append(y[0] if isinstance(y, tuple) else y)
    return out


def mse(reference, outputs):
    loss = torch.tensor(0.0)
    elements = 0
    for a, b in zip(reference, outputs):
        loss += torch.nn.functional.mse_loss(a, b, reduction="sum")
        elements += a.numel()
    return (loss / elements).item()


def reference_awq(tiny, schemes, n_grid, duo_scaling, force=None):
    """llm-compressor's sequential AWQ on a copy of the model. `schemes`: layer name (q_proj, ...)
    -> weight quantization args (dict) or None. Returns the smoothed state dict and, per
    (layer index, smooth module), the chosen grid index, the scales of every grid point and
    their losses. `force`: (layer index, smooth module) -> the grid index to smooth with instead
    of the best one."""
    _, folder, calibration = tiny
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = load_file(str(calibration))["input_ids"]
    points = grid(n_grid, duo_scaling)
    chosen = {}
    for index, layer in enumerate(model.model.layers):
        calls, activations = capture(model, index, ids)
        for smooth, balance, parent in MAPPINGS:
            layers = [module(layer, f"{PARENTS[b]}.{b}") for b in balance]
            args = [schemes[b] for b in balance]
            if all(a is None for a in args):
                continue  # no balance layer is quantized: llm-compressor skips the mapping
            x = torch.cat([a.reshape(-1, a.shape[-1]) for a in activations[smooth]])
            x_mean = x.abs().float().sum(0) / x.shape[0]
            originals = [l.weight.detach().clone() for l in layers]
            w_mean = layer_means(originals, args)
            float_outputs = run_parent(layer, parent, calls[parent])
            losses, best, best_loss = [], None, float("inf")
            with torch.no_grad():
                for i, (ratio, duo) in enumerate(points):
                    s = candidate_scales(x_mean, w_mean, ratio, duo).view(1, -1)
                    for l, original, a in zip(layers, originals, args):
                        if a is None:
                            continue
                        scaled = (original * s).to(torch.float32)
                        l.weight.copy_((ct_rtn(scaled, a) / s).to(torch.float32))
                    loss = mse(float_outputs, run_parent(layer, parent, calls[parent]))
                    losses.append(loss)
                    if loss < best_loss:
                        best, best_loss = i, loss
                candidates = [candidate_scales(x_mean, w_mean, r, d) for r, d in points]
                s = candidates[(force or {}).get((index, smooth), best)]
                for l, original in zip(layers, originals):
                    l.weight.copy_((original * s.view(1, -1)).to(torch.float32))
                smooth_module = module(layer, smooth)
                if smooth_module.weight.ndim == 1:
                    smooth_module.weight.copy_((smooth_module.weight / s).to(torch.float32))
                else:
                    rows = smooth_module.weight[-s.numel():]
                    rows.copy_((rows / s.view(-1, 1)).to(torch.float32))
            chosen[(index, smooth)] = dict(best=best, scales=s, losses=losses,
                                           candidates=candidates)
    return {k: v.detach() for k, v in model.state_dict().items()}, chosen


def nearest_point(observed, candidates):
    """The grid index whose scales are nearest (max relative difference) to `observed`, and that
    difference."""
    distances = [((observed - c) / c).abs().max().item() for c in candidates]
    best = min(range(len(distances)), key=distances.__getitem__)
    return best, distances[best]


def observed_scales(quantized, original, got, chosen):
    """Stunt's scales per (layer index, smooth module), where the checkpoint shows them: a norm's
    weight is divided by them; an unquantized up_proj's rows are divided by the up_proj ->
    down_proj ones (and its columns multiplied by the post_attention_layernorm ones)."""
    observed = {}
    for index, smooth in chosen:
        prefix = f"model.layers.{index}"
        if smooth.endswith("layernorm"):
            key = f"{prefix}.{smooth}.weight"
            observed[(index, smooth)] = original[key].double() / got[key].double()
        elif "up_proj" not in quantized:
            key = f"{prefix}.mlp.up_proj.weight"
            columns = observed[(index, "post_attention_layernorm")]
            rows = original[key].double() * columns / got[key].double()
            observed[(index, smooth)] = rows.median(dim=1).values
    return observed


ASYM_G128 = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
             "group_size": 128}
ASYM_CHANNEL = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "channel"}
ASYM_G64 = {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group",
            "group_size": 64}
SYM_G64 = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group",
           "group_size": 64}
NOT_UP = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj")

# Symmetric int4 puts each group's largest negative weight exactly on -7.5 steps, where round
# half to even gives -8 and a one-ulp change of the scaled weight gives -7: the grid's losses then
# move by up to ~0.4% with float rounding (the order of a sum, float32 or float64 scales), so
# grid points that close are ties. Asymmetric scales have no such edge (losses agree to ~1e-7).
# name: (AWQ lines, quantized layers, their weight args, n_grid, duo_scaling, tie, agreement)
CASES = {
    # llm-compressor's defaults (n_grid 20, duo scaling) with W4A16_ASYM on every Linear.
    "defaults-w4a16-asym": (["n_grid: 20"], LINEAR, ASYM_G128, 20, True, 1e-6, 0.999),
    # up_proj left float: its rows show the up_proj -> down_proj scales.
    "no-duo-channel-asym-up-float": (["n_grid: 10", "duo_scaling: false"], NOT_UP, ASYM_CHANNEL,
                                     10, False, 1e-6, 0.999),
    "both-group64-asym": (["n_grid: 12", "duo_scaling: both"], LINEAR, ASYM_G64, 12, "both",
                          1e-6, 0.999),
    "both-group64-sym": (["n_grid: 12", "duo_scaling: both"], LINEAR, SYM_G64, 12, "both", 1e-2,
                         0.99),
    # Duo scaling with a balance layer left unquantized (up_proj, fed by
    # post_attention_layernorm): llm-compressor's _compute_layer_means skips a balance layer
    # without a quantization scheme, and so does Stunt (this case found that it did not).
    "both-group64-asym-up-float": (["n_grid: 12", "duo_scaling: both"], NOT_UP, ASYM_G64, 12,
                                   "both", 1e-6, 0.999),
}


def flow(d):
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                           for k, v in d.items()) + "}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_awq_scales_match_the_reference_grid_search(tiny_llama, tmp_path, case):
    lines, quantized, weight_args, n_grid, duo, tie, agreement = CASES[case]
    targets = "[" + ", ".join(f"'re:.*{name}$'" for name in quantized) + "]"
    quantize = ("QuantizationModifier: {config_groups: {group_0: {targets: " + targets +
                ", weights: " + flow(weight_args) + "}}}")
    out = compress(tiny_llama, tmp_path, "AWQModifier", lines, [quantize])
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["config_groups"]["group_0"]["weights"]["strategy"] == weight_args["strategy"]
    schemes = {name: (weight_args if name in quantized else None) for name in LINEAR}
    expected, chosen = reference_awq(tiny_llama, schemes, n_grid, duo)
    got = load_file(str(out / "model.safetensors"))
    original = tiny_llama[0].state_dict()
    # Stunt's scales are those of one point of the reference's grid, the best one (or one whose
    # loss ties with it).
    _, _, dequantized = ct_decompress(out)
    observed = observed_scales(quantized, original, got, chosen)
    picks, distances = {}, [0.0]
    for mapping, c in chosen.items():
        if mapping in observed:
            ours, distance = nearest_point(observed[mapping], c["candidates"])
            assert distance < 2e-5, (mapping, "Stunt's scales are no grid point", ours, distance)
            distances.append(distance)
        else:  # up_proj -> down_proj with both quantized: the point whose Q(W·s) is Stunt's
            key = f"model.layers.{mapping[0]}.mlp.down_proj"
            w = original[key + ".weight"]
            matches = [torch.isclose(dequantized[key].float(),
                                     ct_rtn((w * s.view(1, -1)).float(), schemes["down_proj"]),
                                     rtol=1e-5, atol=1e-6).float().mean().item()
                       for s in c["candidates"]]
            ours = max(range(len(matches)), key=matches.__getitem__)
            assert matches[ours] > agreement, (mapping, "no grid point gives Stunt's down_proj",
                                               matches)
        picks[mapping] = ours
        assert c["losses"][ours] <= c["losses"][c["best"]] * (1 + tie), (
            mapping, "Stunt picked grid point", ours, "loss", c["losses"][ours],
            "the reference", c["best"], "loss", c["losses"][c["best"]])
    print(case, "grid points (Stunt, reference):",
          {k: (v, chosen[k]["best"]) for k, v in picks.items()},
          "largest relative difference of Stunt's scales from the grid point's:", max(distances))
    if any(chosen[k]["best"] != v for k, v in picks.items()):
        expected, _ = reference_awq(tiny_llama, schemes, n_grid, duo, force=picks)
    # The grid matters: somewhere the best point beats the first (identity scales) clearly.
    gains = [c["losses"][0] / c["losses"][c["best"]] for c in chosen.values()]
    assert max(gains) > 1.01, gains
    assert sum(c["best"] != 0 for c in chosen.values()) >= 2, chosen
    # Every quantized layer is round to nearest of the reference's smoothed weight (but for the
    # rare weight within float rounding of a rounding edge), and AWQ made a difference: round to
    # nearest of the original weight agrees less.
    assert sorted(k.rsplit(".", 1)[1] for k in dequantized) == sorted(quantized * 2)
    for key, weight in dequantized.items():
        name = key.rsplit(".", 1)[1]
        close = torch.isclose(weight.float(), ct_rtn(expected[key + ".weight"], schemes[name]),
                              rtol=1e-5, atol=1e-6).float().mean().item()
        assert close > agreement, (key, close)
        if not torch.equal(expected[key + ".weight"], original[key + ".weight"]):
            rtn = ct_rtn(original[key + ".weight"], schemes[name])
            assert torch.isclose(weight.float(), rtn, rtol=1e-5,
                                 atol=1e-6).float().mean().item() < 0.99, key
    # The float tensors AWQ changed (norms, an unquantized up_proj) equal the reference's.
    for key, value in got.items():
        if key.endswith(("layernorm.weight", "up_proj.weight")):
            torch.testing.assert_close(value, expected[key], rtol=2e-5, atol=0)
