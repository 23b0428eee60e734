"""Does a bare GPTQModifier after a QuantizationModifier with a scheme quantize with that scheme,
in llm-compressor as in Stunt? llm-compressor's own test recipes are written that way, and Stunt
reads them so (recipe.cpp, inherit_gptq_schemes). This runs both spellings through both tools on
SmolLM2-135M, calibrated on the same token ids:

    bare:   QuantizationModifier {config_groups, ignore}  then  GPTQModifier {}
    direct: GPTQModifier {config_groups, ignore}

and compares, for each spelling, what the two tools wrote: the quantization_config's weight
arguments must be the same (llm-compressor gives the bare spelling no act-order, the direct one
its default "static"), and the share of identical packed int4 weights is reported (GPTQ in two
libraries rounds some weights differently; ptq_side_by_side.py measures what that costs). The
share between the two spellings within each tool shows how far apart the spellings are.

    bash benchmarks/setup_llmcompressor.sh
    .venv/bin/python benchmarks/llmcompressor_inherited_scheme.py --out out/inherited-scheme

Writes OUT/results.json; exits 1 if the tools' weight arguments differ for a spelling.
"""
import argparse
import json
import pathlib
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ptq_side_by_side as bench  # noqa: E402
from machine import cpu_description  # noqa: E402

SCHEME = """\
      ignore: [lm_head]
      config_groups:
        group_0:
          targets: [Linear]
          weights: {num_bits: 4, type: int, symmetric: true, strategy: group, group_size: 64}
"""
RECIPES = {
    "bare": "quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n" + SCHEME +
            "    GPTQModifier: {block_size: 128, dampening_frac: 0.01}\n",
    "direct": "quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n" + SCHEME +
              "      block_size: 128\n      dampening_frac: 0.01\n",
}


def tensors(folder):
    out = {}
    for f in sorted(pathlib.Path(folder).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def packed_agreement(a, b):
    """The share of int4 weights equal in two pack-quantized checkpoints (0x0F nibbles)."""
    ta, tb = tensors(a), tensors(b)
    equal = total = 0
    for k, v in ta.items():
        if not k.endswith("weight_packed") or k not in tb:
            continue
        for shift in range(0, 32, 4):
            na, nb = (v >> shift) & 0xF, (tb[k] >> shift) & 0xF
            equal += int((na == nb).sum())
            total += na.numel()
    return equal / total if total else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=bench.SOURCE_DIR / "out/inherited-scheme")
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    if not bench.LLMC_PYTHON.exists():
        sys.exit("error: .venv-llmcompressor is missing; run bash benchmarks/setup_llmcompressor.sh")
    compress = bench.find_compress(None)
    if compress is None:
        sys.exit("error: no compress CLI; run bash scripts/build.sh dev")
    args.out.mkdir(parents=True, exist_ok=True)
    model = bench.convert_model(compress, args.out)
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    stream = bench.token_stream(tokenizer, bench.WIKITEXT_DIR / "valid.txt")
    starts = bench.calibration_starts(len(stream), args.num_samples, args.seq_len, 0)
    calib = args.out / "calib.safetensors"
    save_file({"input_ids": torch.tensor([stream[s:s + args.seq_len] for s in starts])},
              str(calib))
    folders = {}
    for spelling, text in RECIPES.items():
        recipe = args.out / f"{spelling}.yaml"
        recipe.write_text(text)
        for tool in ("llmcompressor", "stunt"):
            folder = args.out / f"{tool}-{spelling}"
            print(f"[{tool} {spelling}] -> {folder}", flush=True)
            if tool == "stunt":
                cmd = [str(compress), "--recipe", str(recipe), str(model), "-o", str(folder),
                       "--dataset", str(calib), "--num-samples", str(args.num_samples),
                       "--overwrite"]
            else:
                cmd = [str(bench.LLMC_PYTHON), str(bench.LLMC_RUNNER), "oneshot", "--model",
                       str(model), "--recipe", str(recipe), "--calib", str(calib), "-o",
                       str(folder)]
            with open(args.out / f"{tool}-{spelling}.log", "w") as log:
                subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
            folders[(tool, spelling)] = folder
    results = {"command_line": " ".join(sys.argv), "machine": cpu_description(),
               "calibration": {"samples": args.num_samples, "seq_len": args.seq_len, "seed": 0},
               "recipes": RECIPES, "tools": {}}
    ok = True
    for spelling in RECIPES:
        weights = {tool: json.loads((folders[(tool, spelling)] / "config.json").read_text())[
            "quantization_config"]["config_groups"]["group_0"]["weights"]
            for tool in ("llmcompressor", "stunt")}
        keys = ("num_bits", "type", "symmetric", "strategy", "group_size", "actorder")
        agree = all(weights["llmcompressor"].get(k) == weights["stunt"].get(k) for k in keys)
        ok &= agree
        share = packed_agreement(folders[("stunt", spelling)], folders[("llmcompressor", spelling)])
        results["tools"][spelling] = {
            "weights": weights, "same_weight_arguments": agree,
            "packed_int4_equal_across_tools": share}
        print(f"{spelling}: weight arguments {'agree' if agree else 'DIFFER'} "
              f"(actorder {weights['llmcompressor'].get('actorder')} / "
              f"{weights['stunt'].get('actorder')}); packed int4 equal across tools: {share:.4%}")
    for tool in ("llmcompressor", "stunt"):
        share = packed_agreement(folders[(tool, "bare")], folders[(tool, "direct")])
        results["tools"][f"{tool}_bare_vs_direct_packed_equal"] = share
        print(f"{tool}: packed int4 equal between the two spellings: {share:.4%}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
