"""Benchmark: peak memory of the CPU default's training step, with and without gradient checkpointing.

The train rule held 9.6 GB RSS for a 135M-parameter student: not the weights (0.5 GB in float32) but the
activations of a padded batch of 4 whole traces kept for the backward pass: every layer's inputs, the
LoRA dropout masks (a third of them), the bf16 copies autocast makes of each weight and the float32
logits of the labelled positions. `student.train.gradient_checkpointing` keeps one layer's activations
at a time and recomputes them in the backward pass. Each variant runs in its own process (peak RSS is
per process), on the same batch (the 4 longest rendered traces, the step that sets the rule's peak),
the variants taking turns; each process reports its RSS after setup, its peak (VmHWM) after the steps
and seconds per step. Writes bench/results/train_memory.json.

    python bench/train_memory.py [--base results/base_model] [--repeats 2] [--steps 2]
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from distill.io import write_json  # noqa: E402
from distill.student.base_model import autocast, prepare_base  # noqa: E402
from distill.student.batches import loss_sum  # noqa: E402
from distill.student.train import _setup_model  # noqa: E402
from children import alternating_runs, status_mb  # noqa: E402  (bench/ is on sys.path as the script's directory)
from gpu_qlora import rendered_examples  # noqa: E402

OUT = Path(__file__).with_name("results") / "train_memory.json"
VARIANTS = ("padded", "padded_checkpointed", "padded_checkpointed_every_2")


def _enable(model, variant: str) -> None:
    """Turn on the variant's checkpointing on an already adapted model: what the train config's flag does, or
    every second layer (half the recompute). Selective checkpointing (torch's SAC, keeping matmul outputs)
    was tried too: it fails under autocast, whose weight-cast cache makes the recompute's casts differ."""
    base = model.get_base_model()
    if variant == "padded_checkpointed":
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    elif variant == "padded_checkpointed_every_2":
        base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False},
                                             every_n_layers=2)


def measure(base: Path, variant: str, steps: int) -> dict:
    """One process's figures: setup RSS, peak RSS over `steps` forward+backward passes, seconds per step."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    default = yaml.safe_load((ROOT / "config.yaml").read_text())["student"]
    cfg = {"seed": 0, "quantization": "none", "dtype": default["dtype"], "lora": default["lora"],
           "gradient_checkpointing": False}
    model, tokenizer = _setup_model(cfg, base)
    _enable(model, variant)
    model.train()
    examples, source = rendered_examples(tokenizer, default["max_seq_len"])
    batch = sorted(examples, key=lambda e: -len(e["input_ids"]))[:4]
    setup_mb = status_mb("VmRSS")
    seconds, losses = [], []
    for _ in range(steps):
        start = time.perf_counter()
        with autocast(model.device, default["autocast"]):
            loss, n = loss_sum(model, batch, tokenizer.pad_token_id)
        loss.backward()
        model.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
        losses.append(round(loss.item() / n, 5))
    return {"setup_rss_mb": round(setup_mb), "peak_rss_mb": round(status_mb("VmHWM")),
            "seconds_per_step": [round(s, 2) for s in seconds], "loss_per_token": losses,
            "batch_tokens": sum(len(e["input_ids"]) for e in batch), "examples": source}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=ROOT / "results" / "base_model")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement, printed for the parent
        print(json.dumps(measure(args.base, args.child, args.steps)))
        return 0
    if not args.base.is_dir():
        prepare_base("embedded", args.base)
    runs = alternating_runs(__file__, list(VARIANTS), args.repeats, ["--base", str(args.base), "--steps", str(args.steps)])
    peak = {name: max(r["peak_rss_mb"] for r in rs) for name, rs in runs.items()}
    step = {name: statistics.median(s for r in rs for s in r["seconds_per_step"][1:] or r["seconds_per_step"])
            for name, rs in runs.items()}
    figures = {
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} threads, "
                   f"cpu capability {torch.backends.cpu.get_cpu_capability()}",
        "batch": "the 4 longest rendered traces, padded, shared system prompt run once (the CPU default step)",
        "peak_rss_mb": peak,
        "peak_ratio_vs_padded": {name: round(peak[name] / peak["padded"], 2) for name in VARIANTS},
        "seconds_per_step_median": step,
        "time_ratio_vs_padded": {name: round(step[name] / step["padded"], 2) for name in VARIANTS},
        "same_loss": all(len({tuple(r["loss_per_token"]) for r in rs}) == 1 for rs in zip(*runs.values())),
        "runs": runs,
    }
    write_json(figures, OUT)
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
