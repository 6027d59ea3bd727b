"""The statistics every figure shares: the metric list, the percentile bootstrap, paired changes between
two per-question tables, per-question flips and the one rule for "worse".

A change between two score tables (two epochs of one run, or two runs) is *beyond noise* when its 95%
bootstrap interval excludes 0, and a **regression** is a drop beyond noise: report.md's verdict and
results/compare/ both decide with `regressions`, so they can never disagree on what regressed. When
both tables hold the same questions the bootstrap is paired (resampling the per-question differences,
which removes the between-question variance); otherwise it is unpaired. A question that one table
could not score (a judge grading that failed: NaN) counts in neither mean nor interval, so the means
and the interval of a paired change always describe the same questions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

METRICS = ("tool_call", "tool_call_strict", "answered", "grounded", "judge")  # columns of a score table
HEADLINE = ("tool_call", "answered", "grounded", "judge")  # what verdicts, tables and comparisons lead with
OVERALL = "(all)"
KEYS = ("question", "trace_id")  # join columns, in order of preference
FLIP_METRICS = ("tool_call", "answered", "judge")


def resample(n: int, samples: int, rng: np.random.Generator) -> np.ndarray | None:
    """Row indices of `samples` bootstrap resamples of n rows (samples × n), None without rows."""
    return rng.integers(0, n, size=(samples, n)) if n else None


def resampled_means(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The mean of each resample over its known (non-NaN) values; NaN for a resample with none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values[idx], axis=1)


def interval(means: np.ndarray) -> tuple[float, float] | None:
    """The percentile 95% interval of resampled means, resamples without a mean left out."""
    if np.isnan(means).all():
        return None
    lo, hi = np.nanpercentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def mean(values: np.ndarray) -> float | None:
    """Mean over the known values, None when there is none."""
    known = values[~np.isnan(values)]
    return float(known.mean()) if len(known) else None


def estimate(values: np.ndarray, idx: np.ndarray | None) -> dict:
    """A rate's {value, ci95} with a percentile-bootstrap 95% interval over the resamples `idx`."""
    value = mean(values)
    ci = None if idx is None or value is None else interval(resampled_means(values, idx))
    return {"value": value, "ci95": list(ci)} if ci else {"value": None, "ci95": [None, None]}


@dataclass(frozen=True)
class Delta:
    """Mean of a metric in each table, their difference b − a and its 95% CI (None without rows)."""

    a: float | None
    b: float | None
    ci: tuple[float, float] | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def beyond_noise(self) -> bool:
        return self.ci is not None and (self.ci[0] > 0 or self.ci[1] < 0)

    @property
    def regressed(self) -> bool:
        """A drop whose interval excludes zero: the only meaning of "worse" in this project."""
        return self.ci is not None and self.ci[1] < 0


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


def _paired(va: np.ndarray, vb: np.ndarray, idx: np.ndarray | None) -> Delta:
    both = ~np.isnan(va) & ~np.isnan(vb)
    if idx is None or not both.any():
        return Delta(None, None, None)
    diff = np.where(both, vb - va, np.nan)
    return Delta(mean(va[both]), mean(vb[both]), interval(resampled_means(diff, idx)))


def _unpaired(va: np.ndarray, vb: np.ndarray, idx_a: np.ndarray | None, idx_b: np.ndarray | None) -> Delta:
    ma, mb = mean(va), mean(vb)
    if ma is None or mb is None or idx_a is None or idx_b is None:
        return Delta(ma, mb, None)
    return Delta(ma, mb, interval(resampled_means(vb, idx_b) - resampled_means(va, idx_a)))


def deltas(ta: pd.DataFrame, tb: pd.DataFrame, samples: int, seed: int,
           metrics: tuple[str, ...] = HEADLINE) -> dict[tuple[str, str], Delta]:
    """Delta per (group, metric) from table `ta` to `tb`, groups being the categories of either table
    and OVERALL.

    Reseeded per group, as distill.ruler.summary does, so a group's CI never depends on the others;
    within a group every metric uses the same resamples. Paired tables are grouped by `ta`'s category.
    """
    key = paired_key(ta, tb)
    if key:  # align: row i of both tables is the same question
        ta = ta.reset_index(drop=True)
        tb = tb.set_index(key).loc[ta[key]].reset_index()
    out = {}
    for group in groups(ta, tb):
        rng = np.random.default_rng(seed)
        ra = in_group(ta, group)
        rb = tb.loc[ra.index] if key else in_group(tb, group)
        idx_a = resample(len(ra), samples, rng)
        idx_b = idx_a if key else resample(len(rb), samples, rng)
        for metric in metrics:
            va, vb = ra[metric].astype(float).to_numpy(), rb[metric].astype(float).to_numpy()
            out[group, metric] = _paired(va, vb, idx_a) if key else _unpaired(va, vb, idx_a, idx_b)
    return out


def regressions(found: dict[tuple[str, str], Delta]) -> tuple[dict, dict]:
    """(regressed, within noise): the drops of `deltas`' result split by the one rule."""
    drops = {k: d for k, d in found.items() if d.delta is not None and d.delta < 0}
    return ({k: d for k, d in drops.items() if d.regressed}, {k: d for k, d in drops.items() if not d.regressed})


def flips(ta: pd.DataFrame, tb: pd.DataFrame, judge_flip: float) -> pd.DataFrame:
    """Questions in both tables whose tool_call or answered verdict changed, or whose judge score moved
    by `judge_flip` or more (report.judge_flip): the question, both answers and every reason column,
    suffixed _a and _b, and a boolean `flip_<metric>` column per metric in FLIP_METRICS. Tables that
    share no unique key share no question: no rows (the columns still there)."""
    key = join_key(ta, tb)
    if key is None:
        ta, tb, key = ta.head(0), tb.head(0), "trace_id"
    cols = ["trace_id", "question", "category", "pred_answer", "tool_call", "call_error", "answered",
            "answer_reason", "judge", "judge_reasons"]
    both = ta[cols].merge(tb[cols], on=key, suffixes=("_a", "_b"))
    for other in {"trace_id", "question"} - {key}:
        both[other] = both[f"{other}_a"]
    both["category"] = both["category_a"]
    both["flip_tool_call"] = both["tool_call_a"] != both["tool_call_b"]
    both["flip_answered"] = both["answered_a"] != both["answered_b"]
    both["flip_judge"] = (both["judge_b"] - both["judge_a"]).abs() >= judge_flip
    moved = both[[f"flip_{m}" for m in FLIP_METRICS]].any(axis=1)
    return both[moved].sort_values(["category", "question"], ignore_index=True)
