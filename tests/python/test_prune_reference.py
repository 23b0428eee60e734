"""One-shot pruning checked against the reference: SparseGPT and Wanda run through
`compress --recipe` on a tiny random Llama and are compared, layer by layer, with llm-compressor
0.14's algorithms written out here in PyTorch (sequential: each decoder layer is calibrated on
the outputs of the layers pruned before it). The outputs are dense Hugging Face folders with
zeros that transformers loads; 2:4 masks are checked exactly, also after GPTQ."""
import json
import math

import pytest
import torch
import transformers
from safetensors.torch import load_file

from conftest_common import run
from test_ptq_reference import (LINEAR, check_transformers_logits, compress, ct_decompress,
                                tiny_llama)  # noqa: F401 (tiny_llama is a fixture)

PARENTS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
           "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def linear(layer, name):
    return getattr(getattr(layer, PARENTS[name]), name)


def sequential_inputs(model, index, ids):
    """The inputs of decoder layer `index`'s linear layers, as batches [1, T, C] (llm-compressor
    feeds one sample per forward), through the model as it is now."""
    captured = {name: [] for name in LINEAR}
    hooks = [linear(model.model.layers[index], name).register_forward_pre_hook(
        lambda m, a, name=name: captured[name].append(a[0].detach().clone()))
        for name in LINEAR]
    with torch.no_grad():
        for row in ids:
            model(input_ids=row[None])
    for hook in hooks:
        hook.remove()
    return captured


def llmc_hessian(inputs):
    columns = inputs[0].shape[-1]
    hessian, n = torch.zeros(columns, columns), 0
    for x in inputs:
        b = x.shape[0]
        x = x.reshape(-1, columns).t()
        hessian *= n / (n + b)
        n += b
        x = math.sqrt(2 / n) * x.float()
        hessian += x @ x.t()
    return hessian


