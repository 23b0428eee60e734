"""examples/stunt-double/generative.py, the generative track's whole chain, on a few articles:
the teacher's pseudo-labels, a layer-dropped student distilled on them, its W8A8 copy, and the
side-by-side table (headlines scored by ROUGE-L, perplexity, size, speed, projected cost); the
checkpoints are what they claim, the scores are recomputed from the written headlines, and a
rerun keeps every finished step."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from safetensors import safe_open

from conftest_common import COMPRESS, SOURCE_DIR

sys.path.insert(0, str(SOURCE_DIR / "examples/stunt-double"))
from generative import rouge_l, words  # noqa: E402

SCRIPT = SOURCE_DIR / "examples/stunt-double/generative.py"
ARTICLES = [
    ("Council approves road budget", "The city council approved a new budget for road "
     "repairs on Tuesday after a long debate about potholes in the centre."),
    ("Bakery wins bread award", "A local bakery won the national award for the best sourdough "
     "bread, beating more than two hundred entries from across the country."),
    ("Floods hit northern streets", "Heavy rain flooded several streets in the north of the "
     "town overnight, and the fire service pumped water from dozens of homes."),
    ("Club signs young striker", "The football club signed a young striker from a rival team "
     "for an undisclosed fee, the manager said at a press conference."),
    ("Shares fall on profit warning", "Shares in the retailer fell sharply after it warned "
     "that profits would be lower than expected because of weak sales."),
    ("New film breaks records", "The new animated film broke box office records in its first "
     "weekend, taking more money than any other release this year."),
]


def run_script(work, data, *extra):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(work), "--corpus", str(data / "corpus.jsonl"),
         "--test", str(data / "test.jsonl"), "--max-new-tokens", "8", "--keep-layers", "4",
         "--epochs", "1", "--warmup-steps", "1", "--batch-size", "2", "--seq-len", "96",
         "--eval-windows", "1", "--threads", "1", *extra],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1200,
        env={**os.environ, "STUNT_COMPRESS": COMPRESS})
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    return result.stdout, json.loads((work / "results.json").read_text())


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    (data / "corpus.jsonl").write_text(
        "".join(json.dumps({"text": body}) + "\n" for _, body in ARTICLES[:4]))
    (data / "test.jsonl").write_text("".join(
        json.dumps({"text": body, "headline": headline}) + "\n" for headline, body in ARTICLES[4:]))
    work = tmp_path_factory.mktemp("work")
    return work, run_script(work, data), run_script(work, data), data


def test_every_step_runs_and_the_models_are_what_they_claim(chain):
    work, (stdout, results), _, _ = chain
    for step in ("[1/6] data", "[2/6] labels", "[3/6] student", "[4/6] distilled",
                 "[5/6] quantized", "[6/6] measure"):
        assert step in stdout, stdout
    assert results["task"]["unlabeled_items"] == 4 and results["task"]["test_items"] == 2
    assert json.loads((work / "student/config.json").read_text())["num_hidden_layers"] == 4
    config = json.loads((work / "quantized/config.json").read_text())
    assert config["num_hidden_layers"] == 4
    assert config["quantization_config"]["format"] == "int-quantized"
    with safe_open(str(work / "quantized/model.safetensors"), "pt") as f:
        assert str(f.get_tensor("model.layers.0.mlp.down_proj.weight").dtype) == "torch.int8"
    rows = results["rows"]
    assert list(rows) == ["teacher", "student, layers dropped", "student, distilled",
                          "student, distilled and quantized"]
    assert rows["teacher"]["rouge_l_teacher"] == pytest.approx(1.0)
    assert rows["teacher"]["speedup"] == pytest.approx(1.0)
    for row in rows.values():
        assert row["items_written"] == 2 and row["perplexity"] > 1
        assert row["decode_tokens_per_s"] > 0 and row["seconds_per_10"] > 0
    # W8A8 with the head: every linear weight of the 4 layers goes from 4 bytes to 1, and the
    # head (tied to the embedding table, which stays float32) is stored once more in int8.
    width, inner, kv = config["hidden_size"], config["intermediate_size"], \
        config["num_key_value_heads"] * config["hidden_size"] // config["num_attention_heads"]
    layer = 2 * width * width + 2 * width * kv + 3 * width * inner
    saved = (4 * layer * 3 - config["vocab_size"] * width) / 2**20
    assert rows["student, distilled"]["size_mib"] - \
        rows["student, distilled and quantized"]["size_mib"] == pytest.approx(saved, abs=0.6)
    final = rows["student, distilled and quantized"]
    assert results["speedup"] == final["speedup"]
    assert results["rouge_l_ratio"] == pytest.approx(
        final["rouge_l_headlines"] / max(rows["teacher"]["rouge_l_headlines"], 1e-9))
    devices = {(c["model"], c["device"]) for c in results["cost_of_10m_documents"]["rows"]}
    assert {("teacher", "a10"), ("student, distilled and quantized", "a100-80")} <= devices


def test_scores_follow_from_the_written_headlines(chain):
    work, (_, results), _, _ = chain
    references = [json.loads(line)["headline"]
                  for line in (work / "test.jsonl").read_text().splitlines()]
    for name, row in results["rows"].items():
        slug = name.replace(",", "").replace(" ", "-")
        written = [json.loads(line) for path in sorted((work / "measure" / slug).glob("*.jsonl"))
                   for line in path.read_text().splitlines()]
        written.sort(key=lambda r: r["index"])
        scores = [rouge_l(words(r["generation"]), words(ref))
                  for r, ref in zip(written, references)]
        assert row["rouge_l_headlines"] == pytest.approx(sum(scores) / len(scores))
        assert all("\n" not in r["generation"] for r in written)


def test_rouge_l_on_known_pairs():
    assert rouge_l(words("Shares fall sharply"), words("Shares fall on profit warning")) == \
        pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert rouge_l([], []) == 1.0 and rouge_l(["a"], []) == 0.0
    assert rouge_l(words("a b c"), words("c b a")) == pytest.approx(1 / 3)


def test_a_rerun_keeps_every_step(chain):
    _, (_, first), (stdout, second), _ = chain
    for step in ("[2/6] labels    kept", "[3/6] student   kept", "[4/6] distilled kept",
                 "[5/6] quantized kept"):
        assert step in stdout, stdout
    for name, row in first["rows"].items():
        assert second["rows"][name]["rouge_l_headlines"] == row["rouge_l_headlines"]
        assert second["rows"][name]["perplexity"] == pytest.approx(row["perplexity"], rel=1e-6)


def test_a_changed_setting_reruns_its_step_and_the_ones_after(chain, tmp_path):
    work, (_, first), _, data = chain
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    stdout, changed = run_script(copy, data, "--no-prompt-loss", "--token-kd")
    for step in ("[2/6] labels    kept", "[3/6] student   kept",
                 "[4/6] distilled settings changed: running again",
                 "[5/6] quantized settings changed: running again"):
        assert step in stdout, stdout
    assert first["student"]["prompt_loss"] and not changed["student"]["prompt_loss"]
    assert changed["student"]["token_kd"] and not first["student"]["token_kd"]
    log = (copy / "steps.log").read_text()
    assert log.count("--prompt-loss") == 1, log  # the first run's distillation only
    distill = [line for line in log.splitlines() if "distilled.yaml" in line][-1]
    assert "--teacher" in distill, distill
    assert "DistillationModifier" in (copy / "distilled.yaml").read_text()


def test_a_teacher_that_is_not_there_is_refused(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--teacher", str(tmp_path / "x.gguf"),
                             "--work", str(tmp_path / "work")], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert f"--teacher {tmp_path / 'x.gguf'}: no such model" in result.stderr
    assert not (tmp_path / "work").exists()
