"""Benchmark: one LoRA training step of the embedded student in float32 vs bf16 autocast, side by side.

The step is the pipeline's own (distill.student.batches.loss_sum + backward) on real rendered training
conversations of results/split/train.parquet (or synthetic ids when it is absent), batch 4, LoRA r=16 on
every linear layer. Each setting runs `--repeats` times, alternating, after one warm-up; prints and
writes bench/results/cpu_autocast.json: median seconds, tokens/s, the ratio, and the loss of each
(mixed precision must learn the same thing: the losses agree to ~1e-2).

    python bench/cpu_autocast.py [--base results/base_model] [--repeats 3] [--examples 4] [--out FILE]

bench/results/cpu_autocast.json was measured on an AVX512 CPU with avx512_bf16 (bf16 2.0x faster);
cpu_autocast_avx2.json on an AVX2 CPU without native bf16, where bf16 is many times slower: why the
default's `student.autocast: auto` casts only where the device computes bf16 natively.
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

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distill.student.batches import loss_sum  # noqa: E402
from distill.student.chat import encode  # noqa: E402
from distill.student.base_model import autocast, load_base, native_bf16, prepare_base  # noqa: E402
from distill.student.train import _setup_model  # noqa: E402
from distill.workbench.tools import TOOLS  # noqa: E402

OUT = Path(__file__).with_name("results") / "cpu_autocast.json"
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear", "layers_to_transform": None}


def batch(tokenizer, train: Path, n: int = 4) -> list[dict]:
    if train.is_file():
        rows = pd.read_parquet(train).drop_duplicates("category").head(n)
        return [encode(json.loads(m), TOOLS, tokenizer, 1024) for m in rows["messages"]]
    ids = torch.randint(100, 40000, (n, 500)).tolist()
    return [{"input_ids": x, "labels": x, "attention_mask": [1] * len(x)} for x in ids]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("results/base_model"))
    parser.add_argument("--train", type=Path, default=Path("results/split/train.parquet"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--examples", type=int, default=4, help="conversations in the batch")
    args = parser.parse_args()
    if not args.base.is_dir():
        prepare_base("embedded", args.base)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    cfg = {"seed": 0, "quantization": "none", "dtype": "float32", "lora": LORA, "gradient_checkpointing": False}
    model, tokenizer = _setup_model(cfg, args.base)
    examples = batch(tokenizer, args.train, args.examples)
    tokens = sum(len(e["input_ids"]) for e in examples)
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    losses: dict[str, float] = {}
    for i in range(args.repeats + 1):
        for name in times:
            start = time.perf_counter()
            with autocast(model.device, None if name == "float32" else name):
                loss, n = loss_sum(model, examples, tokenizer.pad_token_id)
            loss.backward()
            model.zero_grad(set_to_none=True)
            if i:  # the first round warms up both
                times[name].append(time.perf_counter() - start)
            losses[name] = loss.item() / n
    median = {k: statistics.median(v) for k, v in times.items()}
    figures = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
                   f"cpu capability {torch.backends.cpu.get_cpu_capability()}, "
                   f"native bf16 {native_bf16(torch.device('cpu'))}",
        "batch_tokens": tokens,
        "seconds_median": median,
        "seconds_all": times,
        "tokens_per_second": {k: round(tokens / v, 1) for k, v in median.items()},
        "speedup_bf16_vs_fp32": round(median["float32"] / median["bfloat16"], 2),
        "loss_per_token": losses,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
