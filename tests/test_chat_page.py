"""The workbench chat page in a real headless Chromium (tests/browser), against the real student server.

The page must show what the assistant does: the browser's answer, backend, reason and tool calls are
compared with the assistant run directly (distill.serving.assistant) on the same server, and the teacher's
with the offline simulator's own trace. Skipped with the reason where no browser can start.
"""
from __future__ import annotations

import copy
import json
import time

import urllib.request
import pytest

from distill.serving.assistant import FALLBACK_REASONS, Assistant, StudentBackend
from distill.serving.chat_page import Workbench
from distill.serving.serve import ServerThread, make_app
from distill.teacher.offline import OfflineTeacher
from tests.browser import BrowserUnavailable, ask_on_page, launch
from tests.test_assistant import CFG, GRID
from tests.test_serve import engine, post  # noqa: F401  (the module's student: the embedded SmolLM2, untrained)

WHAT_IF = GRID[(GRID["category"] == "what_if") & (GRID["model_id"] == "sma_crossover")].iloc[0].to_dict()


def small_cfg(**teacher: str) -> dict:
    cfg = copy.deepcopy(CFG)
    cfg["predict"].update(max_new_tokens=24, max_turns=2)  # the untrained student: keep its turns short
    cfg["teacher"].update(teacher)
    return cfg


@pytest.fixture(scope="module")
def workbench(tmp_path_factory) -> Workbench:
    return Workbench.from_config(small_cfg(), tmp_path_factory.mktemp("results"))  # no scenarios.parquet: grid built


@pytest.fixture(scope="module")
def server(engine, workbench):  # noqa: F811
    with ServerThread(make_app(engine, workbench)) as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    try:
        with launch() as browser:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            yield tab
    except BrowserUnavailable as exc:
        print(exc)
        pytest.skip(str(exc))


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def shown_answer(text: str, stop: str) -> str:
    return text or f"(no answer: the loop stopped with {stop})"


def parsed_calls(shown: list[str]) -> list[tuple[str, dict]]:
    """The page's call lines `→ name({json})` as (name, arguments)."""
    calls = []
    for line in shown:
        name, arguments = line.removeprefix("→ ").split("(", 1)
        calls.append((name, json.loads(arguments.removesuffix(")"))))
    return calls


@pytest.mark.slow  # a real browser
def test_the_page_shows_the_fallback_exactly_as_the_assistant_answers(server, workbench, page) -> None:
    direct = Assistant(StudentBackend(server.url, 24, 2), workbench.teacher, CFG["scoring"], CFG["claims"]).answer(
        WHAT_IF["question"], "fallback", WHAT_IF)
    shown = ask_on_page(page, server.url, WHAT_IF["model_id"], WHAT_IF["ticker"], WHAT_IF["question"], "fallback")
    assert [a["backend"] for a in shown["attempts"]] == [a.backend for a in direct.attempts]
    assert (shown["verdict"]["backend"], shown["verdict"]["reason"]) == (direct.backend, direct.reason)
    for on_page, attempt in zip(shown["attempts"], direct.attempts):
        assert parsed_calls(on_page["calls"]) == [(c["name"], c["arguments"]) for c in attempt.tool_calls]
        assert on_page["results"] == [f"← {output}" for output in attempt.tool_outputs]
    if direct.reason:  # the untrained student is expected to fall back; the page says why
        assert direct.reason.split(":")[0] in FALLBACK_REASONS and direct.reason in shown["attempts"][0]["notes"][0]
        assert "fell back" in shown["verdict"]["line"]
    assert shown["verdict"]["answer"] == shown_answer(direct.text, direct.attempt.stop)


