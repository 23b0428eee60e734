"""examples/stunt-double/encoder.py, the encoder track's whole chain, on a small corpus: every
step runs (label, layer-dropped student, distillation, int8, measurement), the student and its
int8 copy have the layers and format they claim and load back in transformers and
compressed-tensors with the embeddings Stunt's runtime gives, and a rerun keeps every finished
step and gives the same table."""
import json
import os
import subprocess
import sys

import pytest
from safetensors import safe_open

from conftest_common import COMPRESS, SOURCE_DIR

SCRIPT = SOURCE_DIR / "examples/stunt-double/encoder.py"
TOPICS = {0: ["match", "goal", "team", "league", "coach", "striker", "cup", "season"],
          1: ["market", "shares", "profit", "bank", "investors", "prices", "growth", "sales"]}
FILLER = ["the", "a", "after", "with", "and", "this", "year", "new", "said", "on"]


def sentence(rng, label):
    words = [rng.choice(TOPICS[label]) if rng.random() < 0.4 else rng.choice(FILLER)
             for _ in range(rng.randint(8, 20))]
    return " ".join(words)


def run_script(work, corpus, probe):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(work), "--corpus", str(corpus),
         "--probe-data", str(probe), "--epochs", "2", "--warmup-steps", "2", "--batch-size", "8", "--seq-len", "32",
         "--threads", "1"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=900,
        env={**os.environ, "STUNT_COMPRESS": COMPRESS})
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout, json.loads((work / "results.json").read_text())


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    import random
    rng = random.Random(0)
    data = tmp_path_factory.mktemp("data")
    corpus = data / "corpus.txt"
    corpus.write_text("".join(sentence(rng, rng.randint(0, 1)) + "\n" for _ in range(48)))
    probe = data / "probe.jsonl"
    probe.write_text("".join(json.dumps({"text": sentence(rng, i % 2), "label": i % 2}) + "\n"
                             for i in range(40)))
    work = tmp_path_factory.mktemp("work")
    first = run_script(work, corpus, probe)
    second = run_script(work, corpus, probe)
    return work, first, second


def test_every_step_runs_and_the_models_are_what_they_claim(chain):
    work, (stdout, results), _ = chain
    for step in ("[1/5] corpus", "[2/5] label", "[3/5] student", "[4/5] student-int8",
                 "[5/5] measure"):
        assert step in stdout, stdout
    assert results["corpus"]["texts"] == 48
    assert results["probe"] == {"train": 32, "test": 8}
    student = json.loads((work / "student/config.json").read_text())
    assert student["num_hidden_layers"] == 3
    quantized = json.loads((work / "student-int8/config.json").read_text())
    assert quantized["quantization_config"]["format"] == "int-quantized"
    with safe_open(str(work / "student-int8/model.safetensors"), "pt") as f:
        weight = f.get_tensor("encoder.layer.0.attention.self.query.weight")
    assert str(weight.dtype) == "torch.int8"
    teacher, student_row, int8_row = results["rows"].values()
    assert teacher["cosine_to_teacher"] == pytest.approx(1.0, abs=1e-6)
    assert teacher["speedup"] == pytest.approx(1.0)
    for row in (student_row, int8_row):
        assert 0.0 < row["cosine_to_teacher"] < 1.0
        assert 0.0 <= row["probe_accuracy"] <= 1.0 and row["items_per_s"] > 0
    # The linear layers' weights go from 4 bytes to 1 (3 layers of 4·384² + 2·384·1536 weights:
    # 15.2 MiB saved); the embedding table stays float32.
    saved = 3 * (4 * 384**2 + 2 * 384 * 1536) * 3 / 2**20
    assert student_row["size_mib"] - int8_row["size_mib"] == pytest.approx(saved, abs=0.2)


def test_checkpoints_load_back_with_the_runtime_embeddings(chain):
    _, (_, results), _ = chain
    loads = results["transformers_cosine_to_stunt"]
    assert loads["teacher"] > 0.99999 and loads["student (3 layers)"] > 0.99999, loads
    # compressed-tensors decompresses the int8 weights and quantizes activations per token as
    # Stunt does; only the rounding of the int32 sums' float products differs.
    assert loads["student int8 (3 layers)"] > 0.999, loads


def test_a_rerun_keeps_every_step(chain):
    _, (_, first), (stdout, second) = chain
    for step in ("[1/5] corpus    kept", "[2/5] labels    kept", "[3/5] student   kept",
                 "[4/5] student-int8 kept"):
        assert step in stdout, stdout
    for name, row in first["rows"].items():
        assert second["rows"][name]["cosine_to_teacher"] == pytest.approx(
            row["cosine_to_teacher"], abs=1e-6)


def test_a_folder_that_is_no_model_is_refused(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--teacher", str(tmp_path), "--work",
                             str(tmp_path / "work")], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert f"--teacher {tmp_path}: not a model folder (no config.json)" in result.stderr
    assert not (tmp_path / "work").exists()
