"""report.md: did the student regress, and why?

Built only from finished artifacts (score files, selection.json, the training metrics, the diagnostics
tables, predictions and traces), in reading order: who the teacher was, the verdict (chosen epoch vs the
untrained base, ship bar, eval-loss disagreement, the likely causes), then the evidence behind it
(per-epoch and per-category tables, ruler sensitivity, failure kinds, per-example flips, the dataset).
Each section says what it found in a sentence before its table, so the report reads top-down in minutes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from distill import plots
from distill.diagnostics import markdown_table
from distill.io import write_text

PLOTS = ("metrics_by_epoch", "eval_loss_by_epoch", "tool_call_by_category")
HEADLINE = ("tool_call", "grounded", "judge")
DISAGREE_FLAG = "Eval loss would pick a different epoch."
MAX_FLIPS = 15  # example rows listed; the counts above the table are always complete


def epoch_rows(train_metrics: dict | list) -> dict[int, dict]:
    """metrics.json's per-epoch dicts by epoch; tolerant of a bare list and of rows missing keys."""
    rows = train_metrics.get("epochs", []) if isinstance(train_metrics, dict) else train_metrics
    return {int(r["epoch"]): r for r in rows or [] if isinstance(r, dict) and "epoch" in r}


def _stat(score: dict | None, metric: str, category: str | None = None) -> dict:
    group = (score or {}).get("overall", {}) if category is None else \
        (score or {}).get("per_category", {}).get(category, {})
    stat = group.get(metric)
    return stat if isinstance(stat, dict) else {}


def _value(score: dict | None, metric: str, category: str | None = None) -> float | None:
    return _stat(score, metric, category).get("value")


def _f(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.2f}"


def _with_ci(stat: dict) -> str:
    lo, hi = stat.get("ci95") or (None, None)
    return _f(stat.get("value")) + ("" if lo is None else f" [{lo:.2f}, {hi:.2f}]")


def _examples(score: dict | None) -> dict[str, dict]:
    return {e["trace_id"]: e for e in (score or {}).get("examples", [])}


# ---- header and verdict ------------------------------------------------------------------------


def teacher_line(traces: pd.DataFrame, cfg: dict) -> str:
    """Who wrote the training data; the offline simulator is named as such, never passed off as Claude."""
    tcfg = cfg.get("teacher", {})
    backends = sorted(traces["backend"].dropna().unique()) if "backend" in traces else [tcfg.get("backend")]
    models = sorted(traces["teacher_model"].dropna().unique()) if "teacher_model" in traces else [tcfg.get("model")]
    names = f"backend `{', '.join(map(str, backends))}`, model `{', '.join(map(str, models))}`, {len(traces)} traces"
    if tcfg.get("backend") == "offline" or any("simulator" in str(b) for b in backends):
        faults = fault_counts(traces)
        injected = ", ".join(f"{k} ×{v}" for k, v in sorted(faults.items())) or "none"
        return (f"**Teacher: the offline SIMULATOR, not Claude** ({names}). It injects the real teacher's "
                f"known faults on purpose ({injected}); these figures show the pipeline at work, not Claude.")
    cost = float(traces["cost_usd"].sum()) if "cost_usd" in traces else 0.0
    return f"**Teacher: Claude** ({names}, ${cost:.2f})."


def fault_counts(traces: pd.DataFrame) -> Counter:
    """Injected-fault names across traces (simulator only; a Claude run has none)."""
    if "injected_faults" not in traces:
        return Counter()
    return Counter(f for cell in traces["injected_faults"].dropna() for f in json.loads(cell))


def student_line(cfg: dict, score: dict | None) -> str:
    """What was trained and how much it was tested on, so the figures below can be sized."""
    scfg = cfg.get("student", {})
    lora, train = scfg.get("lora", {}), scfg.get("train", {})
    return (f"Student: `{scfg.get('base', '?')}` + LoRA r={lora.get('r', '?')} (quantization "
            f"{scfg.get('quantization', '?')}), {train.get('epochs', '?')} epochs; {(score or {}).get('n', '?')} "
            f"held-out questions per epoch, judge `{(score or {}).get('judge_name', '?')}`.")


