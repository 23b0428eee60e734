"""Generation with a KV cache (compress generate, stunt::model::generate) against transformers'
`generate`: greedy ids for tiny random Llama (GQA, tied), Llama 3, GPT-2 and T5 and for the real
SmolLM2 GGUF, T5 beam search, cached logits against full forwards, and seeded sampling."""
import json
import os
import subprocess

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest_common import SOURCE_DIR, run
from test_model_parity import TINY, VOCAB, run_forward

DECODE = os.environ.get("STUNT_DECODE", str(SOURCE_DIR / "build/dev/tests/stunt_decode"))
CACHE_TOLERANCE = 1e-5
NEW_TOKENS = 12


MODELS = ["smollm", "llama3", "mistral", "gpt2", "t5"]
CAUSAL = [name for name in MODELS if not name.startswith("t5")]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Builds each tiny model once per module: build(name) → (name, model, folder)."""
    built = {}

    def get(name):
        if name not in built:
            config_class, model_class, kwargs = TINY[name]
            torch.manual_seed(0)
            model = model_class(config_class(**kwargs)).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 0.05)
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            built[name] = (name, model, folder)
        return built[name]

    return get


@pytest.fixture(params=MODELS)
def tiny(request, build):
    return build(request.param)


def prompts_of(name):
    gen = torch.Generator().manual_seed(3)
    return [torch.randint(2, VOCAB, (n,), generator=gen).tolist() for n in (7, 4)]


def stunt_generate(folder, prompts, *extra):
    args = ["generate", folder, "--json"]
    for p in prompts:
        args += ["--prompt-ids", ",".join(map(str, p))]
    result = run(*args, *extra, check=0)
    return [r["ids"] for r in json.loads(result.stdout)["results"]]


def trim(ids, eos):
    """New tokens up to and including the first eos (transformers pads after it)."""
    out = []
    for t in ids:
        out.append(t)
        if t == eos:
            break
    return out


def hf_generate(model, prompts, eos, **kwargs):
    """transformers' generate, one call for the batch: causal LMs left-padded with a mask."""
    is_t5 = model.config.is_encoder_decoder
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), eos)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        start = 0 if is_t5 else width - len(p)
        ids[i, start:start + len(p)] = torch.tensor(p)
        mask[i, start:start + len(p)] = 1
    if is_t5:  # Stunt's rule: decoder_start_token_id, else pad_token_id, else 0
        start = getattr(model.config, "decoder_start_token_id", None)
        start = getattr(model.config, "pad_token_id", None) if start is None else start
        kwargs["decoder_start_token_id"] = 0 if start is None else start
    with torch.no_grad():
        out = model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                             min_new_tokens=0, eos_token_id=eos, pad_token_id=eos, **kwargs)
    new = out[:, 1:] if is_t5 else out[:, width:]
    return [trim(row.tolist(), eos) for row in new]


