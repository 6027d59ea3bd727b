"""Benchmark: peak RSS and time of one training epoch of the CPU default, glibc's mmap threshold fixed or not.

bench/train_memory.py measures one step (3.4 GB with checkpointing), yet the train rule peaked at 5.5 GB:
the rest is not live tensors but glibc's heap. Each freed block above the mmap threshold raises that
threshold (up to 32 MiB), so later activations, of a different shape every step, come from the heap,
which fragments and keeps its pages. `student.malloc_mmap_threshold_mb` fixes the threshold
(`cap_heap_growth`). Each variant trains in its own process (peak RSS is per process; mallopt must run
before the big allocations) on the same conversations of the built split: the real `train()` for one
epoch, eval loss before and after included; variants take turns. Writes bench/results/heap_growth.json.

    python bench/heap_growth.py [--split results/split] [--base results/base_model] [--examples 16] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from distill.contracts import read_parquet  # noqa: E402
from distill.dataset.split import sample_per_category  # noqa: E402
from distill.io import write_json  # noqa: E402
from distill.student.base_model import cap_heap_growth  # noqa: E402
from distill.student.train import train, train_config, training_conversations  # noqa: E402
from distill.workbench import tools  # noqa: E402
from children import alternating_runs, status_mb  # noqa: E402  (bench/ is on sys.path as the script's directory)

OUT = Path(__file__).with_name("results") / "heap_growth.json"
VARIANTS = {"glibc_default": 0, "mmap_threshold_1mb": 1, "mmap_threshold_2mb": 2, "mmap_threshold_4mb": 4}


def measure(split: Path, base: Path, threshold_mb: int, examples: int) -> dict:
    """One process: the threshold set first, then one epoch of the default's training on `examples` conversations."""
    capped = cap_heap_growth(threshold_mb)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["student"]["train"]["epochs"] = 1
    weights = cfg["student"]["train"]["category_weights"]
    train_rows = sample_per_category(read_parquet(split / "train.parquet"), examples, cfg["seed"], weights)
    eval_rows = sample_per_category(read_parquet(split / "eval.parquet"),
                                    cfg["student"]["train"]["max_eval_examples"], cfg["seed"])
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        metrics = train(train_config(cfg), base, training_conversations(train_rows, 0.0),
                        training_conversations(eval_rows, 0.0), tools.TOOLS, Path(out))
    return {"capped": capped, "peak_rss_mb": int(status_mb("VmHWM")), "seconds": round(time.perf_counter() - start, 1),
            "eval_loss": [round(e["eval_loss"], 5) for e in metrics["epochs"]]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=ROOT / "results" / "split")
    parser.add_argument("--base", type=Path, default=ROOT / "results" / "base_model")
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement, printed for the parent
        print(json.dumps(measure(args.split, args.base, VARIANTS[args.child], args.examples)))
        return 0
    for path in (args.split / "train.parquet", args.split / "eval.parquet", args.base):
        if not path.exists():
            raise SystemExit(f"{path} is missing: build it first (snakemake --cores 1 results/split/train.parquet)")
    names = list(VARIANTS)
    runs = alternating_runs(__file__, names, args.repeats, ["--split", str(args.split), "--base", str(args.base),
                                                          "--examples", str(args.examples)], echo=True)
    peak = {name: max(r["peak_rss_mb"] for r in rs) for name, rs in runs.items()}
    seconds = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    first = names[0]
    figures = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} threads, "
                   f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
        "work": f"one epoch of the CPU default's train() on {args.examples} training conversations, eval loss on "
                "the default's eval conversations before and after",
        "peak_rss_mb": peak,
        "peak_ratio_vs_glibc_default": {name: round(peak[name] / peak[first], 2) for name in names},
        "seconds_median": seconds,
        "time_ratio_vs_glibc_default": {name: round(seconds[name] / seconds[first], 2) for name in names},
        "same_eval_loss": len({tuple(r["eval_loss"]) for rs in runs.values() for r in rs}) == 1,
        "runs": runs,
    }
    write_json(figures, OUT)
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
