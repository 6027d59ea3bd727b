"""The served student measured on the held-out questions, in each assistant mode (results/serve/eval.md).

The real HTTP server runs on localhost with the chosen adapter; the assistant (distill.serving.assistant)
answers every held-out question that the chosen epoch's predictions answered, one question at a time
(as a user would ask them), in each of MODES. Every answer is scored by the scorer itself
(`distill.ruler.scoring.score_question`: answered, grounded, judge, tool calls), so the figures are those of
results/scores for the same answers. Reported per mode: the share answered locally (by the student),
answered, answered-and-grounded, judge, latency p50/p95 per question on this machine, teacher calls and
teacher cost per 1,000 questions against teacher-only.

Consistency: greedy decoding gives the same turns for the same questions, so the student-only rows are
compared with results/scores/epoch_<chosen>.parquet question by question (calls, final turn, answered,
grounded, judge) and every disagreement is listed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from distill.serving.assistant import MODES, Answer, Assistant, Backend, StudentBackend, usage_cost
from distill.io import dumps
from distill.ruler.judge import Judge, make_judge
from distill.ruler.scoring import score_question
from distill.serving.serve import ServerThread, StudentEngine, make_app

log = logging.getLogger(__name__)
COMPARED = ("pred_calls", "pred_answer", "answered", "grounded", "judge")


def _scored(row: dict, answer: Answer, judge: Judge, cfg: dict) -> dict:
    """One assistant answer as a scored row, plus who answered, why, how long and at what cost."""
    attempt = answer.attempt
    failure = "turn_limit" if attempt.stop == "turn_limit" else None
    scored = score_question({**row, "pred_calls": dumps(attempt.tool_calls), "pred_answer": attempt.answer,
                             "tool_outputs": dumps(attempt.tool_outputs), "failure": failure}, judge, cfg["scoring"],
                            claims=cfg["claims"])
    student = answer.attempts[0] if answer.attempts[0].backend == "student" else None
    return {
        "mode": answer.mode, **{k: scored[k] for k in ("trace_id", "category", "question")},
        "backend": answer.backend, "fallback_reason": answer.reason,
        **{k: scored[k] for k in ("pred_answer", "pred_calls", "tool_call", "answered", "answer_reason", "grounded",
                                  "ungrounded", "judge", "judge_reasons")},
        "tool_outputs": dumps(attempt.tool_outputs),
        "seconds": answer.seconds,
        "student_input_tokens": student.usage["input_tokens"] if student else 0,
        "student_output_tokens": student.usage["output_tokens"] if student else 0,
        "teacher_calls": sum(a.backend == "teacher" for a in answer.attempts),
        "teacher_cost_usd": usage_cost(answer.attempts),
    }


def run_modes(engine: StudentEngine, questions: pd.DataFrame, scenarios: dict[str, dict], teacher: Backend,
              cfg: dict, host: str = "127.0.0.1", cache_dir: str | None = None) -> pd.DataFrame:
    """Every question in every mode through the real server (a free port on `host`); one row each.

    `questions`: score-table rows (question, gold, category...); `scenarios`: trace_id -> the scenario row
    (what the teacher simulator plays); `cfg`: seed, predict, scoring, judge, claims sections; `cache_dir`: Claude's
    response cache (a Claude judge needs it).
    """
    judge, rows = make_judge(cfg["judge"], cache_dir, cfg["claims"]), []
    with ServerThread(make_app(engine), host, 0) as server:
        log.info("student served at %s", server.url)
        student = StudentBackend(server.url, cfg["predict"]["max_new_tokens"], cfg["predict"]["max_turns"])
        assistant = Assistant(student, teacher, cfg["scoring"], cfg["claims"])
        for mode in MODES:
            for row in questions.to_dict("records"):
                answer = assistant.answer(row["question"], mode, scenarios[row["trace_id"]])
                rows.append(_scored(row, answer, judge, cfg))
            done = pd.DataFrame(rows[-len(questions):])
            log.info("%s: answered %.2f, locally %.2f, %.1fs", mode, done["answered"].mean(),
                     (done["backend"] == "student").mean(), done["seconds"].sum())
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> dict[str, Any]:
    """Per mode: share answered locally, answered, grounded, judge, latency, teacher calls and cost per 1,000."""
    out: dict[str, Any] = {}
    for mode in MODES:
        m = rows[rows["mode"] == mode]
        costs = m["teacher_cost_usd"]
        out[mode] = {
            "n": len(m),
            "answered_locally": float((m["backend"] == "student").mean()),
            "answered": float(m["answered"].mean()),
            "grounded": float(m["grounded"].mean()),  # answered and grounded (distill.ruler.scoring)
            "judge": float(m["judge"].mean()),
            "tool_call": float(m["tool_call"].mean()),
            "latency_p50_s": float(np.percentile(m["seconds"], 50)),
            "latency_p95_s": float(np.percentile(m["seconds"], 95)),
            "teacher_calls_per_1000": float(1000 * m["teacher_calls"].mean()),
            "teacher_cost_per_1000_usd": None if costs.isna().any() else float(1000 * costs.mean()),
            "fallback_reasons": {k: int(v) for k, v in m["fallback_reason"].dropna().value_counts().items()},
        }
    teacher_cost = out["teacher"]["teacher_cost_per_1000_usd"]
    for mode in MODES:
        cost = out[mode]["teacher_cost_per_1000_usd"]
        out[mode]["cost_vs_teacher_only"] = (cost / teacher_cost if cost is not None and teacher_cost else None)
    return out


def consistency(rows: pd.DataFrame, scores: pd.DataFrame) -> dict[str, Any]:
    """Student-only rows against the chosen epoch's score table, question by question (COMPARED)."""
    student = rows[rows["mode"] == "student"].set_index("trace_id")
    ref = scores.set_index("trace_id").loc[student.index]
    same: dict[str, int] = {}
    differing: list[dict] = []
    for column in COMPARED:
        a, b = student[column], ref[column]
        if column == "pred_calls":
            a, b = a.map(json.loads), b.map(json.loads)
        if column == "pred_answer":  # a turn that did not parse: prediction keeps "", the server the text
            keep = ref["failure"].isna()
            a, b = a[keep], b[keep]
        equal = [x == y for x, y in zip(a, b)]
        same[column] = int(sum(equal))
        differing += [{"trace_id": t, "column": column, "served": x, "scores": y}
                      for t, x, y, e in zip(a.index, a, b, equal) if not e]
    reference = {m: float(ref[m].mean()) for m in ("answered", "grounded", "judge", "tool_call")}
    return {"n": len(student), "agree": same, "differing": differing, "all_agree": not differing,
            "reference": reference}