def an_eos(model, prompts):
    """A token the unconstrained greedy output of the first prompt produces mid-way, so that
    stopping at eos is exercised."""
    free = hf_generate(model, prompts[:1], eos=VOCAB - 1, do_sample=False)[0]
    return free[len(free) // 2] if len(free) > 2 else 1


def a_staggered_eos(model, prompts):
    """A token that stops the greedy rows at different steps, so that finished rows leave the
    decoding batch while others go on (the eos does not change the tokens before it)."""
    free = hf_generate(model, prompts, eos=VOCAB - 1, do_sample=False)
    for token in (t for row in free for t in row):
        stops = {row.index(token) if token in row else NEW_TOKENS for row in free}
        if len(stops) > 1 and min(stops) < NEW_TOKENS - 1:
            return token
    raise AssertionError(f"no generated token stops the rows at different steps: {free}")


def test_greedy_matches_transformers(tiny):
    name, model, folder = tiny
    prompts = prompts_of(name)
    # The tiny T5's greedy output repeats one token, which cannot stagger its rows.
    eos = a_staggered_eos(model, prompts) if name in CAUSAL else an_eos(model, prompts)
    expected = hf_generate(model, prompts, eos, do_sample=False)
    got = stunt_generate(folder, prompts, "--max-new-tokens", NEW_TOKENS, "--eos-token-id", eos)
    assert got == expected
    assert any(len(e) < NEW_TOKENS for e in expected), "eos never stopped a sequence"
    if name in CAUSAL:
        assert len({len(e) for e in expected}) > 1, "every row stopped at the same step"
    # One prompt at a time gives the same tokens as the padded batch.
    for prompt, want in zip(prompts, expected):
        assert stunt_generate(folder, [prompt], "--max-new-tokens", NEW_TOKENS,
                              "--eos-token-id", eos) == [want]


def test_t5_beam_search_matches_transformers(build):
    name, model, folder = build("t5")
    prompts = prompts_of(name)
    eos = an_eos(model, prompts)
    expected = hf_generate(model, prompts, eos, do_sample=False, num_beams=4)
    got = stunt_generate(folder, prompts, "--max-new-tokens", NEW_TOKENS, "--eos-token-id", eos,
                         "--num-beams", 4)
    assert got == expected
    greedy = hf_generate(model, prompts, eos, do_sample=False)
    assert expected != greedy, "beam search should differ from greedy here, or the test is weak"


def test_cached_decoding_matches_full_forward(tiny, tmp_path):
    name, model, folder = tiny
    gen = torch.Generator().manual_seed(5)
    inputs = {"input_ids": torch.randint(0, VOCAB, (2, 10), generator=gen)}
    if name.startswith("t5"):
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["attention_mask"][1, 7:] = 0
        inputs["decoder_input_ids"] = torch.randint(0, VOCAB, (2, 8), generator=gen)
    full = run_forward(folder, inputs, tmp_path)["logits"]
    save_file(inputs, str(tmp_path / "dec_in.safetensors"))
    for prefill in (1, 4):
        out = tmp_path / f"dec_{prefill}.safetensors"
        result = subprocess.run(
            [DECODE, str(folder), str(tmp_path / "dec_in.safetensors"), str(out), str(prefill)],
            capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        cached = load_file(str(out))["logits"]
        diff = (cached - full).abs().max().item()
        assert diff < CACHE_TOLERANCE, f"{name} prefill {prefill}: {diff}"


@pytest.mark.parametrize("causal", CAUSAL)
def test_left_padded_cache_matches_transformers_positions(causal, build, tmp_path):
    name, model, folder = build(causal)  # causal LMs pad on the left; T5 on the right
    gen = torch.Generator().manual_seed(6)
    ids = torch.randint(0, VOCAB, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    save_file({"input_ids": ids, "attention_mask": mask}, str(tmp_path / "in.safetensors"))
    result = subprocess.run(
        [DECODE, str(folder), str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors"),
         "5"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    got = load_file(str(tmp_path / "out.safetensors"))["logits"]
    keep = mask.bool()
    assert (got[keep] - expected[keep]).abs().max().item() < 1e-4


def test_sampling_is_seeded(build):
    name, model, folder = build("gpt2")
    prompt = prompts_of(name)[:1]
    common = ["--max-new-tokens", 16, "--eos-token-id", VOCAB - 1, "--sample"]
    a = stunt_generate(folder, prompt, *common, "--seed", 1)
    assert a == stunt_generate(folder, prompt, *common, "--seed", 1)
    assert a != stunt_generate(folder, prompt, *common, "--seed", 2)
    nucleus = ["--top-p", 0.9, "--temperature", 0.7, "--seed", 3]
    assert stunt_generate(folder, prompt, *common, *nucleus) == \
        stunt_generate(folder, prompt, *common, *nucleus)
    greedy = stunt_generate(folder, prompt, "--max-new-tokens", 16, "--eos-token-id", VOCAB - 1)
    top1 = stunt_generate(folder, prompt, *common, "--top-k", 1, "--seed", 4)
    assert top1 == greedy
    tiny_p = stunt_generate(folder, prompt, *common, "--top-p", 1e-6, "--seed", 5)
    assert tiny_p == greedy


def test_generate_rejects_bad_options(build):
    _, _, folder = build("gpt2")
    result = run("generate", folder, "--prompt-ids", "1,x", check=1)
    assert "separated by commas" in result.stderr
    result = run("generate", folder, "--prompt-ids", "1,2", "--sample", "--num-beams", 2, check=1)
    assert "num_beams = 1" in result.stderr


def test_smollm2_gguf_greedy_matches_transformers():
    from test_real_causal_lm import GGUF

    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32).eval()
    text = "The capital of France is"
    ids = tokenizer(text, return_tensors="pt").input_ids
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                             min_new_tokens=0, do_sample=False, eos_token_id=eos,
                             pad_token_id=eos)
    expected = trim(out[0, ids.shape[1]:].tolist(), eos)
    result = run("generate", GGUF, "--prompt", text, "--max-new-tokens", 20, "--json", check=0)
    got = json.loads(result.stdout)["results"][0]
    assert got["prompt_ids"] == ids[0].tolist()
    assert got["ids"] == expected
    assert got["text"] == tokenizer.decode(expected, skip_special_tokens=True)
    print("SmolLM2 greedy:", repr(got["text"]))
