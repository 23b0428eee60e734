"""torch.save state dicts and TorchScript archives made by Python torch, read by Stunt."""
import collections
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
    for label, obj, prefix in [("plain", dict(sd), ""),
                               ("nested", {"state_dict": dict(sd), "epoch": 3}, "state_dict.")]:
        path = tmp_path / f"{label}.pt"
        torch.save(obj, path)
        report = json.loads(run("inspect", "--json", path, check=0).stdout)
        assert report["format"] == "torch-save"
        assert sorted(t["name"] for t in report["tensors"]) == sorted(prefix + k for k in sd), label
        loaded = converted(path, tmp_path)
        for k, v in sd.items():
            assert torch.equal(loaded[prefix + k], v), (label, k)


def test_ordered_dict_state_dict_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "ordered.pt"
    torch.save(Net().state_dict(), path)  # an OrderedDict, which LibTorch's unpickler drops
    result = run("inspect", path, check=1)
    assert "torch.save(dict(model.state_dict()), path)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


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
