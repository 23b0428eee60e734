"""Training through the CLI: a run killed with SIGKILL at a random moment resumes from its last
checkpoint to the same weights, bit for bit, as a run never interrupted; SIGINT stops a run
cleanly (exit 130) after a checkpoint; checkpoints of another run are refused. On the tiny
random Llama of test_ptq_reference.py."""
import random
import signal
import subprocess
import time

import pytest
from safetensors.torch import load_file

from conftest_common import COMPRESS, completed_checkpoint_steps, run
from test_ptq_reference import tiny_llama  # noqa: F401

# Gradual pruning to 50% while fine-tuning: masks, optimizer state, learning-rate schedule and
# data order all have to come back for the weights to match.
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
"""
# 8 windows, 2 per step: 4 steps per epoch, 5 epochs.
TRAIN_ARGS = ["--batch-size", "2", "--epochs", "5", "--checkpoint-every", "1",
              "--learning-rate", "1e-3", "--warmup-steps", "2"]
TOTAL_STEPS = 20


def command(tiny_llama, recipe, out, *extra):
    _, folder, data = tiny_llama
    return [str(COMPRESS), "--recipe", str(recipe), str(folder), "-o", str(out),
            "--dataset", str(data), *TRAIN_ARGS, *map(str, extra)]


def wait_for_step(process, checkpoints, step, timeout=120):
    deadline = time.monotonic() + timeout
    while completed_checkpoint_steps(checkpoints) < step:
        assert process.poll() is None, "the run ended before the chosen step"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def reference(tiny_llama, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    recipe = folder / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = folder / "out"
    subprocess.run(command(tiny_llama, recipe, out), check=True, capture_output=True, timeout=600)
    return recipe, load_file(str(out / "model.safetensors"))


@pytest.mark.parametrize("trial", range(2))
def test_a_run_killed_at_a_random_step_resumes_bit_identical(tiny_llama, reference, tmp_path,
                                                              trial):
    recipe, expected = reference
    out = tmp_path / "out"
    checkpoints = tmp_path / "out.checkpoints"
    kill_after = random.Random(trial).randint(1, TOTAL_STEPS - 2)
    process = subprocess.Popen(command(tiny_llama, recipe, out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        wait_for_step(process, checkpoints, kill_after)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"
    assert not out.exists()  # the output appears only at the end
    resumed = subprocess.run(command(tiny_llama, recipe, out, "--resume", checkpoints),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step" in resumed.stderr
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].equal(expected[name]), f"{name} differs after resuming at {kill_after}"


def test_sigint_stops_after_a_checkpoint_and_resume_continues(tiny_llama, reference, tmp_path):
    recipe, expected = reference
    out = tmp_path / "out"
    checkpoints = tmp_path / "out.checkpoints"
    process = subprocess.Popen(command(tiny_llama, recipe, out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    wait_for_step(process, checkpoints, 3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert f"with --resume {checkpoints} to continue" in stderr
    assert not out.exists()
    # A fresh run does not mix its checkpoints with the stopped one's.
    fresh = run("--recipe", recipe, tiny_llama[1], "-o", out, "--dataset", tiny_llama[2],
                *TRAIN_ARGS, check=1)
    assert "holds checkpoints of an earlier run" in fresh.stderr
    run("--recipe", recipe, tiny_llama[1], "-o", out, "--dataset", tiny_llama[2], *TRAIN_ARGS,
        "--resume", checkpoints, check=0)
    got = load_file(str(out / "model.safetensors"))
    for name in expected:
        assert got[name].equal(expected[name]), name
    assert not checkpoints.exists()


def test_checkpoints_of_another_run_are_refused(tiny_llama, reference, tmp_path):
    recipe, _ = reference
    out = tmp_path / "out"
    checkpoints = tmp_path / "out.checkpoints"
    process = subprocess.Popen(command(tiny_llama, recipe, out), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_step(process, checkpoints, 2)
    process.kill()
    process.wait()
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("final_sparsity: 0.5", "final_sparsity: 0.4"))
    result = run("--recipe", other, tiny_llama[1], "-o", out, "--dataset", tiny_llama[2],
                 *TRAIN_ARGS, "--resume", checkpoints, check=1)
    assert "the checkpoint was written for another run" in result.stderr
    assert not out.exists()
