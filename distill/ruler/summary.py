"""Per-epoch score summaries: rates with bootstrap CIs overall and per category, reason counts, ship bar.

Built from the per-question table of distill.ruler.scoring (results/scores/epoch_<n>.parquet), so every
figure in results/scores/epoch_<n>.json can be traced to the questions behind it. `judge` is the mean
judge score (0–1), not a pass rate.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from distill.ruler.answers import ANSWER_REASONS
from distill.student.chat import LOOP_FAILURES
from distill.ruler.judge import GRADING_ERRORS, JUDGE_REASONS
from distill.ruler.scoring import ERRORS, LENIENCIES, SEQUENCE_ERRORS
from distill.ruler.stats import METRICS, estimate, resample

# The `scoring` keys read here: they size intervals and set the bar, and change no per-question verdict.
SUMMARY_KEYS = ("bootstrap_samples", "ship_bar")


def _counts(values: list[str], taxonomy: tuple[str, ...]) -> dict[str, int]:
    """Occurrences per reason: the taxonomy in its order (zeros kept), then any other reason seen."""
    seen = Counter(v for v in values if v)
    return {r: seen.get(r, 0) for r in (*taxonomy, *sorted(set(seen) - set(taxonomy)))}


def _group(rows: pd.DataFrame, cfg: dict, seed: int) -> dict:
    """Rates with CIs and reason counts for one group; the same resamples serve every metric (paired)."""
    n = len(rows)
    rng = np.random.default_rng(seed)  # reseeded per group: a group's CI never depends on others
    idx = resample(n, cfg["bootstrap_samples"], rng)
    summary: dict[str, Any] = {"n": n}
    for metric in METRICS:
        summary[metric] = estimate(rows[metric].astype(float).to_numpy(), idx)
    lenient_only = rows[rows["tool_call"] & ~rows["tool_call_strict"]]
    summary.update({
        "call_errors": _counts(list(rows["call_error"].dropna()), ERRORS + SEQUENCE_ERRORS),
        "strict_errors": _counts(list(rows["strict_error"].dropna()), ERRORS + SEQUENCE_ERRORS),
        "lenient_only": _counts([x for cell in lenient_only["leniencies"] for x in json.loads(cell)], LENIENCIES),
        "failures": _counts(list(rows["failure"].dropna()), LOOP_FAILURES),
        "answer_reasons": _counts(list(rows["answer_reason"].dropna()), ANSWER_REASONS),
        "judge_reasons": _counts([x for cell in rows["judge_reasons"] for x in json.loads(cell)], JUDGE_REASONS),
        "judge_errors": _counts(list(rows["judge_error"].dropna()), GRADING_ERRORS),
    })
    return summary


def summarise(frame: pd.DataFrame, cfg: dict, judge_name: str, seed: int) -> dict:
    """The score file of one epoch: overall and per-category groups and the ship bar.

    `cfg` is the `scoring` config section (defaults filled); `seed` the run's seed, for the bootstrap.
    The ship bar compares point estimates (not CI bounds) with `cfg["ship_bar"]`; a metric with no rows
    fails it.
    """
    overall = _group(frame, cfg, seed)
    bar: dict[str, Any] = {}
    for metric, threshold in cfg["ship_bar"].items():
        value = overall[metric]["value"]
        bar[metric] = {"value": value, "threshold": threshold, "passed": value is not None and value >= threshold}
    bar["passed"] = all(v["passed"] for v in bar.values())
    return {
        "n": len(frame),
        "judge_name": judge_name,
        "config": cfg,
        "overall": overall,
        "per_category": {c: _group(frame[frame["category"] == c], cfg, seed) for c in sorted(set(frame["category"]))},
        "ship_bar": bar,
    }
