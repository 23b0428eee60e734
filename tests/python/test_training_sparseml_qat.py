"""SparseML's quantization-aware training syntax (`!QuantizationModifier` with start_epoch) runs
in train stages as the llm-compressor QuantizationModifier it means: the default scheme (8-bit
symmetric weights and 8-bit asymmetric static inputs, per tensor) trains to the same weights and
scales, bit for bit, as the equivalent llm-compressor recipe; the legacy bit-width fields act;
what Stunt cannot do is refused naming the field. On the tiny random Llama of
test_ptq_reference.py."""
import json

import pytest
from safetensors.torch import load_file

from conftest_common import run
from test_ptq_reference import ct_decompress, tiny_llama  # noqa: F401

TRAIN_ARGS = ["--batch-size", "2", "--learning-rate", "1e-3", "--seq-len", "32"]

SPARSEML = """\
qat_stage:
  modifiers:
    - !EpochRangeModifier
      start_epoch: 0
      end_epoch: 2
    - !QuantizationModifier
      start_epoch: 0.5
      ignore: ['lm_head']
{extra}"""

LLMCOMPRESSOR = """\
qat_stage:
  run_type: train
  qat_modifiers:
    EpochRangeModifier: {start_epoch: 0, end_epoch: 2}
    QuantizationModifier:
      start: 0.5
      ignore: ['lm_head']
      config_groups:
        group_0:
          targets: ['Linear']
          weights: {num_bits: 8, type: int, symmetric: true, strategy: tensor}
          input_activations: {num_bits: 8, type: int, symmetric: false, strategy: tensor,
                              dynamic: false, observer: minmax}
"""


def train(tiny_llama, tmp_path, name, recipe_text, check=0):
    _, folder, data = tiny_llama
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(recipe_text)
    return run("--recipe", recipe, folder, "-o", tmp_path / name, "--dataset", data, *TRAIN_ARGS,
               check=check)


def test_the_default_scheme_trains_as_the_llmcompressor_recipe_it_means(tiny_llama, tmp_path):
    train(tiny_llama, tmp_path, "sparseml", SPARSEML.format(extra=""))
    train(tiny_llama, tmp_path, "llmcompressor", LLMCOMPRESSOR)
    got = load_file(str(tmp_path / "sparseml" / "model.safetensors"))
    want = load_file(str(tmp_path / "llmcompressor" / "model.safetensors"))
    assert got.keys() == want.keys()
    assert any(k.endswith(".input_scale") for k in got)
    for name in want:
        assert got[name].equal(want[name]), name
    config, scheme, weights = ct_decompress(tmp_path / "sparseml")
    assert scheme.weights.num_bits == 8 and scheme.weights.symmetric
    assert scheme.weights.strategy == "tensor"
    inputs = scheme.input_activations
    assert inputs.num_bits == 8 and not inputs.symmetric and not inputs.dynamic
    assert len(weights) == 14  # 7 linear layers in each of 2 blocks; lm_head ignored


def test_legacy_fields_and_named_schemes_act(tiny_llama, tmp_path):
    train(tiny_llama, tmp_path, "legacy", SPARSEML.format(
        extra="      weight_bits: 4\n      quantize_linear_activations: false\n"))
    config = json.loads((tmp_path / "legacy" / "config.json").read_text())["quantization_config"]
    group = config["config_groups"]["group_0"]
    assert group["weights"]["num_bits"] == 4 and group["input_activations"] is None
    train(tiny_llama, tmp_path, "tensorrt", SPARSEML.format(extra="      scheme: tensorrt\n"))
    config = json.loads((tmp_path / "tensorrt" / "config.json").read_text())["quantization_config"]
    assert config["config_groups"]["group_0"]["input_activations"]["symmetric"] is True


@pytest.mark.parametrize("extra, message", [
    ("      scheme_overrides: {Embedding: {weights: {num_bits: 8}}}\n",
     "qat_stage.modifiers[1].scheme_overrides: per-module schemes are not implemented yet"),
    ("      submodules: ['model.layers.0']\n",
     "qat_stage.modifiers[1].submodules: quantizing only some submodules"),
    ("      reduce_range: true\n", "qat_stage.modifiers[1].reduce_range: 7-bit ranges"),
    ("      end_epoch: 1.5\n", "qat_stage.modifiers[1].end_epoch: quantization-aware training runs"),
    ("      scheme: {weights: {num_bits: 8, kwargs: {averaging_constant: 0.1}}}\n",
     "qat_stage.modifiers[1].scheme.weights.kwargs: observer arguments are not implemented"),
])
def test_what_cannot_run_is_refused_by_field(tiny_llama, tmp_path, extra, message):
    result = train(tiny_llama, tmp_path, "out", SPARSEML.format(extra=extra), check=1)
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_strict_refuses_an_ignore_entry_that_matches_nothing(tiny_llama, tmp_path):
    text = SPARSEML.format(extra="").replace("['lm_head']", "['lm_haed']")
    result = train(tiny_llama, tmp_path, "out", text, check=1)
    assert "'lm_haed' matches no layer of the model (SparseML's strict" in result.stderr
    train(tiny_llama, tmp_path, "lenient", text + "      strict: false\n")
