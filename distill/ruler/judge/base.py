"""The judge interface: what a judge returns and what the scorer asks of it (docs/design.md, "Judge").

`grade(row)` takes a row with question, category, model_id, ticker, gold_answer, gold_calls (JSON text),
tool_outputs (the student's tool results, as strings) and pred_answer, and returns a JudgeResult. Both
judges (rubric.py, anthropic.py) implement it; the factory is the package's `make_judge`. The scorer
adds `answer_check`, its own verdict on whether pred_answer is an answer (`answer_check`), so a judge
never disagrees with the scorer about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from distill.ruler.answers import ANSWER_REASONS, AnswerCheck, check_answer

JUDGE_REASONS = (*ANSWER_REASONS, "missing_number", "wrong_number", "missing_fact", "wrong_entity",
                 "registry_contradiction")
# Why a grading produced no score (a paid judge only): the request failed after the SDK's retries, the
# reply called no grading tool, its input was not {score: number, rationale: string}, or the score was
# outside 0–1.
GRADING_ERRORS = ("api_error", "no_grade_call", "bad_grade", "score_out_of_range")


@dataclass(frozen=True)
class JudgeResult:
    """A 0–1 score, the JUDGE_REASONS found (empty when nothing was wrong) and one detail per reason.

    A judge that calls a model also fills `model`, `usage` (USAGE_FIELDS of distill.claude.usage, as the
    response reported them) and `rationale`; a failed grading has `score` None, `error` from
    GRADING_ERRORS and, in `rationale`, what was wrong with the reply.
    """

    score: float | None
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    rationale: str | None = None
    error: str | None = None
    model: str | None = None
    usage: dict[str, int] = field(default_factory=dict)


class Judge(Protocol):
    """What the scorer needs: a name for the score file and a per-row grade. A judge that waits on a
    server may also say how many gradings can be in flight at once (`concurrency`; default 1)."""

    name: str

    def grade(self, row: dict[str, Any]) -> JudgeResult: ...


def answer_check(row: dict[str, Any]) -> AnswerCheck:
    """The scorer's verdict on whether the row's answer is one (row["answer_check"]), or, for a judge
    called on its own, check_answer's with the schema's settings. A non-answer scores 0 and is never
    sent to a paid judge."""
    given = row.get("answer_check")
    return given if isinstance(given, AnswerCheck) else \
        check_answer(row.get("pred_answer"), row.get("question") or "", row.get("category"))
