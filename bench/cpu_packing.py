"""Benchmark: the default's training step on the CPU, padded + shared prefix vs packed (student.train.packing).

The embedded student with the default's LoRA (r=16, every linear layer), bf16 autocast, batches of 4
whole rendered traces grouped by length as training groups them (distill.student.batches.micro_batches), the
same batches for both paths, taking turns to go first, after one warm-up batch; writes bench/results/cpu_packing.json.
Decides the CPU default of `student.train.packing`.

    python bench/cpu_packing.py [--base results/base_model] [--batches 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distill.student.batches import loss_sum, micro_batches, packed_loss_sum  # noqa: E402
from distill.io import write_json  # noqa: E402
from distill.student.base_model import autocast, prepare_base  # noqa: E402
from distill.student.train import _setup_model  # noqa: E402
from gpu_qlora import rendered_examples  # noqa: E402  (bench/ is on sys.path as the script's directory)

OUT = Path(__file__).with_name("results") / "cpu_packing.json"
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear", "layers_to_transform": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("results/base_model"))
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    if not args.base.is_dir():
        prepare_base("embedded", args.base)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    cfg = {"seed": 0, "quantization": "none", "dtype": "float32", "lora": LORA, "gradient_checkpointing": False}
    model, tokenizer = _setup_model(cfg, args.base)
    model.train()
    examples, source = rendered_examples(tokenizer, 1024)
    batches = micro_batches(examples, 4, torch.Generator().manual_seed(0))[: args.batches + 1]
    paths = {"padded_shared_prefix": lambda b: loss_sum(model, b, tokenizer.pad_token_id),
             "packed": lambda b: packed_loss_sum(model, b)}
    times: dict[str, list[float]] = {name: [] for name in paths}
    losses: dict[str, list[float]] = {name: [] for name in paths}
    tokens = 0
    for i, indices in enumerate(batches):
        batch = [examples[j] for j in indices]
        tokens += sum(len(e["input_ids"]) for e in batch) if i else 0
        for name, step in sorted(paths.items(), reverse=bool(i % 2)):  # alternate which path goes first
            start = time.perf_counter()
            with autocast(model.device, "bfloat16"):
                loss, n = step(batch)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if i:  # the first batch warms up both
                times[name].append(time.perf_counter() - start)
                losses[name].append(round(loss.item() / n, 4))
    total = {name: sum(t) for name, t in times.items()}
    figures = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                   f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
        "examples": source,
        "batches": args.batches,
        "tokens": tokens,
        "seconds": {k: round(v, 2) for k, v in total.items()},
        "seconds_per_batch_median": {k: round(statistics.median(v), 2) for k, v in times.items()},
        "tokens_per_second": {k: round(tokens / v, 1) for k, v in total.items()},
        "speedup_packed_vs_padded": round(total["padded_shared_prefix"] / total["packed"], 2),
        "loss_per_token": losses,
    }
    write_json(figures, OUT)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
