"""report.md: did the student regress, and why?

Built only from finished artifacts (score files and per-question score tables, selection.json, the
training metrics, the diagnostics tables and the traces), in reading order: who the teacher was, the
verdict (chosen epoch vs the untrained base and an optional previous build, ship bar, eval-loss
disagreement, the likely causes), real held-out examples, then the evidence behind it (per-epoch and
per-category tables, constrained vs unconstrained decoding, ruler sensitivity, reasons by kind, flips, the
dataset, the teacher's and the judge's cost, the judges' agreement). Sections: verdict.py, evidence.py,
constraint.py, dataset.py, cost.py, judges.py;
PNG plots: plots.py; shared figure helpers: figures.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from distill.contracts import read_json, read_parquet
from distill.io import write_text
from distill.report import plots
from distill.report.constraint import constraint_section
from distill.report.cost import teacher_cost_section
from distill.report.dataset import dataset_section, read_diagnostics
from distill.report.evidence import (category_table, epoch_table, examples_section, flips_section,
                                     ruler_section, taxonomy_table)
from distill.report.judges import judge_section
from distill.report.verdict import DISAGREE_FLAG, fault_counts, student_line, teacher_line, verdict

__all__ = ["DISAGREE_FLAG", "PLOTS", "build_report", "load_baseline"]

PLOTS = ("metrics_by_epoch", "eval_loss_by_epoch", "tool_call_by_category")


def epoch_rows(train_metrics: dict | list) -> dict[int, dict]:
    """metrics.json's per-epoch dicts by epoch; tolerant of a bare list and of rows missing keys."""
    rows = train_metrics.get("epochs", []) if isinstance(train_metrics, dict) else train_metrics
    return {int(r["epoch"]): r for r in rows or [] if isinstance(r, dict) and "epoch" in r}


def load_baseline(results_dir: str | Path | None) -> dict | None:
    """The pick of an earlier build kept aside (its selection.json and that epoch's score file and
    per-question table, which the regression rule pairs with this build's), or None.

    A missing file is an error naming it: a baseline the user asked for must not silently vanish.
    """
    if not results_dir:
        return None
    root = Path(results_dir)
    selection_path = root / "selection.json"
    if not selection_path.is_file():
        raise FileNotFoundError(f"report.baseline: {selection_path} not found (an earlier results/ tree)")
    epoch = read_json(selection_path)["task_epoch"]
    score_path = root / "scores" / f"epoch_{epoch}.json"
    for path in (score_path, score_path.with_suffix(".parquet")):
        if not path.is_file():
            raise FileNotFoundError(f"report.baseline: {path} not found")
    return {"name": str(root), "epoch": epoch, "score": read_json(score_path),
            "table": read_parquet(score_path.with_suffix(".parquet"))}


def _link(title: str, path: Path, report_path: Path) -> str:
    return f"![{title}]({Path(os.path.relpath(path, report_path.parent)).as_posix()})"


def build_report(scores: dict[int, dict], tables: dict[int, pd.DataFrame], selection: dict, train_metrics: dict,
                 diagnostics_dir: Path, traces: pd.DataFrame, cfg: dict, plot_paths: dict[str, Path],
                 report_path: Path, baseline: dict | None = None,
                 unconstrained: tuple[dict, pd.DataFrame] | None = None) -> str:
    """Draw the plots at `plot_paths` (keys: PLOTS), write report.md at `report_path`, return its text.

    `scores` and `tables` are the per-epoch score files and per-question score tables; `baseline` is
    `load_baseline`'s result for an earlier build, or None; `unconstrained` the last epoch's score file
    and table decoded without predict.constrain, or None.
    """
    if missing := [k for k in PLOTS if k not in plot_paths]:
        raise KeyError(f"plot_paths lacks {missing}; needs {list(PLOTS)}")
    scores = {int(e): s for e, s in scores.items()}
    tables = {int(e): t for e, t in tables.items()}
    report_path = Path(report_path)
    losses = epoch_rows(train_metrics)
    task, loss, last = selection["task_epoch"], selection["eval_loss_epoch"], max(scores)
    plots.metrics_by_epoch(scores, plot_paths["metrics_by_epoch"])
    plots.eval_loss_by_epoch({e: r["eval_loss"] for e, r in losses.items() if r.get("eval_loss") is not None},
                             task, loss, plot_paths["eval_loss_by_epoch"])
    plots.tool_call_by_category(scores, sorted({min(scores), task}), plot_paths["tool_call_by_category"])
    diag = read_diagnostics(diagnostics_dir)
    summary = Path(os.path.relpath(Path(diagnostics_dir) / "summary.md", report_path.parent)).as_posix()
    link = {k: _link(k.replace("_", " "), Path(p), report_path) for k, p in plot_paths.items()}
    rcfg = cfg["report"]
    sections = [
        "# Student distillation report: did the student regress, and why?",
        teacher_line(traces, cfg) + "\n\n" + student_line(cfg, scores.get(task)),
        "## Verdict", verdict(scores, tables, selection, diag, cfg, baseline),
        f"## Held-out examples (epoch {task})",
        "Real held-out questions per category, the best and the worst judged first. A final turn that "
        "is empty, holds tool markup, is mostly tool JSON or repeats the question is not an answer "
        "(docs/design.md): it scores judge 0 and is not grounded.",
        examples_section(tables[task], task, rcfg["examples_per_category"]),
        "## Per epoch",
        "Epoch 0 is the untrained base. Tool-call uses the lenient ruler; judge is a mean score (0–1); "
        "answered is the share of held-out questions that get an answer.",
        epoch_table(scores, losses, selection), link["metrics_by_epoch"], link["eval_loss_by_epoch"],
        "## Per category", "Cells: tool_call / answered / grounded / judge.", category_table(scores),
        link["tool_call_by_category"],
        *([f"## Constrained decoding (epoch {last})",
           constraint_section(last, scores[last], tables[last], *unconstrained, cfg["predict"]["constrain"])]
          if unconstrained else []),
        f"## Ruler sensitivity (epoch {task})",
        ruler_section(scores, task, tables[task], fault_counts(traces).get("query_paraphrase", 0), cfg["scoring"]),
        "## Reasons by kind", taxonomy_table(scores),
        "## Per-question flips", flips_section(tables, selection, rcfg["judge_flip"]),
        "## Dataset", dataset_section(diag, summary),
        "## Teacher cost", teacher_cost_section(traces, cfg),
        "## Judge cost and agreement", judge_section(scores[task].get("judge_name", "?"), tables, cfg["pricing"]),
    ]
    text = "\n\n".join(sections) + "\n"
    write_text(text, report_path)
    return text
