"""Post-training quantization checked against the real libraries: every preset and strategy is
run through `compress --recipe` on a tiny random Llama, and its compressed-tensors checkpoint is
(1) decompressed by the compressed-tensors library itself, equal to Stunt's own decompression and
to compressed-tensors' fake quantization of the original weights (RTN), and (2) loaded by Hugging
Face transformers on the CPU, whose logits match Stunt's within 1e-3 relative."""
import json
import subprocess

import pytest
import torch
import transformers
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.lifecycle.forward import fake_quantize
from compressed_tensors.quantization.utils import calculate_qparams
from safetensors.torch import load_file, save_file

from conftest_common import COMPRESS, run
from test_model_parity import run_forward

VOCAB = 256
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer Llama with GQA and group-128-friendly widths, saved in float32."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp("llama")
    model.save_pretrained(folder)
    calibration = folder.parent / "calibration.safetensors"
    gen = torch.Generator().manual_seed(3)
    save_file({"input_ids": torch.randint(0, VOCAB, (8, 32), generator=gen)}, str(calibration))
    return model, folder, calibration


def recipe(tmp_path, modifier, body, then=()):
    """A one-stage recipe: `modifier` with `body` lines, then the modifiers in `then` (one line
    each, flow style)."""
    path = tmp_path / "recipe.yaml"
    lines = ["quant_stage:", "  quant_modifiers:", f"    {modifier}:"]
    lines += [f"      {line}" for line in body]
    lines += [f"    {line}" for line in then]
    path.write_text("\n".join(lines) + "\n")
    return path


def compress(tiny_llama, tmp_path, modifier, body, then=()):
    _, folder, calibration = tiny_llama
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "out"
    run("--recipe", recipe(tmp_path, modifier, body, then), folder, "-o", out, "--dataset",
        calibration, check=0)
    return out


def ct_decompress(out, config=None):
    """Every quantized module's weight, decompressed by compressed-tensors' own compressors.
    `config`: the quantization_config (default: the one in out/config.json)."""
    if config is None:
        config = json.loads((out / "config.json").read_text())["quantization_config"]
    tensors = load_file(str(out / "model.safetensors"))
    schemes = {name: QuantizationScheme.model_validate(group)
               for name, group in config["config_groups"].items()}
    assert len(schemes) == 1
    scheme = next(iter(schemes.values()))
    compressor = BaseCompressor.get_value_from_registry(scheme.format)
    modules = sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith(".weight_scale")})
    weights = {}
    for module in modules:
        local = {k[len(module) + 1:]: v for k, v in tensors.items() if k.startswith(module + ".")}
        weights[module] = compressor.decompress(local, scheme)["weight"]
    return config, scheme, weights


def stunt_decompress(out, tmp_path):
    dense = tmp_path / "dense"
    run("convert", out, "-o", dense, check=0)
    assert "quantization_config" not in json.loads((dense / "config.json").read_text())
    return load_file(str(dense / "model.safetensors"))


def ct_qparams(weight, args):
    """llm-compressor's memoryless min-max observer on a whole [out, in] weight (`args`:
    QuantizationArgs): scale and zero point per tensor [1], channel [out, 1] or group
    [out, in / group_size]."""
    if args.strategy == "group":
        groups = weight.unflatten(-1, (-1, args.group_size))
        lo, hi = groups.amin(-1), groups.amax(-1)
    elif args.strategy == "channel":
        lo, hi = weight.amin(-1, keepdim=True), weight.amax(-1, keepdim=True)
    else:
        lo, hi = weight.amin().reshape(1), weight.amax().reshape(1)
    return calculate_qparams(lo, hi, args)


def ct_rtn(weight, args):
    """compressed-tensors' fake quantization of a weight with memoryless min/max qparams."""
    args = QuantizationArgs.model_validate(args)
    scale, zero_point = ct_qparams(weight, args)
    return fake_quantize(weight, scale, zero_point, args)


