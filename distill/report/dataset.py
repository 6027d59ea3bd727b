"""The report's dataset section: compact digests of the DuckDB diagnostics tables (results/diagnostics/)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from distill.contracts import read_parquet
from distill.dataset.diagnostics import markdown_table

TABLES = ("counts", "rejections", "saturation", "overlap", "suspect_gold_before", "suspect_gold_after",
          "corrections", "diff_grounded_corrected", "diff_by_category")


def read_diagnostics(diagnostics_dir: Path) -> dict[str, pd.DataFrame | None]:
    """The diagnostics parquet tables by name; None for a table that is absent."""
    paths = {n: Path(diagnostics_dir) / f"{n}.parquet" for n in TABLES}
    return {n: read_parquet(p) if p.is_file() else None for n, p in paths.items()}


def dataset_section(diag: dict[str, pd.DataFrame | None], summary_link: str) -> str:
    """Compact digests of the diagnostics tables; the full ones stay in summary.md."""
    def table(name: str, build: Callable[[pd.DataFrame], pd.DataFrame] = lambda df: df) -> str:
        df = diag.get(name)
        return "_(not available)_" if df is None else markdown_table(build(df) if not df.empty else df)

    def per_category(counts: pd.DataFrame) -> pd.DataFrame:
        totals = counts[(counts["model_id"] == "(all)") & (counts["model_kind"] == "(all)")][["category", "n_rows"]]
        sat = diag.get("saturation")
        if sat is None:
            return totals
        cols = ["category", "n_unique_questions", "n_unique_plans", "n_unique_answers", "rows_per_plan"]
        return totals.merge(sat[cols], on="category", how="left").astype(
            {c: "Int64" for c in cols[1:4]})

    def suspect() -> str:
        both = [df.assign(stage=s) for s, df in (("before", diag.get("suspect_gold_before")),
                                                 ("after", diag.get("suspect_gold_after"))) if df is not None]
        rows = pd.concat(both) if both else pd.DataFrame()
        if rows.empty:
            return "_(none)_" if both else "_(not available)_"
        return markdown_table(rows.groupby(["issue", "stage"]).size().unstack("stage", fill_value=0)
                              .reindex(columns=["before", "after"], fill_value=0).reset_index())

    def rejections(df: pd.DataFrame) -> pd.DataFrame:
        wide = df.pivot_table(index="reason", columns="category", values="n_rows", aggfunc="sum", fill_value=0)
        return wide[[c for c in wide.columns if c != "(all)"] + ["(all)"]].rename(columns={"(all)": "total"}) \
            .reset_index()

    def corrections(df: pd.DataFrame) -> pd.DataFrame:
        out = df.assign(len_delta=df["mean_len_delta"] * df["n_rows"]).groupby("correction_id", as_index=False).agg(
            n_rows=("n_rows", "sum"), categories=("category", lambda c: ", ".join(sorted(set(c)))),
            len_delta=("len_delta", "sum"))
        return out.assign(mean_len_delta=out.pop("len_delta") / out["n_rows"])  # weighted by rows

    diff = diag.get("diff_grounded_corrected")
    changes = Counter() if diff is None else Counter(diff["change"])
    diff_cols = ["category", "rows_old", "rows_new", "n_added", "n_removed", "n_changed", "mean_len_delta"]
    return "\n\n".join([
        f"Full tables: [{summary_link}]({summary_link}).",
        "**Rows, distinct questions, gold plans and gold answers per category** (corrected data; many "
        "rows per plan means the student sees the same lesson again and again):",
        table("counts", per_category),
        "**How held out the held-out set is**: held-out rows that share their question, whole gold plan, "
        "gold answer, or a single gold call with some training row (`split.group_by` keeps the first three at 0):",
        table("overlap"),
        "**Grounding rejections by reason** (rows per category):",
        table("rejections", rejections),
        "**Gold answers that contradict the registry**, rows per issue before and after corrections:",
        suspect(),
        "**Corrections applied:**",
        table("corrections", corrections),
        f"**Diff grounded → corrected:** {changes.get('added', 0)} added, {changes.get('removed', 0)} "
        f"removed, {changes.get('changed', 0)} changed answers.",
        table("diff_by_category", lambda df: df[[c for c in diff_cols if c in df]]),
    ])