def _f(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(summary: dict, agreement: dict, meta: dict) -> str:
    """results/serve/eval.md."""
    simulator = meta["teacher_backend"] == "offline"
    lines = [
        "# The served student: student only, teacher only, and fallback",
        "",
        f"{summary['student']['n']} held-out questions (those of `{meta['scores']}`), asked one at a time through "
        f"the real HTTP server (`python -m distill serve`, Anthropic Messages API) on {meta['machine']}, "
        f"serving `{meta['adapter']}` on `{meta['base']}`. Teacher: "
        + ("the offline teacher **simulator** (a deterministic stand-in for Claude: it costs nothing and "
           "answers instantly, so teacher cost is 0 and its latency is not Claude's; it replays the held-out "
           "scenarios the dataset was built from, so its figures are the gold's, before corrections, not Claude's)." if simulator else
           f"Claude (`{meta['teacher_model']}`), cost from the usage fields and config `pricing`."),
        "Fallback: the student answers first; when its final turn is not an answer (distill.ruler.answers) or cites a "
        "number its own tool outputs do not support (distill.dataset.grounding), the teacher answers instead.",
        "",
        "| mode | answered locally | answered | answered and grounded | judge | tool-call | latency p50 (s) | "
        "latency p95 (s) | teacher calls / 1k | teacher cost / 1k (USD) | cost vs teacher only |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        s = summary[mode]
        lines.append(
            f"| {mode} | {_f(s['answered_locally'])} | {_f(s['answered'])} | {_f(s['grounded'])} | {_f(s['judge'])} | "
            f"{_f(s['tool_call'])} | {_f(s['latency_p50_s'], 1)} | {_f(s['latency_p95_s'], 1)} | "
            f"{s['teacher_calls_per_1000']:.0f} | {_f(s['teacher_cost_per_1000_usd'], 4)} | "
            f"{_f(s['cost_vs_teacher_only'])} |")
    ref = agreement["reference"]
    lines.append(f"| prediction (`{meta['scores']}`, batched) | 1.00 | {_f(ref['answered'])} | {_f(ref['grounded'])} | "
                 f"{_f(ref['judge'])} | {_f(ref['tool_call'])} | | | 0 | | |")
    reasons = summary["fallback"]["fallback_reasons"]
    lines += ["", "Why fallback questions went to the teacher: "
              + (", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) if reasons else "none") + "."]
    if simulator:
        lines += ["", "Cost: the simulator costs $0, so every cost figure is 0 and `cost vs teacher only` is "
                  "undefined; what fallback saves is the teacher calls it avoids (teacher calls / 1k). With "
                  "`teacher.backend: anthropic` the same rule prices Claude's usage."]
    lines += ["", "## Consistency with the scores of the same adapter", "",
              f"Student-only answers against `{meta['scores']}` (greedy decoding: the same questions should get "
              f"the same turns): " + ", ".join(f"{c} {agreement['agree'][c]}/{agreement['n']}" for c in COMPARED)
              + " (pred_answer compared where prediction's turns parsed)."]
    if agreement["differing"] and meta.get("autocast"):
        lines += ["", f"Why they differ: the served and the predicting student are both cast to {meta['autocast']} "
                  "(config `student.autocast`, distill.student.base_model.for_inference), and low-precision matmuls round "
                  "differently for different batch shapes (prediction decodes all questions together, the server "
                  "one request at a time), so greedy near-ties can flip and a turn continues differently from "
                  "there. In float32 the two paths give identical turns (tests/test_assistant.py, slow)."]
    if agreement["differing"]:
        lines += ["", "| trace_id | column | served | scores |", "|---|---|---|---|"]
        for d in agreement["differing"]:
            cell = [str(v).replace("|", "\\|").replace("\n", " ")[:120] for v in (d["served"], d["scores"])]
            lines.append(f"| {d['trace_id']} | {d['column']} | {cell[0]} | {cell[1]} |")
    else:
        lines += ["", "Every compared column agrees for every question."]
    return "\n".join(lines) + "\n"
