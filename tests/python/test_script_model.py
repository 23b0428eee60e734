"""ScriptModel (TorchScript archives) against eager PyTorch: the layers Stunt lists, the inputs it
captures through its instrumented graph, the output, and weight edits saved back as TorchScript.
The reference inputs come from forward pre-hooks on the eager module."""
import os
import subprocess

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest_common import SOURCE_DIR

CAPTURE = os.environ.get("STUNT_SCRIPT_CAPTURE",
                         str(SOURCE_DIR / "build/dev/tests/stunt_script_capture"))
# Stunt runs the same TorchScript ops as eager PyTorch on the same CPU; the budget allows for
# the graph executor picking a different kernel for an op outside the layers.
MAX_ABS_DIFF = 1e-6
LAYER_TYPES = {torch.nn.Linear: "Linear", torch.nn.Conv1d: "Conv1d", torch.nn.Conv2d: "Conv2d"}


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.fc2 = torch.nn.Linear(16, 16, bias=False)
        self.out = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Cnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 6, 3, stride=2, bias=False)
        self.seq = torch.nn.Conv1d(6, 5, 2)
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5 * 3, 3))

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = self.conv2(y).flatten(2)  # [batch, 6, 4]
        return self.head(self.seq(y))


class Twice(torch.nn.Module):
    """Calls the same Linear twice: two call sites, one layer."""

    def __init__(self):
        super().__init__()
        self.shared = torch.nn.Linear(6, 6)
        self.last = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.last(self.shared(torch.tanh(self.shared(x))))


class RawWeight(torch.nn.Module):
    """Uses a Linear's weight outside the Linear: not instrumentable."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        return torch.matmul(x, self.fc.weight.t())


def transformer():
    layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    return torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


def build(name):
    """(eager module in eval mode, inputs)."""
    torch.manual_seed(0)
    if name == "mlp":
        return Mlp().eval(), (torch.randn(3, 8),)
    if name == "cnn":
        model = Cnn()
        with torch.no_grad():  # non-trivial running statistics
            model.bn.running_mean.uniform_(-0.5, 0.5)
            model.bn.running_var.uniform_(0.5, 2.0)
        return model.eval(), (torch.randn(2, 3, 6, 6),)
    if name == "transformer":
        return transformer().eval(), (torch.randn(2, 5, 16),)
    if name == "twice":
        return Twice().eval(), (torch.randn(4, 6),)
    if name == "raw":
        return RawWeight().eval(), (torch.randn(2, 4),)
    raise ValueError(name)


def archive(name, mode, tmp_path):
    model, inputs = build(name)
    scripted = torch.jit.script(model) if mode == "script" else torch.jit.trace(model, inputs)
    path = tmp_path / f"{name}-{mode}.pt"
    torch.jit.save(scripted, str(path))
    return model, inputs, path


def reference(model, inputs):
    """Each layer's inputs (a list per call) and the output, from eager PyTorch. Autograd stays
    on, as PyTorch's fused inference paths (which bypass the layers) are taken only without it;
    Stunt's instrumented graph takes the per-layer paths too."""
    captured = {}
    hooks = []
    for name, module in model.named_modules():
        if type(module) in LAYER_TYPES or isinstance(module, torch.nn.Linear):
            hooks.append(module.register_forward_pre_hook(
                lambda m, args, name=name: captured.setdefault(name, []).append(
                    args[0].detach().clone())))
    output = model(*inputs)
    for hook in hooks:
        hook.remove()
    if isinstance(output, tuple):
        output = output[0]
    return captured, output.detach()


def out_proj_inputs(model, inputs):
    """MultiheadAttention calls out_proj's weight through F.linear, not the module, so eager
    hooks on out_proj never fire; Stunt captures that call. The reference is the value whose
    projection is the attention's output: found by running the eager attention with out_proj
    replaced by an identity (weight I, bias 0)."""
    out = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.MultiheadAttention):
            def hook(m, args, kwargs, result, name=name):
                with torch.no_grad():
                    weight, bias = m.out_proj.weight.clone(), m.out_proj.bias.clone()
                    m.out_proj.weight.copy_(torch.eye(weight.shape[0]))
                    m.out_proj.bias.zero_()
                    try:
                        plain = m.forward(*args, **kwargs)[0]
                    finally:
                        m.out_proj.weight.copy_(weight)
                        m.out_proj.bias.copy_(bias)
                # batch_first: the projection runs on [seq * batch, embed], seq-major.
                out.setdefault(name + ".out_proj", []).append(
                    plain.detach().transpose(0, 1).reshape(-1, plain.shape[-1]))
            hooks.append(module.register_forward_hook(hook, with_kwargs=True))
    model(*inputs)
    for h in hooks:
        h.remove()
    return out


