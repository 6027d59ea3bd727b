"""The scenario grid's gold plans and the offline teacher SIMULATOR's traces and injected faults."""

from __future__ import annotations

import json

import pytest
import yaml

from distill.dataset.grounding import ungrounded_numbers
from distill.dataset.scenarios import build_grid
from distill.teacher import make_teacher
from distill.teacher.offline import SPLIT_BOILERPLATE
from distill.workbench import tools
from distill.workbench.registry import get_model

CONFIG = yaml.safe_load(open("config.yaml"))
NO_FAULTS = {"ungrounded_number": 0.0, "split_boilerplate": 0.0, "query_paraphrase": 0.0}
ALL_FAULTS = {"ungrounded_number": 1.0, "split_boilerplate": 1.0, "query_paraphrase": 1.0}


@pytest.fixture(scope="module")
def grid():
    return build_grid(CONFIG)


def _teacher(faults: dict):
    return make_teacher({**CONFIG, "teacher": {**CONFIG["teacher"], "faults": faults}})


def test_grid_skips_illegal_pairs_and_ids_are_unique(grid) -> None:
    assert grid["scenario_id"].is_unique
    for row in grid.itertuples():
        assert row.ticker in get_model(row.model_id).tickers
    options_rows = grid[grid["template_id"] == "method_options"]
    assert set(options_rows["model_id"]) == {m for m in CONFIG["scenarios"]["models"] if get_model(m).options}


def test_methodology_questions_saturate(grid) -> None:
    method = grid[grid["category"] == "methodology"]
    # 26 questions (5 templates x 5 models + the options one) asked once per ticker, each its own gold plan
    assert method["question"].nunique() == method["gold_calls"].nunique() == 26 < len(method) / 4


def test_gold_plans_run_cleanly_and_leave_costs_at_the_tool_default(grid) -> None:
    for row in grid.itertuples():
        calls = json.loads(row.gold_calls)
        for call in calls:
            assert not tools.is_error(tools.execute(call["name"], call["arguments"])), (row.question, call)
        if row.category == "performance":
            assert set(calls[0]["arguments"]) == {"model_id", "ticker", "start", "end"}
        if row.category == "what_if":
            base, alt = (c["arguments"] for c in calls)
            changed = set(alt) - set(base)
            assert len(changed) == 1 and changed <= {"fee_bps", "slippage_bps"}, row.question
            assert f"{alt[changed.pop()]:g} bps" in row.question


def test_simulator_without_faults_answers_from_the_tools(grid) -> None:
    teacher = _teacher(NO_FAULTS)
    for sc in grid.groupby("category").head(3).to_dict("records"):
        trace = teacher.play(sc)
        assert trace.injected_faults == []
        assert [c for m in trace.messages for c in m.get("tool_calls", [])] == json.loads(sc["gold_calls"])
        assert ungrounded_numbers(trace.final_answer, trace.tool_outputs) == [], trace.final_answer
        assert SPLIT_BOILERPLATE not in trace.final_answer


def test_simulator_faults_are_injected_and_recorded(grid) -> None:
    teacher = _teacher(ALL_FAULTS)
    rule_method = grid[(grid["category"] == "methodology") & (grid["model_kind"] == "rule")
                       & (grid["template_id"] == "method_validation")].iloc[0].to_dict()
    trace = teacher.play(rule_method)
    assert set(trace.injected_faults) == {"query_paraphrase", "split_boilerplate", "ungrounded_number"}
    assert SPLIT_BOILERPLATE in trace.final_answer
    assert ungrounded_numbers(trace.final_answer, trace.tool_outputs)  # the invented figure is caught
    query = trace.messages[2]["tool_calls"][0]["arguments"]["query"]
    assert query != json.loads(rule_method["gold_calls"])[0]["arguments"]["query"]


def test_simulator_is_deterministic(grid) -> None:
    sc = grid.iloc[5].to_dict()
    faults = CONFIG["teacher"]["faults"]
    assert _teacher(faults).play(sc) == _teacher(faults).play(sc)
