"""The Claude judge through the real SDK against the local HTTP server (no key needed: a fake one), and
the report's judge cost and agreement section on tables with known values."""

from __future__ import annotations

import json
import re

import anthropic
import numpy as np
import pandas as pd
import pytest
import yaml

from distill.config import load
from distill.claude.client import KEY_VAR, make_client
from distill.ruler.judge.anthropic import GRADE_TOOL, PROMPT, ClaudeJudge
from distill.ruler.judge import GRADING_ERRORS, make_judge
from distill.ruler.judge.rubric import RubricJudge
from distill.report.judges import agreement, graded_pairs, judge_section, largest_disagreements
from distill.contracts import SCORE_COLUMNS
from distill.ruler.scoring import score_frame
from distill.ruler.summary import summarise
from tests.anthropic_server import AnthropicServer, Reply, error_reply, text_reply, tool_reply

FAKE_KEY = "sk-ant-test-FAKEKEY-judge-0123456789"
CONFIG = load("config.yaml")
ACFG = {**CONFIG["judge"]["anthropic"], "max_retries": 2, "timeout_s": 10}
SCORING = {**CONFIG["scoring"], "bootstrap_samples": 50}
OUTPUT = json.dumps({"total_return": "97.1%", "sharpe": "1.90"})
ROW = {"question": "What total return did SMA Crossover get on ACME?", "category": "performance",
       "model_id": "sma_crossover", "ticker": "ACME", "gold_calls": "[]",
       "gold_answer": "SMA Crossover returned 97.1% on ACME (Sharpe 1.90).", "tool_outputs": [OUTPUT],
       "pred_answer": "It returned 97.1% with a Sharpe of 2.5."}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_VAR, FAKE_KEY)


def grade_reply(score: object, rationale: object = "Sharpe is wrong.", **usage: int) -> Reply:
    return tool_reply([("grade", {"score": score, "rationale": rationale})], **usage)


def judge_for(server: AnthropicServer, cache_dir, **acfg: object) -> ClaudeJudge:
    return ClaudeJudge({**ACFG, **acfg}, cache_dir, client=make_client(max_retries=2, base_url=server.url))


@pytest.mark.parametrize("sampling,force_tool", [({"temperature": 0}, True), ({}, False)])
def test_grading_request_carries_the_evidence_and_parses_the_grade(tmp_path, sampling, force_tool):
    with AnthropicServer(lambda body: grade_reply(0.5, input_tokens=400, output_tokens=30)) as server:
        result = judge_for(server, tmp_path, sampling=sampling, force_tool=force_tool).grade(ROW)
    [body] = server.messages()
    text = body["messages"][0]["content"]
    for part in (ROW["question"], OUTPUT, ROW["gold_answer"], ROW["pred_answer"]):
        assert part in text
    assert body["system"] == PROMPT and body["tools"] == [GRADE_TOOL] and body["model"] == ACFG["model"]
    assert ("temperature" in body) == ("temperature" in sampling)
    assert body.get("temperature") == sampling.get("temperature")
    assert body.get("tool_choice") == ({"type": "tool", "name": "grade"} if force_tool else None)
    assert result.score == 0.5 and result.rationale == "Sharpe is wrong." and result.error is None
    assert result.model == ACFG["model"] and result.usage["input_tokens"] == 400 and result.usage["output_tokens"] == 30
    assert all(FAKE_KEY not in json.dumps(r.body) for r in server.requests)


def test_non_answers_score_zero_without_a_request(tmp_path):
    with AnthropicServer(lambda body: grade_reply(1.0)) as server:
        judge = judge_for(server, tmp_path)
        result = judge.grade({**ROW, "pred_answer": '<tool_response>{"total_return": "97.1%"}</tool_response>'})
        frame = score_frame(predictions(["", ROW["question"]]), judge, SCORING, rubric=RubricJudge(CONFIG["judge"]["rubric"]))
    assert result.score == 0.0 and result.reasons == ["markup_in_answer"] and result.usage == {}
    assert server.messages() == []
    assert list(frame["judge"]) == [0.0, 0.0] and list(frame["judge_rubric"]) == [0.0, 0.0]
    assert frame["judge_model"].isna().all() and (frame["judge_input_tokens"] == 0).all()


def test_cache_hit_makes_no_second_request(tmp_path):
    with AnthropicServer(lambda body: grade_reply(0.5)) as server:
        first = judge_for(server, tmp_path).grade(ROW)
        again = judge_for(server, tmp_path)  # a later scoring run: a new judge, the same cache folder
        second = again.grade(ROW)
        other = again.grade({**ROW, "pred_answer": "It returned 97.1%."})
    assert first == second and other.score == 0.5
    assert len(server.messages()) == 2 and again.stats == {"hits": 1, "requests": 1}
    assert list((tmp_path / "anthropic").rglob("*.json"))  # under <cache>/anthropic/, like the teacher's


