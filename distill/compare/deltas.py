"""Changes between two runs' per-question score tables, with a bootstrap 95% CI of each change.

When both runs were scored on the same held-out questions the bootstrap is paired (resampling the
per-question differences), which removes the between-question variance that an unpaired bootstrap
(resampling each run on its own) keeps; otherwise unpaired, and the markdown says which. A change is
beyond noise when its CI excludes 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = ("tool_call", "answered", "grounded", "judge")
OVERALL = "(all)"
KEYS = ("question", "trace_id")  # join columns, in order of preference
JUDGE_FLIP = 0.25  # a judge score that moves this much flips a question


@dataclass(frozen=True)
class Delta:
    """Mean of a metric in each run, their difference b − a and its 95% CI (None without rows)."""

    a: float | None
    b: float | None
    ci: tuple[float, float] | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def beyond_noise(self) -> bool:
        return self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)


def join_key(ta: pd.DataFrame, tb: pd.DataFrame) -> str | None:
    """The first of KEYS that identifies a question uniquely in both tables."""
    return next((k for k in KEYS if ta[k].is_unique and tb[k].is_unique), None)


def paired_key(ta: pd.DataFrame, tb: pd.DataFrame) -> str | None:
    """The join key when both tables hold exactly the same questions, else None (unpaired)."""
    key = join_key(ta, tb)
    return key if key and set(ta[key]) == set(tb[key]) else None


def groups(ta: pd.DataFrame, tb: pd.DataFrame) -> list[str]:
    return [*sorted(set(ta["category"]) | set(tb["category"])), OVERALL]


def in_group(table: pd.DataFrame, group: str) -> pd.DataFrame:
    """The rows of one category, or every row for OVERALL."""
    return table if group == OVERALL else table[table["category"] == group]


def _ci(samples: np.ndarray) -> tuple[float, float] | None:
    if np.isnan(samples).all():
        return None
    lo, hi = np.nanpercentile(samples, [2.5, 97.5])
    return float(lo), float(hi)


def _mean(values: np.ndarray) -> float | None:
    """Mean over the rows that have a value: a Claude grading that failed has no judge score (NaN) and
    counts in neither run, as in distill.ruler.summary."""
    return float(np.nanmean(values)) if len(values) and not np.isnan(values).all() else None


def _resampled_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # a resample of only ungraded rows has no mean: NaN, dropped by _ci
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[idx], axis=1)


def deltas(ta: pd.DataFrame, tb: pd.DataFrame, samples: int, seed: int,
           metrics: tuple[str, ...] = METRICS) -> dict[tuple[str, str], Delta]:
    """Delta per (group, metric), groups being the categories of either table and OVERALL.

    Reseeded per group, as distill.ruler.summary does, so a group's CI never depends on the others; within a
    group every metric uses the same resamples.
    """
    key = paired_key(ta, tb)
    if key:  # align: row i of both tables is the same question, grouped by the reference's category
        ta = ta.reset_index(drop=True)
        tb = tb.set_index(key).loc[ta[key]].reset_index()
    out = {}
    for group in groups(ta, tb):
        rng = np.random.default_rng(seed)
        if key:
            ra = in_group(ta, group)
            rb = tb.loc[ra.index]
            idx_a = idx_b = rng.integers(0, len(ra), size=(samples, len(ra))) if len(ra) else None
        else:
            ra, rb = in_group(ta, group), in_group(tb, group)
            idx_a = rng.integers(0, len(ra), size=(samples, len(ra))) if len(ra) else None
            idx_b = rng.integers(0, len(rb), size=(samples, len(rb))) if len(rb) else None
        for metric in metrics:
            va, vb = ra[metric].astype(float).to_numpy(), rb[metric].astype(float).to_numpy()
            if idx_a is None or idx_b is None:
                out[group, metric] = Delta(_mean(va), _mean(vb), None)
                continue
            ci = _ci(_resampled_means(vb - va, idx_a) if key
                     else _resampled_means(vb, idx_b) - _resampled_means(va, idx_a))
            out[group, metric] = Delta(_mean(va), _mean(vb), ci)
    return out


def flips(ta: pd.DataFrame, tb: pd.DataFrame) -> pd.DataFrame:
    """Questions in both tables whose tool_call or answered verdict changed, or whose judge score moved
    by JUDGE_FLIP or more: the question, both answers and every reason column, suffixed _a and _b."""
    key = join_key(ta, tb)
    if key is None:
        return pd.DataFrame()
    cols = ["trace_id", "question", "category", "pred_answer", "tool_call", "call_error", "answered",
            "answer_reason", "judge", "judge_reasons"]
    both = ta[cols].merge(tb[cols], on=key, suffixes=("_a", "_b"))
    both["category"] = both["category_a"]
    if key != "question":
        both["question"] = both["question_a"]
    moved = ((both["tool_call_a"] != both["tool_call_b"]) | (both["answered_a"] != both["answered_b"])
             | ((both["judge_b"] - both["judge_a"]).abs() >= JUDGE_FLIP))
    return both[moved].sort_values(["category", "question"], ignore_index=True)
