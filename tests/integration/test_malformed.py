"""Every malformed input of tests/data/malformed/ through the CLI: exit code 1, one line
'error: ...' naming the file and the cause, and no output written."""
import json

import pytest

from conftest_common import MINILM, SOURCE_DIR, run

CORPUS = SOURCE_DIR / "tests/data/malformed"
CASES = json.loads((CORPUS / "manifest.json").read_text())
GOOD_RECIPE = SOURCE_DIR / "recipes/w4a16-gptq.yaml"


def test_corpus_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["file"])
def test_malformed_input_is_one_clear_error_and_writes_nothing(case, tmp_path):
    path = CORPUS / case["file"]
    if case["kind"] == "recipe":
        checked = run("recipe", "check", path, check=1)
        main = run("--recipe", path, MINILM, "-o", tmp_path / "out", check=1)
    else:
        checked = run("inspect", path, check=1)
        main = run("--recipe", GOOD_RECIPE, path, "-o", tmp_path / "out", check=1)
        converted = run("convert", path, "-o", tmp_path / "c.safetensors", check=1)
        assert case["message"] in converted.stderr
    for result in (checked, main):
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert case["message"] in lines[0], lines[0]
        assert case["file"] in lines[0], lines[0]
        assert result.stdout == ""
    assert list(tmp_path.iterdir()) == [], "output or staging files were left behind"
