"""The report's "Judge cost and agreement" section: can the free rubric judge be trusted?

With `judge.backend: anthropic` every score table carries Claude's score (`judge`), the rubric's on the
same answer (`judge_rubric`), Claude's rationale and the usage of each grading. Agreement is measured on
the answers both judges graded, over every epoch (an answer repeated with the same scores counts once);
non-answers are left out (both score them 0 without looking, which would only inflate agreement), and so
are failed gradings (no Claude score).
Dollars are computed here from `pricing`, so a price edit re-runs the report only.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from distill.claude.usage import USAGE_FIELDS
from distill.claude.pricing import cost_usd
from distill.dataset.diagnostics import markdown_table
from distill.report.cost import LABELS
from distill.report.figures import fmt

DISAGREEMENTS = 5  # rows listed under "largest disagreements"
EXCERPT = 160  # characters of the answer and the rationale shown


def _corr(a: pd.Series, b: pd.Series) -> float | None:
    """Pearson correlation; None when undefined (under two rows, or a judge gave every row one score)."""
    if len(a) < 2 or a.nunique() < 2 or b.nunique() < 2:
        return None
    return float(np.corrcoef(a.to_numpy(float), b.to_numpy(float))[0, 1])


def graded_pairs(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """The answers both judges scored, with their epoch; the same answer to the same question scored the
    same at a later epoch (a cache hit, as a rule) counts once, at the first epoch seen."""
    rows = pd.concat([t.assign(epoch=e) for e, t in sorted(tables.items())], ignore_index=True)
    rows = rows[rows["answered"].astype(bool) & rows["judge"].notna() & rows["judge_rubric"].notna()]
    return rows.drop_duplicates(["trace_id", "pred_answer", "judge", "judge_rubric"]).reset_index(drop=True)


def agreement(pairs: pd.DataFrame) -> dict:
    """n, Pearson and Spearman correlation and mean absolute difference of `judge` vs `judge_rubric`.

    Spearman is the Pearson correlation of the average ranks (ties share a rank), as scipy defines it.
    """
    a, b = pairs["judge"].astype(float), pairs["judge_rubric"].astype(float)
    return {"n": len(pairs), "pearson": _corr(a, b), "spearman": _corr(a.rank(), b.rank()),
            "mean_abs_diff": float((a - b).abs().mean()) if len(pairs) else None}


def largest_disagreements(pairs: pd.DataFrame, k: int = DISAGREEMENTS) -> pd.DataFrame:
    """The k answers the judges disagree on most (ties: epoch, then trace id), for a markdown table."""
    gap = (pairs["judge"].astype(float) - pairs["judge_rubric"].astype(float)).abs()
    top = pairs.assign(gap=gap).sort_values(["gap", "epoch", "trace_id"], ascending=[False, True, True]).head(k)
    top = top[top["gap"] > 0]
    return pd.DataFrame({"epoch": top["epoch"], "question": top["question"], "answer (excerpt)": top["pred_answer"],
                         "Claude": top["judge"].astype(float), "rubric": top["judge_rubric"].astype(float),
                         "Claude's rationale": top["judge_rationale"]})


def judge_cost(tables: dict[int, pd.DataFrame], pricing: dict) -> tuple[dict[str, int], float | None, list[str]]:
    """Usage summed over every grading of every epoch, its dollars (None when a model has no price in
    `pricing`), and the judge models seen."""
    rows = pd.concat(list(tables.values()), ignore_index=True)
    rows = rows[rows["judge_model"].notna()]
    usage = {key: int(rows[f"judge_{key}"].sum()) for key in USAGE_FIELDS}
    total: float | None = 0.0
    for model, group in rows.groupby("judge_model"):
        dollars = cost_usd({key: int(group[f"judge_{key}"].sum()) for key in USAGE_FIELDS}, pricing, str(model))
        total = None if dollars is None or total is None else total + dollars
    return usage, total, sorted(map(str, rows["judge_model"].unique()))


def judge_section(judge_name: str, tables: dict[int, pd.DataFrame], pricing: dict) -> str:
    """Cost of the Claude judge and its agreement with the rubric; one line under the rubric backend."""
    if judge_name != "anthropic":
        return (f"Judge `{judge_name}`, no cost. How far the free rubric judge agrees with a Claude judge on "
                f"the same answers needs `judge.backend: anthropic` (the rubric then runs beside Claude).")
    usage, dollars, models = judge_cost(tables, pricing)
    names = ", ".join(f"`{m}`" for m in models) or "(none)"
    rows = pd.concat(list(tables.values()), ignore_index=True)
    errors = Counter(rows["judge_error"].dropna())
    failed = (f"{sum(errors.values())} failed ({', '.join(f'`{r}` ×{n}' for r, n in sorted(errors.items()))}; "
              f"no score, left out of the judge means; a rerun asks again)" if errors else "none failed")
    tokens = " · ".join(f"{LABELS[key]} {usage[key]:,}" for key in USAGE_FIELDS)
    price = f"${dollars:,.4f}" if dollars is not None else f"no price for {names} in `pricing.models`"
    pairs = graded_pairs(tables)
    agree = agreement(pairs)
    lines = [
        f"Claude judge {names}: {int(rows['judge_model'].notna().sum())} gradings "
        f"(epochs {', '.join(map(str, sorted(tables)))}), "
        f"{failed}; non-answers score 0 without a request. Tokens: {tokens}. Cost: {price} (usage × `pricing`; "
        f"an upper bound on what was paid: a response already in results/cache/, from an earlier build or the "
        f"same answer at another epoch, is paid once, so re-scoring is free).",
        f"Agreement with the free rubric judge on the same {agree['n']} answers (all epochs, a repeated answer "
        f"once; non-answers and failed gradings left out): Pearson {fmt(agree['pearson'])}, "
        f"Spearman {fmt(agree['spearman'])}, mean absolute difference {fmt(agree['mean_abs_diff'])}.",
        "Largest disagreements:",
        markdown_table(largest_disagreements(pairs), width=EXCERPT),
    ]
    return "\n\n".join(lines)
