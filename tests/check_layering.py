#!/usr/bin/env python3
"""Fails when a lower layer of DESIGN.md includes an upper one, or the CLI includes a private
header. Layers, bottom to top: core, kernels, io, model, {quant, prune, distill, pseudolabel},
train, recipe, bench."""
import pathlib
import re
import sys

RANK = {"core": 0, "kernels": 1, "io": 2, "model": 3, "quant": 4, "prune": 4, "distill": 4,
        "pseudolabel": 4, "train": 5, "recipe": 6, "bench": 7}
INCLUDE = re.compile(r'#include\s+"stunt/([a-z_]+)/')

root = pathlib.Path(sys.argv[1])
problems = []
checked = 0
for base in (root / "src", root / "include" / "stunt"):
    for path in base.rglob("*"):
        if path.suffix not in {".h", ".cpp", ".cu"}:
            continue
        layer = path.relative_to(base).parts[0]
        if layer not in RANK:
            if path.parent != base:  # files directly under include/stunt/ (stunt.h) may include all
                problems.append(f"{path}: '{layer}' is not a layer of DESIGN.md")
            continue
        checked += 1
        for line_no, line in enumerate(path.read_text().splitlines(), 1):
            m = INCLUDE.search(line)
            if m and m.group(1) in RANK and RANK[m.group(1)] > RANK[layer]:
                problems.append(f"{path}:{line_no}: layer '{layer}' includes upper layer "
                                f"'{m.group(1)}'")
            if m and m.group(1) in RANK and RANK[m.group(1)] == RANK[layer] and m.group(1) != layer:
                problems.append(f"{path}:{line_no}: sibling layers '{layer}' and '{m.group(1)}' "
                                "must not include each other")
for path in (root / "tools").rglob("*.cpp"):
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if '#include "detail/' in line or "src/" in line and "#include" in line:
            problems.append(f"{path}:{line_no}: the CLI may include only public headers")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"layering: {checked} files checked, no upward includes")
