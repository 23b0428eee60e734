"""Recipes against their references: the YAML parser agrees with PyYAML on llm-compressor
recipes, and SparseML's eval() arithmetic agrees with Python's own evaluation."""
import json

import pytest
import yaml

from conftest_common import SOURCE_DIR, run

RECIPES = sorted((SOURCE_DIR / "recipes").iterdir())


def normalized(path):
    """`recipe check --json`: exit 0 when every modifier would run, 1 when some would be refused
    (training-time recipes); the normalized recipe either way."""
    result = run("recipe", "check", "--json", path)
    out = json.loads(result.stdout)
    assert result.returncode == (0 if out["valid"] else 1), result.stderr
    return out


@pytest.mark.parametrize("path", [p for p in RECIPES if "sparseml" not in p.name], ids=lambda p: p.name)
def test_llmcompressor_recipes_parse_as_pyyaml_does(path):
    out = normalized(path)
    assert out["syntax"] == "llm-compressor"
    reference = (json.loads if path.suffix == ".json" else yaml.safe_load)(path.read_text())
    assert out["recipe"] == reference


def python_eval(expression, variables):
    return eval(expression, {"__builtins__": {}, "min": min, "max": max, "abs": abs,
                             "int": int, "float": float, "round": round}, dict(variables))


def resolve(container, outer=None):
    """SparseML's variable resolution, done with Python's eval as the reference."""
    scope = dict(outer or {})
    pending = {}
    for key, value in container.items():
        if "modifiers" in key or isinstance(value, (dict, list)) or key == "version":
            continue
        if isinstance(value, str) and value.startswith("eval(") and value.endswith(")"):
            pending[key] = value[5:-1]
        else:
            scope[key] = value
    while pending:
        for key, body in list(pending.items()):
            try:
                scope[key] = python_eval(body, scope)
                del pending[key]
            except NameError:
                pass
    return scope


def evaluate(value, scope):
    if isinstance(value, str) and value.startswith("eval(") and value.endswith(")"):
        return python_eval(value[5:-1], scope)
    return value


class TaggedLoader(yaml.SafeLoader):
    pass


TaggedLoader.add_multi_constructor("!", lambda loader, tag, node: {"__tag__": tag, **loader.construct_mapping(node)})


@pytest.mark.parametrize("path", [p for p in RECIPES if "sparseml" in p.name], ids=lambda p: p.name)
def test_sparseml_eval_matches_python(path):
    raw = yaml.load(path.read_text(), Loader=TaggedLoader)
    out = normalized(path)
    assert out["syntax"] == "sparseml"
    globals_ = resolve(raw)
    staged = any(isinstance(v, dict) and any("modifiers" in k for k in v) for v in raw.values())
    containers = {name: v for name, v in raw.items() if isinstance(v, dict)} if staged else {"default": raw}
    checked = 0
    for stage_name, container in containers.items():
        scope = resolve(container, globals_) if staged else globals_
        stage_key = stage_name if stage_name.endswith("_stage") else stage_name + "_stage"
        stage = out["recipe"][stage_key]
        for list_key, items in container.items():
            if "modifiers" not in list_key:
                continue
            group = stage[list_key if list_key.endswith("_modifiers") else "default_modifiers"]
            for item in items:
                args = group[item["__tag__"]]
                for key, value in item.items():
                    if key == "__tag__":
                        continue
                    assert args[key] == pytest.approx(evaluate(value, scope)), (path.name, key)
                    checked += 1
    assert checked > 5
