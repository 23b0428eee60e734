"""Compressed checkpoints run compressed: the packed int4 (W4A16) and int8 (W8A8) kernels
against the reference path (decompressed float32 weights, fake-quantized inputs) on whole
models, the fallback for schemes no kernel takes, and `compress bench` (reports, charts,
projection formula, bad input)."""
import base64
import json
import re
import struct
import subprocess

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from conftest_common import run
from test_model_parity import FORWARD

VOCAB = 256


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 2-layer Llama and its W4A16 (groups of 32, with and without zero points), W8A8 and
    W8A16 versions."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=False)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    root = tmp_path_factory.mktemp("runtime")
    dense = root / "dense"
    model.save_pretrained(dense)
    schemes = {
        "w4a16": "weights: {num_bits: 4, type: int, symmetric: true, strategy: group, "
                 "group_size: 32}",
        "w4a16-asym": "weights: {num_bits: 4, type: int, symmetric: false, strategy: group, "
                      "group_size: 32}",
        "w8a8": "weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}\n"
                "          input_activations: {num_bits: 8, type: int, symmetric: true, "
                "strategy: token, dynamic: true}",
        "w8a16": "weights: {num_bits: 8, type: int, symmetric: true, strategy: channel}",
    }
    out = {"dense": dense}
    for name, body in schemes.items():
        recipe = root / f"{name}.yaml"
        recipe.write_text("quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n"
                          "      ignore: [lm_head]\n      config_groups:\n        group_0:\n"
                          f"          targets: [Linear]\n          {body}\n")
        run("--recipe", recipe, dense, "-o", root / name, check=0)
        out[name] = root / name
    return out


def forward(model_dir, ids, tmp_path, *flags):
    save_file({"input_ids": ids.contiguous()}, str(tmp_path / "in.safetensors"))
    result = subprocess.run([FORWARD, str(model_dir), str(tmp_path / "in.safetensors"),
                             str(tmp_path / "out.safetensors"), *flags],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return load_file(str(tmp_path / "out.safetensors"))["logits"], result.stderr


def ids(batch=2, length=48, seed=1):
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["w4a16", "w4a16-asym"])
def test_int4_layers_compute_what_the_reference_computes(models, name, tmp_path):
    x = ids()
    reference, _ = forward(models[name], x, tmp_path)
    packed, log = forward(models[name], x, tmp_path, "--packed")
    assert "14 int4-linear" in log, log
    # Same integers and scales; only float32 summation order differs.
    scale = reference.abs().max().item()
    assert (packed - reference).abs().max().item() < 2e-5 * scale
    # Prefill-sized inputs take the dequantized-panel path: 4 x 64 = 256 rows.
    x = ids(4, 64, seed=2)
    reference, _ = forward(models[name], x, tmp_path)
    packed, _ = forward(models[name], x, tmp_path, "--packed")
    assert (packed - reference).abs().max().item() < 2e-5 * reference.abs().max().item()


def test_int8_layers_compute_what_the_reference_computes(models, tmp_path):
    x = ids()
    reference, _ = forward(models["w8a8"], x, tmp_path)
    packed, log = forward(models["w8a8"], x, tmp_path, "--packed")
    if "int8-linear" not in log:
        # The CPU has no VNNI: the fallback says so and computes the reference.
        assert "VNNI" in log, log
        assert torch.equal(packed, reference)
        return
    # Integer sums are exact in both; the float steps after them differ in the last bit, and a
    # last-bit difference can move an activation across a rounding step of the next layer's
    # quantizer, after which that token's values differ by a quantization step. So the two are
    # two draws of the same W8A8 rounding noise: predictions agree, and they sit far closer to
    # each other than either sits to the float model (here 0.0013 against 0.0124 on average; a
    # wrong scale or a dropped offset would put them further apart than the noise).
    dense, _ = forward(models["dense"], x, tmp_path)
    agree = (packed.argmax(-1) == reference.argmax(-1)).float().mean().item()
    assert agree > 0.95, agree
    apart = (packed - reference).abs().mean().item()
    noise = (reference - dense).abs().mean().item()
    assert apart < 0.25 * noise, (apart, noise)


def test_a_scheme_without_a_kernel_falls_back_and_says_why(models, tmp_path):
    x = ids(1, 16)
    reference, _ = forward(models["w8a16"], x, tmp_path)
    packed, log = forward(models["w8a16"], x, tmp_path, "--packed")
    assert torch.equal(packed, reference)
    assert re.search(r"14 quantized layer\(s\) run the slower reference path", log), log
    assert "W8A16" in log, log


