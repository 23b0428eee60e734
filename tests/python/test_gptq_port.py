"""GPTQ checked against a port of llm-compressor's algorithm (0.13, `gptq_quantize.py`), written
out here in PyTorch: the Hessian 2/n Σ xxᵀ of each layer's calibration inputs (sequential: each
decoder layer is calibrated on the outputs of the layers quantized before it), dead inputs,
dampening by dampening_frac × mean(diag H), the upper Cholesky factor of H⁻¹, and the column loop
in blocks with error feedback. Scales and zero points come from the weight before GPTQ moves it
(llm-compressor's memoryless min-max observer, run on the whole weight before the loop, not
group by group as the loop reaches each group); act-order 'weight' (alias 'static', the default)
quantizes columns by descending diag(H) with a permuted g_idx that is not stored. The integer
arithmetic is compressed-tensors' own (calculate_qparams, fake_quantize).

Stunt's checkpoints are decompressed by compressed-tensors and compared row by row: scales and
zero points exactly, dequantized weights exactly wherever a row agrees (a weight within float
rounding of a rounding boundary may round the other way, which changes the compensation of the
rest of its row). Round to nearest, the port without act-order, and the port at another
dampening disagree with Stunt far more, so the comparison is not vacuous."""
import copy
import json

import pytest
import torch
import transformers
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.lifecycle.forward import fake_quantize
from safetensors.torch import load_file

from test_prune_reference import PARENTS, linear, llmc_hessian, sequential_inputs
from test_ptq_reference import (LINEAR, compress, ct_qparams, ct_rtn, stunt_decompress,
                                tiny_llama)  # noqa: F401 (tiny_llama is a fixture)

# llm-compressor's GPTQModifier defaults.
DEFAULT_BLOCK_SIZE = 128
DEFAULT_DAMPENING = 0.01


def port_gptq(weight, hessian, args, actorder, block_size=DEFAULT_BLOCK_SIZE,
              dampening_frac=DEFAULT_DAMPENING):
    """One layer's GPTQ as llm-compressor computes it, in float32. `args`: compressed-tensors
    QuantizationArgs of the weights; `actorder`: None or 'weight' ('static' is its alias).
    Returns (dequantized weight in the original column order, scale, zero point)."""
    W = weight.detach().clone().float()
    H = hessian.clone().float()
    rows, columns = W.shape
    scale, zero_point = ct_qparams(W, args)
    group_of = None
    if args.strategy == "group":
        group_of = torch.arange(columns) // args.group_size
    perm = None
    if actorder is not None:
        assert actorder in ("weight", "static"), actorder
        perm = torch.argsort(torch.diag(H), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
        if group_of is not None:
            group_of = group_of[perm]  # the checkpoint's groups, seen in the new column order
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    diagonal = torch.arange(columns)
    H[diagonal, diagonal] += dampening_frac * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    # A column of a group is quantized as one channel with that group's scale.
    column_args = args.model_copy(update={"strategy": "channel", "group_size": None})
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1 = W[:, i1:i2].clone()
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if args.strategy == "tensor":
                q = fake_quantize(w.clone(), scale, zero_point, args)
            elif args.strategy == "channel":
                q = fake_quantize(w.clone(), scale[:, 0], zero_point[:, 0], args)
            else:
                g = group_of[i1 + i]
                q = fake_quantize(w.clone(), scale[:, g], zero_point[:, g], column_args)
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    if perm is not None:
        W = W[:, torch.argsort(perm)]
    return W, scale, zero_point


def reference_gptq(tiny, args, actorder, block_size, dampening_frac, alternatives=()):
    """llm-compressor's sequential one-shot GPTQ on a copy of the model: per layer key, the port's
    (weight, scale, zero point), and the weights of each alternative (a dict of port_gptq keyword
    overrides) computed from the same Hessians."""
    _, folder, calibration = tiny
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = load_file(str(calibration))["input_ids"]
    expected, others = {}, [dict() for _ in alternatives]
    settings = dict(args=args, actorder=actorder, block_size=block_size,
                    dampening_frac=dampening_frac)
    for index, layer in enumerate(model.model.layers):
        inputs = sequential_inputs(model, index, ids)
        with torch.no_grad():
            for name in LINEAR:
                module = linear(layer, name)
                key = f"model.layers.{index}.{PARENTS[name]}.{name}"
                hessian = llmc_hessian(inputs[name])
                expected[key] = port_gptq(module.weight, hessian, **settings)
                for other, override in zip(others, alternatives):
                    other[key] = port_gptq(module.weight, hessian, **{**settings, **override})[0]
        with torch.no_grad():  # the next layer sees this one quantized
            for name in LINEAR:
                key = f"model.layers.{index}.{PARENTS[name]}.{name}"
                linear(layer, name).weight.copy_(expected[key][0])
    return expected, others


def ct_decompress_all(out):
    """Each quantized module's weight, scale and (asymmetric) unpacked zero point, as
    compressed-tensors' own compressor decompresses them."""
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert list(config["config_groups"]) == ["group_0"], config["config_groups"]
    scheme = QuantizationScheme.model_validate(config["config_groups"]["group_0"])
    compressor = BaseCompressor.get_value_from_registry(config["format"])
    tensors = load_file(str(out / "model.safetensors"))
    modules = sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith(".weight_scale")})
    result = {}
    for module in modules:
        local = {k[len(module) + 1:]: v for k, v in tensors.items() if k.startswith(module + ".")}
        assert "weight_g_idx" not in local, module  # act-order 'weight' stores no g_idx
        result[module] = compressor.decompress(local, scheme)
    return config, result


