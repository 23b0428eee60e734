"""Copies a benchmark's result file into benchmarks/results/ for the docs to cite, with every path
under the repository written relative to it (the files record where models and logs were; the
machine's own folders mean nothing to a reader).

    .venv/bin/python benchmarks/publish_result.py out/ptq-bench-r7/results.json ptq-side-by-side.json
"""
import argparse
import json
import pathlib
import sys

SOURCE_DIR = pathlib.Path(__file__).resolve().parent.parent


def relative(value):
    if isinstance(value, dict):
        return {k: relative(v) for k, v in value.items()}
    if isinstance(value, list):
        return [relative(v) for v in value]
    if isinstance(value, str):
        return value.replace(str(SOURCE_DIR) + "/", "")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=pathlib.Path, help="a results.json or spread.json")
    parser.add_argument("name", help="file name under benchmarks/results/")
    args = parser.parse_args()
    if not args.source.is_file():
        sys.exit(f"error: {args.source} does not exist; run the benchmark that writes it first")
    data = json.loads(args.source.read_text())
    target = SOURCE_DIR / "benchmarks/results" / args.name
    temp = target.with_suffix(".tmp")
    temp.write_text(json.dumps(relative(data), indent=1) + "\n")
    temp.replace(target)
    print(f"wrote {target.relative_to(SOURCE_DIR)}")


if __name__ == "__main__":
    main()