def regression_line(scores: dict[int, dict], chosen: int) -> str:
    """Whether the chosen epoch is below the untrained base, and whether training past it lost ground."""
    last = max(scores)
    below, later = [], []
    for m in HEADLINE:
        base, pick, end = _value(scores.get(0), m), _value(scores[chosen], m), _value(scores[last], m)
        if None not in (base, pick) and pick < base:
            below.append(f"{m} ({_f(base)} → {_f(pick)})")
        if last > chosen and None not in (pick, end) and end < pick:
            later.append(f"{m} ({_f(pick)} → {_f(end)} at epoch {last})")
    base_part = (f"epoch {chosen} is below the untrained base on {', '.join(below)}" if below else
                 f"epoch {chosen} is at or above the untrained base on every metric")
    later_part = (f"training past it regressed {', '.join(later)}" if later else
                  "no later epoch fell below it" if last > chosen else "it is the last epoch trained")
    return f"**Regression: {'yes' if below or later else 'none'}**: {base_part}; {later_part}."


def disagreement(selection: dict) -> str:
    """A blockquote flag with both epochs' figures when eval loss and the task metric pick differently."""
    task, loss = selection["task_epoch"], selection["eval_loss_epoch"]
    figures = selection.get("figures", {})

    def figs(key: str) -> str:
        return ", ".join(f"{k} {_f(v)}" for k, v in figures.get(key, {}).items())

    if not selection.get("disagree", task != loss):
        return f"Eval loss agrees: it also picks epoch {task} ({figs('task_epoch')})."
    return (f"> **⚠ {DISAGREE_FLAG}** Lowest eval loss is epoch {loss} ({figs('eval_loss_epoch')}); "
            f"the task metric picks epoch {task} ({figs('task_epoch')}). Lower loss means closer imitation "
            f"of the teacher's tokens, not better tool use; this report follows the task pick.")


def causes(scores: dict[int, dict], chosen: int, diag: dict[str, pd.DataFrame | None]) -> list[str]:
    """The likeliest reasons behind the verdict, each one figure from the sections below."""
    pick, out = scores[chosen], []
    by_cat = {c: _value(pick, "tool_call", c) for c in pick.get("per_category", {})}
    by_cat = {c: v for c, v in by_cat.items() if v is not None}
    if by_cat:
        worst = min(by_cat, key=by_cat.get)
        out.append(f"weakest category: {worst} (tool-call {_f(by_cat[worst])}, "
                   f"n={pick['per_category'][worst].get('n')})")
    for key, label in (("call_errors", "tool-call misses"), ("failures", "agent-loop failures")):
        counts = {k: v for k, v in pick.get("overall", {}).get(key, {}).items() if v}
        if counts:
            top = max(counts, key=counts.get)
            out.append(f"{label}: mostly `{top}` ({counts[top]} of {sum(counts.values())})")
    strict, lenient = _value(pick, "tool_call_strict"), _value(pick, "tool_call")
    if None not in (strict, lenient) and lenient > strict:
        out.append(f"exact-match ruler would report {_f(strict)} instead of {_f(lenient)}")
    sat = diag.get("saturation")
    if sat is not None and not sat.empty and sat["rows_per_question"].max() > 1:
        top = sat.sort_values("rows_per_question", ascending=False).iloc[0]
        out.append(f"{top['category']} is saturated: {int(top['n_unique_questions'])} unique question(s) "
                   f"in {int(top['n_rows'])} rows")
    after = diag.get("suspect_gold_after")
    if after is not None and not after.empty:
        out.append(f"{after['trace_id'].nunique()} gold answer(s) still contradict the registry after corrections")
    return out