def agreement(got, expected):
    """The fraction of equal weights, and the mask of rows where every weight is equal."""
    equal = got == expected
    return equal.float().mean().item(), equal.all(dim=1)


# name: (weights of config_groups.group_0 or a preset, GPTQModifier lines, expected weight args,
#        actorder, block_size, dampening_frac)
CASES = {
    "w4-group128-sym": (
        "{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 128}",
        ["actorder: null"],
        dict(num_bits=4, symmetric=True, strategy="group", group_size=128), None,
        DEFAULT_BLOCK_SIZE, DEFAULT_DAMPENING),
    "w4-group32-asym-block32": (
        "{num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 32}",
        ["actorder: null", "block_size: 32"],
        dict(num_bits=4, symmetric=False, strategy="group", group_size=32), None, 32,
        DEFAULT_DAMPENING),
    "w4-channel-sym": (
        "{num_bits: 4, type: int, symmetric: true, strategy: channel}",
        ["actorder: null", "block_size: 64"],
        dict(num_bits=4, symmetric=True, strategy="channel"), None, 64, DEFAULT_DAMPENING),
    "w4-channel-asym-actorder": (
        "{num_bits: 4, type: int, symmetric: false, strategy: channel}",
        ["actorder: weight"],
        dict(num_bits=4, symmetric=False, strategy="channel"), "weight", DEFAULT_BLOCK_SIZE,
        DEFAULT_DAMPENING),
    "w4-group64-asym-actorder-weight": (
        "{num_bits: 4, type: int, symmetric: false, strategy: group, group_size: 64}",
        ["actorder: weight", "block_size: 32"],
        dict(num_bits=4, symmetric=False, strategy="group", group_size=64), "weight", 32,
        DEFAULT_DAMPENING),
    "W4A16-preset-static-default": (
        "W4A16", [],
        dict(num_bits=4, symmetric=True, strategy="group", group_size=128), "static",
        DEFAULT_BLOCK_SIZE, DEFAULT_DAMPENING),
    "w4-group64-sym-dampening0.1": (
        "{num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64}",
        ["actorder: null", "dampening_frac: 0.1"],
        dict(num_bits=4, symmetric=True, strategy="group", group_size=64), None,
        DEFAULT_BLOCK_SIZE, 0.1),
}
# The model with dead inputs runs these (every column loop crosses dead columns).
DEAD_CASES = ("w4-group32-asym-block32", "w4-group64-asym-actorder-weight")
# Channels of each norm set to zero: the inputs of q/k/v (gate/up) there are always zero.
DEAD_CHANNELS = (3, 40, 41, 127)


