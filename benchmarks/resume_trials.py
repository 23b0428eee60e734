"""Exact resume under SIGKILL: a training run (gradual pruning while fine-tuning a small random
Llama) is killed with SIGKILL at random moments, resumed with --resume, and its final weights are
compared bit for bit with an uninterrupted run of the same command.

    .venv/bin/python benchmarks/resume_trials.py --trials 10 --out out/resume-trials

Writes OUT/results.json: every trial's kill step and whether all weights came back identical.
"""
import argparse
import json
import pathlib
import random
import subprocess
import sys
import time

import torch
import transformers
from safetensors.torch import load_file, save_file

import machine

SOURCE_DIR = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SOURCE_DIR / "tests"))
from conftest_common import completed_checkpoint_steps  # noqa: E402
RECIPE = """\
train_stage:
  run_type: train
  train_modifiers:
    GMPruningModifier:
      targets: ['re:.*mlp.*']
      init_sparsity: 0.1
      final_sparsity: 0.5
      start: 0
      end: 4
      update: 0.5
    QuantizationModifier:
      targets: ['re:.*self_attn.*']
      scheme: W8A8
      learnable_scales: false
      start: 1
"""
TRAIN_ARGS = ["--batch-size", "2", "--epochs", "5", "--checkpoint-every", "1",
              "--learning-rate", "1e-3", "--warmup-steps", "2"]


def make_model(folder):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder)
    data = folder.parent / "train.safetensors"
    gen = torch.Generator().manual_seed(3)
    save_file({"input_ids": torch.randint(0, 256, (8, 32), generator=gen)}, str(data))
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill points")
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/resume-trials")
    parser.add_argument("--compress", default=str(SOURCE_DIR / "build/dev/tools/compress/compress"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "model"
    data = make_model(model)
    recipe = args.out / "recipe.yaml"
    recipe.write_text(RECIPE)

    def command(out, *extra):
        return [args.compress, "--recipe", str(recipe), str(model), "-o", str(out),
                "--dataset", str(data), *TRAIN_ARGS, "--overwrite", *map(str, extra)]

    reference = args.out / "reference"
    subprocess.run(command(reference), check=True, capture_output=True)
    expected = load_file(str(reference / "model.safetensors"))
    total = 20
    rng = random.Random(args.seed)
    trials = []
    for trial in range(args.trials):
        out = args.out / f"trial-{trial}"
        checkpoints = args.out / f"trial-{trial}.checkpoints"
        subprocess.run(["rm", "-rf", str(out), str(checkpoints)], check=True)
        kill_after = rng.randint(1, total - 2)
        process = subprocess.Popen(command(out), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        while completed_checkpoint_steps(checkpoints) < kill_after and process.poll() is None:
            time.sleep(0.002)
        process.kill()
        process.wait()
        killed_at = completed_checkpoint_steps(checkpoints)
        resumed = subprocess.run(command(out, "--resume", checkpoints), capture_output=True,
                                 text=True)
        if resumed.returncode != 0:
            sys.exit(f"trial {trial}: the resume failed: {resumed.stderr}")
        got = load_file(str(out / "model.safetensors"))
        identical = got.keys() == expected.keys() and all(got[k].equal(expected[k])
                                                           for k in expected)
        trials.append({"trial": trial, "chosen_step": kill_after,
                       "killed_after_step": killed_at, "killed": process.returncode == -9,
                       "identical": identical})
        print(f"trial {trial}: killed after step {killed_at} of {total}: "
              f"{'identical' if identical else 'DIFFERENT'}")
    result = {"command_line": " ".join([".venv/bin/python", "benchmarks/resume_trials.py",
                                        *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine.cpu_description(),
              "recipe": RECIPE, "train_args": TRAIN_ARGS, "total_steps": total,
              "trials": trials,
              "identical": sum(t["identical"] for t in trials)}
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['identical']} of {len(trials)} resumed runs are bit-identical")
    sys.exit(0 if result["identical"] == len(trials) else 1)


if __name__ == "__main__":
    main()
