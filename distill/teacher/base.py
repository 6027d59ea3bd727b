"""What every teacher backend provides, and the loop that turns a grid into traces.

A backend plays the assistant on one scenario and returns a `Trace`: the full conversation (tool
calls with arguments as objects, real tool results, final answer). The offline simulator fills this
today; the Claude backend fills the same interface.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from distill.io import dumps

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are the assistant of a trading-models workbench that holds five quant models with reproducible "
    "backtests. Answer by calling the tools: get_model_info for a model's data and parameters, "
    "run_backtest for results (state the period and the costs used), search_docs for methodology. "
    "Cite only numbers the tools returned, as percentages with one decimal where they are fractions. "
    "Be concise: two or three sentences."
)


@dataclass
class Trace:
    messages: list[dict]
    final_answer: str
    tool_outputs: list[str]
    injected_faults: list[str] = field(default_factory=list)
    cost_usd: float = 0.0


class Teacher(Protocol):
    backend: str  # recorded in every trace, e.g. "offline-simulator"
    model: str

    def play(self, scenario: dict) -> Trace: ...


def run_grid(scenarios: pd.DataFrame, teacher: Teacher) -> pd.DataFrame:
    """Play every scenario; the trace id is the scenario id so reruns line up row for row."""
    rows = []
    for i, sc in enumerate(scenarios.to_dict("records")):
        trace = teacher.play(sc)
        rows.append({
            **sc,
            "trace_id": sc["scenario_id"],
            "messages": dumps(trace.messages),
            "final_answer": trace.final_answer,
            "tool_outputs": dumps(trace.tool_outputs),
            "backend": teacher.backend,
            "teacher_model": teacher.model,
            "injected_faults": dumps(trace.injected_faults),
            "cost_usd": trace.cost_usd,
        })
        if (i + 1) % 50 == 0:
            log.info("teacher: %d/%d scenarios", i + 1, len(scenarios))
    return pd.DataFrame(rows)