@pytest.fixture(scope="module")
def dead_llama(tiny_llama, tmp_path_factory):
    """The tiny Llama with some norm channels zeroed: its q/k/v and gate/up layers have dead
    inputs (Hessian diagonal exactly zero)."""
    model, _, calibration = tiny_llama
    model = copy.deepcopy(model)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.input_layernorm.weight[list(DEAD_CHANNELS)] = 0
            layer.post_attention_layernorm.weight[list(DEAD_CHANNELS)] = 0
    folder = tmp_path_factory.mktemp("dead_llama")
    model.save_pretrained(folder)
    return model, folder, calibration


def run_case(tiny, tmp_path, case):
    weights, lines, expected_args, actorder, block_size, dampening = CASES[case]
    if weights.startswith("{"):
        body = ["ignore: [lm_head]"] + lines + [
            "config_groups:", "  group_0:", "    targets: [Linear]", f"    weights: {weights}"]
    else:
        body = ["targets: [Linear]", "ignore: [lm_head]", f"scheme: {weights}"] + lines
    out = compress(tiny, tmp_path, "GPTQModifier", body)
    config, got = ct_decompress_all(out)
    written = config["config_groups"]["group_0"]["weights"]
    for field, value in expected_args.items():
        assert written[field] == value, (field, written)
    assert written["actorder"] == actorder, written
    args = QuantizationArgs.model_validate({**expected_args, "type": "int"})
    return out, got, args, actorder, block_size, dampening


def check_against_port(tiny, tmp_path, case, dead=False):
    out, got, args, actorder, block_size, dampening = run_case(tiny, tmp_path, case)
    alternatives = [dict(actorder=None if actorder else "weight")]
    if dampening != DEFAULT_DAMPENING:
        alternatives.append(dict(dampening_frac=DEFAULT_DAMPENING))
    expected, others = reference_gptq(tiny, args, actorder, block_size, dampening, alternatives)
    assert sorted(got) == sorted(expected)
    original = dict(tiny[0].named_parameters())
    report = {}
    for key, (weight, scale, zero_point) in expected.items():
        stored = got[key]
        # Scales and zero points come from the weight before GPTQ: equal to the port's.
        torch.testing.assert_close(stored["weight_scale"].float(), scale, rtol=0, atol=0)
        if not args.symmetric:
            assert torch.equal(stored["weight_zero_point"].to(torch.int32),
                               zero_point.to(torch.int32)), key
        if dead:
            columns = torch.tensor(DEAD_CHANNELS)
            if key.endswith(("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")):
                assert torch.all(stored["weight"][:, columns] == 0), key
        w = stored["weight"].float()
        fraction, rows = agreement(w, weight)
        report[key] = (fraction, rows.float().mean().item())
        # Within rows that agree, the weights are equal; across the layer, few rows part.
        assert fraction > 0.99, (key, fraction)
        assert rows.float().mean().item() > 0.9, (key, rows.float().mean().item())
        assert torch.equal(w[rows], weight[rows]), key
        # Not vacuous: round to nearest and the alternatives part from Stunt in most rows.
        rtn = ct_rtn(original[key + ".weight"].detach(), args.model_dump())
        rtn_fraction, _ = agreement(w, rtn.float())
        assert rtn_fraction < 0.9, (key, "round to nearest agrees", rtn_fraction)
        for other, override in zip(others, alternatives):
            other_fraction, other_rows = agreement(w, other[key])
            assert other_rows.float().mean().item() < 0.5, (key, override, other_fraction)
    # The whole checkpoint: compressed-tensors' decompression equals Stunt's own.
    dense = stunt_decompress(out, tmp_path)
    for key, stored in got.items():
        assert torch.equal(stored["weight"].float(), dense[key + ".weight"]), key
    print(case, "worst layer (weights equal, rows equal):",
          min(report.items(), key=lambda kv: kv[1]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gptq_matches_the_port_of_llmcompressor(tiny_llama, tmp_path, case):
    check_against_port(tiny_llama, tmp_path, case)


@pytest.mark.parametrize("case", DEAD_CASES)
def test_gptq_dead_inputs_match_the_port(dead_llama, tmp_path, case):
    check_against_port(dead_llama, tmp_path, case, dead=True)
