"""llm-compressor's published recipes, as Stunt runs them. tests/data/recipes/llmcompressor_equivalents
holds our own equivalents of the recipes in llm-compressor's e2e tests (tests/e2e/vLLM/recipes) and
examples (quantization_w4a16, quantization_w8a8_int8, quantization_w8a8_fp8, awq), limited to the
modifiers Stunt implements; each file's first comment names the recipe it mirrors.

Every recipe Stunt accepts is run through `compress --recipe` on a tiny random Llama, and then:
  * Stunt's YAML reading of the file equals PyYAML's;
  * quantization_config has one config group per scheme the recipe asked for, whose weight (and
    input activation) arguments are the ones requested, read through compressed-tensors'
    QuantizationArgs (presets expanded by compressed-tensors' own preset_name_to_scheme), with
    GPTQ's act-order as llm-compressor sets it;
  * each group's format, and the checkpoint's, is what compressed-tensors infers for the scheme;
  * exactly the Linear layers that the targets and ignore patterns select are quantized, each
    under its own group, the others listed in `ignore`; static input scales are stored;
  * compressed-tensors' decompression of every quantized module equals Stunt's own (`convert`);
  * transformers loads the checkpoint and its logits match Stunt's (`check_transformers`).
Recipes using what Stunt lacks (act-order "group", the block strategy, arguments its schemas do
not know) must fail with exit code 1 and exactly one error line, naming the recipe file and
the modifier's place in it, before any output folder appears."""
import json
import re

import pytest
import torch
import yaml
from compressed_tensors.compressors import BaseCompressor
from compressed_tensors.compressors.format import infer_module_format
from compressed_tensors.quantization import (QuantizationArgs, QuantizationScheme,
                                             preset_name_to_scheme)
from safetensors.torch import load_file

from conftest_common import SOURCE_DIR, run
from test_ptq_reference import (check_transformers, ct_decompress, stunt_decompress,  # noqa: F401
                                tiny_llama)

FOLDER = SOURCE_DIR / "tests/data/recipes/llmcompressor_equivalents"
RECIPES = sorted(FOLDER.glob("*.yaml"))

# Recipes Stunt refuses, with the reason its one error line must give.
REFUSED = {
    "e2e_awq_fp8_block.yaml": "strategy 'block'",
    "e2e_fp8_block.yaml": "'FP8_BLOCK' is not a preset scheme",
    "e2e_w4a16_actorder_group.yaml": "was removed from compressed-tensors",
    "e2e_w4a16_awq_sym_with_smooth.yaml": "AWQModifier.smooth_layer_quantization: unknown key",
    "example_awq_fp8_block.yaml": "'FP8_BLOCK' is not a preset scheme",
}
ACCEPTED = [p for p in RECIPES if p.name not in REFUSED]

QUANTIZERS = ("QuantizationModifier", "GPTQModifier", "AWQModifier")
ARG_FIELDS = ("num_bits", "type", "strategy", "symmetric", "group_size", "dynamic",
              "block_structure")


def as_list(value):
    return [value] if isinstance(value, str) else list(value)


def matches(name, pattern):
    """compressed-tensors' matching of a Linear module's name: re: patterns from the start of the
    name, the class name Linear, or the exact name."""
    if pattern.startswith("re:"):
        return re.match(pattern[3:], name) is not None
    return pattern in ("Linear", name)


def requested_schemes(recipe):
    """(modifier type, modifier arguments, QuantizationScheme) per scheme the recipe asks for."""
    out = []
    for stage in recipe.values():
        for group_key, modifiers in stage.items():
            if not group_key.endswith("_modifiers"):
                continue
            for kind, args in modifiers.items():
                args = args or {}
                if kind not in QUANTIZERS:
                    continue
                if args.get("config_groups"):
                    for group in args["config_groups"].values():
                        out.append((kind, args, QuantizationScheme.model_validate(group)))
                elif args.get("scheme"):
                    targets = as_list(args.get("targets", ["Linear"]))
                    out.append((kind, args, preset_name_to_scheme(args["scheme"], targets)))
    return out


def value_of(x):
    return getattr(x, "value", x)


def actorder(value):
    """An act-order as compressed-tensors means it ('static' is an alias of 'weight')."""
    value = value_of(value)
    return "weight" if value == "static" else value


def expected_actorder(kind, args, scheme):
    """llm-compressor's act-order: the weights' own, else GPTQModifier's argument (default
    'static'); none for the other modifiers."""
    if scheme.weights.actorder is not None:
        return actorder(scheme.weights.actorder)
    if kind == "GPTQModifier":
        return actorder(args["actorder"] if "actorder" in args else "static")
    return None


def assert_args_equal(got, expected, what):
    if expected is None:
        assert got is None, what
        return
    assert got is not None, what
    for field in ARG_FIELDS:
        assert value_of(getattr(got, field)) == value_of(getattr(expected, field)), (what, field)


