"""Deterministic train/eval split, stratified by category and grouped by question text.

Grouping matters because the grid repeats questions (methodology questions do not name a ticker):
a row-level split would put the same question in train and eval and flatter the student.
"""

from __future__ import annotations

import hashlib

import pandas as pd


def _rank(seed: int, text: str) -> str:
    """Order groups by a seeded hash: stable under row order and under adding unrelated rows."""
    return hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()


def split_dataset(df: pd.DataFrame, eval_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per category, hold out whole question groups until about `eval_fraction` of its rows are held out."""
    eval_ids: set[str] = set()
    for category, part in df.groupby("category", sort=True):
        sizes = part.groupby("question").size()
        order = sorted(sizes.index, key=lambda q: _rank(seed, q))
        target = eval_fraction * len(part)
        taken = 0
        for q in order:
            # Take a group if it brings the held-out count closer to the target; always leave training rows.
            if taken >= target or taken + sizes[q] >= len(part):
                continue
            if abs(taken + sizes[q] - target) <= abs(taken - target) or taken == 0:
                eval_ids.update(part.loc[part["question"] == q, "trace_id"])
                taken += sizes[q]
    is_eval = df["trace_id"].isin(eval_ids)
    train = df[~is_eval].assign(split="train").reset_index(drop=True)
    evals = df[is_eval].assign(split="eval").reset_index(drop=True)
    return train, evals


def sample_per_category(df: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most `n` rows (0 = all), spread evenly over categories, chosen by a seeded hash of trace_id.

    Keeps the CPU default affordable (training tokens and generation are the budget) without letting
    the largest category crowd out the others.
    """
    if n <= 0 or n >= len(df):
        return df.reset_index(drop=True)
    ordered = df.assign(_rank=[_rank(seed, t) for t in df["trace_id"]]).sort_values("_rank")
    ordered["_pos"] = ordered.groupby("category").cumcount()
    picked = ordered.sort_values(["_pos", "_rank"]).head(n)  # round-robin over categories
    return picked.sort_values("_rank").drop(columns=["_rank", "_pos"]).reset_index(drop=True)
