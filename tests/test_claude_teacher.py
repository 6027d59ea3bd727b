"""The Claude teacher against a real local HTTP server: traces in the simulator's schema, the response
cache (hits, resume after kill -9), prompt caching, faults and the missing-share threshold, batches."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from distill.claude.cache import request_key
from distill.claude.client import KEY_VAR, make_client
from distill.dataset.grounding import filter_traces
from distill.io import write_parquet
from distill.dataset.scenarios import build_grid
from distill.teacher import TeacherFailed, build_traces, make_teacher, run_grid
from distill.teacher.anthropic import ClaudeTeacher, request_params
from distill.teacher.estimate import cached_prefix_note, estimate_markdown
from tests.anthropic_server import AnthropicServer, GridResponder, Reply, error_reply, text_reply, tool_reply

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sk-ant-test-FAKEKEY-teacher-0123456789"
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())
GRID = build_grid({**CONFIG, "scenarios": {**CONFIG["scenarios"], "models": ["sma_crossover"], "tickers": ["ACME"]}})


def teacher_cfg(**anthropic: object) -> dict:
    tcfg = {**CONFIG["teacher"], "backend": "anthropic", "model": "claude-sonnet-4-5"}
    tcfg["anthropic"] = {**tcfg["anthropic"], "max_retries": 1, "batch_poll_s": 0.05, **anthropic}
    return tcfg


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_VAR, FAKE_KEY)


def requests_by_key(server: AnthropicServer) -> Counter:
    return Counter(request_key(body) for body in server.messages())


# -- direct mode --------------------------------------------------------------------------------------

def test_traces_match_the_simulator_schema_and_pass_grounding(tmp_path):
    with AnthropicServer(GridResponder()) as server:
        teacher = ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url))
        traces = run_grid(GRID, teacher)
    simulated = run_grid(GRID, make_teacher({"seed": 7, "teacher": CONFIG["teacher"]}))
    assert list(traces.columns) == list(simulated.columns)
    assert list(traces["trace_id"]) == list(GRID["scenario_id"])  # scenario order, whatever the timing
    msgs = json.loads(traces["messages"].iloc[0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "assistant"]
    assert msgs[2]["tool_calls"] == [{"name": "get_model_info", "arguments": {"model_id": "sma_crossover"}}]
    assert traces["final_answer"].iloc[0] == "It uses a window of 20."
    kept, rejected = filter_traces(traces)
    assert len(kept) == len(GRID) and rejected.empty
    assert (traces["requests"] == 2).all() and not traces["batch_api"].any() and traces["teacher_error"].isna().all()
    assert max(requests_by_key(server).values()) == 1


def test_direct_mode_order_does_not_depend_on_timing(tmp_path):
    inner = GridResponder()

    def uneven(body: dict) -> Reply:  # early scenarios answer slowest, so they finish last
        time.sleep(0.02 * (len(GRID) - GRID["question"].tolist().index(body["messages"][0]["content"])))
        return inner(body)

    with AnthropicServer(uneven) as server:
        client = make_client(base_url=server.url)
        parallel = run_grid(GRID, ClaudeTeacher(teacher_cfg(concurrency=4), tmp_path / "a", client))
        serial = run_grid(GRID, ClaudeTeacher(teacher_cfg(concurrency=1), tmp_path / "b", client))
    # Which request writes the prompt cache is up to the server's timing; everything else is not.
    usage = ["cache_creation_input_tokens", "cache_read_input_tokens"]
    pd.testing.assert_frame_equal(parallel.drop(columns=usage), serial.drop(columns=usage))


def test_prompt_caching_marks_the_prefix_and_usage_shows_it(tmp_path):
    with AnthropicServer(GridResponder()) as server:
        traces = run_grid(GRID.head(3), ClaudeTeacher(teacher_cfg(concurrency=1), tmp_path,
                                                      make_client(base_url=server.url)))
    body = server.messages()[0]
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in tool for tool in body["tools"][:-1])
    assert "temperature" not in body  # sampling is sent only when set
    assert traces["cache_creation_input_tokens"].sum() == 700
    assert traces["cache_read_input_tokens"].sum() == 700 * (2 * 3 - 1)


def test_no_cache_control_without_prompt_caching_and_sampling_when_set():
    params = request_params(teacher_cfg(prompt_caching=False, sampling={"temperature": 0.2}))
    assert isinstance(params["system"], str) and "cache_control" not in json.dumps(params)
    assert params["temperature"] == 0.2


def test_short_prefix_is_reported_before_and_during_the_run(tmp_path, caplog):
    params = request_params(teacher_cfg())
    note = cached_prefix_note(params)
    assert note and "below the minimum of ~1024 tokens" in note
    assert "~2048 tokens" in cached_prefix_note({**params, "model": "claude-haiku-4-5"})
    assert cached_prefix_note({**params, "system": "x" * 8000}) is None
    text = estimate_markdown(GRID, teacher_cfg(), CONFIG["pricing"], params)
    assert f"- scenarios: {len(GRID)}" in text and "nothing will be cached" in text
    assert "| `claude-sonnet-4-5` |" in text and "How this was estimated" in text
    with AnthropicServer(GridResponder()) as server, caplog.at_level("WARNING"):
        run_grid(GRID.head(1), ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url)))
    assert "below the minimum" in caplog.text


def test_cache_hit_makes_no_request(tmp_path):
    with AnthropicServer(GridResponder()) as server:
        first = run_grid(GRID, ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url)))
        paid = len(server.messages())
        again = ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url))
        second = run_grid(GRID, again)
    assert len(server.messages()) == paid and again.stats == {"hits": paid}
    pd.testing.assert_frame_equal(first, second)
    assert not [p for p in tmp_path.rglob("*.json") if FAKE_KEY in p.read_text()]


def test_transient_errors_are_retried_by_the_sdk(tmp_path):
    inner = GridResponder()
    queue = [error_reply(429, "rate_limit_error", 0.01), error_reply(529, "overloaded_error", 0.01),
             error_reply(500, "api_error", 0.01)]
    responder = lambda body: queue.pop(0) if queue else inner(body)  # noqa: E731
    with AnthropicServer(responder) as server:
        traces = run_grid(GRID.head(1), ClaudeTeacher(teacher_cfg(max_retries=3), tmp_path,
                                                      make_client(max_retries=3, base_url=server.url)))
    assert traces["teacher_error"].isna().all() and traces["final_answer"].iloc[0]
    assert len(server.messages()) == 3 + 2


def test_malformed_tool_input_becomes_an_error_result(tmp_path):
    def responder(body: dict) -> Reply:
        if len(body["messages"]) == 1:
            return tool_reply([("get_model_info", ["not", "an", "object"])])
        return text_reply("The workbench rejected that call.")

    with AnthropicServer(responder) as server:
        traces = run_grid(GRID.head(1), ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url)))
    sent = server.messages()[1]["messages"][-1]["content"][0]
    assert sent["is_error"] is True and "must be a JSON object" in sent["content"]
    assert json.loads(traces["messages"].iloc[0])[3]["role"] == "tool"
    assert traces["final_answer"].iloc[0] == "The workbench rejected that call."


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_a_scenario_that_keeps_failing(tmp_path, monkeypatch, caplog, share):
    failing = GRID["question"].iloc[0]
    cfg = {"seed": 7, "teacher": teacher_cfg(max_retries=0, max_missing_share=share)}
    scenarios, out = tmp_path / "scenarios.parquet", tmp_path / "traces.parquet"
    write_parquet(GRID, scenarios)
    with AnthropicServer(GridResponder(fail=failing)) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        if share == 0.0:
            with pytest.raises(TeacherFailed, match=r"1 of 10 scenarios failed \(teacher.anthropic.max_missing_share"):
                build_traces(cfg, scenarios, out, tmp_path / "cache")
            assert not out.exists()
            return
        build_traces(cfg, scenarios, out, tmp_path / "cache")
    assert "1 of 10 scenarios missing" in caplog.text
    traces = pd.read_parquet(out)
    assert len(traces) == len(GRID)
    bad = traces[traces["teacher_error"].notna()]
    assert list(bad["question"]) == [failing] and "InternalServerError 500" in bad["teacher_error"].iloc[0]
    kept, rejected = filter_traces(traces)
    assert list(rejected["reason"]) == ["teacher_error"] and len(kept) == len(GRID) - 1


# -- the stage in a subprocess: kill -9, restart, nothing paid twice ----------------------------------

STAGE = ("import json, sys; from distill.io import setup_logging; from distill.teacher import build_traces; "
         "setup_logging(None); build_traces(json.loads(sys.argv[1]), *sys.argv[2:])")


def stage(cfg: dict, scenarios: Path, out: Path, cache: Path, url: str, background: bool = False):
    """The teacher stage (the code scripts/run_teacher.py runs) in a fresh process pointed at the server."""
    env = {**os.environ, "ANTHROPIC_BASE_URL": url}
    args = [sys.executable, "-c", STAGE, json.dumps(cfg), str(scenarios), str(out), str(cache)]
    if background:
        return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow  # two fresh processes each (~10 s)
def test_killed_stage_resumes_without_repeating_a_request(tmp_path):
    cfg = {"seed": 7, "teacher": teacher_cfg(concurrency=1)}
    scenarios, out, cache = tmp_path / "scenarios.parquet", tmp_path / "traces.parquet", tmp_path / "cache"
    write_parquet(GRID, scenarios)
    with AnthropicServer(GridResponder(delay=0.3)) as server:
        proc = stage(cfg, scenarios, out, cache, server.url, background=True)
        wait_for(lambda: len(list(cache.rglob("*.json"))) >= 5)  # five responses stored, the sixth in flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stored = len(list(cache.rglob("*.json")))
        assert not out.exists() and stored < 2 * len(GRID)
        server.responder.delay = 0.0
        done = stage(cfg, scenarios, out, cache, server.url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(pd.read_parquet(out)) == len(GRID)
    counts = requests_by_key(server)
    # Only the request in flight at the kill (its response never stored) may be asked twice.
    assert sum(n - 1 for n in counts.values()) <= 1
    assert len(counts) == 2 * len(GRID)


# -- Message Batches ----------------------------------------------------------------------------------

def batch_creates(server: AnthropicServer) -> list:
    return [r for r in server.requests if r.method == "POST" and r.path == "/v1/messages/batches"]


def test_batch_rounds_map_results_back_and_share_the_cache(tmp_path):
    with AnthropicServer(GridResponder(), batch_polls=2) as server:
        teacher = ClaudeTeacher(teacher_cfg(mode="batch"), tmp_path, make_client(base_url=server.url))
        traces = run_grid(GRID, teacher)
        creates = batch_creates(server)
        direct = run_grid(GRID, ClaudeTeacher(teacher_cfg(), tmp_path, make_client(base_url=server.url)))
    # Two rounds: every conversation's tool call, then every answer; results came back in reverse order.
    assert len(creates) == 2 and [len(c.body["requests"]) for c in creates] == [len(GRID), len(GRID)]
    assert {r["custom_id"] for r in creates[0].body["requests"]} == set(GRID["scenario_id"])
    assert list(traces["trace_id"]) == list(GRID["scenario_id"]) and traces["batch_api"].all()
    assert traces["final_answer"].str.startswith("It uses a window of").all()
    assert server.messages() == []  # the direct run found every response in the shared cache
    assert direct["final_answer"].tolist() == traces["final_answer"].tolist()
    assert not list((tmp_path / "batches").glob("*.json"))  # round state is dropped once stored


@pytest.mark.slow  # two fresh processes each (~10 s)
def test_batch_killed_while_polling_resumes_the_same_batch(tmp_path):
    cfg = {"seed": 7, "teacher": teacher_cfg(mode="batch")}
    scenarios, out, cache = tmp_path / "scenarios.parquet", tmp_path / "traces.parquet", tmp_path / "cache"
    write_parquet(GRID, scenarios)
    with AnthropicServer(GridResponder(), batch_polls=10**9) as server:  # never ends until told
        proc = stage(cfg, scenarios, out, cache, server.url, background=True)
        wait_for(lambda: any(b["polls"] >= 2 for b in server.batches.values()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        [batch_id] = server.batches
        state = json.loads(next((cache / "batches").glob("*.json")).read_text())
        assert state["batch_id"] == batch_id
        server.batch_polls = 1
        done = stage(cfg, scenarios, out, cache, server.url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumes batch {batch_id}" in done.stderr
    creates = batch_creates(server)
    assert len(creates) == 2  # round 1 once (resumed, not resubmitted), then round 2
    for create in creates:
        assert sorted(r["custom_id"] for r in create.body["requests"]) == sorted(GRID["scenario_id"])
    assert pd.read_parquet(out)["final_answer"].str.startswith("It uses a window of").all()


def test_errored_batch_request_is_recorded(tmp_path):
    failing = GRID["question"].iloc[1]
    with AnthropicServer(GridResponder(fail=failing)) as server:
        teacher = ClaudeTeacher(teacher_cfg(mode="batch", max_missing_share=0.5), tmp_path,
                                make_client(base_url=server.url))
        traces = run_grid(GRID, teacher)
    bad = traces[traces["teacher_error"].notna()]
    assert list(bad["question"]) == [failing]
    assert re.search(r"request errored: scripted 500", bad["teacher_error"].iloc[0])
    with pytest.raises(TeacherFailed, match="max_missing_share"):
        with AnthropicServer(GridResponder(fail=failing)) as server:
            run_grid(GRID, ClaudeTeacher(teacher_cfg(mode="batch"), tmp_path / "other",
                                         make_client(base_url=server.url)))
