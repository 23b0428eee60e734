"""Stunt's GGUF reader against the gguf package (llama.cpp's own Python reader and quantizer):
every tensor type Stunt dequantizes, read back exactly."""
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.torch import load_file

from conftest_common import run

TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("gguf") / "types.gguf"
    writer = GGUFWriter(str(path), "llama")
    expected = {}
    for kind in TYPES:
        values = (rng.standard_normal((6, 64)) * rng.uniform(0.01, 3)).astype(np.float32)
        data = quantize(values, kind)
        writer.add_tensor(f"t.{kind.name}", data, raw_dtype=kind)
        expected[f"t.{kind.name}"] = dequantize(data, kind).reshape(values.shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, expected


def test_every_type_dequantizes_as_the_reference(gguf_file, tmp_path):
    path, expected = gguf_file
    out = tmp_path / "tensors.safetensors"
    run("convert", path, "-o", out, check=0)
    got = load_file(str(out))
    assert set(got) == set(expected)
    for name, want in expected.items():
        assert got[name].dtype == torch.float32
        assert torch.equal(got[name], torch.from_numpy(np.ascontiguousarray(want))), name


def test_inspect_shows_ggml_types(gguf_file):
    path, _ = gguf_file
    table = run("inspect", path, "--no-sparsity", check=0).stdout
    for kind in TYPES:
        assert f"t.{kind.name}" in table and f" {kind.name} " in table


def test_non_llama_gguf_is_refused_as_a_model(gguf_file, tmp_path):
    path, _ = gguf_file
    result = run("convert", path, "-o", tmp_path / "folder", check=1)
    assert "llama" in result.stderr and "missing" in result.stderr