def verdict(scores: dict[int, dict], selection: dict, diag: dict[str, pd.DataFrame | None]) -> str:
    chosen = selection["task_epoch"]
    pick, base = scores[chosen], scores.get(0)
    vs = ", ".join(f"{m} {_f(_value(pick, m))} (epoch 0: {_f(_value(base, m))})" for m in HEADLINE)
    metric = " then ".join(selection.get("metric", []))
    bar = pick.get("ship_bar", {})
    failing = [f"{m} {_f(s.get('value'))} < {_f(s.get('threshold'))}"
               for m, s in bar.items() if isinstance(s, dict) and not s.get("passed")]
    ship = "**Ship bar: PASS.**" if bar.get("passed") else f"**Ship bar: FAIL** ({'; '.join(failing)})."
    lines = [f"**Chosen checkpoint: epoch {chosen}** (by {metric}): {vs}.", ship, regression_line(scores, chosen),
             disagreement(selection)]
    why = causes(scores, chosen, diag)
    if why:
        lines.append("Why, in brief:\n" + "\n".join(f"- {w}" for w in why))
    return "\n\n".join(lines)


# ---- evidence tables ---------------------------------------------------------------------------


def epoch_table(scores: dict[int, dict], losses: dict[int, dict], selection: dict) -> str:
    """One row per epoch from epoch 0: task metrics beside the training losses."""
    marks = {selection["task_epoch"]: ["task pick"]}
    marks.setdefault(selection["eval_loss_epoch"], []).append("eval-loss pick")
    rows = []
    for e in sorted(set(scores) | set(losses)):
        s, r = scores.get(e), losses.get(e, {})
        rows.append({"epoch": e, "tool_call [95% CI]": _with_ci(_stat(s, "tool_call")),
                     "strict": _f(_value(s, "tool_call_strict")), "grounded": _f(_value(s, "grounded")),
                     "judge": _f(_value(s, "judge")), "eval loss": _f(r.get("eval_loss")),
                     "train loss": _f(r.get("train_loss")),
                     "train tok/s": "n/a" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:.0f}",
                     "pick": ", ".join(marks.get(e, []))})
    return markdown_table(pd.DataFrame(rows))


def category_table(scores: dict[int, dict]) -> str:
    """Categories × epochs, each cell `tool_call / grounded / judge`."""
    cats = sorted({c for s in scores.values() for c in s.get("per_category", {})})
    rows = [{"category": c, **{f"epoch {e}": " / ".join(_f(_value(scores[e], m, c)) for m in HEADLINE)
                               for e in sorted(scores)}} for c in cats]
    return markdown_table(pd.DataFrame(rows))


def _calls_tool(cell: Any, tool: str) -> bool:
    calls = json.loads(cell) if isinstance(cell, str) else (cell or [])
    return any(isinstance(c, dict) and c.get("name") == tool for c in calls)


def ruler_section(scores: dict[int, dict], chosen: int, predictions: dict[int, pd.DataFrame],
                  traces: pd.DataFrame, cfg: dict) -> str:
    """Strict vs overlap tool-call per category, and how many lenient-only passes are search_docs paraphrases."""
    pick = scores[chosen]
    groups = [*sorted(pick.get("per_category", {})), None]
    table = pd.DataFrame([{
        "category": c or "(all)", "n": (pick["per_category"][c] if c else pick["overall"]).get("n"),
        "strict": _f(_value(pick, "tool_call_strict", c)), "overlap": _f(_value(pick, "tool_call", c)),
        "gap": _f((_value(pick, "tool_call", c) or 0) - (_value(pick, "tool_call_strict", c) or 0)),
    } for c in groups])
    lenient_only = {t for t, e in _examples(pick).items() if e["tool_call"] and not e["tool_call_strict"]}
    preds = predictions.get(chosen, pd.DataFrame(columns=["trace_id", "gold_calls"]))
    search = sum(bool(_calls_tool(c, "search_docs"))
                 for c in preds.loc[preds["trace_id"].isin(lenient_only), "gold_calls"])
    threshold = cfg.get("scoring", {}).get("query_overlap", pick.get("config", {}).get("query_overlap"))
    if not lenient_only:
        return f"At epoch {chosen} both rulers agree on every trace.\n\n" + markdown_table(table)
    text = (f"At epoch {chosen} the overlap ruler accepts {len(lenient_only)} trace(s) that exact match "
            f"rejects; {search} of them call `search_docs` with a paraphrased query (same content words in "
            f"other wording or order, overlap coefficient ≥ {threshold}). BM25 retrieves the same documents "
            f"for both, so exact match undercounts tool use there.")
    if len(lenient_only) > search:
        text += " The others differ only in identifier case, date format or default arguments."
    paraphrased = fault_counts(traces).get("query_paraphrase", 0)
    if paraphrased:
        text += (f" The teacher's own traces paraphrase {paraphrased} `search_docs` queries (the "
                 f"query_paraphrase fault), so the student is trained on paraphrases too.")
    return text + "\n\n" + markdown_table(table)


