"""Where two Wanda runs on the same model and calibration ids part ways, and by how much.

Wanda keeps, in every output row, the weights with the largest |W|·‖x‖ (x: the layer's
calibration inputs). It has no error feedback, so two tools agree exactly until one of them
rounds a near-tie the other way; from there each layer sees slightly different inputs and the
masks drift apart. This script shows that point for two pruned Hugging Face folders (dense
weights with zeros, as both Stunt and llm-compressor write them by default):

  .venv-llmcompressor/bin/python benchmarks/wanda_divergence.py --dense out/S/smollm2-hf \\
      --calib out/S/calib.safetensors --sparsity 0.5 \\
      out/S/models/wanda-50-stunt out/S/models/wanda-50-llmcompressor

It prints, per decoder layer, how many weights are kept by one run and pruned by the other, in
the order the layers run. For the first layer that differs it then recomputes Wanda's scores
as both runs saw them (transformers in float32, the earlier layers as the runs pruned them,
this layer's block dense, the inputs' squared norms summed in float64) and prints, for each
disagreeing row, the scores of the weights the runs swapped and their relative gap. A gap of a
few float32 ulps (1e-7) means rounding, not a difference in method. Runs in
.venv-llmcompressor (transformers); Llama-style models (model.layers.N.self_attn/mlp).
"""
import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from llmcompressor_oneshot import load_ids  # noqa: E402

EXECUTION_ORDER = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                   "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def load_weights(folder):
    from safetensors.torch import load_file

    files = sorted(pathlib.Path(folder).glob("*.safetensors"))
    if not files:
        sys.exit(f"error: {folder}: no *.safetensors; pass a Hugging Face folder")
    weights = {}
    for path in files:
        weights.update(load_file(path))
    return weights


def weight_of(weights, folder, name):
    if name not in weights:
        sys.exit(f"error: {folder}: no tensor {name}; this script reads dense outputs (weights "
                 f"with zeros), not compressed sparse layouts")
    return weights[name]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dense", required=True, help="the unpruned Hugging Face folder")
    parser.add_argument("--calib", required=True, help="the calibration ids both runs used")
    parser.add_argument("--sparsity", type=float, required=True, help="the runs' sparsity")
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()

    from transformers import AutoModelForCausalLM

    a, b = load_weights(args.first), load_weights(args.second)
    model = AutoModelForCausalLM.from_pretrained(args.dense, dtype=torch.float32)
    layers = len(model.model.layers)
    first_difference = None
    differing = total = 0
    print("layer | " + " ".join(name.split(".")[1] for name in EXECUTION_ORDER))
    for layer in range(layers):
        counts = []
        for module in EXECUTION_ORDER:
            name = f"model.layers.{layer}.{module}.weight"
            kept_a = weight_of(a, args.first, name) != 0
            kept_b = weight_of(b, args.second, name) != 0
            counts.append(int((kept_a != kept_b).sum()))
            total += kept_a.numel()
            if counts[-1] and first_difference is None:
                first_difference = (layer, module, kept_a, kept_b)
        print(f"{layer:5d} | " + " ".join(f"{c:>6d}" for c in counts))
        differing += sum(counts)
    print(f"kept by one run only: {differing} of {total} weights ({100 * differing / total:.2f}%)")
    if first_difference is None:
        print("the two runs kept the same weights")
        return
    layer, module, kept_a, kept_b = first_difference
    print(f"\nfirst difference: model.layers.{layer}.{module}")

    # Wanda calibrates a block with its dense weights, after the blocks before it were pruned.
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in a.items():
            if any(name.startswith(f"model.layers.{i}.") for i in range(layer)):
                state[name].copy_(tensor)
    target = model.get_submodule(f"model.layers.{layer}.{module}")
    width = target.weight.shape[1]
    square_sums = torch.zeros(width, dtype=torch.float64)
    tokens = 0

    def capture(_module, inputs):
        nonlocal square_sums, tokens
        x = inputs[0].reshape(-1, width).double()
        square_sums += (x * x).sum(0)
        tokens += x.shape[0]

    target.register_forward_pre_hook(capture)
    model.model.layers = model.model.layers[:layer + 1]
    ids = load_ids(args.calib)
    with torch.no_grad():
        for sample in ids:
            model.model(sample.unsqueeze(0))
    scores = target.weight.detach().double().abs() * (square_sums / tokens).sqrt()
    prune_count = int(width * args.sparsity)
    for row in torch.nonzero((kept_a != kept_b).any(1)).flatten().tolist():
        only_a = torch.nonzero(kept_a[row] & ~kept_b[row]).flatten().tolist()
        only_b = torch.nonzero(kept_b[row] & ~kept_a[row]).flatten().tolist()
        threshold = scores[row].sort().values[prune_count - 1:prune_count + 1].tolist()
        print(f"row {row}: kept only by the first run: columns {only_a}, only by the second: "
              f"{only_b}; the float64 cut lies between {threshold[0]:.9g} and "
              f"{threshold[1]:.9g}")
        for column in only_a + only_b:
            print(f"  column {column}: score {scores[row, column].item():.9g}")
        if len(only_a) == 1 and len(only_b) == 1:
            gap = abs(scores[row, only_a[0]] - scores[row, only_b[0]]) / scores[row, only_b[0]]
            print(f"  relative gap between the swapped weights' scores: {gap.item():.2e}")


if __name__ == "__main__":
    main()
