"""The legacy compressed-tensors sparse layouts (`compress --sparse-format`), checked against
compressed-tensors 0.14, the last release that has their compressors (bootstrap installs it into
.venv/legacy-compressed-tensors, apart from the current compressed-tensors): its compressors
produce exactly Stunt's tensors from the dense pruned weights, its decompressors give the dense
weights back from Stunt's, and its config parser reads Stunt's sparsity_config. Stunt reads the
folders back (forward, convert) to the same model as the dense output."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest_common import SOURCE_DIR, run
from test_model_parity import run_forward
from test_ptq_reference import VOCAB, recipe, tiny_llama  # noqa: F401 (tiny_llama is a fixture)

LEGACY = SOURCE_DIR / ".venv/legacy-compressed-tensors"

# Runs under compressed-tensors 0.14: argv = format, folder of Stunt's sparse output, dense
# weights (safetensors), result file. Writes, per compressed module, the reference's own
# compression of the dense weight and its decompression of Stunt's tensors.
REFERENCE = r"""
import json, sys
import torch
from safetensors.torch import load_file, save_file
import compressed_tensors
from compressed_tensors.compressors import ModelCompressor
assert compressed_tensors.__version__ == "0.14.0", compressed_tensors.__version__
fmt, folder, dense_path, out_path = sys.argv[1:]
config = json.load(open(f"{folder}/config.json"))["quantization_config"]
compressor = ModelCompressor.from_compression_config(config).sparsity_compressor
assert compressor is not None and compressor.config.format == fmt, compressor
stunt = load_file(f"{folder}/model.safetensors")
dense = load_file(dense_path)
out = {}
for module in config["sparsity_config"]["targets"]:
    names = compressor.compression_param_names
    data = {n: stunt[f"{module}.{n}"] for n in names}
    out[f"{module}.decompressed"] = compressor.decompress_weight(data)
    for name, tensor in compressor.compress_weight(module, dense[module + ".weight"]).items():
        out[f"reference.{name}"] = tensor.contiguous()
save_file(out, out_path)
"""


def prune_folder(tiny_llama, tmp_path, structure, sparse_format):
    _, folder, calibration = tiny_llama
    path = recipe(tmp_path, "SparseGPTModifier", [
        "sparsity: 0.5", f'mask_structure: "{structure}"', "targets: [Linear]",
        'ignore: ["re:.*lm_head"]'])
    out = tmp_path / sparse_format
    args = ["--recipe", path, folder, "-o", out, "--dataset", calibration]
    if sparse_format != "dense":
        args += ["--sparse-format", sparse_format]
    run(*args, check=0)
    return out


@pytest.mark.parametrize("structure, sparse_format", [("2:4", "sparse-24-bitmask"),
                                                      ("unstructured", "sparse-bitmask")])
def test_sparse_layouts_match_compressed_tensors_0_14(tiny_llama, tmp_path, structure,
                                                      sparse_format):
    assert (LEGACY / "compressed_tensors").is_dir(), (
        f"{LEGACY} is missing: run bash scripts/bootstrap.sh")
    dense = prune_folder(tiny_llama, tmp_path, structure, "dense")
    sparse = prune_folder(tiny_llama, tmp_path, structure, sparse_format)
    dense_weights = load_file(str(dense / "model.safetensors"))
    stunt = load_file(str(sparse / "model.safetensors"))
    config = json.loads((sparse / "config.json").read_text())["quantization_config"]
    sparsity = config["sparsity_config"]
    assert sparsity["format"] == sparse_format
    assert sparsity["sparsity_structure"] == ("2:4" if structure == "2:4" else "unstructured")
    assert len(sparsity["targets"]) == 14  # every projection of both decoder layers
    for module in sparsity["targets"]:
        assert module + ".weight" not in stunt
        rows, cols = dense_weights[module + ".weight"].shape
        assert stunt[module + ".bitmask"].dtype == torch.uint8
        assert stunt[module + ".bitmask"].shape == (rows, (cols + 7) // 8)
    # Unpruned tensors are stored as they are.
    assert torch.equal(stunt["lm_head.weight"], dense_weights["lm_head.weight"])

    reference_out = tmp_path / "reference.safetensors"
    result = subprocess.run(
        [sys.executable, "-c", REFERENCE, sparse_format, str(sparse),
         str(dense / "model.safetensors"), str(reference_out)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(LEGACY)})
    assert result.returncode == 0, result.stderr
    reference = load_file(str(reference_out))
    for module in sparsity["targets"]:
        torch.testing.assert_close(reference[f"{module}.decompressed"],
                                   dense_weights[module + ".weight"], rtol=0, atol=0)
        for leaf in ("shape", "compressed", "bitmask", "row_offsets"):
            key = f"reference.{module}.{leaf}"
            if key in reference or f"{module}.{leaf}" in stunt:
                assert torch.equal(stunt[f"{module}.{leaf}"], reference[key]), (module, leaf)

    # Stunt reads it back: the same logits as the dense folder, and convert gives dense weights.
    gen = torch.Generator().manual_seed(5)
    inputs = {"input_ids": torch.randint(0, VOCAB, (2, 17), generator=gen)}
    (tmp_path / "fwd-dense").mkdir()
    (tmp_path / "fwd-sparse").mkdir()
    expected = run_forward(dense, inputs, tmp_path / "fwd-dense")["logits"]
    got = run_forward(sparse, inputs, tmp_path / "fwd-sparse")["logits"]
    assert torch.equal(got, expected)
    assert ".bitmask" in run("inspect", sparse, check=0).stdout
    back = tmp_path / "back"
    run("convert", sparse, "-o", back, check=0)
    converted = load_file(str(back / "model.safetensors"))
    for name, tensor in dense_weights.items():
        assert torch.equal(converted[name], tensor), name


def test_sparse_format_refuses_quantized_recipes_and_unmet_patterns(tiny_llama, tmp_path):
    _, folder, calibration = tiny_llama
    gptq = recipe(tmp_path, "GPTQModifier", ["targets: [Linear]", "ignore: [lm_head]",
                                             "scheme: W4A16"])
    result = run("--recipe", gptq, folder, "-o", tmp_path / "out", "--dataset", calibration,
                 "--sparse-format", "sparse-24-bitmask", check=1)
    assert "GPTQModifier" in result.stderr and "quantizes the weights" in result.stderr, \
        result.stderr
    assert not (tmp_path / "out").exists()
    # An unpruned model has no 2:4 layer: everything stays dense and says so in the config.
    out = prune_folder(tiny_llama, tmp_path, "unstructured", "sparse-24-bitmask")
    sparsity = json.loads((out / "config.json").read_text())["quantization_config"][
        "sparsity_config"]
    assert sparsity["targets"] == []


def test_structured_pruning_of_a_sparse_folder_asks_for_a_dense_one(tiny_llama, tmp_path):
    sparse = prune_folder(tiny_llama, tmp_path, "2:4", "sparse-24-bitmask")
    drop = recipe(tmp_path, "LayerPruningModifier", ["layers: [1]"])
    result = run("--recipe", drop, sparse, "-o", tmp_path / "cut", check=1)
    assert "LayerPruningModifier" in result.stderr and "sparse-compressed" in result.stderr, \
        result.stderr
    assert "compress convert" in result.stderr, result.stderr
    assert not (tmp_path / "cut").exists()
    # The way the message gives works: convert to dense, then cut.
    dense = tmp_path / "dense-again"
    run("convert", sparse, "-o", dense, check=0)
    run("--recipe", drop, dense, "-o", tmp_path / "cut", check=0)
    config = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
