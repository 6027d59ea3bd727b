"""The Claude judge (`judge.backend: anthropic`): reference-guided single-answer grading through a tool.

Claude sees the question, the student's own tool outputs, the gold (reference) answer and the candidate
answer, with the versioned grading prompt `judge_prompt.md` (a rule input of scoring: editing it
re-scores), and must call the `grade` tool with {score: 0–1, rationale}. A tool call rather than text
because its input is JSON the API validates against a schema, so a score is never parsed out of prose.

Deterministic where the model allows: sampling parameters are sent only when config sets them (some
models answer 400 to a non-default temperature), and `tool_choice` forces the grading tool only with
`force_tool` (some models refuse a forced tool_choice). Every response goes through the teacher's
content-addressed cache (`<cache>/anthropic/`, shared by all runs), so re-scoring the same predictions
costs nothing; a malformed reply is kept out of the cache and asked again on the next run.

Failures are recorded, never scored: a non-answer (distill.ruler.answers) scores 0 without a request; a reply
with no `grade` call, a bad input or a score outside 0–1, or a request that still fails after the SDK's
retries (408, 409, 429, 5xx, 529, connection), gives score None with a GRADING_ERRORS reason. A request the API
refuses as malformed (400, 401, 403, 404) is a configuration error and stops the stage.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

import anthropic

from distill.claude.cache import cached, message_sender, response_cache
from distill.claude.client import describe_error, make_client
from distill.claude.usage import USAGE_FIELDS, add_usage
from distill.ruler.judge.base import JudgeResult, answer_check

log = logging.getLogger(__name__)

PROMPT = (resources.files("distill.ruler.judge") / "judge_prompt.md").read_text(encoding="utf-8")
GRADE_TOOL = {
    "name": "grade",
    "description": "Record the grade of the candidate answer against the reference answer.",
    "input_schema": {
        "type": "object",
        "properties": {
            "score": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "0 to 1: share of the reference's key facts stated correctly, "
                                     "wrong facts counted against."},
            "rationale": {"type": "string", "description": "One or two sentences: the facts missing or wrong."},
        },
        "required": ["score", "rationale"],
    },
}
# Errors the SDK retries, which a later run may cure: recorded on the row. Any other API error (400, 401,
# 403, 404, ...) means the request or the configuration is wrong for every row: it stops the stage.
TRANSIENT = (anthropic.APIConnectionError, anthropic.RequestTimeoutError, anthropic.ConflictError,
             anthropic.RateLimitError, anthropic.InternalServerError)


def request_params(acfg: dict) -> dict:
    """Every request field but `messages`, from the `judge.anthropic` config section."""
    params = {"model": acfg["model"], "max_tokens": acfg["max_tokens"], "system": PROMPT, "tools": [GRADE_TOOL],
              **acfg.get("sampling", {})}
    if acfg["force_tool"]:
        params["tool_choice"] = {"type": "tool", "name": GRADE_TOOL["name"]}
    return params


def grading_message(row: dict[str, Any]) -> str:
    """The user turn: question, the student's tool outputs, reference and candidate, each in its tag."""
    outputs = "\n".join(f'<output index="{i}">\n{o if isinstance(o, str) else json.dumps(o)}\n</output>'
                        for i, o in enumerate(row.get("tool_outputs") or [], start=1))
    return (f"<question>\n{row.get('question') or ''}\n</question>\n"
            f"<tool_outputs>\n{outputs}\n</tool_outputs>\n"
            f"<reference_answer>\n{row.get('gold_answer') or ''}\n</reference_answer>\n"
            f"<candidate_answer>\n{row.get('pred_answer') or ''}\n</candidate_answer>")


def parse_grade(response: dict) -> tuple[float | None, str, str | None]:
    """(score, rationale, None) from a well-formed reply, else (None, what was wrong, GRADING_ERRORS reason)."""
    blocks = response.get("content") or []
    call = next((b for b in blocks if b.get("type") == "tool_use" and b.get("name") == GRADE_TOOL["name"]), None)
    if call is None:
        text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text").strip()
        return None, f"stop_reason {response.get('stop_reason')!r}, no grade call; text {text[:200]!r}", "no_grade_call"
    grade = call.get("input")
    score = grade.get("score") if isinstance(grade, dict) else None
    rationale = grade.get("rationale") if isinstance(grade, dict) else None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not isinstance(rationale, str):
        return None, f"grade input is not {{score: number, rationale: string}}: {json.dumps(grade)[:200]}", "bad_grade"
    if not 0 <= score <= 1:
        return None, f"score {score} is outside 0–1", "score_out_of_range"
    return float(score), rationale.strip(), None


class ClaudeJudge:
    """Claude grades each answer against the reference (module docstring); `client` is an
    `anthropic.Anthropic` (made from config, key from ANTHROPIC_API_KEY, when None)."""

    name = "anthropic"

    def __init__(self, acfg: dict, cache_dir: str | Path, client: Any = None) -> None:
        self.model = acfg["model"]
        self.concurrency = acfg["concurrency"]
        self.params = request_params(acfg)
        self.stats: dict[str, int] = {}  # "requests" paid now, "hits" answered from the cache
        client = client or make_client(acfg["max_retries"], acfg["timeout_s"])
        self.send = cached(message_sender(client), response_cache(cache_dir), self.stats,
                           accept=lambda response: parse_grade(response)[2] is None)

    def grade(self, row: dict[str, Any]) -> JudgeResult:
        check = answer_check(row)
        if not check.answered:  # never paid for
            return JudgeResult(0.0, [check.reason], [check.detail])
        request = {**self.params, "messages": [{"role": "user", "content": grading_message(row)}]}
        try:
            response = self.send(request)
        except TRANSIENT as exc:
            log.warning("judge: grading failed after retries: %s", describe_error(exc))
            return JudgeResult(None, rationale=describe_error(exc), error="api_error", model=self.model)
        usage = dict.fromkeys(USAGE_FIELDS, 0)
        add_usage(usage, response.get("usage"))
        score, rationale, error = parse_grade(response)
        if error:
            log.warning("judge: malformed grading reply (%s): %s", error, rationale)
        return JudgeResult(score, rationale=rationale, error=error, model=self.model, usage=usage)
