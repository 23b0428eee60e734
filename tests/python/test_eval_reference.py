"""compress eval against the same measures computed in Python with transformers: perplexity
(GPTQ style), fidelity (cosine of sentence embeddings, KL of logits) and accuracy."""
import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest_common import MINILM, run
from test_model_parity import WIKITEXT

SEQ_LEN = 64


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The first 120 lines of wikitext-2 test, as a file and as GPTQ's rows."""
    lines = WIKITEXT.read_text(encoding="utf-8").split("\n")[:120]
    path = tmp_path_factory.mktemp("data") / "wiki.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(path, encoding="utf-8") as f:
        rows = [row if row.strip() else "" for row in f]
    return path, rows


def save_with_tokenizer(model, folder):
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        shutil.copy(MINILM / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_lm(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=48,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config).eval()
    return model, save_with_tokenizer(model, tmp_path_factory.mktemp("lm"))


def eval_json(*args):
    return json.loads(run("eval", *args, "--json", check=0).stdout)


def test_perplexity_matches_gptq_style_python(tiny_lm, tokenizer, data):
    model, folder = tiny_lm
    path, rows = data
    ids = tokenizer("\n\n".join(rows), return_tensors="pt").input_ids
    windows = ids.numel() // SEQ_LEN
    nlls = []
    with torch.no_grad():
        for i in range(windows):
            batch = ids[:, i * SEQ_LEN:(i + 1) * SEQ_LEN]
            nlls.append(model(batch, labels=batch).loss.float() * (SEQ_LEN - 1))
    expected = torch.exp(torch.stack(nlls).sum() / (windows * (SEQ_LEN - 1))).item()
    got = eval_json(folder, "--metric", "perplexity", "--data", path, "--seq-len", SEQ_LEN)
    assert got["windows"] == windows and got["tokens"] == windows * (SEQ_LEN - 1)
    assert got["perplexity"] == pytest.approx(expected, rel=1e-5)


def perturbed_copy(folder, out, scale):
    shutil.copytree(folder, out)
    tensors = load_file(str(folder / "model.safetensors"))
    gen = torch.Generator().manual_seed(3)
    noisy = {k: v + scale * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in tensors.items()}
    save_file(noisy, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def nonblank(rows, count):
    return [row.strip() for row in rows if row.strip()][:count]


def test_kl_fidelity_matches_python(tiny_lm, tokenizer, data, tmp_path):
    model, folder = tiny_lm
    path, rows = data
    noisy = perturbed_copy(folder, tmp_path / "noisy", 0.02)
    same = eval_json(folder, "--metric", "fidelity", "--reference", folder, "--data", path,
                     "--seq-len", 256)
    assert same["measure"] == "kl" and abs(same["mean"]) < 1e-6
    other = transformers.LlamaForCausalLM.from_pretrained(noisy).eval()
    texts = nonblank(rows, 1000)
    kl_sum, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=256).input_ids
            log_p = torch.log_softmax(model(ids).logits, -1)
            log_q = torch.log_softmax(other(ids).logits, -1)
            kl_sum += (log_p.exp() * (log_p - log_q)).sum().item()
            count += ids.shape[1]
    got = eval_json(noisy, "--metric", "fidelity", "--reference", folder, "--data", path,
                    "--seq-len", 256)
    assert got["samples"] == len(texts)
    assert got["mean"] == pytest.approx(kl_sum / count, rel=1e-4)
    assert got["mean"] > 1e-4


def test_minilm_cosine_fidelity_matches_sentence_transformers(data, tmp_path):
    from sentence_transformers import SentenceTransformer

    path, rows = data
    noisy = perturbed_copy(MINILM, tmp_path / "noisy", 0.01)
    same = eval_json(MINILM, "--metric", "fidelity", "--reference", MINILM, "--data", path)
    assert same["measure"] == "cosine" and same["mean"] > 0.9999999
    texts = nonblank(rows, 1000)
    a = SentenceTransformer(str(MINILM), device="cpu").encode(texts, convert_to_tensor=True)
    b = SentenceTransformer(str(noisy), device="cpu").encode(texts, convert_to_tensor=True)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    got = eval_json(noisy, "--metric", "fidelity", "--reference", MINILM, "--data", path,
                    "--seq-len", 256)
    assert got["mean"] == pytest.approx(cosine.mean().item(), abs=1e-5)
    assert got["worst"] == pytest.approx(cosine.min().item(), abs=1e-5)
    assert got["mean"] < 0.9999


def test_accuracy_matches_python(tokenizer, data, tmp_path):
    path, rows = data
    torch.manual_seed(1)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=48, num_labels=3)
    model = transformers.BertForSequenceClassification(config).eval()
    folder = save_with_tokenizer(model, tmp_path / "classifier")
    texts = nonblank(rows, 40)
    gen = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 3, (len(texts),), generator=gen).tolist()
    jsonl = tmp_path / "labeled.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": l}) + "\n"
                             for t, l in zip(texts, labels)), encoding="utf-8")
    with torch.no_grad():
        predicted = [model(**tokenizer(t, return_tensors="pt")).logits.argmax(-1).item()
                     for t in texts]
    correct = sum(p == l for p, l in zip(predicted, labels))
    got = eval_json(folder, "--metric", "accuracy", "--data", jsonl, "--seq-len", 512)
    assert (got["correct"], got["total"]) == (correct, len(texts))


def test_eval_refuses_bad_requests(tiny_lm, data, tmp_path):
    _, folder = tiny_lm
    path, _ = data
    result = run("eval", folder, "--metric", "fidelity", "--data", path, check=1)
    assert "--reference" in result.stderr
    result = run("eval", folder, "--metric", "accuracy", "--data", path, check=1)
    assert "label" in result.stderr
    result = run("eval", folder, "--metric", "nonsense", "--data", path, check=2)
    result = run("eval", MINILM, "--metric", "perplexity", "--data", path, "--seq-len", 32,
                 check=1)
    assert "causal LM" in result.stderr
