"""The Claude teacher through real Snakemake on a tiny grid, against the local HTTP server: one more
ticker re-runs the teacher stage but pays only for the new scenarios; the key check; the key never
lands in a file."""
from __future__ import annotations

import json
import time
from collections import Counter

import pandas as pd
import pytest

from distill.claude.client import KEY_VAR
from distill.claude.usage import USAGE_FIELDS
from tests.anthropic_server import AnthropicServer, GridResponder
from tests.workflow_helpers import copy_workflow, edited_config, edited_file, kill_when, planned_jobs, snakemake

pytestmark = pytest.mark.slow
FAKE_KEY = "sk-ant-test-FAKEKEY-workflow-9876543210"
TINY = {"scenarios": {"models": ["sma_crossover"], "tickers": ["ACME"]},
        "teacher": {"backend": "anthropic", "model": "claude-sonnet-4-5",
                    "anthropic": {"max_retries": 1, "concurrency": 2}}}
TARGETS = ("results/grounded.parquet", "results/teacher/estimate.md")


def test_missing_key_stops_a_run_before_any_job_but_not_a_dry_run(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    wd = copy_workflow(tmp_path / "repo", TINY)
    assert snakemake(wd, "-n", *TARGETS).returncode == 0  # a production config validates without the key
    proc = snakemake(wd, *TARGETS)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and KEY_VAR in out and "teacher of run 'default'" in out
    assert not (wd / "results" / "scenarios.parquet").exists()
    estimate = snakemake(wd, "results/teacher/estimate.md")  # the cost is known before there is a key
    assert estimate.returncode == 0, estimate.stderr[-3000:]


def test_one_more_ticker_pays_only_for_the_new_scenarios(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_VAR, FAKE_KEY)
    with AnthropicServer(GridResponder()) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        wd = copy_workflow(tmp_path / "repo", TINY)
        proc = snakemake(wd, *TARGETS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        first = len(server.messages())
        assert first == 2 * len(pd.read_parquet(wd / "results" / "traces.parquet"))
        assert "- scenarios: 10" in (wd / "results" / "teacher" / "estimate.md").read_text()

        cfg = edited_config(wd, tmp_path, {"scenarios": {"tickers": ["ACME", "BOLT"]}})
        assert set(planned_jobs(wd, "results/grounded.parquet", "--configfile", cfg)) == {
            "build_scenarios", "run_teacher", "ground_traces"}
        proc = snakemake(wd, *TARGETS, "--configfile", cfg)
        assert proc.returncode == 0, proc.stderr[-3000:]
        new = server.messages()[first:]
    traces = pd.read_parquet(wd / "results" / "traces.parquet")
    bolt = traces["question"].str.contains("BOLT")
    # Methodology questions name no ticker: BOLT's are ACME's, answered from the cache.
    assert len(traces) == 20 and 0 < bolt.sum() < 10 and len(new) == 2 * bolt.sum()
    assert all("BOLT" in body["messages"][0]["content"] for body in new)
    assert traces["teacher_error"].isna().all()
    assert len(pd.read_parquet(wd / "results" / "grounded.parquet")) == len(traces)
    assert f"teacher: {len(new)} requests paid now" in (wd / "results" / "logs" / "run_teacher.log").read_text()
    prices = edited_config(wd, tmp_path, {"scenarios": {"tickers": ["ACME", "BOLT"]},
                                          "pricing": {"models": {"claude-sonnet-4-5": {"input": 2.0, "output": 10.0}}}})
    assert planned_jobs(wd, *TARGETS, "--configfile", prices) == {"estimate_teacher_cost": 1}  # no teacher call
    with edited_file(wd / "distill" / "teacher" / "system_prompt.md"):  # a versioned input of the teacher
        assert "run_teacher" in planned_jobs(wd, "results/traces.parquet", "--configfile", cfg)
    # the key was used (the SDK sends it as x-api-key, or as a bearer token where the environment says so)...
    assert all(FAKE_KEY in (r.headers.get("x-api-key"), r.headers.get("authorization", "").removeprefix("Bearer "))
               for r in server.requests)
    written = written_files(wd)
    assert any(p.name.endswith(".json") for p in written)  # the response cache is among them
    assert any(p.suffix == ".log" for p in written)  # and the jobs' and Snakemake's own logs
    assert not [p for p in written if FAKE_KEY.encode() in p.read_bytes()]  # ...and is written nowhere
    assert FAKE_KEY not in proc.stdout + proc.stderr


def written_files(wd) -> list:
    """Every file a build wrote: its results and Snakemake's own state and logs."""
    return [p for root in (wd / "results", wd / ".snakemake") for p in root.rglob("*") if p.is_file()]


def _teacher_run(wd, server, monkeypatch, kill_after: int | None = None) -> list[str]:
    """Build the traces against `server` (SIGKILLed once `kill_after` requests were answered, then the same
    command again); return the request bodies the server answered before the kill."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    done: list[str] = []
    if kill_after is not None:
        def ready() -> bool:
            if len(server.answered()) < kill_after:
                return False
            done.extend(json.dumps(body, sort_keys=True) for body in server.answered())
            time.sleep(0.5)  # the client has read and cached each of those answers
            return True
        kill_when(wd, ready, "results/traces.parquet")
        assert not (wd / "results" / "traces.parquet").exists()
        assert snakemake(wd, "--unlock").returncode == 0  # a killed Snakemake leaves its lock behind
    proc = snakemake(wd, "results/traces.parquet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return done


def test_a_killed_teacher_stage_pays_no_answered_request_twice(tmp_path, monkeypatch):
    """SIGKILL in the middle of the Claude teacher stage, then the same command: no request the API
    answered before the kill is sent again (the response cache is written per answer), and the traces
    equal an uninterrupted run's."""
    monkeypatch.setenv(KEY_VAR, FAKE_KEY)
    with AnthropicServer(GridResponder(delay=0.2)) as server:
        killed = copy_workflow(tmp_path / "killed", TINY)
        before = _teacher_run(killed, server, monkeypatch, kill_after=6)
        answered = Counter(json.dumps(body, sort_keys=True) for body in server.answered())
    assert len(before) >= 6 and all(answered[body] == 1 for body in before)
    with AnthropicServer(GridResponder()) as server:
        whole = copy_workflow(tmp_path / "whole", TINY)
        _teacher_run(whole, server, monkeypatch)
        assert len(server.answered()) == len(answered)  # every request of the whole run, each once
    # usage differs by which request met the prompt cache first; everything else is the same
    same = [c for c in pd.read_parquet(whole / "results" / "traces.parquet").columns if c not in USAGE_FIELDS]
    pd.testing.assert_frame_equal(pd.read_parquet(killed / "results" / "traces.parquet")[same],
                                  pd.read_parquet(whole / "results" / "traces.parquet")[same])
    assert not [p for p in written_files(killed) if FAKE_KEY.encode() in p.read_bytes()]
