"""The llm-compressor side of benchmarks/ptq_side_by_side.py; runs in .venv-llmcompressor
(benchmarks/setup_llmcompressor.sh), never in .venv.

    .venv-llmcompressor/bin/python benchmarks/llmcompressor_oneshot.py oneshot \
        --model HF_FOLDER --recipe RECIPE.yaml --calib calib.safetensors -o OUT [--report R.json]
    .venv-llmcompressor/bin/python benchmarks/llmcompressor_oneshot.py perplexity \
        --model FOLDER --windows windows.safetensors [--json]

oneshot: loads the Hugging Face folder in float32 on the CPU, calibrates on the token ids of
calib.safetensors (one int64 tensor input_ids [N, L], used as they are: no shuffling, no
re-tokenization, attention mask all ones) with llmcompressor.oneshot and the recipe file, and
saves the result with save_compressed=True (compressed-tensors), tokenizer included.

perplexity: the windowed perplexity of `compress eval --metric perplexity` computed with
transformers, on the windows (int64 [K, L]) that ptq_side_by_side.py cut exactly as Stunt does:
each window is scored on its own, with no attention mask, every position but the first
predicted; perplexity = exp(total NLL / predicted tokens). Reads dense and compressed-tensors
folders (compressed-tensors decompresses the weights and fake-quantizes activations as the
scheme says, e.g. int8 per-token for W8A8).
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TQDM_DISABLE", "1")
_STARTED = time.perf_counter()

import torch  # noqa: E402


def load_ids(path):
    from safetensors.torch import load_file

    ids = load_file(path)["input_ids"]
    if ids.dtype != torch.int64 or ids.dim() != 2:
        sys.exit(f"error: {path}: input_ids must be int64 [N, L], got {ids.dtype} "
                 f"{list(ids.shape)}")
    return ids


def run_oneshot(args):
    phases = {}
    mark = time.perf_counter()
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcompressor import oneshot
    phases["import_s"] = time.perf_counter() - _STARTED
    if not torch.cuda.is_available():
        # llmcompressor 0.14's AWQ pins its cached activations (AWQModifier._apply_smoothing ->
        # IntermediatesCache.pin_memory), which raises "Found no NVIDIA driver" on a machine
        # without CUDA. Pinning only speeds host-to-device copies; without a device it is a
        # no-op here, and the numbers do not change.
        from llmcompressor.pipelines.cache import IntermediatesCache
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None
        phases["patched"] = "IntermediatesCache.pin_memory: no-op without CUDA"

    mark = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ids = load_ids(args.calib)
    dataset = Dataset.from_dict({"input_ids": ids.tolist(),
                                 "attention_mask": torch.ones_like(ids).tolist()})
    phases["load_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    oneshot(model=model, processor=tokenizer, dataset=dataset, recipe=args.recipe,
            num_calibration_samples=ids.shape[0], max_seq_length=ids.shape[1],
            shuffle_calibration_samples=False, batch_size=1)
    phases["oneshot_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    model.save_pretrained(args.output, save_compressed=True)
    tokenizer.save_pretrained(args.output)
    phases["save_s"] = time.perf_counter() - mark
    phases["total_s"] = time.perf_counter() - _STARTED
    if args.report:
        with open(args.report, "w") as f:
            json.dump(phases, f, indent=2)
    print(json.dumps(phases))


def quantization_summary(model):
    """How many Linear layers carry a compressed-tensors scheme, and with what."""
    summary = {"quantized_linear": 0, "weight_bits": set(), "input_activations": set()}
    for module in model.modules():
        scheme = getattr(module, "quantization_scheme", None)
        if not isinstance(module, torch.nn.Linear) or scheme is None:
            continue
        summary["quantized_linear"] += 1
        if scheme.weights is not None:
            summary["weight_bits"].add(
                f"{scheme.weights.num_bits}/{scheme.weights.strategy}/{scheme.weights.group_size}")
        if scheme.input_activations is not None:
            a = scheme.input_activations
            summary["input_activations"].add(f"{a.num_bits}/{a.strategy}/dynamic={a.dynamic}")
    return {k: sorted(v) if isinstance(v, set) else v for k, v in summary.items()}


def run_perplexity(args):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model.eval()
    windows = load_ids(args.windows)
    if args.max_samples > 0:
        windows = windows[:args.max_samples]
    total_nll = 0.0
    total_tokens = 0
    with torch.inference_mode():
        for begin in range(0, windows.shape[0], args.batch_size):
            batch = windows[begin:begin + args.batch_size]
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
            targets = batch[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
            total_nll += nll.item()
            total_tokens += targets.numel()
    nll = total_nll / total_tokens
    report = {"model": args.model, "metric": "perplexity", "evaluator": "transformers",
              "perplexity": float(torch.tensor(nll, dtype=torch.float64).exp()), "nll": nll,
              "tokens": total_tokens, "windows": int(windows.shape[0]),
              "seq_len": int(windows.shape[1]), **quantization_summary(model)}
    print(json.dumps(report, indent=2) if args.json else
          f"perplexity {report['perplexity']:.6g} over {total_tokens} predicted tokens in "
          f"{report['windows']} windows of {report['seq_len']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("oneshot", help="calibrate and quantize with llmcompressor.oneshot")
    one.add_argument("--model", required=True, help="Hugging Face folder (float32)")
    one.add_argument("--recipe", required=True, help="llm-compressor recipe (YAML)")
    one.add_argument("--calib", required=True, help="safetensors with int64 input_ids [N, L]")
    one.add_argument("-o", "--output", required=True, help="output folder (compressed-tensors)")
    one.add_argument("--report", help="write the phase timings here (JSON)")
    ppl = sub.add_parser("perplexity", help="windowed perplexity with transformers")
    ppl.add_argument("--model", required=True, help="dense or compressed-tensors folder")
    ppl.add_argument("--windows", required=True, help="safetensors with int64 input_ids [K, L]")
    ppl.add_argument("--max-samples", type=int, default=-1, help="use the first K windows")
    ppl.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    ppl.add_argument("--json", action="store_true", help="print the result as JSON")
    for p in (one, ppl):
        p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    {"oneshot": run_oneshot, "perplexity": run_perplexity}[args.command](args)


if __name__ == "__main__":
    main()
