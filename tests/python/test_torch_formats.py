"""torch.save state dicts and TorchScript archives made by Python torch, read by Stunt."""
import json

import safetensors.torch as st
import torch

from conftest_common import run


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))


def expected_names(module):
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    return sorted(names)


def converted(path, tmp_path):
    out = tmp_path / (path.stem + ".converted.safetensors")
    run("convert", path, "-o", out, check=0)
    return st.load_file(out)


def test_torch_save_of_plain_dict_ordered_dict_and_nested_dict(tmp_path):
    torch.manual_seed(0)
    net = Net()
    sd = net.state_dict()
    for label, obj, prefix in [("plain", dict(sd), ""), ("ordered", sd, ""),
                               ("nested", {"state_dict": sd, "epoch": 3}, "state_dict.")]:
        path = tmp_path / f"{label}.pt"
        torch.save(obj, path)
        report = json.loads(run("inspect", "--json", path, check=0).stdout)
        assert report["format"] == "torch-save"
        assert sorted(t["name"] for t in report["tensors"]) == sorted(prefix + k for k in sd), label
        loaded = converted(path, tmp_path)
        for k, v in sd.items():
            assert torch.equal(loaded[prefix + k], v), (label, k)


def test_views_tied_weights_dtypes_and_parameters(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {"view": base[1:3, ::2], "transposed": base.t(), "tied_a": base, "tied_b": base,
           "param": torch.nn.Parameter(torch.ones(3)), "half": torch.randn(5).half(),
           "bf16": torch.randn(2, 2).bfloat16(), "fp8": torch.randn(4).to(torch.float8_e4m3fn),
           "ints": torch.tensor([1, -2, 3], dtype=torch.int8), "flag": torch.tensor([True, False]),
           "meta": {"step": 7, "name": "x", "lr": 0.1, "none": None},
           "layers": [torch.zeros(2), (torch.ones(1), 5)]}
    path = tmp_path / "mixed.pt"
    torch.save(obj, path)
    loaded = converted(path, tmp_path)
    expected = {"view": obj["view"], "transposed": obj["transposed"], "tied_a": base,
                "tied_b": base, "param": obj["param"].detach(), "half": obj["half"],
                "bf16": obj["bf16"], "fp8": obj["fp8"], "ints": obj["ints"], "flag": obj["flag"],
                "layers.0": obj["layers"][0], "layers.1.0": obj["layers"][1][0]}
    assert sorted(loaded) == sorted(expected)
    for k, v in expected.items():
        assert loaded[k].dtype == v.dtype, k
        assert torch.equal(loaded[k].view(torch.uint8), v.contiguous().view(torch.uint8)), k


def test_python_objects_are_refused_not_executed(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"w": torch.ones(2), "net": torch.nn.ReLU()}, path)
    result = run("inspect", path, check=1)
    assert "torch.nn.modules.activation.ReLU" in result.stderr
    assert "never runs code" in result.stderr


def test_torchscript_scripted_and_traced_list_every_parameter_and_buffer(tmp_path):
    torch.manual_seed(0)
    net = Net().eval()
    example = torch.randn(2, 3, 8, 8)
    for label, module in [("scripted", torch.jit.script(net)),
                          ("traced", torch.jit.trace(net, example))]:
        path = tmp_path / f"{label}.pt"
        torch.jit.save(module, path)
        report = json.loads(run("inspect", "--json", path, check=0).stdout)
        assert report["format"] == "torchscript"
        assert sorted(t["name"] for t in report["tensors"]) == expected_names(net), label
        loaded = converted(path, tmp_path)
        for k, v in net.state_dict().items():
            assert torch.equal(loaded[k], v), (label, k)