def test_generate_and_eval_choose_kernels_and_refuse_a_bad_mode(models):
    args = ("generate", models["w4a16"], "--prompt-ids", "1,2,3,4", "--max-new-tokens", "8",
            "--json")
    fast = json.loads(run(*args, check=0).stdout)
    reference = json.loads(run(*args, "--kernels", "reference", check=0).stdout)
    assert fast["results"][0]["ids"] == reference["results"][0]["ids"]
    explained = run(*args, "--explain", check=0).stderr
    assert "model.layers.0.self_attn.q_proj: int4-linear" in explained, explained
    bad = run(*args, "--kernels", "turbo", check=1)
    assert "--kernels \"turbo\" is not a kernel mode" in bad.stderr, bad.stderr


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_bench_reports_side_by_side_and_projects_cost(models, tmp_path):
    report = tmp_path / "report.json"
    page = tmp_path / "report.html"
    result = run("bench", models["dense"], models["w4a16"], models["w8a8"], "--batch", "1,2",
                 "--prompt-len", "8", "--gen-len", "4", "--repeats", "1", "--threads", "1",
                 "--devices", "a10,a100-80", "--cpu-price-per-hour", "0.1", "--json", report,
                 "--html", page, check=0)
    assert "decode tok/s" in result.stdout
    r = json.loads(report.read_text())
    assert [m["path"] for m in r["models"]] == [str(models[k]) for k in ("dense", "w4a16", "w8a8")]
    dense, w4, w8 = r["models"]
    assert w4["kernels"] == {"int4-linear": 14}
    # Packed int4 weights are about an eighth of float32 (plus scales) for the linear layers.
    assert w4["weight_bytes"] < dense["weight_bytes"] / 2
    for m in r["models"]:
        assert [b["batch"] for b in m["batches"]] == [1, 2]
        for b in m["batches"]:
            assert b["decode_tokens_per_s"] > 0 and b["prefill_tokens_per_s"] > 0
            assert 0 < b["token_p50_s"] <= b["token_p99_s"]
    # The projection is the documented roofline, recomputed here from the report's own inputs.
    devices = {d["name"]: d for d in r["devices"]}
    assert set(devices) == {"a10", "a100-80"}
    ctx = r["options"]["prompt_len"] + r["options"]["gen_len"] / 2
    checked = 0
    for p in r["projections"]:
        m = next(m for m in r["models"] if m["path"] == p["model"])
        if p["measured"]:
            batch = next(b for b in m["batches"] if b["batch"] == p["batch"])
            assert p["decode_tokens_per_s"] == batch["decode_tokens_per_s"]
            assert p["prefill_tokens_per_s"] == batch["prefill_tokens_per_s"]
            assert p["cost_per_million_tokens"] == pytest.approx(
                0.1 / (batch["decode_tokens_per_s"] * 3600) * 1e6)
            continue
        d = devices[p["device"]]
        peak = d["peak_tflops"].get(m["compute_type"], d["peak_tflops"]["fp16"])
        memory = (m["device_weight_bytes"] + m["kv_bytes_per_token"] * ctx * p["batch"]) / (
            d["bandwidth_gbps"] * 1e9 * r["bandwidth_efficiency"])
        compute = 2 * m["parameters"] * p["batch"] / (peak * 1e12 * r["compute_efficiency"])
        step = max(memory, compute)
        assert p["decode_tokens_per_s"] == pytest.approx(p["batch"] / step, rel=1e-9)
        prompt = p["batch"] * r["options"]["prompt_len"]
        read = m["device_weight_bytes"] / (d["bandwidth_gbps"] * 1e9 * r["bandwidth_efficiency"])
        prefill = max(read, 2 * m["parameters"] * prompt / (peak * 1e12 * r["compute_efficiency"]))
        assert p["prefill_tokens_per_s"] == pytest.approx(prompt / prefill, rel=1e-9)
        assert p["cost_per_million_tokens"] == pytest.approx(
            d["price_per_hour"] / (p["decode_tokens_per_s"] * 3600) * 1e6, rel=1e-9)
        checked += 1
    assert checked == 3 * 2 * 2
    html = page.read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3
    for image in images:
        assert png_size(base64.b64decode(image)) == (720, 300)
    assert "a100-80" in html and "projected" in html

    # Two reports (two machines, here the same one twice) in one table and one chart.
    compared = tmp_path / "compare.html"
    out = run("bench", "compare", report, report, "--names", "first,second", "--html", compared,
              check=0).stdout
    assert out.count("first") == 6 and out.count("second") == 6, out
    assert len(re.findall(r"data:image/png;base64", compared.read_text())) == 1
    # A report written before prefill was projected still loads.
    older = json.loads(report.read_text())
    for p in older["projections"]:
        del p["prefill_tokens_per_s"]
    older_path = tmp_path / "older.json"
    older_path.write_text(json.dumps(older))
    out = run("bench", "compare", older_path, report, "--names", "older,newer", check=0).stdout
    assert out.count("older") == 6 and out.count("newer") == 6, out


def test_bench_bad_input_gets_one_clear_error(models, tmp_path):
    not_report = tmp_path / "not-report.json"
    not_report.write_text('{"models": []}')
    r = run("bench", "compare", not_report, check=1)
    assert "not a report of compress bench" in r.stderr, r.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert "not JSON" in run("bench", "compare", broken, check=1).stderr
    profile = tmp_path / "profiles.json"
    profile.write_text('[{"name": "mygpu", "bandwidth_gbps": -1, "price_per_hour": 1, '
                       '"peak_tflops": {"fp16": 10}}]')
    r = run("bench", models["dense"], "--profiles", profile, check=1)
    assert "bandwidth_gbps" in r.stderr and "profiles.json entry 0" in r.stderr, r.stderr
    r = run("bench", models["dense"], "--devices", "a20", check=1)
    assert "no device profile \"a20\"" in r.stderr and "a100-80" in r.stderr, r.stderr
    r = run("bench", models["dense"], "--device", "cuda", check=1)
    assert "--device cuda" in r.stderr, r.stderr
