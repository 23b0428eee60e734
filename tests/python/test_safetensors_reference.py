"""Stunt's safetensors reader and writer against the real `safetensors` library: files written
by Python are read by Stunt and written back byte for byte; Stunt's shards match huggingface_hub's
split and load in transformers."""
import json
import struct

import pytest
import safetensors
import safetensors.torch as st
import torch

from conftest_common import MINILM, run

DTYPES = [torch.bool, torch.uint8, torch.int8, torch.int16, torch.uint16, torch.float16,
          torch.bfloat16, torch.int32, torch.uint32, torch.float32, torch.float64, torch.int64,
          torch.uint64, torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2,
          torch.float8_e8m0fnu, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]


def random_tensor(dtype, shape, generator):
    """Random bits of the given dtype (so every bit pattern class shows up)."""
    numel = 1
    for d in shape:
        numel *= d
    itemsize = torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (numel * itemsize,), dtype=torch.uint8, generator=generator)
    if dtype == torch.bool:  # only 0 and 1 are valid bool bytes
        return (raw.reshape(shape) % 2).bool()
    return raw.view(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_stunt_rewrites_python_files_byte_for_byte(dtype, tmp_path):
    g = torch.Generator().manual_seed(1)
    tensors = {"weight": random_tensor(dtype, (3, 5), g), "scalar": random_tensor(dtype, (), g),
               "empty": random_tensor(dtype, (0, 4), g), "vector": random_tensor(dtype, (7,), g)}
    src, dst = tmp_path / "py.safetensors", tmp_path / "stunt.safetensors"
    st.save_file(tensors, src, metadata={"format": "pt"})
    run("convert", src, "-o", dst, check=0)
    assert dst.read_bytes() == src.read_bytes()


def test_mixed_dtypes_unicode_names_and_no_metadata(tmp_path):
    g = torch.Generator().manual_seed(2)
    tensors = {"b.weight": random_tensor(torch.float32, (4, 4), g),
               "a.bias": random_tensor(torch.float16, (4,), g),
               "émbed.größe": random_tensor(torch.bfloat16, (2, 3), g),
               "ids": torch.arange(10), "mask": random_tensor(torch.bool, (5,), g),
               "scale": random_tensor(torch.float8_e4m3fn, (8,), g)}
    src, dst = tmp_path / "py.safetensors", tmp_path / "stunt.safetensors"
    st.save_file(tensors, src)
    run("convert", src, "-o", dst, check=0)
    assert dst.read_bytes() == src.read_bytes()
    loaded = st.load_file(dst)
    for name, tensor in tensors.items():
        assert torch.equal(loaded[name].view(torch.uint8), tensor.contiguous().view(torch.uint8))


def test_fp4_round_trips(tmp_path):
    packed = torch.randint(0, 256, (4, 3), dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    src, dst = tmp_path / "py.safetensors", tmp_path / "stunt.safetensors"
    st.save_file({"w": packed}, src)
    run("convert", src, "-o", dst, check=0)
    assert dst.read_bytes() == src.read_bytes()
    report = json.loads(run("inspect", "--json", src, check=0).stdout)
    assert report["tensors"][0]["shape"] == [4, 6]  # safetensors counts 4-bit values


def test_f6_is_listed_even_though_libtorch_cannot_hold_it(tmp_path):
    header = json.dumps({"w": {"dtype": "F6_E2M3", "shape": [4], "data_offsets": [0, 3]}})
    header += " " * ((8 - len(header) % 8) % 8)
    path = tmp_path / "f6.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + b"\x01\x02\x03")
    with safetensors.safe_open(path, "np") as f:  # the reference reads the header too
        assert list(f.keys()) == ["w"]
    report = json.loads(run("inspect", "--json", path, check=0).stdout)
    assert report["tensors"][0]["dtype"] == "F6_E2M3"
    assert report["tensors"][0]["sparsity"] is None
    assert "F6_E2M3" in run("convert", path, "-o", tmp_path / "x.safetensors", check=1).stderr


def test_inspect_counts_zeros_as_torch_does(tmp_path):
    g = torch.Generator().manual_seed(3)
    tensors = {}
    for i, dtype in enumerate([torch.float32, torch.float16, torch.bfloat16, torch.int8,
                               torch.float8_e4m3fn, torch.int64]):
        dense = torch.randn(16, 8, generator=g)
        dense[torch.rand(16, 8, generator=g) < 0.3 + 0.1 * i] = 0
        tensors[f"t{i}"] = dense.to(dtype)
    path = tmp_path / "z.safetensors"
    st.save_file(tensors, path)
    report = json.loads(run("inspect", "--json", path, check=0).stdout)
    for row in report["tensors"]:
        expected = int((tensors[row["name"]].float() == 0).sum())
        assert row["zeros"] == expected, row["name"]
        assert row["bytes"] == tensors[row["name"]].nbytes


def test_shards_match_huggingface_hub_and_load_in_transformers(tmp_path):
    from huggingface_hub import split_torch_state_dict_into_shards
    from transformers import AutoModel

    out = tmp_path / "sharded"
    limit = 30_000_000
    run("convert", MINILM, "-o", out, "--max-shard-bytes", limit, check=0)
    index = json.loads((out / "model.safetensors.index.json").read_text())

    # The reference split over the same tensors in the same (file) order.
    raw = (MINILM / "model.safetensors").read_bytes()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    order = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    state = st.load_file(MINILM / "model.safetensors")
    reference = split_torch_state_dict_into_shards({k: state[k] for k in order},
                                                   max_shard_size=limit)
    assert index["weight_map"] == reference.tensor_to_filename
    assert index["metadata"]["total_size"] == reference.metadata["total_size"]

    # transformers loads the sharded folder (config.json passed through) with equal weights.
    original = AutoModel.from_pretrained(MINILM).eval()
    converted = AutoModel.from_pretrained(out).eval()
    for (name, a), (_, b) in zip(original.state_dict().items(), converted.state_dict().items()):
        assert torch.equal(a, b), name