def taxonomy_table(scores: dict[int, dict]) -> str:
    """Counts per failure reason and epoch, reasons that never occur left out."""
    rows = []
    for key, kind in (("call_errors", "tool-call error"), ("failures", "agent-loop failure")):
        reasons = dict.fromkeys(r for s in scores.values() for r in s.get("overall", {}).get(key, {}))
        for reason in reasons:
            counts = {f"epoch {e}": scores[e].get("overall", {}).get(key, {}).get(reason, 0) for e in sorted(scores)}
            if any(counts.values()):
                rows.append({"kind": kind, "reason": reason, **counts})
    return markdown_table(pd.DataFrame(rows))


def flips(scores: dict[int, dict], before: int, after: int) -> pd.DataFrame:
    """Traces scored in both epochs whose tool-call verdict changed."""
    a, b = _examples(scores.get(before)), _examples(scores.get(after))
    return pd.DataFrame([{"trace_id": t, "category": b[t]["category"], "before": a[t]["tool_call"],
                          "after": b[t]["tool_call"]}
                         for t in sorted(a.keys() & b.keys()) if a[t]["tool_call"] != b[t]["tool_call"]],
                        columns=["trace_id", "category", "before", "after"])


def flips_section(scores: dict[int, dict], selection: dict, predictions: dict[int, pd.DataFrame]) -> str:
    task, loss = selection["task_epoch"], selection["eval_loss_epoch"]
    lines = []
    if 0 in scores:
        base = flips(scores, 0, task)
        gained = int(base["after"].sum())
        lines.append(f"Epoch 0 → epoch {task}: {gained} trace(s) gained a correct tool call, "
                     f"{len(base) - gained} lost one.")
    if task == loss:
        return "\n\n".join(lines + [f"Both picks are epoch {task}, so nothing flips between them."])
    diff = flips(scores, loss, task)
    right = int(diff["after"].sum())
    lines.append(f"Eval-loss pick (epoch {loss}) → task pick (epoch {task}): {right} trace(s) right only at "
                 f"epoch {task}, {len(diff) - right} right only at epoch {loss}.")
    questions = pd.concat([p[["trace_id", "question"]] for p in predictions.values() if "question" in p] or
                          [pd.DataFrame(columns=["trace_id", "question"])]).drop_duplicates("trace_id")
    shown = diff.merge(questions, on="trace_id", how="left").sort_values(["after", "category", "trace_id"])
    shown[f"epoch {loss}"] = shown["before"].map({True: "ok", False: "wrong"})
    shown[f"epoch {task}"] = shown["after"].map({True: "ok", False: "wrong"})
    cols = ["trace_id", "category", "question", f"epoch {loss}", f"epoch {task}"]
    return "\n\n".join(lines + [markdown_table(shown[cols], max_rows=MAX_FLIPS, width=70)])


# ---- dataset -----------------------------------------------------------------------------------