def llmc_sparsegpt(weight, hessian, sparsity, prune_n, prune_m, block_size=128, damp=0.01):
    W = weight.clone().float()
    H = hessian.clone()
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[range(len(H)), range(len(H))] += damp * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    rows, columns = W.shape
    for i1 in range(0, columns, block_size):
        i2 = min(i1 + block_size, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        d1 = torch.diag(Hinv1)
        if prune_n == 0:
            score = W1 ** 2 / d1.reshape(1, -1) ** 2
            thresh = torch.sort(score.flatten())[0][int(score.numel() * sparsity)]
            mask1 = score <= thresh
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if prune_n != 0 and i % prune_m == 0:
                score = W1[:, i:i + prune_m] ** 2 / d1[i:i + prune_m].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(score, prune_n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W.to(weight.dtype)


def llmc_wanda(weight, inputs, sparsity, prune_n, prune_m):
    columns = inputs[0].shape[-1]
    scaler, n = torch.zeros(columns), 0
    for x in inputs:
        b = x.shape[0]
        x = x.reshape(-1, columns).t()
        scaler *= n / (n + b)
        n += b
        scaler += torch.norm(x.float(), p=2, dim=1) ** 2 / n
    metric = weight.abs() * torch.sqrt(scaler.reshape(1, -1))
    mask = torch.zeros_like(metric, dtype=torch.bool)
    if prune_n == 0:
        order = torch.sort(metric, dim=-1, stable=True)[1]
        mask.scatter_(1, order[:, :int(metric.shape[1] * sparsity)], True)
    else:
        for ii in range(0, metric.shape[1], prune_m):
            block = metric[:, ii:ii + prune_m]
            mask.scatter_(1, ii + torch.topk(block, prune_n, dim=1, largest=False)[1], True)
    return weight.masked_fill(mask, 0)


def reference_prune(tiny_llama, method, sparsity, structure):
    """llm-compressor's sequential one-shot pass on a copy of the tiny Llama."""
    model, folder, calibration = tiny_llama
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = load_file(str(calibration))["input_ids"]
    prune_n, prune_m = (0, 0) if structure == "unstructured" else map(int, structure.split(":"))
    for index, layer in enumerate(model.model.layers):
        inputs = sequential_inputs(model, index, ids)
        with torch.no_grad():
            for name in LINEAR:
                module = linear(layer, name)
                if method == "SparseGPTModifier":
                    new = llmc_sparsegpt(module.weight, llmc_hessian(inputs[name]), sparsity,
                                         prune_n, prune_m)
                else:
                    new = llmc_wanda(module.weight, inputs[name], sparsity, prune_n, prune_m)
                module.weight.copy_(new)
    return {k: v for k, v in model.state_dict().items()}


def prune(tiny_llama, tmp_path, modifier, sparsity, structure, then=()):
    return compress(tiny_llama, tmp_path, modifier,
                    [f"sparsity: {sparsity}", f'mask_structure: "{structure}"',
                     "targets: [Linear]", 'ignore: ["re:.*lm_head"]'], then)


@pytest.mark.parametrize("modifier", ["SparseGPTModifier", "WandaPruningModifier"])
@pytest.mark.parametrize("structure", ["unstructured", "2:4", "4:8"])
def test_pruning_matches_llmcompressor_and_loads_in_transformers(tiny_llama, tmp_path, modifier,
                                                                 structure):
    out = prune(tiny_llama, tmp_path, modifier, 0.5, structure)
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # llm-compressor 0.14 writes none for pruning alone
    got = load_file(str(out / "model.safetensors"))
    expected = reference_prune(tiny_llama, modifier, 0.5, structure)
    original = tiny_llama[0].state_dict()
    for index in range(len(tiny_llama[0].model.layers)):
        for name in LINEAR:
            key = f"model.layers.{index}.{PARENTS[name]}.{name}.weight"
            mask, reference_mask = got[key] == 0, expected[key] == 0
            agreement = (mask == reference_mask).float().mean().item()
            if structure == "unstructured":
                # The reference prunes int(n * s) + 1 per block (its threshold's tie), as Stunt.
                assert abs(mask.float().mean().item() - reference_mask.float().mean().item()) < 0.01
            else:
                m = int(structure.split(":")[1])
                assert (got[key] != 0).reshape(-1, m).sum(1).max().item() <= m // 2, key
            if modifier == "WandaPruningModifier":
                assert agreement == 1.0, (key, agreement)
                kept = ~mask
                assert torch.equal(got[key][kept], original[key][kept]), key
            else:
                # Float32 sums in another order may flip a weight at the threshold, and a flip
                # changes the compensation of the rest of its row: rows whose masks agree must
                # agree in every weight.
                assert agreement > 0.995, (key, agreement)
                rows = (mask == reference_mask).all(dim=1)
                assert rows.float().mean().item() > 0.9, (key, rows.float().mean().item())
                torch.testing.assert_close(got[key][rows], expected[key][rows], rtol=2e-3,
                                           atol=2e-4)
    # Untargeted tensors are untouched.
    for key in ("lm_head.weight", "model.embed_tokens.weight", "model.norm.weight"):
        assert torch.equal(got[key], original[key]), key
    check_transformers_logits(out, tmp_path)


def test_sparsegpt_2of4_then_gptq_keeps_the_mask(tiny_llama, tmp_path):
    """The shipped recipe's shape: SparseGPT 2:4, then GPTQ W4A16, whose int4 weights (as
    compressed-tensors decompresses them) still hold 2 nonzeros in every 4."""
    out = prune(tiny_llama, tmp_path, "SparseGPTModifier", 0.5, "2:4", then=[
        "GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W4A16}"])
    _, _, weights = ct_decompress(out)
    assert len(weights) == 2 * len(LINEAR)
    for module, weight in weights.items():
        assert (weight != 0).reshape(-1, 4).sum(1).max().item() <= 2, module
        assert (weight == 0).float().mean().item() >= 0.5, module
    check_transformers_logits(out, tmp_path)


def test_magnitude_then_constant_keeps_zeros_through_gptq(tiny_llama, tmp_path):
    """MagnitudePruningModifier prunes in one shot at final_sparsity; ConstantPruningModifier
    holds those zeros through a later GPTQ."""
    out = compress(tiny_llama, tmp_path, "MagnitudePruningModifier", [
        "targets: ['re:.*mlp.*']", "init_sparsity: 0.0", "final_sparsity: 0.6"], then=[
        "ConstantPruningModifier: {targets: ['re:.*mlp.*']}",
        "GPTQModifier: {targets: [Linear], ignore: [lm_head], scheme: W8A16}"])
    _, _, weights = ct_decompress(out)
    original = tiny_llama[0].state_dict()
    for module, weight in weights.items():
        zeros = (weight == 0).float().mean().item()
        if ".mlp." in module:
            assert (weight == 0).sum().item() >= int(weight.numel() * 0.6), module
            # The smallest 60% of the original layer are still zero after GPTQ.
            w = original[module + ".weight"].abs().flatten()
            smallest = torch.sort(w, stable=True)[1][:int(w.numel() * 0.6)]
            assert torch.all(weight.flatten()[smallest] == 0), module
        else:
            assert zeros < 0.05, module


@pytest.mark.parametrize("body, message", [
    (["sparsity: 1.0"], "sparsity"),
    (["sparsity: 0.5", 'mask_structure: "3:7"'],
     "mask_structure 3:7 needs in_features to be a multiple of 7"),
    (["sparsity: [0.5, 0.4]"], "2 values for 14 target layers"),
])
def test_bad_pruning_recipes_name_the_recipe_path(tiny_llama, tmp_path, body, message):
    _, folder, calibration = tiny_llama
    from test_ptq_reference import recipe
    path = recipe(tmp_path, "SparseGPTModifier", body + ['ignore: ["re:.*lm_head"]'])
    result = run("--recipe", path, folder, "-o", tmp_path / "out", "--dataset", calibration,
                 check=1)
    assert message in result.stderr, result.stderr
    assert "SparseGPTModifier" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()
