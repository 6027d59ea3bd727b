"""Deterministic train/eval split, stratified by category and grouped so nothing held out was trained on.

Grouping matters because the grid repeats itself: methodology questions do not name a ticker, and
data_source questions differ only by the ticker, so every copy has the same gold tool plan and the
same gold answer. A row-level (or question-level) split would put the same plan and answer in both
halves and flatter the student. `group_by` (config `split.group_by`) chooses the key:

- gold_plan (default): the gold tool calls (canonical JSON); no held-out gold plan occurs in training.
- question: the question text (after lower-casing and collapsing whitespace).
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

GROUP_BY = ("gold_plan", "question")


def _rank(seed: int, text: str) -> str:
    """Order groups by a seeded hash: stable under row order and under adding unrelated rows."""
    return hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()


def plan_key(gold_calls: str) -> str:
    """A gold plan as canonical JSON text, so equal plans compare equal however they were written."""
    return json.dumps(json.loads(gold_calls), sort_keys=True, separators=(",", ":"))


def group_keys(df: pd.DataFrame, group_by: str) -> pd.Series:
    """The grouping key of every row: rows with equal keys are held out together or not at all."""
    if group_by == "gold_plan":
        return df["gold_calls"].map(plan_key)
    if group_by == "question":
        return df["question"].map(lambda q: " ".join(q.lower().split()))  # as diagnostics' SQL compares them
    raise ValueError(f"split.group_by must be one of {GROUP_BY}, got {group_by!r}")


def _held_out_groups(sizes: pd.Series, target: float, seed: int, min_groups: int = 1) -> list[str]:
    """Groups in seeded order, each taken if it brings the held-out row count closer to `target`.

    A group is never taken if it would leave no training rows; a category with two or more groups
    always holds out at least one (the smallest), so every category is evaluated. Then more groups are
    taken, in the same order, until `min_groups` are held out or half the category's groups are: a
    category of few large groups (one gold plan asked for every ticker) would otherwise be measured on
    two or three distinct questions.
    """
    total, taken, chosen = int(sizes.sum()), 0, []
    for group in sorted(sizes.index, key=lambda g: _rank(seed, g)):
        size = int(sizes[group])
        if taken + size < total and abs(taken + size - target) < abs(taken - target):
            chosen.append(group)
            taken += size
    if not chosen and len(sizes) > 1:
        chosen.append(min(sizes.index, key=lambda g: (sizes[g], _rank(seed, g))))
    for group in sorted(sizes.index, key=lambda g: _rank(seed, g)):
        if len(chosen) >= min(min_groups, len(sizes) // 2):
            break
        if group not in chosen:
            chosen.append(group)
    return chosen


def split_dataset(df: pd.DataFrame, eval_fraction: float, seed: int, group_by: str = "gold_plan",
                  min_eval_groups: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per category, hold out whole groups until about `eval_fraction` of its rows are held out, and at
    least `min_eval_groups` groups (at most half of them)."""
    keys = group_keys(df, group_by)
    is_eval = pd.Series(False, index=df.index)
    for _, part in df.groupby("category", sort=True):
        part_keys = keys[part.index]
        held = _held_out_groups(part_keys.value_counts(), eval_fraction * len(part), seed, min_eval_groups)
        is_eval[part.index] = part_keys.isin(held)
    train = df[~is_eval].assign(split="train").reset_index(drop=True)
    evals = df[is_eval].assign(split="eval").reset_index(drop=True)
    return train, evals


def sample_per_category(df: pd.DataFrame, n: int, seed: int, weights: dict[str, float] | None = None) -> pd.DataFrame:
    """At most `n` rows (0 = all), spread over categories in proportion to `weights` (1 where unnamed:
    evenly), chosen by a seeded hash of trace_id.

    Keeps the CPU default affordable (training tokens and generation are the budget) without letting
    the largest category crowd out the others; a weight above 1 buys a category more rows from the same
    budget (a category that runs out gives its turns to the others).
    """
    if n <= 0 or n >= len(df):
        return df.reset_index(drop=True)
    weights = weights or {}
    ordered = df.assign(_rank=[_rank(seed, t) for t in df["trace_id"]]).sort_values("_rank")
    # weighted round-robin: a category of weight w takes its k-th row at turn k / w
    ordered["_pos"] = ordered.groupby("category").cumcount() / ordered["category"].map(lambda c: weights.get(c, 1.0))
    picked = ordered.sort_values(["_pos", "_rank"]).head(n)
    return picked.sort_values("_rank").drop(columns=["_rank", "_pos"]).reset_index(drop=True)
