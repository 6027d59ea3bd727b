"""The markdown sections and the PNG of a run-to-run comparison, from the Evidence of attribution.py.

Tables go through distill.dataset.diagnostics.markdown_table and figures through distill.report.figures, so
the comparison reads like report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distill.compare.attribution import (Evidence, flagged_picks, fmt_changes, is_ruler_key, noise, rulers_agree,
                                         show, train_counts, why_missing)
from distill.dataset.diagnostics import markdown_table
from distill.io import atomic_path
from distill.report.figures import excerpt, fmt, stat, value
from distill.ruler.stats import HEADLINE, OVERALL, Delta

ANSWER_CHARS = 160
FLIPS_PER_CATEGORY = 5
EXAMPLES = 3  # changed training answers shown


def _cut(text: object) -> str:
    return excerpt(text, ANSWER_CHARS)


def _with_ci(d: Delta) -> str:
    if d.delta is None:
        return "n/a"
    return f"{d.delta:+.2f}" + ("" if d.ci is None else f" [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]")


def _categories(ev: Evidence) -> list[str]:
    return sorted({c for r in (ev.a, ev.b) for c in r.scores[r.task_epoch].get("per_category", {})})


def summary_table(ev: Evidence) -> str:
    """One row per run, as a practitioner writes it by hand, from the score files at the task picks."""
    if ev.config_diff is None:
        changed = "config unknown" + (f"; ruler: {fmt_changes(ev.ruler_diff, 2)}" if ev.ruler_diff else "")
    else:
        changed = fmt_changes(ev.config_diff, 3) or "nothing in config"
    rows = []
    for run, what in ((ev.a, "reference"), (ev.b, changed)):
        s = run.scores[run.task_epoch]
        rows.append({"run": run.name, "epoch": run.task_epoch,
                     **{f"tool_call {c}": fmt(value(s, "tool_call", c)) for c in _categories(ev)},
                     **{f"judge {c}": fmt(value(s, "judge", c)) for c in _categories(ev)},
                     "tool_call (all)": fmt(value(s, "tool_call")), "what changed": what})
    return markdown_table(pd.DataFrame(rows), width=100)


def changes_section(ev: Evidence) -> str:
    ta = ev.a.tables[ev.a.task_epoch]
    tb = ev.b.tables[ev.b.task_epoch]
    how = (f"Paired bootstrap over the {len(ta)} held-out questions both runs were scored on (joined on "
           f"`{ev.paired_on}`; a question either run could not grade counts in neither mean)" if ev.paired_on else
           f"Unpaired bootstrap: the runs were scored on different questions ({len(ta)} and {len(tb)})")
    rows = [{"group": g, "metric": m, ev.a.name: fmt(d.a), ev.b.name: fmt(d.b), "Δ [95% CI]": _with_ci(d),
             "verdict": noise(d) if d.ci else f"n/a: {why_missing(ev, g, m)}"}
            for (g, m), d in ev.at_picks.items() if m in HEADLINE]
    return (f"{how}; {ev.a.name} at epoch {ev.a.task_epoch}, {ev.b.name} at epoch {ev.b.task_epoch} (task picks). "
            f"A change is beyond noise when its 95% CI excludes 0.\n\n" + markdown_table(pd.DataFrame(rows)))


def ruler_section(ev: Evidence) -> str:
    if ev.ruler_diff:
        lines = [f"The ruler differs between the runs: {fmt_changes(ev.ruler_diff, len(ev.ruler_diff))}."]
    else:
        lines = ["Same ruler in both runs (scoring config and judge, as the score files record them)."]
    if ev.same_predictions:
        lines.append("Both runs made identical predictions (pred_calls, pred_answer) for every question at every "
                     "epoch, so every change below is the scorer's.")
    groups = [g for g, m in ev.at_picks if m == "tool_call"]
    rows = [{"group": g, "Δ lenient": _with_ci(ev.at_picks[g, "tool_call"]),
             "Δ exact": _with_ci(ev.at_picks[g, "tool_call_strict"]),
             f"lenient-only {ev.a.name}": ev.lenient_only[g][0], f"lenient-only {ev.b.name}": ev.lenient_only[g][1],
             "rulers": "agree" if rulers_agree(ev, g) else "disagree"} for g in groups]
    lines.append("The same predictions under both rulers: tool-call Δ by the lenient ruler and by exact match, and "
                 "the questions only the lenient ruler passes in each run.\n\n" + markdown_table(pd.DataFrame(rows)))
    return "\n\n".join(lines)


def checkpoint_section(ev: Evidence) -> str:
    runs = pd.DataFrame([{"run": r.name, "task pick": r.task_epoch, "eval-loss pick": r.loss_epoch,
                          "by": " then ".join(r.selection.get("metric", [])),
                          "epochs trained": max((int(e["epoch"]) for e in r.metrics.get("epochs", [])), default="n/a")}
                         for r in (ev.a, ev.b)])
    lines = [markdown_table(runs)]
    lines += [f"> **⚠ {r.name}: the picks disagree.** Eval loss picks epoch {r.loss_epoch}, the task metric epoch "
              f"{r.task_epoch}." for r in flagged_picks(ev)]
    if not flagged_picks(ev):
        return "\n\n".join(lines + ["Eval loss agrees with both task picks, so picking by it changes nothing."])
    rows = [{"group": g, "metric": m, "Δ at task picks": _with_ci(d),
             "Δ at eval-loss picks": _with_ci(ev.at_loss_picks[g, m])}
            for (g, m), d in ev.at_picks.items() if m in HEADLINE]
    lines.append(f"Had both runs been picked by eval loss ({ev.a.name} epoch {ev.a.loss_epoch}, {ev.b.name} epoch "
                 f"{ev.b.loss_epoch}):\n\n" + markdown_table(pd.DataFrame(rows)))
    return "\n\n".join(lines)


def data_section(ev: Evidence) -> str:
    n = ev.train_diff["change"].value_counts()
    lines = [f"Training set diff (DuckDB, distill/dataset/sql/diff*.sql) `{ev.a.train}` → `{ev.b.train}`: "
             f"{n.get('added', 0)} added, {n.get('removed', 0)} removed, {n.get('changed', 0)} changed answers."]
    if train_counts(ev):
        cols = ["category", "rows_old", "rows_new", "n_added", "n_removed", "n_changed"]
        lines.append(markdown_table(ev.train_by_category[cols]))
    changed = ev.train_diff[ev.train_diff["change"] == "changed"].head(EXAMPLES)
    if len(changed):
        lines.append("\n".join(f"- `{r['trace_id']}` ({r['category']}): {_cut(r['old_answer'])} → "
                               f"{_cut(r['new_answer'])}" for _, r in changed.iterrows()))
    gold = {g: k for g, k in ev.gold_changes.items() if g != OVERALL and k}
    lines.append("Held-out gold answers differ for " + ", ".join(f"{k} {g} question(s)" for g, k in gold.items()) + "."
                 if gold else "Held-out gold answers are the same for every question both runs share.")
    return "\n\n".join(lines)


def config_section(ev: Evidence) -> str:
    if ev.config_diff is None:
        unknown = ", ".join(r.name for r in (ev.a, ev.b) if r.config is None)
        return f"Unknown: no config.json for {unknown}, so config changes cannot be ruled out."
    if not ev.config_diff:
        return "Identical effective configs."
    rows = [{"key": k, ev.a.name: show(va), ev.b.name: show(vb),
             "kind": "ruler" if is_ruler_key(k) else "config"} for k, (va, vb) in ev.config_diff.items()]
    return markdown_table(pd.DataFrame(rows))


def causes_section(lines: list[str], classic: dict[str, list[str]]) -> str:
    if not lines:
        return "No change is beyond noise or large, so none is attributed."
    shown = "; ".join(f"**{k}** in {', '.join(v)}" for k, v in classic.items() if v)
    verdict = (f"Classic failures shown: {shown}." if shown
               else "None of the classic failures (ruler, checkpoint, gold data) shows.")
    return "\n".join(f"- {line}" for line in lines) + "\n\n" + verdict


def _reasons(r: pd.Series, side: str) -> str:
    found = [f"call_error `{r[f'call_error_{side}']}`" if isinstance(r[f"call_error_{side}"], str) else "",
             f"answer_reason `{r[f'answer_reason_{side}']}`" if isinstance(r[f"answer_reason_{side}"], str) else "",
             ", ".join(f"`{x}`" for x in json.loads(r[f"judge_reasons_{side}"] or "[]"))]
    return "; ".join(f for f in found if f) or "no reason recorded"


def _verdicts(r: pd.Series) -> str:
    """The verdicts that changed, then the judge score (always shown: it sizes the change)."""
    ok = {True: "ok", False: "wrong"}
    moved = [f"{m} {ok[bool(r[f'{m}_a'])]}→{ok[bool(r[f'{m}_b'])]}" for m in ("tool_call", "answered")
             if bool(r[f"{m}_a"]) != bool(r[f"{m}_b"])]
    return ", ".join([*moved, f"judge {r['judge_a']:.2f}→{r['judge_b']:.2f}"])


def flips_section(ev: Evidence, flips: pd.DataFrame, judge_flip: float) -> str:
    """Questions whose verdict changed between the picks, grouped by category, capped per category."""
    if flips.empty:
        return "No question flips between the two picks (or the runs share no question)."
    blocks = [f"{len(flips)} question(s) flip between {ev.a.name} (epoch {ev.a.task_epoch}) and {ev.b.name} "
              f"(epoch {ev.b.task_epoch}): tool_call or answered changed, or judge moved by ≥ {judge_flip}."]
    for category, part in flips.groupby("category", sort=True):
        items = [f"### {category} ({len(part)})"]
        for _, r in part.head(FLIPS_PER_CATEGORY).iterrows():
            items.append(f"- {_cut(r['question'])}: {_verdicts(r)}\n"
                         f"  - {ev.a.name}: {_cut(r['pred_answer_a'])} ({_reasons(r, 'a')})\n"
                         f"  - {ev.b.name}: {_cut(r['pred_answer_b'])} ({_reasons(r, 'b')})")
        if len(part) > FLIPS_PER_CATEGORY:
            items.append(f"_{len(part) - FLIPS_PER_CATEGORY} more in {category}._")
        blocks.append("\n".join(items))
    return "\n\n".join(blocks)


def plot(ev: Evidence, path: Path) -> None:
    """Per-category (and overall) tool-call and judge of both runs at their task picks, with 95% CIs,
    drawn on the Agg canvas without pyplot (no display, no global state) and saved atomically."""
    groups = [*_categories(ev), None]
    x = np.arange(len(groups))
    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    for ax, metric in zip(fig.subplots(1, 2), ("tool_call", "judge")):
        for i, run in enumerate((ev.a, ev.b)):
            stats = [stat(run.scores[run.task_epoch], metric, g) for g in groups]
            vals = np.array([np.nan if s.get("value") is None else s["value"] for s in stats], dtype=float)
            ci = np.array([s.get("ci95") or [None, None] for s in stats], dtype=float)  # None → NaN
            err = np.nan_to_num(np.vstack([vals - ci[:, 0], ci[:, 1] - vals]), nan=0.0).clip(min=0.0)
            ax.bar(x + (i - 0.5) * 0.4, np.nan_to_num(vals), 0.4, yerr=err, capsize=3,
                   label=f"{run.name} (epoch {run.task_epoch})")
        ax.set_xticks(x, [g or OVERALL for g in groups], rotation=20)
        ax.set(ylim=(0, 1.05), title=f"{metric} by category (95% CI)")
        ax.legend(fontsize=8)
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
