"""Checks the checkpoint examples/train-qat-gmp wrote, with compressed-tensors' own code:
the config parses as a QuantizationConfig, every quantized layer decompresses through the
compressor its format names, and the pruned layers hold their 75% zeros after decompression.

    python check_example_output.py OUT_DIR
"""
import json
import sys
from pathlib import Path

import torch
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.quantization import QuantizationConfig
from safetensors.torch import load_file


def main(out):
    config = QuantizationConfig.model_validate(
        json.loads((out / "config.json").read_text())["quantization_config"])
    assert config.format == "int-quantized", config.format
    assert config.ignore == ["head"], config.ignore
    (scheme,) = config.config_groups.values()
    assert scheme.weights.num_bits == 8 and scheme.input_activations is not None, scheme
    compressor = BaseCompressor.get_value_from_registry(config.format)
    tensors = load_file(str(out / "model.safetensors"))
    for name in ("fc1", "fc2"):
        local = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        assert local["weight"].dtype == torch.int8, (name, local["weight"].dtype)
        weight = compressor.decompress(local, scheme)["weight"]
        sparsity = (weight == 0).float().mean().item()
        assert abs(sparsity - 0.75) < 1 / weight.numel(), (name, sparsity)
        print(f"{name}: int8, decompressed by compressed-tensors, sparsity {sparsity:.4f}")
    for name in ("conv2.weight",):
        sparsity = (tensors[name] == 0).float().mean().item()
        assert abs(sparsity - 0.75) < 1 / tensors[name].numel(), (name, sparsity)
    assert tensors["head.weight"].dtype == torch.float32
    assert (tensors["conv1.weight"] != 0).all()
    print("example output: ok")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