@pytest.mark.slow  # a real browser
def test_the_claude_toggle_plays_the_teacher_and_shows_every_call_and_result(server, page) -> None:
    trace = OfflineTeacher(CFG["teacher"], CFG["seed"]).play(WHAT_IF)
    shown = ask_on_page(page, server.url, WHAT_IF["model_id"], WHAT_IF["ticker"], WHAT_IF["question"], "teacher")
    (teacher,) = shown["attempts"]
    calls = [c for m in trace.messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    assert len(calls) == 2  # a what-if plan: the default run and the changed cost
    assert teacher["backend"] == "teacher" and parsed_calls(teacher["calls"]) == [(c["name"], c["arguments"]) for c in calls]
    assert teacher["results"] == [f"← {output}" for output in trace.tool_outputs]
    assert shown["verdict"]["backend"] == "teacher" and shown["verdict"]["answer"] == trace.final_answer
    assert "offline teacher simulator" in shown["verdict"]["line"]  # the simulator is named where it shows


@pytest.mark.slow  # a real browser
def test_the_student_toggle_streams_its_text_token_by_token(server, page, tmp_path) -> None:
    question = GRID[GRID["category"] == "data_source"].iloc[0].to_dict()
    shown = ask_on_page(page, server.url, question["model_id"], question["ticker"], question["question"], "student")
    (student,) = shown["attempts"]
    assert shown["verdict"]["backend"] == "student" and student["backend"] == "student"
    written = "".join(student["text"])
    assert written and shown["text_events"] > 1  # more than one delta: the text came as it was written
    assert shown["verdict"]["answer"] in (written.strip(), shown_answer("", "turn_limit"))
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_without_a_key_the_claude_toggle_is_off_and_says_why(engine, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    workbench = Workbench.from_config(small_cfg(backend="anthropic"), tmp_path)
    assert workbench.teacher is None and "ANTHROPIC_API_KEY" in workbench.teacher_missing
    with ServerThread(make_app(engine, workbench)) as running:
        modes = {m["id"]: m for m in get_json(f"{running.url}/workbench/options")["modes"]}
        assert modes["student"]["unavailable"] is None and modes["teacher"]["label"] == "Claude"
        assert "ANTHROPIC_API_KEY" in modes["teacher"]["unavailable"] and modes["fallback"]["unavailable"]
        status, refused = post(running.url, json.dumps({"question": "q", "mode": "teacher"}).encode(), "/workbench/ask")
        assert status == 400 and refused["error"]["message"].startswith("mode: teacher needs the teacher")
        status, bad = post(running.url, json.dumps({"question": "q", "mode": "claude"}).encode(), "/workbench/ask")
        assert status == 400 and bad["error"]["message"].startswith("mode:")


def test_the_page_and_its_options_over_http(server) -> None:
    """`/` is the page; the options list every registry model, the grid's questions and the three modes."""
    with urllib.request.urlopen(server.url + "/", timeout=30) as response:
        assert response.status == 200 and response.headers["content-type"].startswith("text/html")
        assert "/workbench/ask" in response.read().decode()
    options = get_json(server.url + "/workbench/options")
    assert {m["id"] for m in options["models"]} == set(GRID["model_id"])
    assert len(options["questions"]) == len(GRID.drop_duplicates(["model_id", "ticker", "question"]))
    assert [m["id"] for m in options["modes"]] == ["student", "teacher", "fallback"]
    assert all(m["unavailable"] is None for m in options["modes"])
    assert [m["label"] for m in options["modes"]] == ["Student", "Claude (simulator)", "Fallback"]


def test_a_page_that_leaves_mid_answer_stops_the_students_decoder(engine, tmp_path) -> None:  # noqa: F811
    cfg = small_cfg()
    cfg["predict"].update(max_new_tokens=2000, max_turns=1)
    with ServerThread(make_app(engine, Workbench.from_config(cfg, tmp_path))) as running:
        body = {"question": "Write a long essay about markets.", "mode": "student"}
        request = urllib.request.Request(running.url + "/workbench/ask", data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            for line in response:
                if b'"type": "text"' in line:
                    break  # the answer has started: the page goes away
        left = time.perf_counter()
        while engine._lock.locked() and time.perf_counter() - left < 20:
            time.sleep(0.05)
        assert not engine._lock.locked(), "the student kept writing for a page that had gone"
        status, reply = post(running.url, json.dumps({"model": "m", "max_tokens": 3, "messages": [
            {"role": "user", "content": "hi"}]}).encode())
        assert status == 200 and reply["usage"]["output_tokens"] == 3
