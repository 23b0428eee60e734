"""Data-parallel training through the CLI, launched the way torchrun launches (RANK,
WORLD_SIZE, MASTER_ADDR, MASTER_PORT): two processes over loopback Gloo train to the weights of
one process that takes both ranks' micro-batches in every step; rank 0 alone writes the output;
a data-parallel run killed with SIGKILL resumes bit-identical; a rank that dies makes the other
fail instead of waiting; a recipe with nothing to train is refused. On the tiny random Llama of
test_ptq_reference.py."""
import os
import socket
import subprocess
import sys
import time

from safetensors.torch import load_file

from conftest_common import COMPRESS, completed_checkpoint_steps, run
from test_ptq_reference import tiny_llama  # noqa: F401
from test_training_resume import RECIPE

# 8 windows: one step takes 4 (2 ranks x 2, or 1 process x 2 x accumulation 2); the GMP
# schedule ends at epoch 4, so 8 steps.
TRAIN_ARGS = ["--batch-size", "2", "--learning-rate", "1e-3", "--warmup-steps", "2",
              "--checkpoint-every", "1"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tiny_llama, recipe, out, *extra, world=2):
    """Starts `world` ranks of compress; returns their Popen objects."""
    _, folder, data = tiny_llama
    port = free_port()
    processes = []
    for rank in range(world):
        # One thread per rank, as torchrun sets: ranks with 2 OpenMP threads each on 2 cores
        # spin at barriers and run many times slower.
        env = dict(os.environ, WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        env.pop("STUNT_LOG_LEVEL", None)
        processes.append(subprocess.Popen(
            [str(COMPRESS), "--recipe", str(recipe), str(folder), "-o", str(out), "--dataset",
             str(data), *TRAIN_ARGS, *map(str, extra)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True))
    return processes


def finish(processes, timeout=600):
    """Waits for every rank; returns their (exit code, stderr)."""
    errors = [p.communicate(timeout=timeout)[1] for p in processes]
    return [(p.returncode, stderr) for p, stderr in zip(processes, errors)]


def write_recipe(tmp_path, text=RECIPE):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    return recipe


def test_two_ranks_train_to_the_weights_of_one_process_with_the_same_global_batch(
        tiny_llama, tmp_path):
    recipe = write_recipe(tmp_path)
    _, folder, data = tiny_llama
    run("--recipe", recipe, folder, "-o", tmp_path / "single", "--dataset", data, *TRAIN_ARGS,
        "--gradient-accumulation", "2", check=0)
    results = finish(launch(tiny_llama, recipe, tmp_path / "ddp"))
    for rank, (code, stderr) in enumerate(results):
        assert code == 0, f"rank {rank}: {stderr}"
    assert "rank 1 done; rank 0 writes" in results[1][1]
    assert "wrote" in results[0][1]
    single = load_file(str(tmp_path / "single" / "model.safetensors"))
    ddp = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    assert single.keys() == ddp.keys()
    pruned = 0
    for name, expected in single.items():
        got = ddp[name]
        assert got.allclose(expected, rtol=1e-5, atol=1e-6), \
            f"{name}: largest difference {(got - expected).abs().max().item()}"
        if ".mlp." in name:
            # Ties at the threshold could differ by float rounding; the counts may not.
            assert (got == 0).sum() == (expected == 0).sum(), name
            pruned += 1
    assert pruned == 6
    # The training moved the weights: a test of equality between untrained models proves little.
    original = load_file(str(folder / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert (ddp[name] - original[name]).abs().max() > 1e-3


def test_torchrun_launches_the_ranks(tiny_llama, tmp_path):
    """torchrun's agent serves the rendezvous store itself: the ranks connect to it."""
    recipe = write_recipe(tmp_path)
    _, folder, data = tiny_llama
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "--no-python", str(COMPRESS), "--recipe", str(recipe), str(folder), "-o",
         str(tmp_path / "out"), "--dataset", str(data), *TRAIN_ARGS, "--max-steps", "3"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600)
    assert launched.returncode == 0, launched.stderr
    assert "data-parallel rank 1 of 2 joined" in launched.stderr
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_a_data_parallel_run_killed_with_sigkill_resumes_bit_identical(tiny_llama, tmp_path):
    recipe = write_recipe(tmp_path)
    results = finish(launch(tiny_llama, recipe, tmp_path / "reference"))
    assert all(code == 0 for code, _ in results), results
    expected = load_file(str(tmp_path / "reference" / "model.safetensors"))

    out = tmp_path / "out"
    checkpoints = tmp_path / "out.checkpoints"
    processes = launch(tiny_llama, recipe, out)
    deadline = time.monotonic() + 300
    while completed_checkpoint_steps(checkpoints) < 3:
        assert all(p.poll() is None for p in processes), "a rank ended before the chosen step"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)
    for p in processes:
        p.kill()
    finish(processes)
    assert not out.exists()
    results = finish(launch(tiny_llama, recipe, out, "--resume", checkpoints))
    for rank, (code, stderr) in enumerate(results):
        assert code == 0, f"rank {rank}: {stderr}"
        assert "resumed from step" in stderr
    got = load_file(str(out / "model.safetensors"))
    for name in expected:
        assert got[name].equal(expected[name]), f"{name} differs after the resume"


def test_a_rank_that_dies_makes_the_other_fail_rather_than_wait(tiny_llama, tmp_path):
    recipe = write_recipe(tmp_path)
    out = tmp_path / "out"
    rank0, rank1 = launch(tiny_llama, recipe, out, "--epochs", "1000")
    deadline = time.monotonic() + 300
    while completed_checkpoint_steps(tmp_path / "out.checkpoints") < 2:
        assert rank0.poll() is None and rank1.poll() is None, "a rank ended early"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)
    rank1.kill()
    (code, stderr), _ = finish([rank0, rank1], timeout=120)
    assert code == 1, stderr
    assert "rank 0 of 2" in stderr and "another rank stopped" in stderr, stderr
    assert not out.exists()


def test_data_parallel_launch_of_a_recipe_without_train_stage_is_refused(tiny_llama, tmp_path):
    recipe = write_recipe(tmp_path, "oneshot_stage:\n  pruning_modifiers:\n"
                                    "    MagnitudePruningModifier:\n      init_sparsity: 0.5\n"
                                    "      final_sparsity: 0.5\n"
                                    "      targets: ['re:.*mlp.*']\n")
    _, folder, data = tiny_llama
    result = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
                 env={"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": str(free_port())}, check=1)
    assert "only train stages run data-parallel" in result.stderr
    assert not (tmp_path / "out").exists()
    bad = run("--recipe", recipe, folder, "-o", tmp_path / "out", "--dataset", data,
              env={"WORLD_SIZE": "2", "RANK": "two"}, check=1)
    assert "RANK=two" in bad.stderr
