"""Post-training quantization of TorchScript archives: `compress --recipe` on a scripted or
traced module writes model.pt (dequantized weights, scales and zero points as buffers) and the
same model as compressed-tensors safetensors, which the compressed-tensors library decompresses
to exactly the archive's weights."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest_common import run
from test_ptq_reference import ct_decompress, ct_rtn

VOCAB = 256
QUANTIZED = ("fc1", "fc2")


class TinyLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, 128)
        self.fc1 = torch.nn.Linear(128, 256)
        self.fc2 = torch.nn.Linear(256, 128)
        # Same in/out sizes as fc1, so TorchScript gives both one class: the buffers added to
        # fc1 must not break the ignored head.
        self.head = torch.nn.Linear(128, VOCAB)

    def forward(self, input_ids):
        h = self.embed(input_ids)
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.head(h)


@pytest.fixture(scope="module", params=["script", "trace"])
def archive(request, tmp_path_factory):
    torch.manual_seed(0)
    model = TinyLM().eval()
    folder = tmp_path_factory.mktemp(request.param)
    ids = torch.randint(0, VOCAB, (8, 32), generator=torch.Generator().manual_seed(3))
    scripted = torch.jit.script(model) if request.param == "script" else torch.jit.trace(model, ids)
    torch.jit.save(scripted, str(folder / "model.pt"))
    save_file({"input_ids": ids}, str(folder / "calibration.safetensors"))
    return model, folder


def quantize(archive, tmp_path, lines):
    _, folder = archive
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("quant_stage:\n  quant_modifiers:\n" + "".join(f"    {x}\n" for x in lines))
    out = tmp_path / "out"
    run("--recipe", recipe, folder / "model.pt", "-o", out, "--dataset",
        folder / "calibration.safetensors", check=0)
    return out


def check_outputs(model, out):
    """model.pt's weights equal compressed-tensors' decompression of model.safetensors, its
    buffers equal the saved scales, its forward is the eager model's with those weights, and the
    ignored head is untouched."""
    config = json.loads((out / "quantization_config.json").read_text())
    assert config["quant_method"] == "compressed-tensors" and config["ignore"] == ["head"]
    _, scheme, weights = ct_decompress(out, config)
    assert sorted(weights) == list(QUANTIZED)
    scripted = torch.jit.load(str(out / "model.pt"))
    tensors = load_file(str(out / "model.safetensors"))
    for name in QUANTIZED:
        layer = getattr(scripted, name)
        assert torch.equal(layer.weight.detach(), weights[name].float()), name
        assert torch.equal(layer.weight_scale, tensors[name + ".weight_scale"]), name
        assert layer.weight_zero_point.dtype == torch.int8
        assert not layer.weight_zero_point.any()  # symmetric
        assert torch.equal(layer.bias.detach(), tensors[name + ".bias"])
    assert torch.equal(scripted.head.weight.detach(), model.head.weight.detach())
    # Scripting gives fc1 and head one class, whose new buffer the head holds empty; tracing
    # gives every module its own class.
    assert not hasattr(scripted.head, "weight_scale") or scripted.head.weight_scale.numel() == 0
    eager = TinyLM().eval()
    eager.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name in QUANTIZED:
            getattr(eager, name).weight.copy_(weights[name].float())
        ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(scripted(ids), eager(ids), rtol=1e-5, atol=1e-5)
    assert (out / "recipe.yaml").exists()
    return scheme, weights, scripted


def test_rtn_w4a16(archive, tmp_path):
    model, _ = archive
    out = quantize(archive, tmp_path, ["QuantizationModifier:",
                                       "  targets: [Linear]", "  ignore: [head]",
                                       "  scheme: W4A16"])
    scheme, weights, _ = check_outputs(model, out)
    for name in QUANTIZED:
        expected = ct_rtn(getattr(model, name).weight.detach(), scheme.weights.model_dump())
        assert torch.equal(weights[name].float(), expected.float()), name


def test_gptq_float64_with_static_inputs(archive, tmp_path):
    model, _ = archive
    out = quantize(archive, tmp_path, [
        "GPTQModifier:", "  ignore: [head]", "  block_size: 64", "  hessian_dtype: float64",
        "  config_groups:", "    group_0:", "      targets: [Linear]",
        "      weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}",
        "      input_activations: {num_bits: 8, type: int, symmetric: true, strategy: tensor}"])
    _, _, scripted = check_outputs(model, out)
    tensors = load_file(str(out / "model.safetensors"))
    for name in QUANTIZED:
        layer = getattr(scripted, name)
        assert torch.equal(layer.input_scale, tensors[name + ".input_scale"]), name
        assert layer.input_scale.numel() == 1 and layer.input_scale.item() > 0


def test_text_calibration_needs_a_tokenizer(archive, tmp_path):
    _, folder = archive
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n"
                      "      targets: [Linear]\n      scheme: W4A16\n")
    text = tmp_path / "data.txt"
    text.write_text("some text\n")
    result = run("--recipe", recipe, folder / "model.pt", "-o", tmp_path / "out",
                 "--dataset", text)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "input_ids" in errors[0] and str(text) in errors[0], result.stderr
    assert not (tmp_path / "out").exists()
