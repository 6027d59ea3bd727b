"""The assistant's modes and fallback rule, and the serving evaluation on a small tree the test builds."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pandas as pd
import pytest
import yaml

from distill.config import load
from distill.serving.assistant import Assistant, Attempt, SimulatorTeacher, StudentBackend, fallback_reason
from distill.io import dumps
from distill.ruler.judge import make_judge
from distill.student.predict import load_student, predict
from distill.dataset.scenarios import build_grid
from distill.ruler.scoring import score_frame
from distill.serving.serve import StudentEngine
from distill.serving.serve_eval import consistency, render_markdown, run_modes, summarise
from distill.teacher.offline import OfflineTeacher
from distill.workbench.tools import TOOLS, execute

ROOT = Path(__file__).resolve().parents[1]
CFG = load(ROOT / "config.yaml")
GRID = build_grid(CFG)
PERF = GRID[GRID["category"] == "performance"].iloc[0].to_dict()


class Fixed:
    """A backend that always gives the same attempt (the student's side of the fallback rule under test)."""

    name = "student"

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt

    def run(self, question: str, scenario: dict | None = None, on_event=None) -> Attempt:
        return self.attempt


def student_attempt(answer: str) -> Attempt:
    calls = json.loads(PERF["gold_calls"])
    return Attempt("student", [], answer, calls, [execute(c["name"], c["arguments"]) for c in calls], "end_turn")


def cited(attempt: Attempt) -> str:
    """An answer that cites the run's real total return."""
    return f"It returned {json.loads(attempt.tool_outputs[0])['total_return']} in total."


def test_fallback_keeps_a_grounded_answer_and_sends_the_rest_to_the_teacher() -> None:
    teacher = SimulatorTeacher(CFG["teacher"], CFG["seed"], GRID)
    grounded = student_attempt("")
    grounded.answer = cited(grounded)
    cases = {
        "grounded": (grounded, "student", None),
        "empty": (student_attempt(""), "teacher", "not_an_answer:no_answer"),
        "markup": (student_attempt('<tool_response>{"a": 1}</tool_response>'), "teacher",
                   "not_an_answer:markup_in_answer"),
        "invented": (student_attempt("It returned 41.7% in total."), "teacher", "ungrounded_number"),
    }
    for name, (attempt, backend, reason) in cases.items():
        assert fallback_reason(attempt, PERF["question"]) == reason, name
        answer = Assistant(Fixed(attempt), teacher).answer(PERF["question"], "fallback")
        assert (answer.backend, answer.reason) == (backend, reason), name
        assert answer.attempts[0] is attempt and len(answer.attempts) == (1 if backend == "student" else 2)
    teacher_only = Assistant(None, teacher).answer(PERF["question"], "teacher")
    expected = OfflineTeacher(CFG["teacher"], CFG["seed"]).play(PERF)
    assert teacher_only.text == expected.final_answer and teacher_only.attempt.tool_outputs == expected.tool_outputs
    assert teacher_only.attempt.cost_usd == 0.0  # the simulator costs nothing


def test_fallback_goes_to_the_teacher_when_the_student_server_is_down() -> None:
    down = StudentBackend(f"http://127.0.0.1:{free_port()}", max_new_tokens=16, max_generations=2)
    answer = Assistant(down, SimulatorTeacher(CFG["teacher"], CFG["seed"], GRID)).answer(PERF["question"], "fallback")
    assert (answer.backend, answer.reason) == ("teacher", "student_error:APIConnectionError") and answer.text


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_simulator_answers_only_grid_questions() -> None:
    with pytest.raises(KeyError, match="scenario grid"):
        SimulatorTeacher(CFG["teacher"], CFG["seed"], GRID).run("What is the weather like?")


@pytest.mark.slow
def test_served_answers_equal_the_predictions_of_the_same_model(base_model_dir) -> None:
    """A small tree built here (grid questions, the untrained base as the adapter-less epoch 0, float32):
    prediction (batched, in-process) and the assistant through the HTTP server give the same turns, and the
    serving evaluation's figures agree with the score table of those predictions."""
    picked = GRID.drop_duplicates("category").reset_index(drop=True)  # one question per category
    student = {"quantization": "none", "dtype": "float32", "autocast": None}
    pcfg = {**CFG["predict"], "max_new_tokens": 40, "max_turns": 2}
    model, tokenizer = load_student(base_model_dir, None)
    records = predict(model, tokenizer, picked[["question"]].assign(trace_id=picked["scenario_id"]).to_dict("records"),
                      TOOLS, execute, pcfg["max_turns"], pcfg["max_new_tokens"], batch_size=4)
    gold = [OfflineTeacher(CFG["teacher"], CFG["seed"]).play(s).final_answer for s in picked.to_dict("records")]
    predictions = pd.DataFrame({
        "trace_id": picked["scenario_id"], **{c: picked[c] for c in ("category", "model_id", "ticker", "question",
                                                                     "gold_calls")},
        "gold_answer": gold, "pred_calls": [dumps(r["pred_calls"]) for r in records],
        "pred_answer": [r["pred_answer"] for r in records], "tool_outputs": [dumps(r["tool_outputs"]) for r in records],
        "failure": [r["failure"] for r in records]})
    scores = score_frame(predictions, make_judge(CFG["judge"]), CFG["scoring"])

    engine = StudentEngine(model, tokenizer, "base")
    scenarios = {r["scenario_id"]: r for r in picked.to_dict("records")}
    teacher = SimulatorTeacher(CFG["teacher"], CFG["seed"], GRID)
    rows = run_modes(engine, scores, scenarios, teacher, {**CFG, "predict": pcfg})
    agreement = consistency(rows, scores)
    assert agreement["all_agree"], agreement["differing"]
    summary = summarise(rows)
    assert summary["student"]["answered_locally"] == 1.0 and summary["teacher"]["answered_locally"] == 0.0
    assert summary["student"]["judge"] == pytest.approx(scores["judge"].mean())
    fallback = rows[rows["mode"] == "fallback"].set_index("trace_id")
    taught = rows[rows["mode"] == "teacher"].set_index("trace_id")
    for trace_id, row in fallback.iterrows():  # each fallback answer is the student's or the teacher's, by the rule
        source = taught if row["fallback_reason"] else rows[rows["mode"] == "student"].set_index("trace_id")
        assert row["pred_answer"] == source.loc[trace_id, "pred_answer"]
    assert "Consistency with the scores" in render_markdown(summary, agreement, {
        "scores": "s", "adapter": "a", "base": "b", "teacher_backend": "offline", "teacher_model": "m", "machine": "x"})
