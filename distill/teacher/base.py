"""What every teacher backend provides, and the loop that turns a grid into traces.

A backend plays the assistant over the scenarios and returns one `Trace` per scenario: the full
conversation (tool calls with arguments as objects, real tool results, final answer), the token usage
it took and, when a request still failed after the SDK's retries, the error. The offline simulator and
the Claude backend fill the same interface, so everything downstream is unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol

import pandas as pd

from distill.claude.usage import USAGE_FIELDS
from distill.io import dumps

log = logging.getLogger(__name__)

# The house style, versioned beside the code (rules/common.smk PACKAGE_DATA: editing it re-runs the teacher).
SYSTEM_PROMPT = (resources.files("distill.teacher") / "system_prompt.md").read_text(encoding="utf-8").strip()


class TeacherFailed(RuntimeError):
    """More scenarios ended without a trace than `teacher.anthropic.max_missing_share` allows."""


@dataclass
class Trace:
    messages: list[dict]
    final_answer: str
    tool_outputs: list[str]
    injected_faults: list[str] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_FIELDS, 0))
    requests: int = 0  # Messages requests the conversation took (cache hits included: what it cost once)
    error: str | None = None  # the request that still failed after retries; the trace is then unusable


class Teacher(Protocol):
    backend: str  # recorded in every trace, e.g. "offline-simulator"
    model: str
    batch_api: bool  # traces made through Message Batches (priced at the batch discount)
    max_missing_share: float  # share of scenarios that may fail before the stage fails

    def play_all(self, scenarios: list[dict]) -> list[Trace]:
        """One trace per scenario, in the order given (never in the order they finished)."""
        ...


def run_grid(scenarios: pd.DataFrame, teacher: Teacher) -> pd.DataFrame:
    """Play every scenario; the trace id is the scenario id so reruns line up row for row.

    Scenarios whose request failed keep their row with `teacher_error` set (grounding rejects them
    with that reason); when their share exceeds `teacher.max_missing_share` nothing is returned.
    """
    records = scenarios.to_dict("records")
    traces = teacher.play_all(records)
    rows = [{
        **sc,
        "trace_id": sc["scenario_id"],
        "messages": dumps(trace.messages),
        "final_answer": trace.final_answer,
        "tool_outputs": dumps(trace.tool_outputs),
        "backend": teacher.backend,
        "teacher_model": teacher.model,
        "injected_faults": dumps(trace.injected_faults),
        **{key: trace.usage.get(key, 0) for key in USAGE_FIELDS},
        "requests": trace.requests,
        "batch_api": teacher.batch_api,
        "teacher_error": trace.error,
    } for sc, trace in zip(records, traces, strict=True)]
    failed = [row["trace_id"] for row in rows if row["teacher_error"]]
    if failed:
        log.warning("teacher: %d of %d scenarios missing (request failed after retries), e.g. %s: %s",
                    len(failed), len(rows), failed[0], next(r["teacher_error"] for r in rows if r["teacher_error"]))
        if len(failed) > teacher.max_missing_share * len(rows):
            raise TeacherFailed(f"teacher: {len(failed)} of {len(rows)} scenarios failed "
                                f"(teacher.anthropic.max_missing_share = {teacher.max_missing_share}); "
                                f"no traces written. Failed: {', '.join(failed[:10])}")
    # A string column even when no request failed (an all-null column would have no type for DuckDB).
    return pd.DataFrame(rows).astype({"teacher_error": "string"})
