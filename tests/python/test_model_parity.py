"""Stunt's native architectures against Hugging Face transformers: tiny random models built
offline from configs, and the real all-MiniLM-L6-v2 against sentence-transformers."""
import os
import subprocess

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest_common import MINILM, SOURCE_DIR, WIKITEXT

FORWARD = os.environ.get("STUNT_FORWARD", str(SOURCE_DIR / "build/dev/tests/stunt_forward"))
TOLERANCE = 1e-4
VOCAB = 96

LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}

# name → (config class, model class, config kwargs)
TINY = {
    "bert": (transformers.BertConfig, transformers.BertModel, dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64)),
    "bert-classifier": (transformers.BertConfig, transformers.BertForSequenceClassification, dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64, num_labels=3)),
    "llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_scaling=LLAMA3_ROPE, rope_theta=500000.0, tie_word_embeddings=False)),
    "smollm": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(
        vocab_size=VOCAB, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=3, num_key_value_heads=1, max_position_embeddings=64,
        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)),
    "llama-linear-rope": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
        num_attention_heads=4, rope_scaling={"rope_type": "linear", "factor": 2.0},
        attention_bias=True, mlp_bias=True)),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM, dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=5, head_dim=16)),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM, dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)),
    "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel, dict(
        vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)),
    "t5": (transformers.T5Config, transformers.T5ForConditionalGeneration, dict(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=1,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16)),
    "t5-gated": (transformers.T5Config, transformers.T5ForConditionalGeneration, dict(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2,
        num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
}


def run_forward(model_dir, inputs, out_dir, *extra):
    inputs_path = out_dir / "inputs.safetensors"
    output_path = out_dir / "outputs.safetensors"
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(inputs_path))
    result = subprocess.run([FORWARD, str(model_dir), str(inputs_path), str(output_path), *extra],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return load_file(str(output_path))


@pytest.fixture(scope="module", params=sorted(TINY))
def tiny(request, tmp_path_factory):
    config_class, model_class, kwargs = TINY[request.param]
    torch.manual_seed(0)
    model = model_class(config_class(**kwargs)).eval()
    # Random init leaves norms at 1 and biases at 0; perturb everything so each term matters.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, model, folder


def make_inputs(name, padded):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (2, 11), generator=gen)
    inputs = {"input_ids": ids}
    if padded:
        mask = torch.ones_like(ids)
        mask[1, 7:] = 0  # right padding: every real token still sees only real tokens
        inputs["attention_mask"] = mask
    if name.startswith("t5"):
        inputs["decoder_input_ids"] = torch.randint(0, VOCAB, (2, 6), generator=gen)
    return inputs


def reference(model, inputs):
    with torch.no_grad():
        out = model(**inputs)
    if hasattr(out, "logits"):
        return out.logits
    return out.last_hidden_state


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("blockwise", [False, True], ids=["forward", "blockwise"])
def test_tiny_model_matches_transformers(tiny, padded, blockwise, tmp_path):
    name, model, folder = tiny
    inputs = make_inputs(name, padded)
    expected = reference(model, inputs)
    got = run_forward(folder, inputs, tmp_path, *(["--blockwise"] if blockwise else []))
    actual = got["logits"] if "logits" in got else got["hidden"]
    assert actual.shape == expected.shape
    if padded and not name.startswith("t5") and actual.dim() == 3:
        keep = inputs["attention_mask"].bool()
        actual, expected = actual[keep], expected[keep]
    diff = (actual - expected).abs().max().item()
    assert diff < TOLERANCE, f"{name}: max abs diff {diff}"


def test_sequential_and_full_forward_agree_exactly(tiny, tmp_path):
    name, _, folder = tiny
    inputs = make_inputs(name, padded=False)
    full = run_forward(folder, inputs, tmp_path)
    blockwise = run_forward(folder, inputs, tmp_path, "--blockwise")
    for key in full:
        assert torch.equal(full[key], blockwise[key]), key


def test_minilm_sentence_embeddings_match_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer

    lines = [line.strip() for line in WIKITEXT.read_text(encoding="utf-8").split("\n")]
    lines = [line for line in lines if line][:100]
    st = SentenceTransformer(str(MINILM), device="cpu")
    expected = st.encode(lines, convert_to_tensor=True, batch_size=100)
    tokens = st.tokenizer(lines, padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
    got = run_forward(MINILM, {"input_ids": tokens["input_ids"],
                               "attention_mask": tokens["attention_mask"]}, tmp_path)
    cosine = torch.nn.functional.cosine_similarity(got["embeddings"], expected, dim=-1)
    assert cosine.min().item() >= 0.99999, cosine.min().item()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_precision_sharded_checkpoint_loads_as_transformers_does(dtype, tmp_path):
    """A fp16/bf16 checkpoint split into shards: Stunt computes in float32 from the stored
    values, as transformers does when asked for float32."""
    config_class, model_class, kwargs = TINY["llama3"]
    torch.manual_seed(0)
    model = model_class(config_class(**kwargs)).to(dtype)
    folder = tmp_path / "model"
    model.save_pretrained(folder, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").exists()
    reference = model_class.from_pretrained(folder, dtype=torch.float32).eval()
    inputs = make_inputs("llama3", padded=True)
    expected = reference(**inputs).logits.detach()
    got = run_forward(folder, inputs, tmp_path)["logits"]
    keep = inputs["attention_mask"].bool()
    assert (got[keep] - expected[keep]).abs().max().item() < TOLERANCE


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_tiny_model_gradients_match_transformers(tiny, padded, tmp_path):
    """Training runs through the same forward: every trainable tensor's gradient of
    sum(output * probe) equals transformers' (dropout off in both)."""
    name, model, folder = tiny
    if padded and name.startswith("t5"):
        pytest.skip("T5's decoder takes no padding mask; the full case covers its gradients")
    inputs = make_inputs(name, padded)
    model.zero_grad()
    out = model(**inputs)
    scored = out.logits if hasattr(out, "logits") else out.last_hidden_state
    probe = torch.randn(scored.shape, generator=torch.Generator().manual_seed(2))
    if padded and scored.dim() == 3:
        # Padded positions' outputs are not defined the same way; score real tokens only.
        probe = probe * inputs["attention_mask"].unsqueeze(-1)
    (scored * probe).sum().backward()
    expected = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    got = run_forward(folder, {**inputs, "probe": probe}, tmp_path, "--gradients")
    actual = {k[len("grad:"):]: v for k, v in got.items() if k.startswith("grad:")}
    assert sorted(actual) == sorted(expected), (
        f"{name}: tensors with gradients differ: only Stunt {sorted(set(actual) - set(expected))}, "
        f"only transformers {sorted(set(expected) - set(actual))}")
    for tensor, grad in expected.items():
        mine = actual[tensor]  # in the checkpoint's layout (GPT-2's Conv1D: [in, out])
        assert mine.shape == grad.shape, (tensor, mine.shape, grad.shape)
        scale = grad.abs().max().item() or 1.0
        diff = (mine - grad).abs().max().item() / scale
        assert diff < TOLERANCE, f"{name}: {tensor}: relative gradient difference {diff}"
