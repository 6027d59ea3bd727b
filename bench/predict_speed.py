"""Benchmark: the agent loop (distill.student.predict.predict) on the cached decoder vs `model.generate`.

Both paths run side by side in one process on the real embedded student and the first 24 distinct
held-out questions (tools and execute of the workbench, max_turns 2, max_new_tokens 160, batch 24),
and their records are compared. Workloads:

* `base`: the untrained base model (epoch 0); it seldom calls a tool, so this is mostly one turn;
* `adapter` (with --adapter, default results/adapter/epoch_<last> when present): a trained epoch, whose
  first turns call tools, so the second turn reuses the cached conversation;
* `forced_calls`: the base model with its first turn forced to call the gold tools: the turn's text is
  kept as the model wrote it and the question's gold calls are appended (as if it had written them), so
  every conversation takes a second turn over real tool outputs, prefilled incrementally by the new path.

Writes bench/results/predict_speed.json. The machine may be shared: each run records the 1-minute load
average before and after it, as the old and new paths do not run at the same moment.

    python bench/predict_speed.py [--base results/base_model] [--adapter DIR] [--n 24]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from distill.student import predict as predict_module  # noqa: E402
from distill.student.predict import load_student, predict  # noqa: E402
from distill.workbench import tools  # noqa: E402

OUT = Path(__file__).with_name("results") / "predict_speed.json"
SETTINGS = {"max_turns": 2, "max_new_tokens": 160, "batch_size": 24}


class _Counter(logging.Handler):
    """Collects the decoder's and generate's log lines, to report their token counts."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _new_tokens(lines: list[str]) -> int:
    """New tokens (end tokens included) from the log: `generate`'s lines per batch, the decoder's total."""
    return sum(int(m.group(1)) for line in lines for m in [re.search(r"(\d+) new tokens", line)] if m)


def run_both(name: str, model, tokenizer, questions: list[dict]) -> dict:
    handler = _Counter()
    logging.getLogger("distill.student.predict").addHandler(handler)
    result = {}
    records = {}
    for path, cached in (("old", False), ("new", True)):
        predict_module.CACHED_DECODER = cached
        handler.lines.clear()
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        records[path] = predict(model, tokenizer, questions, tools.TOOLS, tools.execute, **SETTINGS)
        seconds = time.perf_counter() - start
        tokens = _new_tokens(handler.lines)
        result[path] = {
            "seconds": round(seconds, 2),
            "new_tokens": tokens,
            "tokens_per_second": round(tokens / seconds, 1),
            "turns": sum(r["n_turns"] for r in records[path]),
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
            "log": list(handler.lines),
        }
        print(f"{name} {path}: {seconds:.1f}s", flush=True)
    predict_module.CACHED_DECODER = True
    logging.getLogger("distill.student.predict").removeHandler(handler)
    differing = [i for i, (a, b) in enumerate(zip(records["old"], records["new"])) if a != b]
    result["speedup"] = round(result["old"]["seconds"] / result["new"]["seconds"], 2)
    result["identical_records"] = not differing
    result["differing_questions"] = [records["old"][i]["question"] for i in differing]
    result["conversations_with_two_turns"] = sum(r["n_turns"] == 2 for r in records["new"])
    return result


def forced_first_turn(gold: dict[str, list[dict]]):
    """A `_Run.step` whose first turn keeps the generated text and appends the question's gold calls."""
    original = predict_module._Run.step

    def step(self, text, tools_, execute):
        if self.raw_turns:
            return original(self, text, tools_, execute)
        self.raw_turns.append(text)
        calls = gold[self.messages[0]["content"]]
        self.messages.append({"role": "assistant", "content": text, "tool_calls": calls})
        for call in calls:
            output = execute(call["name"], call["arguments"])
            self.pred_calls.append(call)
            self.tool_outputs.append(output)
            self.messages.append({"role": "tool", "name": call["name"], "content": output})
        return True

    return original, step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=ROOT / "results/base_model")
    parser.add_argument("--eval", type=Path, default=ROOT / "results/split/eval.parquet")
    parser.add_argument("--adapter", type=Path, help="an epoch's adapter dir (default: the last under results/adapter)")
    parser.add_argument("--n", type=int, default=24, help="distinct held-out questions")
    parser.add_argument("--workloads", default="base,adapter,forced_calls")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distill.student.predict").setLevel(logging.INFO)
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)

    evals = pd.read_parquet(args.eval).drop_duplicates("question").head(args.n)
    questions = evals[["trace_id", "question"]].to_dict("records")
    gold = {q: json.loads(c) for q, c in zip(evals["question"], evals["gold_calls"])}
    adapter = args.adapter
    if adapter is None:
        epochs = sorted((ROOT / "results/adapter").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1]))
        adapter = epochs[-1] if epochs else None

    figures = {
        "machine": f"{platform.machine()}, {threads} cores, CPU only",
        "torch_threads": torch.get_num_threads(),
        "questions": len(questions),
        **SETTINGS,
        "workloads": {},
    }
    wanted = args.workloads.split(",")
    model, tokenizer = load_student(args.base, None)
    if "base" in wanted:
        figures["workloads"]["base"] = run_both("base", model, tokenizer, questions)
    if "forced_calls" in wanted:
        original, step = forced_first_turn(gold)
        predict_module._Run.step = step
        try:
            figures["workloads"]["forced_calls"] = run_both("forced_calls", model, tokenizer, questions)
        finally:
            predict_module._Run.step = original
    if "adapter" in wanted and adapter is not None:
        model, tokenizer = load_student(args.base, adapter)
        figures["workloads"]["adapter"] = {"adapter": str(adapter), **run_both("adapter", model, tokenizer, questions)}
    old = sum(w["old"]["seconds"] for w in figures["workloads"].values())
    new = sum(w["new"]["seconds"] for w in figures["workloads"].values())
    figures["total"] = {"old_seconds": round(old, 1), "new_seconds": round(new, 1), "speedup": round(old / new, 2)}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "workloads"} | {
        k: {"old_s": w["old"]["seconds"], "new_s": w["new"]["seconds"], "speedup": w["speedup"],
            "identical": w["identical_records"], "two_turns": w["conversations_with_two_turns"]}
        for k, w in figures["workloads"].items()}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