def group_of(module, groups):
    """The first config group whose targets select `module`."""
    for name, scheme in groups.items():
        if any(matches(module, t) for t in scheme.targets):
            return name
    raise AssertionError(f"{module} is quantized but no config group targets it")


def ct_decompress_groups(out, config):
    """Every quantized module's weight, decompressed by compressed-tensors, group by group."""
    if len(config["config_groups"]) == 1:
        return ct_decompress(out, config)[2]
    groups = {name: QuantizationScheme.model_validate(g)
              for name, g in config["config_groups"].items()}
    tensors = load_file(str(out / "model.safetensors"))
    weights = {}
    for module in sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith(".weight_scale")}):
        scheme = groups[group_of(module, groups)]
        compressor = BaseCompressor.get_value_from_registry(value_of(scheme.format))
        local = {k[len(module) + 1:]: v for k, v in tensors.items() if k.startswith(module + ".")}
        weights[module] = compressor.decompress(local, scheme)["weight"]
    return weights


@pytest.mark.parametrize("path", ACCEPTED, ids=lambda p: p.name)
def test_recipe_runs_and_loads_in_compressed_tensors_and_transformers(path, tiny_llama, tmp_path):
    model, folder, calibration = tiny_llama
    recipe = yaml.safe_load(path.read_text())
    checked = json.loads(run("recipe", "check", "--json", path, check=0).stdout)
    assert checked["syntax"] == "llm-compressor" and checked["recipe"] == recipe

    out = tmp_path / "out"
    run("--recipe", path, folder, "-o", out, "--dataset", calibration, check=0)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "compressed-tensors"
    assert config["quantization_status"] == "compressed"
    groups = {name: QuantizationScheme.model_validate(g)
              for name, g in config["config_groups"].items()}

    # One group per requested scheme, with the requested arguments and compressed-tensors' format.
    requested = requested_schemes(recipe)
    assert len(groups) == len(requested), (list(groups), len(requested))
    formats = set()
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    expected_modules = {}
    for kind, args, scheme in requested:
        [name] = [n for n, g in groups.items() if g.targets == scheme.targets]
        got = groups[name]
        assert_args_equal(got.weights, scheme.weights, (name, "weights"))
        assert_args_equal(got.input_activations, scheme.input_activations, (name, "inputs"))
        assert got.output_activations is None
        assert actorder(got.weights.actorder) == expected_actorder(kind, args, scheme), name
        fmt = value_of(infer_module_format(torch.nn.Linear, scheme))
        assert value_of(got.format) == fmt, (name, got.format, fmt)
        formats.add(fmt)
        ignore = as_list(args.get("ignore") or [])
        for module in linear:
            if (module not in expected_modules and any(matches(module, t) for t in scheme.targets)
                    and not any(matches(module, i) for i in ignore)):
                expected_modules[module] = name
    assert config["format"] == (formats.pop() if len(formats) == 1 else "mixed-precision")

    # Exactly the selected layers are quantized, each in its group; the rest are listed as ignored.
    tensors = load_file(str(out / "model.safetensors"))
    quantized = {k.rsplit(".", 1)[0] for k in tensors if k.endswith(".weight_scale")}
    assert quantized == set(expected_modules), sorted(quantized ^ set(expected_modules))
    assert {m: group_of(m, groups) for m in quantized} == expected_modules
    assert sorted(config["ignore"]) == sorted(set(linear) - quantized)
    for module, name in expected_modules.items():
        inputs = groups[name].input_activations
        if inputs is not None and not inputs.dynamic:
            assert module + ".input_scale" in tensors, module
            assert (module + ".input_zero_point" in tensors) == (not inputs.symmetric), module

    # compressed-tensors decompresses to Stunt's own dequantized weights; transformers agrees.
    weights = ct_decompress_groups(out, config)
    assert set(weights) == quantized
    dense = stunt_decompress(out, tmp_path)
    for module, weight in weights.items():
        assert torch.equal(weight.float(), dense[module + ".weight"]), module
    check_transformers(out, tmp_path)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_recipe_gets_one_clear_error(name, tiny_llama, tmp_path):
    _, folder, calibration = tiny_llama
    path = FOLDER / name
    result = run("--recipe", path, folder, "-o", tmp_path / "out", "--dataset", calibration)
    assert result.returncode == 1, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and REFUSED[name] in errors[0], result.stderr
    assert str(path) in errors[0] and "quant_stage.quant_modifiers" in errors[0], errors[0]
    assert not (tmp_path / "out").exists()


def test_every_equivalent_names_what_it_mirrors():
    assert len(RECIPES) > 20 and set(REFUSED) <= {p.name for p in RECIPES}
    for path in RECIPES:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Mirrors ") and "llm-compressor" in first, path.name
        assert "tests/e2e/" in first or "examples/" in first, path.name