def check_transformers_logits(out, tmp_path, load_from=None):
    """transformers' logits (loading `load_from`, by default the compressed folder itself) against
    Stunt's on the compressed folder."""
    model = transformers.AutoModelForCausalLM.from_pretrained(load_from or out,
                                                              dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(5)
    inputs = {"input_ids": torch.randint(0, VOCAB, (2, 17), generator=gen)}
    with torch.no_grad():
        expected = model(**inputs).logits
    got = run_forward(out, inputs, tmp_path)["logits"]
    relative = (got - expected).abs().max() / expected.abs().max()
    assert relative < 1e-3, relative


def check_transformers(out, tmp_path):
    """transformers loads the checkpoint and computes Stunt's logits. Exception: compressed-tensors
    0.19 does not pack asymmetric zero points when it prepares a model on the meta device, so
    transformers refuses every asymmetric pack-quantized checkpoint (llm-compressor's too). That
    refusal is asserted, and the logits are checked through the decompressed folder, whose
    weights the caller has shown equal compressed-tensors' own decompression."""
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    scheme = next(iter(config["config_groups"].values()))
    if config["format"] == "pack-quantized" and not scheme["weights"]["symmetric"]:
        with pytest.raises(RuntimeError, match="mismatched_sizes"):
            transformers.AutoModelForCausalLM.from_pretrained(out)
        check_transformers_logits(out, tmp_path, load_from=tmp_path / "dense")
    else:
        check_transformers_logits(out, tmp_path)


PRESETS = {
    # preset: (format, weight strategy)
    "W4A16": ("pack-quantized", "group"),
    "W4A16_ASYM": ("pack-quantized", "group"),
    "W8A16": ("pack-quantized", "group"),
    "W8A8": ("int-quantized", "channel"),
    "FP8": ("float-quantized", "tensor"),
    "FP8_DYNAMIC": ("float-quantized", "channel"),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_rtn_presets_load_in_compressed_tensors_and_transformers(preset, tiny_llama, tmp_path):
    model, _, _ = tiny_llama
    out = compress(tiny_llama, tmp_path, "QuantizationModifier",
                   ["targets: [Linear]", "ignore: [lm_head]", f"scheme: {preset}"])
    config, scheme, weights = ct_decompress(out)
    fmt, strategy = PRESETS[preset]
    assert config["format"] == fmt and config["quant_method"] == "compressed-tensors"
    assert config["quantization_status"] == "compressed" and config["ignore"] == ["lm_head"]
    assert scheme.weights.strategy == strategy
    assert len(weights) == 2 * len(LINEAR)
    dense = stunt_decompress(out, tmp_path)
    original = dict(model.named_parameters())
    for module, weight in weights.items():
        assert torch.equal(weight.float(), dense[module + ".weight"]), module
        expected = ct_rtn(original[module + ".weight"].detach(),
                          config["config_groups"]["group_0"]["weights"])
        assert torch.equal(weight.float(), expected.float()), module
    check_transformers(out, tmp_path)
    assert (out / "recipe.yaml").exists()
    check_inspect(out, fmt, original)


def check_inspect(out, fmt, original):
    """`compress inspect` summarises the folder: every quantized layer with its group, format,
    shape and the bytes of its quantization tensors, counted here from the file itself."""
    summary = json.loads(run("inspect", out, "--json", "--no-sparsity", check=0).stdout)
    q = summary["quantization"]
    assert q["format"] == fmt and q["ignore"] == ["lm_head"]
    tensors = load_file(str(out / "model.safetensors"))
    layers = {layer["name"]: layer for layer in q["layers"]}
    assert len(layers) == 2 * len(LINEAR)
    for name, layer in layers.items():
        assert layer["group"] == "group_0" and layer["format"] == fmt
        assert layer["shape"] == list(original[name + ".weight"].shape)
        stored = sum(t.numel() * t.element_size() for k, t in tensors.items()
                     if k.startswith(name + ".") and k != name + ".bias")
        assert layer["stored_bytes"] == stored, name
    if fmt == "pack-quantized" and q["config_groups"]["group_0"]["weights"]["num_bits"] == 4:
        # int4 and one float32 scale per 128 weights (+ the zero point's 4 bits when asymmetric)
        assert 4.25 <= q["bits_per_weight"] < 4.30, q["bits_per_weight"]
    table = run("inspect", out, "--no-sparsity", check=0).stdout
    assert "compressed-tensors quantization: format " + fmt in table
    assert "bits per weight (scales and zero points included)" in table


STRATEGIES = {
    "tensor": "{num_bits: 8, type: int, symmetric: true, strategy: tensor}",
    "channel-asym": "{num_bits: 4, type: int, symmetric: false, strategy: channel}",
    "group64": "{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64}",
    "static-input": None,
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_gptq_strategies_round_trip(name, tiny_llama, tmp_path):
    weights = STRATEGIES[name]
    if weights is None:  # int8 weights with a calibrated static per-tensor input scale
        groups = ["config_groups:", "  group_0:", "    targets: [Linear]",
                  "    weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}",
                  "    input_activations: {num_bits: 8, type: int, symmetric: true, strategy: tensor}"]
    else:
        groups = ["config_groups:", "  group_0:", "    targets: [Linear]", f"    weights: {weights}"]
    out = compress(tiny_llama, tmp_path, "GPTQModifier",
                   ["ignore: [lm_head]", "block_size: 32", "dampening_frac: 0.01"] + groups)
    config, scheme, weights = ct_decompress(out)
    assert scheme.weights.actorder == "static"  # llm-compressor's default for GPTQ
    dense = stunt_decompress(out, tmp_path)
    for module, weight in weights.items():
        assert torch.equal(weight.float(), dense[module + ".weight"]), module
    if name == "static-input":
        tensors = load_file(str(out / "model.safetensors"))
        assert tensors["model.layers.0.self_attn.q_proj.input_scale"].shape == (1,)
    check_transformers(out, tmp_path)


def test_gptq_is_closer_to_the_original_than_rtn(tiny_llama, tmp_path):
    """On the calibration data, GPTQ's logits stay closer to the float model's than RTN's."""
    model, folder, calibration = tiny_llama
    ids = load_file(str(calibration))["input_ids"]
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    errors = {}
    for modifier in ("QuantizationModifier", "GPTQModifier"):
        out = compress(tiny_llama, tmp_path / modifier, modifier,
                       ["targets: [Linear]", "ignore: [lm_head]", "scheme: W4A16_ASYM"] +
                       (["block_size: 32"] if modifier == "GPTQModifier" else []))
        got = run_forward(out, {"input_ids": ids}, tmp_path / modifier)["logits"]
        errors[modifier] = (got - reference).pow(2).mean().item()
    assert errors["GPTQModifier"] < 0.8 * errors["QuantizationModifier"], errors


def test_smoothquant_preserves_the_model_and_follows_the_reference_formula(tiny_llama, tmp_path):
    """SmoothQuant alone changes no output (it only moves scale between norms and weights); its
    scales follow llm-compressor's formula on the float model's activations."""
    model, folder, calibration = tiny_llama
    out = compress(tiny_llama, tmp_path, "SmoothQuantModifier", ["smoothing_strength: 0.8"])
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    smoothed = load_file(str(out / "model.safetensors"))
    ids = load_file(str(calibration))["input_ids"]
    # Every block's scales, from the float model's activations: smoothing an earlier block
    # leaves later blocks' inputs as they were, so each block must see the float ones.
    captured = {}
    hooks = []
    mappings = [("input_layernorm", "self_attn", ("q_proj", "k_proj", "v_proj")),
                ("post_attention_layernorm", "mlp", ("gate_proj", "up_proj"))]
    for i, layer in enumerate(model.model.layers):
        for norm, parent, balance in mappings:
            first = getattr(getattr(layer, parent), balance[0])
            hooks.append(first.register_forward_pre_hook(
                lambda m, a, key=(i, norm): captured.setdefault(key, []).append(a[0])))
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    for hook in hooks:
        hook.remove()
    assert len(model.model.layers) > 1
    for i, layer in enumerate(model.model.layers):
        for norm, parent, balance in mappings:
            x = torch.cat([c.reshape(-1, c.shape[-1]) for c in captured[(i, norm)]])
            act = x.amax(0) - x.amin(0)
            weights = torch.stack([getattr(getattr(layer, parent), p).weight.abs().amax(0)
                                   for p in balance])
            wsc = 2.0 * weights.amax(0)
            s = torch.clamp(torch.where(wsc > 0, act.pow(0.8) / wsc.pow(0.2), act), min=1e-5)
            prefix = f"model.layers.{i}"
            torch.testing.assert_close(smoothed[f"{prefix}.{norm}.weight"],
                                       getattr(layer, norm).weight.detach() / s,
                                       rtol=1e-4, atol=0)
            for p in balance:
                torch.testing.assert_close(smoothed[f"{prefix}.{parent}.{p}.weight"],
                                           getattr(getattr(layer, parent), p).weight.detach() * s,
                                           rtol=1e-4, atol=0)
    got = run_forward(out, {"input_ids": ids}, tmp_path)["logits"]
    torch.testing.assert_close(got, reference, rtol=1e-4, atol=1e-4)


def test_smoothquant_then_gptq_w8a8_loads_everywhere(tiny_llama, tmp_path):
    out = compress(tiny_llama, tmp_path, "SmoothQuantModifier", [
        "smoothing_strength: 0.8",
        "mappings:",
        "  - [['re:.*q_proj', 're:.*k_proj', 're:.*v_proj'], 're:.*input_layernorm']",
        "  - [['re:.*gate_proj', 're:.*up_proj'], 're:.*post_attention_layernorm']"],
        then=["GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A8}"])
    config, scheme, weights = ct_decompress(out)
    assert config["format"] == "int-quantized"
    dense = stunt_decompress(out, tmp_path)
    for module, weight in weights.items():
        assert torch.equal(weight.float(), dense[module + ".weight"]), module
    check_transformers(out, tmp_path)


def test_awq_improves_on_round_to_nearest(tiny_llama, tmp_path):
    model, folder, calibration = tiny_llama
    ids = load_file(str(calibration))["input_ids"]
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    quantize = "QuantizationModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16_ASYM}"
    errors = {}
    for name, modifier, body, then in (
            ("rtn", "QuantizationModifier", ["targets: [Linear]", "ignore: [lm_head]",
                                             "scheme: W4A16_ASYM"], []),
            ("awq", "AWQModifier", ["n_grid: 10"], [quantize])):
        out = compress(tiny_llama, tmp_path / name, modifier, body, then)
        if name == "awq":
            config, _, weights = ct_decompress(out)
            dense = stunt_decompress(out, tmp_path / name)
            for module, weight in weights.items():
                assert torch.equal(weight.float(), dense[module + ".weight"]), module
        got = run_forward(out, {"input_ids": ids}, tmp_path / name)["logits"]
        errors[name] = (got - reference).pow(2).mean().item()
    assert errors["awq"] < errors["rtn"], errors


BAD = {
    "group-size": (["QuantizationModifier:", "  config_groups:", "    g:",
                    "      targets: [Linear]",
                    "      weights: {num_bits: 4, strategy: group, group_size: 96}"], [],
                   "group_size 96 does not divide in_features 128"),
    "packed-bits": (["QuantizationModifier:", "  config_groups:", "    g:",
                     "      targets: [Linear]",
                     "      weights: {num_bits: 3, strategy: channel}"], [],
                    "3-bit weights cannot be written as pack-quantized"),
    "token-static": (["QuantizationModifier:", "  config_groups:", "    g:",
                      "      targets: [Linear]",
                      "      input_activations: {num_bits: 8, strategy: token}"], [],
                     "set dynamic: true"),
    "actorder-activations": (["GPTQModifier:", "  config_groups:", "    g:",
                              "      targets: [Linear]",
                              "      weights: {num_bits: 4, group_size: 128}",
                              "      input_activations: {num_bits: 8, strategy: token, "
                              "dynamic: true, actorder: weight}"], [],
                             "activation ordering applies to weights"),
    "fp8-on-a10": (["QuantizationModifier: {targets: [Linear], scheme: FP8_DYNAMIC}"],
                   ["--target", "a10"], "FP8 activations need FP8 tensor cores"),
    "gptq-without-data": (["GPTQModifier: {targets: [Linear], scheme: W4A16}"], ["--no-data"],
                          "learns from calibration data"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_one_clear_error(case, tiny_llama, tmp_path):
    _, folder, calibration = tiny_llama
    lines, extra, message = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text("quant_stage:\n  quant_modifiers:\n" +
                    "".join(f"    {line}\n" for line in lines))
    data = [] if "--no-data" in extra else ["--dataset", calibration]
    extra = [e for e in extra if e != "--no-data"]
    result = run("--recipe", path, folder, "-o", tmp_path / "out", *data, *extra)
    assert result.returncode == 1, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "quant_stage.quant_modifiers" in errors[0], errors[0]
    assert not (tmp_path / "out").exists()


def test_nan_weight_stops_the_run_with_the_tensor_name(tiny_llama, tmp_path):
    _, folder, calibration = tiny_llama
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in folder.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    tensors = load_file(str(broken / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.weight"][3, 5] = float("nan")
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})
    path = recipe(tmp_path, "QuantizationModifier", ["targets: [Linear]", "scheme: W4A16"])
    result = run("--recipe", path, broken, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert "model.layers.1.mlp.up_proj.weight: the weight holds 1 NaN" in result.stderr