@pytest.mark.parametrize("reply,error,says", [
    (text_reply("I would give this 0.8."), "no_grade_call", "I would give this 0.8."),
    (grade_reply(1.7), "score_out_of_range", "1.7"),
    (grade_reply("high"), "bad_grade", "high"),
    (tool_reply([("grade", {"score": 0.5})]), "bad_grade", "rationale"),
])
def test_malformed_reply_is_a_recorded_failure_and_is_asked_again(tmp_path, reply, error, says):
    with AnthropicServer(lambda body: reply) as server:
        judge = judge_for(server, tmp_path)
        result = judge.grade(ROW)
        judge.grade(ROW)
    assert result.score is None and result.error == error and error in GRADING_ERRORS and says in result.rationale
    assert len(server.messages()) == 2  # not cached: the next run asks again
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("status,kind", [(429, "rate_limit_error"), (529, "overloaded_error")])
def test_sdk_retries_rate_limits_and_overload(tmp_path, status, kind):
    replies = [error_reply(status, kind, retry_after=0.01), grade_reply(0.25)]
    with AnthropicServer(lambda body: replies.pop(0)) as server:
        result = judge_for(server, tmp_path).grade(ROW)
    assert result.score == 0.25 and len(server.messages()) == 2


def test_exhausted_retries_are_recorded_and_a_refused_request_stops(tmp_path):
    with AnthropicServer(lambda body: error_reply(529, "overloaded_error", retry_after=0.01)) as server:
        result = judge_for(server, tmp_path).grade(ROW)
    assert result.score is None and result.error == "api_error" and "529" in result.rationale
    assert len(server.messages()) == 3  # the first try and the SDK's two retries
    with AnthropicServer(lambda body: error_reply(400, "invalid_request_error")) as server:
        with pytest.raises(anthropic.BadRequestError):  # a config the API refuses fails every row: stop
            judge_for(server, tmp_path).grade(ROW)


def test_make_judge_picks_claude_and_needs_a_cache(tmp_path):
    cfg = {"backend": "anthropic", "anthropic": ACFG}
    assert isinstance(make_judge(cfg, tmp_path), ClaudeJudge)
    with pytest.raises(ValueError, match="cache"):
        make_judge(cfg)


def predictions(answers: list[str]) -> pd.DataFrame:
    """A predictions parquet's rows (CONTRACTS.md) for ROW's question, one per answer."""
    return pd.DataFrame([{
        "trace_id": f"t{i}", "category": ROW["category"], "model_id": ROW["model_id"], "model_kind": "rule",
        "ticker": ROW["ticker"], "question": ROW["question"], "gold_calls": "[]", "gold_answer": ROW["gold_answer"],
        "pred_calls": "[]", "pred_answer": answer, "tool_outputs": json.dumps([OUTPUT]), "failure": None,
        "n_turns": 1, "raw_turns": "[]"} for i, answer in enumerate(answers)])


def scored_by_row_number(body: dict) -> Reply:
    """Grades 'answer number k' k/10 (and 'answer number 9' out of range), whatever order requests come in."""
    k = int(re.search(r"answer number (\d)", body["messages"][0]["content"]).group(1))
    return grade_reply(k / 10 if k < 9 else 3.0, f"row {k}", input_tokens=100 + k, output_tokens=10)


def test_score_frame_grades_concurrently_in_row_order_with_both_judges(tmp_path):
    answers = [f"It returned 97.1% (answer number {k})." for k in range(9, -1, -1)]
    with AnthropicServer(scored_by_row_number) as server:
        judge = judge_for(server, tmp_path, concurrency=4)
        frame = score_frame(predictions(answers), judge, SCORING, rubric=RubricJudge(CONFIG["judge"]["rubric"]))
    assert list(frame.columns) == list(SCORE_COLUMNS) and len(server.messages()) == 10
    assert frame["judge"].iloc[0] != frame["judge"].iloc[0]  # NaN: the out-of-range grade has no score
    assert list(frame["judge"].iloc[1:]) == [k / 10 for k in range(8, -1, -1)]
    assert list(frame["judge_rationale"].iloc[1:]) == [f"row {k}" for k in range(8, -1, -1)]
    assert frame["judge_error"].iloc[0] == "score_out_of_range" and frame["judge_error"].iloc[1:].isna().all()
    assert (frame["judge_model"] == ACFG["model"]).all()
    rubric_row = {**ROW, "gold_calls": "[]", "pred_answer": answers[0]}
    assert frame["judge_rubric"].iloc[0] == RubricJudge(CONFIG["judge"]["rubric"]).grade(rubric_row).score  # the free judge, same answer
    assert frame["judge_input_tokens"].sum() == sum(100 + k for k in range(10))
    summary = summarise(frame, SCORING, judge.name, seed=0)["overall"]
    assert summary["judge"]["value"] == pytest.approx(np.mean([k / 10 for k in range(9)]))  # failure left out
    assert summary["judge_errors"]["score_out_of_range"] == 1


