"""Benchmark: the whole embedded default from an empty results/ (the README's 10-minute target).

Copies the workflow to a scratch directory, runs `snakemake --cores 1 results/report.md` there, and
prints and writes (bench/full_default.json) the wall time, each rule's time from its Snakemake
benchmark file, and the learning figures: tool-call accuracy of epoch 0 vs the chosen epoch.

    python bench/full_default.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distill.io import epoch_of  # noqa: E402
from tests.workflow_helpers import copy_workflow, snakemake  # noqa: E402

OUT = Path(__file__).with_name("full_default.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build here (kept) instead of a temporary directory")
    args = parser.parse_args()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="distill-bench-")) / "repo"
    wd = copy_workflow(scratch)
    start = time.perf_counter()
    proc = snakemake(wd, "results/report.md", timeout=3600)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return 1
    rules = {p.relative_to(wd / "results/benchmarks").with_suffix("").as_posix(): float(pd.read_csv(p, sep="\t")["s"].iloc[-1])
             for p in sorted((wd / "results/benchmarks").rglob("*.tsv"))}
    selection = json.loads((wd / "results/selection.json").read_text())
    scores = {epoch_of(p): json.loads(p.read_text()) for p in (wd / "results/scores").glob("epoch_*.json")}
    figures = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, CPU only",
        "wall_seconds": round(wall, 1),
        "rule_seconds": rules,
        "task_epoch": selection["task_epoch"],
        "eval_loss_epoch": selection["eval_loss_epoch"],
        "tool_call_by_epoch": {e: s["overall"]["tool_call"]["value"] for e, s in sorted(scores.items())},
        "judge_by_epoch": {e: s["overall"]["judge"]["value"] for e, s in sorted(scores.items())},
    }
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
