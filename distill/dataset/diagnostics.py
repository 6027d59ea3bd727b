"""DuckDB diagnostics over the dataset parquet artifacts.

Each query lives in distill/dataset/sql/<name>.sql and reads plain relation names (dataset, rejected,
corrections_log, train, eval, old, new) that `run_query` registers from parquet paths or frames, so a
query can be read, and pasted into a DuckDB shell, on its own. The suspect-gold check is the one rule
not written in SQL: DuckDB reads the rows and distill.ruler.claims (the same code the judge uses) decides.
`build_all` writes every table the report uses; `python -m distill.dataset.diagnostics diff OLD NEW` compares
any two dataset files.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd

from distill.contracts import check_parquet
from distill.ruler.claims import suspect_gold
from distill.io import write_parquet, write_text

DIFF_COLUMNS: tuple[str, ...] = ("trace_id", "category", "final_answer")

def run_query(name: str, **relations: Path | pd.DataFrame) -> pd.DataFrame:
    """Run distill/dataset/sql/<name>.sql with each keyword registered as a relation of that name."""
    sql = (resources.files("distill.dataset.sql") / f"{name}.sql").read_text(encoding="utf-8")
    con = duckdb.connect()
    try:
        for rel_name, source in relations.items():
            if isinstance(source, pd.DataFrame):
                con.register(rel_name, source)
            else:  # checked first: DuckDB's binder error names neither the file nor the problem
                check_parquet(source)
                con.read_parquet(str(source)).create_view(rel_name)
        return con.sql(sql).df()
    finally:
        con.close()


def diff(old: Path, new: Path) -> dict[str, pd.DataFrame]:
    """Rows added, removed and with changed answers between two dataset files, and per category."""
    old, new = Path(old), Path(new)
    for path in (old, new):
        check_parquet(path, DIFF_COLUMNS)
    return {"diff": run_query("diff", old=old, new=new),
            "diff_by_category": run_query("diff_by_category", old=old, new=new)}


def suspect_gold_rows(dataset: Path | pd.DataFrame, claims: dict | None = None) -> pd.DataFrame:
    """Gold answers that contradict the registry, one row per (trace, issue), by distill.ruler.claims
    (`claims`: its config section, the schema's defaults without it)."""
    rows = [{**r, "issue": f.issue, "detail": f.detail}
            for r in run_query("gold_answers", dataset=dataset).to_dict("records")
            for f in suspect_gold(r["final_answer"], r["model_id"], r["category"], claims)]
    columns = ["trace_id", "category", "model_id", "model_kind", "issue", "detail", "final_answer"]
    return pd.DataFrame(rows, columns=columns).sort_values(["issue", "category", "model_id", "trace_id"],
                                                          ignore_index=True)


def build_all(grounded: Path, rejected: Path, corrected: Path, corrections_log: Path, train: Path,
              eval_: Path, out_dir: Path, claims: dict | None = None) -> None:
    """Write every diagnostics table as parquet plus summary.md for the report.

    Counts and saturation describe corrected.parquet (the data the student trains on); suspect
    gold is shown before (grounded) and after (corrected) the corrections, to show they worked;
    overlap says how held out the split's eval half is.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    diffs = diff(grounded, corrected)
    tables = {
        "counts": run_query("counts", dataset=corrected),
        "rejections": run_query("rejections", rejected=rejected),
        "saturation": run_query("saturation", dataset=corrected),
        "overlap": run_query("overlap", train=train, eval=eval_),
        "suspect_gold_before": suspect_gold_rows(grounded, claims),
        "suspect_gold_after": suspect_gold_rows(corrected, claims),
        "corrections": run_query("corrections", corrections_log=corrections_log),
        "diff_grounded_corrected": diffs["diff"],
        "diff_by_category": diffs["diff_by_category"],
    }
    for name, df in tables.items():
        write_parquet(df, out_dir / f"{name}.parquet")
    write_text(summary_markdown(tables), out_dir / "summary.md")


def summary_markdown(tables: dict[str, pd.DataFrame]) -> str:
    """The human-readable digest of `build_all`'s tables; full rows stay in the parquet files."""
    before, after = tables["suspect_gold_before"], tables["suspect_gold_after"]
    suspect_counts = (
        pd.concat([before.assign(stage="before"), after.assign(stage="after")])
        .groupby(["issue", "stage"]).size().unstack("stage", fill_value=0)
        .reindex(columns=["before", "after"], fill_value=0).reset_index()
    )
    examples = after[["trace_id", "model_id", "issue", "detail", "final_answer"]]
    sections = [
        "# Dataset diagnostics",
        "## Rows per category, model and kind (corrected)", markdown_table(tables["counts"]),
        "## Grounding rejections by reason", markdown_table(tables["rejections"]),
        "## Unique questions, gold plans and gold answers per category (saturation)",
        markdown_table(tables["saturation"]),
        "## Train/eval overlap (held-out rows sharing a question, plan, answer or call with training)",
        markdown_table(tables["overlap"]),
        "## Gold answers that contradict the registry",
        "Rows per issue before corrections (grounded) and after (corrected).",
        markdown_table(suspect_counts),
        "Still suspect after corrections:", markdown_table(examples, max_rows=10),
        "## Corrections applied", markdown_table(tables["corrections"]),
        diff_markdown(tables["diff_grounded_corrected"], tables["diff_by_category"],
                      "grounded.parquet", "corrected.parquet"),
    ]
    return "\n\n".join(sections) + "\n"


def diff_markdown(rows: pd.DataFrame, by_category: pd.DataFrame, old: str, new: str) -> str:
    """A dataset diff as markdown: totals, per-category table, then the changed rows."""
    n = rows["change"].value_counts()
    return "\n\n".join([
        f"## Diff: {old} → {new}",
        f"{n.get('added', 0)} added, {n.get('removed', 0)} removed, "
        f"{n.get('changed', 0)} changed answers.",
        markdown_table(by_category),
        markdown_table(rows, max_rows=20, width=60),
    ])


def markdown_table(df: pd.DataFrame, max_rows: int = 40, width: int = 80) -> str:
    """A pipe table with escaped pipes, one-line cells cut to `width`, and floats to 2 decimals.

    Hand-written because answers carry pipes and newlines that break a naive table, and so the
    report does not depend on tabulate (only a transitive dependency through snakemake).
    """
    if df.empty:
        return "_(none)_"

    def cell(value: object) -> str:
        if pd.api.types.is_scalar(value) and pd.isna(value):  # None, NaN and pandas' <NA>
            return ""
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        text = " ".join(text.split()).replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    shown = df.head(max_rows)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in shown.itertuples(index=False, name=None)]
    if len(df) > max_rows:
        lines.append(f"\n_{len(df) - max_rows} more rows in the parquet file._")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: `diff OLD NEW [--out DIR]` prints markdown and optionally writes parquet."""
    parser = argparse.ArgumentParser(prog="python -m distill.dataset.diagnostics", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("diff", help="compare two dataset parquet files on trace_id")
    p.add_argument("old", type=Path, help="the earlier dataset parquet")
    p.add_argument("new", type=Path, help="the later dataset parquet")
    p.add_argument("--out", type=Path, help="directory for diff.parquet and diff_by_category.parquet")
    args = parser.parse_args(argv)
    try:
        tables = diff(args.old, args.new)
    except (FileNotFoundError, ValueError) as exc:
        print(f"distill.dataset.diagnostics diff: error: {exc}", file=sys.stderr)
        return 1
    print(diff_markdown(tables["diff"], tables["diff_by_category"], str(args.old), str(args.new)))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, df in tables.items():
            write_parquet(df, args.out / f"{name}.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