def pairs_table(claude: list[float | None], rubric: list[float], answered: list[bool] | None = None) -> pd.DataFrame:
    n = len(claude)
    return pd.DataFrame({
        "trace_id": [f"t{i}" for i in range(n)], "question": [f"Question {i}?" for i in range(n)],
        "pred_answer": [f"Answer {i} | with a pipe" for i in range(n)], "answered": answered or [True] * n,
        "judge": claude, "judge_rubric": rubric, "judge_rationale": [f"why {i}" for i in range(n)],
        "judge_error": [None if c is not None else "no_grade_call" for c in claude],
        "judge_model": "claude-haiku-4-5", "judge_input_tokens": 1000, "judge_output_tokens": 100,
        "judge_cache_creation_input_tokens": 0, "judge_cache_read_input_tokens": 0})


def test_agreement_on_known_values():
    # Claude [0, .1, .2, 1] vs rubric [0, .2, .1, .3]: ranks differ by one swap, so Spearman
    # = 1 - 6·2 / (4·15) = 0.8; Pearson = .145 / sqrt(.6275 · .05) = 0.8186; mean |diff| = .9 / 4.
    table = pairs_table([0.0, 0.1, 0.2, 1.0, None, 0.0], [0.0, 0.2, 0.1, 0.3, 0.9, 0.0],
                        answered=[True, True, True, True, True, False])
    pairs = graded_pairs({1: table, 2: table})  # the same answers at two epochs count once
    result = agreement(pairs)
    assert result["n"] == 4  # the failed grading and the non-answer are left out
    assert result["spearman"] == pytest.approx(0.8)
    assert result["pearson"] == pytest.approx(0.145 / np.sqrt(0.6275 * 0.05)) == pytest.approx(0.8186, abs=1e-4)
    assert result["mean_abs_diff"] == pytest.approx(0.225)
    top = largest_disagreements(pairs, k=2)
    assert list(top["question"]) == ["Question 3?", "Question 1?"] and list(top["epoch"]) == [1, 1]
    assert agreement(graded_pairs({1: pairs_table([0.5, 0.5], [0.1, 0.9])}))["pearson"] is None  # constant: undefined


def test_report_section_cost_and_agreement():
    table = pairs_table([0.0, 0.1, 0.2, 1.0, None], [0.0, 0.2, 0.1, 0.3, 0.9])
    text = judge_section("anthropic", {1: table}, CONFIG["pricing"])
    # 5 gradings × (1000 input, 100 output) tokens at haiku-4-5's $1 / $5 per million = $0.0075.
    assert "5 gradings (epochs 1)" in text and "$0.0075" in text and "`no_grade_call` ×1" in text
    assert "Pearson 0.82, Spearman 0.80, mean absolute difference" in text
    assert "| 1 | Question 3? | Answer 3 \\| with a pipe | 1.00 | 0.30 | why 3 |" in text
    unpriced = judge_section("anthropic", {1: table.assign(judge_model="claude-unknown")}, CONFIG["pricing"])
    assert "no price for `claude-unknown`" in unpriced
    rubric_only = judge_section("rubric", {1: table}, CONFIG["pricing"])
    assert "judge.backend: anthropic" in rubric_only and "\n" not in rubric_only


@pytest.mark.slow
def test_score_epoch_through_snakemake_with_the_claude_judge(tmp_path, monkeypatch):
    """The real rule on a predictions file put in place (only score_epoch may run): both judge columns,
    the shared cache makes re-scoring free, the prompt file is a rule input, and the key lands nowhere."""
    from tests.workflow_helpers import copy_workflow, edited_file, planned_jobs, snakemake

    target, only = "results/scores/epoch_0.parquet", ("--allowed-rules", "score_epoch")
    wd = copy_workflow(tmp_path / "repo", {"judge": {"backend": "anthropic", "anthropic": {"concurrency": 2}}})
    (wd / "results" / "predictions").mkdir(parents=True)
    predictions(["It returned 97.1%.", "It returned 97.1% with a Sharpe of 1.90.", ""]).to_parquet(
        wd / "results" / "predictions" / "epoch_0.parquet", index=False)
    with AnthropicServer(lambda body: grade_reply(0.75)) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        proc = snakemake(wd, target, *only)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(server.messages()) == 2  # the empty answer is never sent
        proc = snakemake(wd, target, *only, "--forcerun", "score_epoch")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(server.messages()) == 2  # re-scoring the same predictions: every grading from the cache
    frame = pd.read_parquet(wd / target)
    assert list(frame["judge"]) == [0.75, 0.75, 0.0] and frame["judge_rubric"].notna().all()
    log = (wd / "results" / "logs" / "score_epoch" / "epoch_0.log").read_text()
    assert "judge: 0 requests paid now, 2 answered from the cache" in log
    with edited_file(wd / "distill" / "ruler" / "judge" / "judge_prompt.md"):  # a versioned input of scoring
        assert planned_jobs(wd, target, *only) == {"score_epoch": 1}
    written = [p for root in (wd / "results", wd / ".snakemake" / "log") for p in root.rglob("*") if p.is_file()]
    assert list((wd / "results" / "cache" / "anthropic").rglob("*.json"))
    assert not [p for p in written if FAKE_KEY.encode() in p.read_bytes()]
