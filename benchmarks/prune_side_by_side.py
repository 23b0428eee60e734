"""One-shot pruning side by side: Stunt's `compress` and llm-compressor prune the same model with
the same recipes and calibration token ids, on this CPU with the same threads; every output
folder is then scored by one evaluator on the same wikitext-2 windows.

    bash benchmarks/setup_llmcompressor.sh          # .venv-llmcompressor (llmcompressor 0.14)
    nice -n 19 .venv/bin/python benchmarks/prune_side_by_side.py [--methods M ...] [--out DIR]

Everything but the methods is ptq_side_by_side.py's (model, calibration ids, evaluation windows,
measurement, results.json and results.md under --out, default out/prune-bench); see its help.
Methods: SparseGPT at 50% unstructured and at 2:4, Wanda at 50%, each with the wall-time goal
(Stunt at most half of llm-compressor's), and magnitude pruning at 50% and 2:4 for the papers'
ordering (magnitude far worse than SparseGPT and Wanda). llm-compressor 0.14's
MagnitudePruningModifier changes no weight in one-shot (its masks act only during training), so
run the magnitude methods with --tools stunt.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ptq_side_by_side as bench  # noqa: E402


def sparsity_recipe(modifier, comment, body):
    # llm-compressor reads "0:0" as unstructured (it refuses the word); Stunt reads both.
    # MagnitudePruningModifier has no ignore: its targets name the decoder layers' projections.
    targets = ('      targets: ["re:model.layers.*"]' if modifier == "MagnitudePruningModifier"
               else '      targets: [Linear]\n      ignore: ["re:.*lm_head"]')
    return f"""\
# {comment}; lm_head (tied to the embeddings) stays dense.
sparsity_stage:
  run_type: oneshot
  sparsity_modifiers:
    {modifier}:
{body}
{targets}
"""


SPARSEGPT_ARGS = """\
      block_size: 128
      dampening_frac: 0.01"""

METHODS = {
    "sparsegpt-50": (True, sparsity_recipe(
        "SparseGPTModifier", "SparseGPT, half of every layer's weights, unstructured",
        f'      sparsity: 0.5\n      mask_structure: "0:0"\n{SPARSEGPT_ARGS}')),
    "sparsegpt-2of4": (True, sparsity_recipe(
        "SparseGPTModifier", "SparseGPT, 2 of every 4 weights along the input (sparse tensor cores)",
        f'      sparsity: 0.5\n      mask_structure: "2:4"\n{SPARSEGPT_ARGS}')),
    "wanda-50": (True, sparsity_recipe(
        "WandaPruningModifier", "Wanda, half of every output row's weights",
        '      sparsity: 0.5\n      mask_structure: "0:0"')),
    "magnitude-50": (False, sparsity_recipe(
        "MagnitudePruningModifier", "Magnitude pruning, half of every layer's weights (Stunt only)",
        "      init_sparsity: 0.0\n      final_sparsity: 0.5")),
    "magnitude-2of4": (False, sparsity_recipe(
        "MagnitudePruningModifier", "Magnitude pruning, 2 of every 4 weights (Stunt only)",
        '      init_sparsity: 0.0\n      final_sparsity: 0.5\n      mask_structure: "2:4"')),
}

if __name__ == "__main__":
    bench.METHODS = METHODS
    bench.TITLE = "One-shot pruning"
    bench.DEFAULT_OUT = "out/prune-bench"
    bench.TIME_GOAL_APPLIES_TO = "SparseGPT and Wanda"
    bench.main()
