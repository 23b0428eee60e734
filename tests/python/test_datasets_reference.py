"""Stunt's token windows and calibration samples (tests/tools/stunt_dataset) against a Python
computation with Hugging Face `tokenizers` and `transformers`, on wikitext-2 test.

Reference, as GPTQ evaluates perplexity: the rows are those of the HF `wikitext` builder
(each line of the file with its '\\n'; whitespace-only lines become ""), the text is
"\\n\\n".join(rows), tokenized once with special tokens; windows are ids[i*L:(i+1)*L] for
i < len(ids) // L. Stunt tokenizes the same text as a stream of chunks; it must give the same
ids for WordPiece (all-MiniLM-L6-v2) and for trained GPT-2 and Llama 3 style BPE tokenizers.
"""
import json
import os
import subprocess

import pytest
from conftest_common import MINILM, SOURCE_DIR, Mt19937_64, calibration_starts

import tokenizers
from test_tokenizers_reference import LLAMA3_PATTERN, TEST_TXT, train_gpt2, train_llama  # noqa: E402

DATASET = os.environ.get("STUNT_DATASET", str(SOURCE_DIR / "build/dev/tests/stunt_dataset"))
SEQ_LEN = 128



def wikitext_rows(path):
    """datasets' wikitext builder: `for row in f: yield row if row.strip() else ""`."""
    with open(path, encoding="utf-8") as f:
        return [row if row.strip() else "" for row in f]


def reference_ids(tokenizer_json):
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return tok.encode("\n\n".join(wikitext_rows(TEST_TXT))).ids


def stunt(tokenizer, *args):
    result = subprocess.run([DATASET, str(tokenizer), str(TEST_TXT), *map(str, args)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]
    return [line["ids"] for line in lines[:-1]], lines[-1]


def windows_of(ids, n):
    return [ids[i * n:(i + 1) * n] for i in range(len(ids) // n)]


def test_mt19937_64_reference():
    rng = Mt19937_64(5489)
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042  # the value the C++ standard requires


@pytest.fixture(scope="module")
def minilm_ids():
    return reference_ids(MINILM / "tokenizer.json")


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 4096])
def test_minilm_windows_equal_gptq(minilm_ids, chunk_bytes):
    windows, summary = stunt(MINILM, "windows", SEQ_LEN, "--chunk-bytes", chunk_bytes)
    assert summary["tokens"] == len(minilm_ids)
    assert summary["unverified_cuts"] == 0
    assert summary["bytes_read"] == summary["size_bytes"] == TEST_TXT.stat().st_size
    assert windows == windows_of(minilm_ids, SEQ_LEN)


def test_minilm_equals_transformers(minilm_ids):
    """GPTQ's own call: tokenizer("\\n\\n".join(testdata["text"])) with transformers."""
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(str(MINILM))
    ids = tok("\n\n".join(wikitext_rows(TEST_TXT)), verbose=False)["input_ids"]
    assert ids == minilm_ids


@pytest.mark.parametrize("kind", ["gpt2", "llama3"])
def test_trained_bpe_windows_equal(tmp_path, kind):
    path = tmp_path / "tokenizer.json"
    if kind == "gpt2":
        train_gpt2(path)
    else:
        train_llama(path, LLAMA3_PATTERN, merges_as_strings=False)
    ids = reference_ids(path)
    windows, summary = stunt(path, "windows", SEQ_LEN, "--chunk-bytes", 4096)
    assert summary["tokens"] == len(ids)
    assert summary["unverified_cuts"] == 0
    assert windows == windows_of(ids, SEQ_LEN)


def test_calibration_samples_are_seeded_windows(minilm_ids):
    samples, _ = stunt(MINILM, "calibration", 16, SEQ_LEN, 1234, "--chunk-bytes", 65536)
    starts = calibration_starts(len(minilm_ids), 16, SEQ_LEN, 1234)
    assert samples == [minilm_ids[s:s + SEQ_LEN] for s in starts]
    again, _ = stunt(MINILM, "calibration", 16, SEQ_LEN, 1234)
    assert again == samples
    other, _ = stunt(MINILM, "calibration", 16, SEQ_LEN, 1235)
    assert other != samples
