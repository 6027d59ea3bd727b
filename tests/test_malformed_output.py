"""Property-based (hypothesis): arbitrary student text through everything that reads it, and arbitrary
arguments through the tools. Broken JSON in tool-call tags, unknown tools, wrong argument types, huge or
empty output, an unterminated call, any unicode: each ends as a failure with a reason or an error result
the model can read, and nothing raises.

Readers covered: the prediction loop's turn step (distill.student.predict._Run, with the real tools), the
scorer (distill.ruler.scoring.score_frame with the rubric judge), the server's reply rule and its stream
(distill.serving.content), and the assistant's fallback rule (distill.serving.assistant.fallback_reason).
"""
from __future__ import annotations

import json

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distill.contracts import SCORE_COLUMNS
from distill.ruler.answers import ANSWER_REASONS
from distill.ruler.judge import make_judge
from distill.ruler.scoring import score_frame
from distill.serving.assistant import FALLBACK_REASONS, Attempt, fallback_reason
from distill.serving.content import TurnStream, content_blocks
from distill.student.chat import LOOP_FAILURES
from distill.student.predict import _Run
from distill.workbench.tools import TOOL_NAMES, TOOLS, execute, is_error
from tests.test_assistant import CFG, GRID

EXAMPLES = 150  # per property; the README's reliability section quotes the total
PROFILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PERF = GRID[GRID["category"] == "performance"].iloc[0].to_dict()
JUDGE = make_judge(CFG["judge"])

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
arguments = st.dictionaries(st.sampled_from(["model_id", "ticker", "start", "end", "fee_bps", "slippage_bps", "query",
                                             "capital", "x"]), json_values, max_size=6)
call_json = st.builds(lambda name, args: json.dumps({"name": name, "arguments": args}),
                      st.sampled_from([*TOOL_NAMES, "no_such_tool", ""]), arguments)
broken_json = st.sampled_from(['{"name": "run_backtest", "arguments": {', '{"name": 3, "arguments": []}', "[1, 2]",
                               '{"name": "search_docs"}', '{"name": "search_docs", "arguments": "{\\"query\\": 1}"}',
                               "not json", ""])
pieces = st.one_of(
    st.text(max_size=40),  # any unicode
    st.sampled_from(["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<|im_end|>", "\n",
                     "13.4%", "-02.0", "$4,879.78", "Source: backtest.md.", "{\"a\": 1}"]),
    st.builds(lambda body, close: f"<tool_call>\n{body}\n" + ("</tool_call>" if close else ""), call_json, st.booleans()),
    st.builds(lambda body: f"<tool_call>{body}</tool_call>", broken_json),
)
student_text = st.one_of(st.lists(pieces, max_size=12).map("".join),
                         st.builds(lambda p, n: p * n, pieces, st.integers(50, 400)))  # huge, repetitive output


@PROFILE
@given(student_text)
def test_a_turn_of_any_text_is_a_call_an_answer_or_a_failure_with_its_reason(text) -> None:
    run = _Run(messages=[{"role": "user", "content": PERF["question"]}])
    waits = run.step(text, TOOLS, execute)
    assert run.failure is None or run.failure in LOOP_FAILURES
    if waits:  # it called tools: each call ran, and each result is JSON the model can read
        assert run.pred_calls and len(run.tool_outputs) == len(run.pred_calls)
        assert all(isinstance(json.loads(output), (dict, list)) for output in run.tool_outputs)
    else:
        assert run.failure or isinstance(run.pred_answer, str)


@PROFILE
@given(st.sampled_from([*TOOL_NAMES, "nope", 7, None]), st.one_of(arguments, json_values, st.text(max_size=30)))
def test_a_tool_with_any_arguments_returns_json_never_raises(name, args) -> None:
    output = execute(name, args)
    parsed = json.loads(output)
    assert not is_error(output) or isinstance(parsed["error"], str) and parsed["error"]


@PROFILE
@given(student_text, st.lists(call_json | broken_json, max_size=3), st.sampled_from([None, *LOOP_FAILURES]))
def test_the_scorer_scores_any_prediction_with_reasons(answer, calls, failure) -> None:
    pred_calls = []
    for body in calls:
        try:
            pred_calls.append(json.loads(body))
        except json.JSONDecodeError:
            pred_calls.append(body)  # a call that is not even an object
    row = {"trace_id": "t", "category": PERF["category"], "model_id": PERF["model_id"], "model_kind": PERF["model_kind"],
           "ticker": PERF["ticker"], "question": PERF["question"], "gold_calls": PERF["gold_calls"],
           "gold_answer": "It returned 13.4%.", "pred_calls": json.dumps(pred_calls), "pred_answer": answer,
           "tool_outputs": json.dumps([execute(c.get("name"), c.get("arguments")) if isinstance(c, dict) else "x"
                                       for c in pred_calls]),
           "failure": failure, "n_turns": 1, "raw_turns": json.dumps([answer])}
    scored = score_frame(pd.DataFrame([row]), JUDGE, CFG["scoring"]).iloc[0]
    assert tuple(scored.index) == SCORE_COLUMNS
    assert scored["answered"] in (True, False) and scored["grounded"] in (True, False)
    assert scored["answered"] or scored["answer_reason"] in ANSWER_REASONS
    assert 0.0 <= scored["judge"] <= 1.0


@PROFILE
@given(student_text, st.booleans(), st.booleans())
def test_the_servers_reply_and_its_stream_agree_for_any_text(text, ended, grammar) -> None:
    blocks, stop = content_blocks(text, TOOLS, ended)
    assert stop in ("tool_use", "end_turn", "max_tokens")
    assert all(b["type"] in ("text", "tool_use") for b in blocks)
    assert (stop == "tool_use") == any(b["type"] == "tool_use" for b in blocks)
    assert all(b["name"] in TOOL_NAMES and isinstance(b["input"], dict) for b in blocks if b["type"] == "tool_use")
    stream = TurnStream(TOOLS, grammar, False)
    events = [e for i in range(0, len(text) + 1, max(1, len(text) // 7)) for e in stream.update(text[:i])]
    events += stream.update(text) + stream.finish(blocks)
    assert all(isinstance(e, dict) and "type" in e for e in events)


@PROFILE
@given(student_text)
def test_the_fallback_rule_gives_a_reason_for_any_answer(text) -> None:
    calls = json.loads(PERF["gold_calls"])
    attempt = Attempt("student", [], text, calls, [execute(c["name"], c["arguments"]) for c in calls], "end_turn")
    reason = fallback_reason(attempt, PERF["question"], PERF["category"], CFG["scoring"], CFG["claims"])
    assert reason is None or reason.split(":")[0] in FALLBACK_REASONS
