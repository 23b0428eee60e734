"""The compress CLI end to end: help, version, exit codes, inspect, recipe check, list, the main
form, convert, logging flags."""
import json

import pytest

from conftest_common import MINILM, SOURCE_DIR, run

RECIPES = sorted((SOURCE_DIR / "recipes").iterdir())


def test_help_and_version():
    out = run("--help", check=0).stdout
    for sub in ("inspect", "recipe", "list", "convert", "--recipe"):
        assert sub in out
    version = run("--version", check=0).stdout
    assert version.startswith("stunt 0.1.0")
    assert "LibTorch 2.11.0" in version


@pytest.mark.parametrize("args", [[], ["--no-such-flag"], ["list"], ["list", "bogus"],
                                  ["inspect"], ["recipe"], ["--recipe", "x.yaml"]])
def test_usage_errors_exit_2(args):
    result = run(*args)
    assert result.returncode == 2, result
    assert result.stdout == "" or "Usage" in result.stdout or "compress" in result.stdout


def test_inspect_table_and_json_agree():
    table = run("inspect", MINILM, check=0).stdout
    report = json.loads(run("inspect", MINILM, "--json", check=0).stdout)
    assert report["format"] == "safetensors"
    assert report["totals"]["tensors"] == len(report["tensors"]) == 104
    assert f"total: 104 tensors, {report['totals']['numel']} elements" in table
    assert "encoder.layer.0.attention.self.query.weight" in table
    assert "[384, 384]" in table


def test_inspect_of_a_missing_path_is_one_clear_error():
    result = run("inspect", "/no/such/model", check=1)
    assert result.stderr.strip().splitlines() == ["error: '/no/such/model' does not exist"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_checks(recipe):
    # Every shipped recipe runs ("valid", exit 0).
    result = run("recipe", "check", recipe, check=0)
    assert "# valid: `compress --recipe` will run every modifier" in result.stdout
    assert ": refused: " not in result.stdout, result.stdout
    normalized = json.loads(run("recipe", "check", "--json", recipe, check=0).stdout)
    assert normalized["modifiers"] and normalized["valid"], normalized


def test_recipe_check_lists_what_would_be_refused(tmp_path):
    recipe = tmp_path / "hidden.yaml"
    recipe.write_text("train_stage:\n  run_type: train\n  prune_modifiers:\n"
                      "    SparseGPTModifier:\n      sparsity: 0.5\n")
    result = run("recipe", "check", recipe, check=1)
    assert "# valid" not in result.stdout and ": refused: " in result.stdout
    assert "not implemented yet" in result.stdout
    assert "would be refused by `compress --recipe`" in result.stderr
    assert json.loads(run("recipe", "check", "--json", recipe, check=1).stdout)["valid"] is False


@pytest.mark.parametrize("what", ["modifiers", "schemes", "formats"])
def test_list_prints_registries(what):
    text = run("list", what, check=0).stdout
    data = json.loads(run("list", what, "--json", check=0).stdout)
    if what == "modifiers":
        names = {m["name"] for m in data}
        assert {"GPTQModifier", "SparseGPTModifier", "WandaPruningModifier", "GMPruningModifier",
                "SmoothQuantModifier", "AWQModifier", "ConstantPruningModifier",
                "OutputDistillationModifier", "AttentionDistillationModifier"} <= names
        assert all(m["name"] in text for m in data)
    elif what == "schemes":
        assert {"W4A16", "W4A16_ASYM", "W8A16", "W8A8", "FP8", "FP8_DYNAMIC"} <= {s["name"] for s in data}
    else:
        assert "pack-quantized" in data["compressed_tensors_formats"]
        assert "F8_E4M3" in text


def test_main_form_refuses_unimplemented_modifiers_and_writes_nothing(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe = recipes / "hidden.yaml"
    recipe.write_text("train_stage:\n  run_type: train\n  prune_modifiers:\n"
                      "    SparseGPTModifier:\n      sparsity: 0.5\n")
    out = tmp_path / "new" / "folders" / "out"
    result = run("--recipe", recipe, MINILM, "-o", out, "--dataset", recipe, check=1)
    # Refused by name and recipe path, before any work.
    assert "train_stage.prune_modifiers.SparseGPTModifier" in result.stderr
    assert "not implemented yet" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipes"]  # nothing else written


def test_distilling_recipe_without_a_teacher_names_the_modifier(tmp_path):
    out = tmp_path / "out"
    result = run("--recipe", SOURCE_DIR / "recipes/distill-qat-sparseml.yaml", MINILM, "-o", out,
                 "--dataset", SOURCE_DIR / "recipes/distill-qat-sparseml.yaml", check=1)
    assert "prune_stage.distill_modifiers[0]" in result.stderr and "--teacher" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_main_form_without_calibration_data_names_the_modifier(tmp_path):
    out = tmp_path / "out"
    result = run("--recipe", SOURCE_DIR / "recipes/w4a16-gptq.yaml", MINILM, "-o", out, check=1)
    assert "quant_stage.quant_modifiers.GPTQModifier" in result.stderr
    assert "learns from calibration data" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_main_form_refuses_to_clobber_an_existing_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    result = run("--recipe", SOURCE_DIR / "recipes/w4a16-gptq.yaml", MINILM, "-o", out, check=1)
    assert "--overwrite" in result.stderr
    assert (out / "keep.txt").read_text() == "keep"


def test_convert_hf_folder_to_sharded_folder_keeps_config_and_tokenizer(tmp_path):
    out = tmp_path / "minilm"
    run("convert", MINILM, "-o", out, "--max-shard-bytes", 30_000_000, check=0)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    for name in ("config.json", "tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json"):
        assert (out / name).read_bytes() == (MINILM / name).read_bytes(), name
    again = json.loads(run("inspect", out, "--json", check=0).stdout)
    original = json.loads(run("inspect", MINILM, "--json", check=0).stdout)
    assert again["format"] == "safetensors-sharded"
    assert sorted((t["name"], t["dtype"], t["shape"], t["zeros"]) for t in again["tensors"]) == \
        sorted((t["name"], t["dtype"], t["shape"], t["zeros"]) for t in original["tensors"])


def test_quiet_and_verbose_and_environment_levels(tmp_path):
    args = ["convert", MINILM, "-o", tmp_path / "a.safetensors"]
    assert "info" in run(*args, check=0).stderr
    assert run("-q", *args[:-1], tmp_path / "b.safetensors", check=0).stderr == ""
    env_quiet = run(*args[:-1], tmp_path / "c.safetensors", env={"STUNT_LOG_LEVEL": "error"}, check=0)
    assert env_quiet.stderr == ""
    bad = run("inspect", MINILM, env={"STUNT_LOG_LEVEL": "loud"}, check=1)
    assert "STUNT_LOG_LEVEL" in bad.stderr