def run_capture(path, inputs, tmp_path, *options, check=0):
    inputs_path = tmp_path / "inputs.safetensors"
    save_file({f"input{i}": t.contiguous() for i, t in enumerate(inputs)}, str(inputs_path))
    out_path = tmp_path / "captured.safetensors"
    result = subprocess.run([CAPTURE, str(path), str(inputs_path), str(out_path),
                             *map(str, options)], capture_output=True, text=True, timeout=300)
    assert result.returncode == check, result.stderr
    if check != 0:
        return result.stderr
    with safe_open(str(out_path), "pt") as f:
        metadata = f.metadata()
    return load_file(str(out_path)), metadata


def assert_close(actual, expected, what):
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    diff = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert diff <= MAX_ABS_DIFF, (what, diff)


def expected_layers(model):
    out = []
    for name, module in model.named_modules():
        cls = LAYER_TYPES.get(type(module))
        if cls is None and isinstance(module, torch.nn.Linear):
            cls = "Linear"  # MultiheadAttention's NonDynamicallyQuantizableLinear
        if cls is not None:
            out.append(f"{name}:{cls}:{'Linear' if cls == 'Linear' else 'Conv'}")
    return out


CASES = [("mlp", "script"), ("mlp", "trace"), ("cnn", "script"), ("cnn", "trace"),
         ("transformer", "script"), ("twice", "script"), ("twice", "trace")]


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_layers_captured_inputs_and_output(name, mode, tmp_path):
    model, inputs, path = archive(name, mode, tmp_path)
    expected, output = reference(model, inputs)
    captured, metadata = run_capture(path, inputs, tmp_path)

    assert metadata["layers"].split(",") == expected_layers(model)
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    assert sorted(metadata["state_dict"].split(",")) == sorted(names)

    keys = set()
    if name == "transformer":
        expected.update(out_proj_inputs(model, inputs))
    for layer, calls in expected.items():
        for i, tensor in enumerate(calls):
            key = layer if i == 0 else f"{layer}#{i}"
            keys.add(key)
            assert key in captured, (key, sorted(captured))
            assert_close(captured[key], tensor, key)
    assert set(captured) - {"output"} == keys
    if name == "twice":
        assert "shared#1" in captured and "shared#2" not in captured
    assert_close(captured["output"], output, "output")


@pytest.mark.parametrize("option", ["--scale", "--assign-scale"])
@pytest.mark.parametrize("mode", ["script", "trace"])
def test_weight_edit_is_saved(option, mode, tmp_path):
    model, inputs, path = archive("mlp", mode, tmp_path)
    saved = tmp_path / "edited.pt"
    captured, _ = run_capture(path, inputs, tmp_path, option, "fc2", 0.5, "--save", saved)
    with torch.no_grad():
        model.fc2.weight.mul_(0.5)
        expected = model(*inputs)
    # The forward after the edit already sees it, and so does PyTorch loading the archive.
    assert_close(captured["output"], expected, "output after the edit")
    loaded = torch.jit.load(str(saved))
    assert_close(loaded(*inputs).detach(), expected, "saved archive")
    assert torch.equal(loaded.fc2.weight, model.fc2.weight)
    assert not loaded.training


def test_transformer_edit_is_saved(tmp_path):
    model, inputs, path = archive("transformer", "script", tmp_path)
    saved = tmp_path / "edited.pt"
    run_capture(path, inputs, tmp_path, "--scale", "layers.0.linear1", 2.0, "--save", saved)
    with torch.no_grad():
        model.layers[0].linear1.weight.mul_(2.0)
    expected = model(*inputs).detach()
    assert_close(torch.jit.load(str(saved))(*inputs).detach(), expected, "saved archive")


@pytest.mark.parametrize("name,layer", [("mlp", "fc1"), ("twice", "shared"),
                                        ("transformer", "layers.0.self_attn.out_proj")])
def test_swapped_forward(name, layer, tmp_path):
    model, inputs, path = archive(name, "script", tmp_path)
    module = model.get_submodule(layer)
    # 3 * linear(x, W, b) = linear(x, 3W, 3b); a hook on the module would miss out_proj, which
    # MultiheadAttention calls through F.linear.
    with torch.no_grad():
        module.weight.mul_(3.0)
        module.bias.mul_(3.0)
    expected, output = reference(model, inputs)
    captured, _ = run_capture(path, inputs, tmp_path, "--swap-scale", layer, 3.0)
    assert_close(captured["output"], output, "output with the swapped layer")
    for key, calls in expected.items():  # later layers see the swapped layer's output
        assert_close(captured[key], calls[0], key)


def test_weight_used_outside_its_layer_is_refused(tmp_path):
    _, inputs, path = archive("raw", "script", tmp_path)
    stderr = run_capture(path, inputs, tmp_path, check=1)
    assert "layer fc: its weight is used by aten::t" in stderr, stderr
    assert "instrumentation cannot handle" in stderr


def test_not_a_torchscript_archive(tmp_path):
    bad = tmp_path / "state.pt"
    torch.save({"w": torch.ones(2)}, str(bad))
    stderr = run_capture(bad, (torch.ones(1),), tmp_path, check=1)
    assert "state.pt: not a TorchScript archive" in stderr, stderr
