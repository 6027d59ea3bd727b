"""The evidence behind the verdict: per-epoch and per-category tables, ruler sensitivity, reasons by
kind, per-question flips and real held-out examples, read from the score files and the per-question
score tables (results/scores/epoch_<n>.json and .parquet)."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from distill.dataset.diagnostics import markdown_table
from distill.report.figures import HEADLINE, excerpt, fmt, group, stat, top_counts, value, with_ci
from distill.ruler.stats import flips

MAX_FLIPS = 15  # rows listed; the counts above the table are always complete
ANSWER_CHARS = 300  # an example's answers are cut to this many characters
REASON_KINDS = (("call_errors", "tool-call error (lenient)"), ("strict_errors", "tool-call error (exact)"),
                ("failures", "agent-loop failure"), ("answer_reasons", "not an answer"),
                ("judge_reasons", "judge finding"))


def epoch_table(scores: dict[int, dict], losses: dict[int, dict], selection: dict) -> str:
    """One row per epoch from epoch 0: task metrics beside the training losses."""
    marks = {selection["task_epoch"]: ["task pick"]}
    marks.setdefault(selection["eval_loss_epoch"], []).append("eval-loss pick")
    rows = []
    for e in sorted(set(scores) | set(losses)):
        s, r = scores.get(e), losses.get(e, {})
        rows.append({"epoch": e, "tool_call [95% CI]": with_ci(stat(s, "tool_call")),
                     "strict": fmt(value(s, "tool_call_strict")), "answered": fmt(value(s, "answered")),
                     "grounded": fmt(value(s, "grounded")), "judge [95% CI]": with_ci(stat(s, "judge")),
                     "eval loss": fmt(r.get("eval_loss")), "train loss": fmt(r.get("train_loss")),
                     "train tok/s": "n/a" if r.get("tokens_per_second") is None else f"{r['tokens_per_second']:.0f}",
                     "pick": ", ".join(marks.get(e, []))})
    return markdown_table(pd.DataFrame(rows))


def category_table(scores: dict[int, dict]) -> str:
    """Categories × epochs, each cell `tool_call / answered / grounded / judge`, with n per category."""
    cats = sorted({c for s in scores.values() for c in s.get("per_category", {})})
    last = scores[max(scores)]
    rows = [{"category": c, "n": group(last, c).get("n"),
             **{f"epoch {e}": " / ".join(fmt(value(scores[e], m, c)) for m in HEADLINE) for e in sorted(scores)}}
            for c in cats]
    return markdown_table(pd.DataFrame(rows))


def ruler_section(scores: dict[int, dict], chosen: int, table: pd.DataFrame, paraphrased_by_teacher: int,
                  scoring: dict) -> str:
    """Strict vs lenient tool-call per category, and what the lenient-only passes needed, measured."""
    pick = scores[chosen]
    groups = [*sorted(pick.get("per_category", {})), None]
    rows = pd.DataFrame([{
        "category": c or "(all)", "n": group(pick, c).get("n"),
        "strict": fmt(value(pick, "tool_call_strict", c)), "lenient": fmt(value(pick, "tool_call", c)),
        "gap": fmt((value(pick, "tool_call", c) or 0) - (value(pick, "tool_call_strict", c) or 0)),
    } for c in groups])
    lenient_only = table[table["tool_call"] & ~table["tool_call_strict"]]
    if lenient_only.empty:
        return f"At epoch {chosen} both rulers agree on every question.\n\n" + markdown_table(rows)
    used = Counter(x for cell in lenient_only["leniencies"] for x in json.loads(cell))
    text = (f"At epoch {chosen} the lenient ruler accepts {len(lenient_only)} question(s) that exact match "
            f"rejects. The leniencies they needed: {top_counts(dict(used), k=len(used))}.")
    same = lenient_only["paraphrase_same_docs"].dropna()
    if len(same):
        n_same = int(same.astype(bool).sum())
        text += (f" Of the {len(same)} with a paraphrased `search_docs` query (accepted when BM25 returns the gold "
                 f"query's top {scoring['query_top_k']} passages or the content words' Jaccard similarity is ≥ "
                 f"{scoring['query_jaccard']}), BM25 returns the gold query's passages for {n_same}")
        text += (", so exact match undercounts tool use there." if n_same == len(same) else
                 f"; {len(same) - n_same} pass on shared words alone.")
    if paraphrased_by_teacher:
        text += (f" The teacher's own traces paraphrase {paraphrased_by_teacher} `search_docs` queries (the "
                 f"query_paraphrase fault), so the student is trained on paraphrases too.")
    return text + "\n\n" + markdown_table(rows)


def taxonomy_table(scores: dict[int, dict]) -> str:
    """Counts per reason and epoch, over every reason taxonomy; reasons that never occur left out."""
    rows = []
    for key, kind in REASON_KINDS:
        reasons = dict.fromkeys(r for s in scores.values() for r in group(s).get(key, {}))
        for reason in reasons:
            counts = {f"epoch {e}": group(scores[e]).get(key, {}).get(reason, 0) for e in sorted(scores)}
            if any(counts.values()):
                rows.append({"kind": kind, "reason": reason, **counts})
    return markdown_table(pd.DataFrame(rows))


def flips_section(tables: dict[int, pd.DataFrame], selection: dict, judge_flip: float) -> str:
    """Questions whose verdict changed from epoch 0 to the task pick, and between the two picks: the
    flips of distill.ruler.stats, as results/compare/ counts them."""
    task, loss = selection["task_epoch"], selection["eval_loss_epoch"]
    lines = []
    if 0 in tables:
        base = flips(tables[0], tables[task], judge_flip)
        for metric, what in (("tool_call", "a correct tool call"), ("answered", "an answer")):
            moved = base[base[f"flip_{metric}"]]
            gained = int(moved[f"{metric}_b"].sum())
            lines.append(f"Epoch 0 → epoch {task}: {gained} question(s) gained {what}, "
                         f"{len(moved) - gained} lost one.")
    if task == loss:
        return "\n\n".join(lines + [f"Both picks are epoch {task}, so nothing flips between them."])
    diff = flips(tables[loss], tables[task], judge_flip)
    diff = diff[diff["flip_tool_call"]]
    right = int(diff["tool_call_b"].sum())
    lines.append(f"Eval-loss pick (epoch {loss}) → task pick (epoch {task}): {right} question(s) right only at "
                 f"epoch {task}, {len(diff) - right} right only at epoch {loss}.")
    if diff.empty:
        return "\n\n".join(lines)
    shown = diff.sort_values(["tool_call_b", "category", "trace_id"])
    shown[f"epoch {loss}"] = shown["tool_call_a"].map({True: "ok", False: "wrong"})
    shown[f"epoch {task}"] = shown["tool_call_b"].map({True: "ok", False: "wrong"})
    cols = ["trace_id", "category", "question", f"epoch {loss}", f"epoch {task}"]
    return "\n\n".join(lines + [markdown_table(shown[cols], max_rows=MAX_FLIPS, width=70)])


def _quote(text: str) -> str:
    return excerpt(text, ANSWER_CHARS)


def _verdict_line(r: pd.Series) -> str:
    call = "tool call ok" if r["tool_call"] else f"tool call wrong (`{r['call_error']}`: {r['call_error_detail']})"
    answered = "answered" if r["answered"] else f"**not an answer** (`{r['answer_reason']}`)"
    unsupported = json.loads(r["ungrounded"])
    grounded = ("grounded" if r["grounded"] else
                f"not grounded (unsupported: {', '.join(unsupported)})" if unsupported else "not grounded")
    reasons = "; ".join(f"`{c}` {d}" for c, d in zip(json.loads(r["judge_reasons"]), json.loads(r["judge_details"])))
    failed = f" (grading failed: `{r['judge_error']}`)" if isinstance(r["judge_error"], str) else ""
    return f"{call}; {answered}; {grounded}; judge {fmt(r['judge'])}{failed}" + (f" ({reasons})" if reasons else "")


def examples_section(table: pd.DataFrame, chosen: int, per_category: int) -> str:
    """Real held-out questions at the chosen epoch, per category: the best and the worst judged first
    (among equals, an answer before a non-answer for the best, the other way for the worst), so a
    reader sees what the figures mean."""
    blocks = []
    keys = ["judge", "answered", "trace_id"]
    for category, part in table.groupby("category", sort=True):
        best = part.sort_values(keys, ascending=[False, False, True])
        worst = part.sort_values(keys, ascending=[True, True, True])
        picks = pd.concat([best.head(1), worst.head(1), best]).drop_duplicates("trace_id")
        for _, r in picks.head(per_category).iterrows():
            blocks.append(f"**{category}** · `{r['trace_id']}`\n\n"
                          f"- Question: {_quote(r['question'])}\n- Gold answer: {_quote(r['gold_answer'])}\n"
                          f"- Student (epoch {chosen}): {_quote(r['pred_answer'])}\n- Verdict: {_verdict_line(r)}")
    return "\n\n".join(blocks) or "_(no held-out questions)_"