def read_diagnostics(diagnostics_dir: Path) -> dict[str, pd.DataFrame | None]:
    """The diagnostics parquet tables by name; None for a table that is absent."""
    names = ("counts", "rejections", "saturation", "suspect_gold_before", "suspect_gold_after",
             "corrections", "diff_grounded_corrected", "diff_by_category")
    paths = {n: Path(diagnostics_dir) / f"{n}.parquet" for n in names}
    return {n: pd.read_parquet(p) if p.is_file() else None for n, p in paths.items()}


def dataset_section(diag: dict[str, pd.DataFrame | None], summary_link: str) -> str:
    """Compact digests of the diagnostics tables; the full ones stay in summary.md."""
    def table(name: str, build: Callable[[pd.DataFrame], pd.DataFrame]) -> str:
        df = diag.get(name)
        return "_(not available)_" if df is None else markdown_table(build(df) if not df.empty else df)

    def per_category(counts: pd.DataFrame) -> pd.DataFrame:
        totals = counts[(counts["model_id"] == "(all)") & (counts["model_kind"] == "(all)")]
        sat = diag.get("saturation")
        if sat is None:
            return totals[["category", "n_rows"]]
        merged = totals[["category", "n_rows"]].merge(
            sat[["category", "n_unique_questions", "rows_per_question"]], on="category", how="left")
        return merged.astype({"n_unique_questions": "Int64"})

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
        "**Rows and unique questions per category** (corrected data; a high rows/question means the "
        "student sees the same question again and again):",
        table("counts", per_category),
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


# ---- assembly ----------------------------------------------------------------------------------


def _link(title: str, path: Path, report_path: Path) -> str:
    return f"![{title}]({Path(os.path.relpath(path, report_path.parent)).as_posix()})"


def build_report(scores: dict[int, dict], selection: dict, train_metrics: dict, diagnostics_dir: Path,
                 predictions: dict[int, pd.DataFrame], traces: pd.DataFrame, cfg: dict,
                 plot_paths: dict[str, Path], report_path: Path) -> str:
    """Draw the plots at `plot_paths` (keys: PLOTS), write report.md at `report_path`, return its text."""
    if missing := [k for k in PLOTS if k not in plot_paths]:
        raise KeyError(f"plot_paths lacks {missing}; needs {list(PLOTS)}")
    scores = {int(e): s for e, s in scores.items()}
    report_path = Path(report_path)
    losses = epoch_rows(train_metrics)
    task, loss = selection["task_epoch"], selection["eval_loss_epoch"]
    plots.metrics_by_epoch(scores, plot_paths["metrics_by_epoch"])
    plots.eval_loss_by_epoch({e: r["eval_loss"] for e, r in losses.items() if r.get("eval_loss") is not None},
                             task, loss, plot_paths["eval_loss_by_epoch"])
    plots.tool_call_by_category(scores, sorted({min(scores), task}), plot_paths["tool_call_by_category"])
    diag = read_diagnostics(diagnostics_dir)
    summary = Path(os.path.relpath(Path(diagnostics_dir) / "summary.md", report_path.parent)).as_posix()
    link = {k: _link(k.replace("_", " "), Path(p), report_path) for k, p in plot_paths.items()}
    sections = [
        "# Student distillation report: did the student regress, and why?",
        teacher_line(traces, cfg) + "\n\n" + student_line(cfg, scores.get(task)),
        "## Verdict", verdict(scores, selection, diag),
        "## Per epoch",
        "Epoch 0 is the untrained base. Tool-call uses the overlap ruler; judge is a mean score (0–1).",
        epoch_table(scores, losses, selection), link["metrics_by_epoch"], link["eval_loss_by_epoch"],
        "## Per category", "Cells: tool_call / grounded / judge.", category_table(scores),
        link["tool_call_by_category"],
        f"## Ruler sensitivity (epoch {task})", ruler_section(scores, task, predictions, traces, cfg),
        "## Failures by kind", taxonomy_table(scores),
        "## Per-example flips", flips_section(scores, selection, predictions),
        "## Dataset", dataset_section(diag, summary),
    ]
    text = "\n\n".join(sections) + "\n"
    write_text(text, report_path)
    return text
