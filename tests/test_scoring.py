"""One test per rule and leniency of distill.ruler.scoring and distill.ruler.summary (docs/design.md "Scoring")."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from distill.config import defaults
from distill.ruler.scoring import (
    ERRORS,
    LENIENCIES,
    SCORE_COLUMNS,
    check_call,
    check_sequence,
    paraphrase_same_docs,
    query_jaccard,
    score_frame,
    strict_call_match,
    strict_check_call,
    tool_call_match,
)
from distill.ruler.summary import summarise

# The workbench's tool schemas as CONTRACTS.md describes them; passed explicitly so these tests pin
# the scorer's rules independently of tools.py.
TOOLS = [
    {"name": "list_models", "input_schema": {"type": "object", "properties": {}, "required": []}},
    {"name": "get_model_info", "input_schema": {
        "type": "object", "properties": {"model_id": {"type": "string"}}, "required": ["model_id"]}},
    {"name": "run_backtest", "input_schema": {
        "type": "object",
        "properties": {"model_id": {"type": "string"}, "ticker": {"type": "string"},
                       "start": {"type": "string"}, "end": {"type": "string"},
                       "fee_bps": {"type": "number", "default": 1.0},
                       "slippage_bps": {"type": "number", "default": 2.0}},
        "required": ["model_id", "ticker", "start", "end"]}},
    {"name": "search_docs", "input_schema": {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
]
BT = {"model_id": "sma_crossover", "ticker": "ACME", "start": "2019-01-02", "end": "2023-12-29",
      "fee_bps": 25.0}


def call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def check(pred: dict, gold: dict, **kw):
    return check_call(pred, gold, tools=TOOLS, **kw)


def match(pred: dict, gold: dict, **kw) -> bool:
    return tool_call_match(pred, gold, tools=TOOLS, **kw)


def test_identical_call_matches():
    assert match(call("run_backtest", **BT), call("run_backtest", **BT))


def test_arguments_as_json_string_are_parsed():
    assert match({"name": "run_backtest", "arguments": json.dumps(BT)}, call("run_backtest", **BT))
    assert strict_call_match({"name": "run_backtest", "arguments": json.dumps(BT)},
                             call("run_backtest", **BT))


def test_unparseable_arguments_are_malformed():
    result = check({"name": "run_backtest", "arguments": "{model_id: sma"}, call("run_backtest", **BT))
    assert (result.valid, result.error) == (False, "malformed")
    assert not strict_call_match({"name": "run_backtest", "arguments": "{"}, call("run_backtest", **BT))


def test_absent_arguments_mean_empty():
    assert match({"name": "list_models"}, call("list_models"))


def test_name_mismatch():
    assert check(call("get_model_info", model_id="sma_crossover"),
                 call("run_backtest", **BT)).error == "wrong_name"


def test_missing_argument():
    pred = {k: v for k, v in BT.items() if k != "ticker"}
    assert check(call("run_backtest", **pred), call("run_backtest", **BT)).error == "missing_argument"


def test_unexpected_argument():
    result = check(call("get_model_info", model_id="sma_crossover", ticker="ACME"),
                   call("get_model_info", model_id="sma_crossover"))
    assert result.error == "unexpected_argument"


def test_non_default_optional_omitted_fails():
    pred = {k: v for k, v in BT.items() if k != "fee_bps"}  # gold asks for 25 bps, default is 1
    assert check(call("run_backtest", **pred), call("run_backtest", **BT)).error == "missing_argument"


def test_optional_omitted_equal_to_default_passes_both_ways():
    base = {k: v for k, v in BT.items() if k != "fee_bps"}
    with_default = {**base, "slippage_bps": 2}
    assert match(call("run_backtest", **base), call("run_backtest", **with_default))
    assert match(call("run_backtest", **with_default), call("run_backtest", **base))
    assert not strict_call_match(call("run_backtest", **base), call("run_backtest", **with_default))


def test_unexpected_non_default_optional_fails():
    base = {k: v for k, v in BT.items() if k != "fee_bps"}
    result = check(call("run_backtest", **{**base, "slippage_bps": 5}), call("run_backtest", **base))
    assert result.error == "unexpected_argument"


def test_ticker_and_model_id_case_and_whitespace():
    assert match(call("run_backtest", **{**BT, "ticker": " acme ", "model_id": "SMA_Crossover"}),
                 call("run_backtest", **BT))
    result = check(call("run_backtest", **{**BT, "ticker": "BOLT"}), call("run_backtest", **BT))
    assert result.error == "wrong_value"


@pytest.mark.parametrize("written", ["2019-01-02", "20190102", "2019/01/02", "2019-01-02T00:00:00",
                                     " 2019-01-02 "])
def test_date_normalisation(written):
    assert match(call("run_backtest", **{**BT, "start": written}), call("run_backtest", **BT))


@pytest.mark.parametrize("written", ["2019-01-03", "01/02/2019", "Jan 2 2019", "not a date"])
def test_other_dates_are_wrong_values(written):
    result = check(call("run_backtest", **{**BT, "start": written}), call("run_backtest", **BT))
    assert result.error == "wrong_value"


def test_a_different_number_is_a_wrong_value():
    assert check(call("run_backtest", **{**BT, "fee_bps": 10}), call("run_backtest", **BT)).error == "wrong_value"


def test_numeric_string_in_number_field_is_wrong_value():
    result = check(call("run_backtest", **{**BT, "fee_bps": "25"}), call("run_backtest", **BT))
    assert result.error == "wrong_value"


def test_query_jaccard_ignores_stop_words_and_order_and_is_symmetric():
    # content tokens {split, train, test, ridge} vs {ridge, train, test, split, validation}: 4/5
    assert query_jaccard("How is the train/test split for ridge?", "ridge train test split validation") == 0.8
    assert query_jaccard("the of and", "the of and") == 0.0  # only stop words: empty token sets
    assert query_jaccard("crossover", "sma crossover train test split") == 0.2  # the overlap coefficient said 1.0


def test_query_above_threshold_matches():
    gold = call("search_docs", query="how are fees and slippage modelled")
    pred = call("search_docs", query="fee slippage model in the backtest")  # {slippage} of 6 words, other passages
    assert match(call("search_docs", query="slippage and fees modelled in backtests"), gold)  # 3/4
    assert check(pred, gold).error == "query_mismatch"
    assert match(pred, gold, cfg={**defaults("scoring"), "query_jaccard": 0.15})


def test_a_subset_query_does_not_pass_either_ruler():
    """A one-word query contained in the gold query passed the overlap coefficient (1.0) under every
    threshold, strict_ruler's included; it neither shares enough words nor retrieves the same passages."""
    strict_ruler = {**defaults("scoring"), "query_jaccard": 1.0, "query_top_k": 0}
    for pred, gold in (("crossover", "sma crossover train test split"),
                       ("model", "how is the ridge model validated train test split")):
        for cfg in (None, strict_ruler):
            assert check(call("search_docs", query=pred), call("search_docs", query=gold), cfg=cfg).error == \
                "query_mismatch", (pred, cfg)


def test_a_paraphrase_that_retrieves_the_gold_passages_passes():
    """"ML validation split" shares 2 of 5 content words with the gold query (Jaccard 0.4 < 0.5), but
    BM25 returns the same two passages: the same tool use. With the retrieval check off it fails."""
    pred, gold = call("search_docs", query="ML validation split"), call("search_docs", query="How is the ML model validated? split")
    assert query_jaccard("ML validation split", "How is the ML model validated? split") == 0.4
    assert match(pred, gold) and not strict_call_match(pred, gold)
    assert not match(pred, gold, cfg={**defaults("scoring"), "query_top_k": 0})


def test_numbers_are_equal_by_value_under_both_rulers():
    """fee_bps 10 and 10.0 are the same JSON number: equal, with no leniency, for both rulers."""
    pred, gold = call("run_backtest", **{**BT, "fee_bps": 10}), call("run_backtest", **{**BT, "fee_bps": 10.0})
    assert check(pred, gold).valid and check(pred, gold).leniencies == ()
    assert strict_call_match(pred, gold)
    assert not strict_call_match(call("run_backtest", **{**BT, "fee_bps": "10"}), gold)
    assert not strict_call_match(call("run_backtest", **{**BT, "fee_bps": True}), call("run_backtest", **{**BT, "fee_bps": 1}))


def test_query_below_threshold_fails():
    gold = call("search_docs", query="Black-Scholes option pricing volatility")
    assert check(call("search_docs", query="covered call premium"), gold).error == "query_mismatch"
    assert check(call("search_docs", query="the and of"), gold).error == "query_mismatch"


def test_check_sequence_length_and_positions():
    a, b = call("list_models"), call("get_model_info", model_id="sma_crossover")
    lenient = lambda p, g: check_call(p, g, tools=TOOLS)
    assert check_sequence([a, b], [a, b], lenient).valid
    assert check_sequence([a], [a, b], lenient).error == "missing_call"
    assert check_sequence([a, b, b], [a, b], lenient).error == "extra_call"
    assert check_sequence([b, a], [a, b], lenient).error == "wrong_name"
    assert check_sequence([], [], strict_check_call).valid


@pytest.mark.parametrize("pred, leniency", [
    ({**BT, "ticker": "acme"}, "identifier_case"),
    ({**BT, "ticker": " ACME "}, "whitespace"),
    ({**BT, "start": "20190102"}, "date_format"),
    ({**BT, "slippage_bps": 2.0}, "default_argument"),
])
def test_leniencies_are_named_and_strict_rejects_them(pred, leniency):
    result = check(call("run_backtest", **pred), call("run_backtest", **BT))
    assert result.valid and result.leniencies == (leniency,)
    assert not strict_call_match(call("run_backtest", **pred), call("run_backtest", **BT))
    assert set(result.leniencies) <= set(LENIENCIES)


def test_exact_match_needs_no_leniency():
    assert check(call("run_backtest", **BT), call("run_backtest", **BT)).leniencies == ()
    gold = call("search_docs", query="look-ahead bias next bar execution")
    assert check(call("search_docs", query="next bar execution look-ahead bias"), gold).leniencies == (
        "query_paraphrase",)


def test_strict_errors_use_the_same_taxonomy():
    gold = call("run_backtest", **BT)
    assert strict_check_call(call("run_backtest", **{**BT, "fee_bps": 26}), gold).error == "wrong_value"
    assert strict_check_call(call("get_model_info", model_id="x"), gold).error == "wrong_name"
    no_fee = {k: v for k, v in BT.items() if k != "fee_bps"}
    assert strict_check_call(call("run_backtest", **no_fee), gold).error == "missing_argument"
    assert strict_check_call(call("search_docs", query="a b"), call("search_docs", query="a c")).error == \
        "query_mismatch"


def test_paraphrase_documents_are_compared_with_bm25():
    gold = [call("search_docs", query="look-ahead bias next bar execution")]
    assert paraphrase_same_docs([call("search_docs", query="next bar execution look-ahead bias")], gold, 2) is True
    assert paraphrase_same_docs([call("search_docs", query="option premium Black-Scholes")], gold, 2) is False
    assert paraphrase_same_docs(gold, gold, 2) is None  # nothing paraphrased
    assert paraphrase_same_docs([call("list_models")], gold, 2) is None
    assert paraphrase_same_docs([call("search_docs", query="next bar execution look-ahead bias")], gold, 0) is None


def test_default_schemas_are_the_workbench_tools():
    base = {k: v for k, v in BT.items() if k != "fee_bps"}
    assert tool_call_match(call("run_backtest", **base), call("run_backtest", **{**base, "fee_bps": 1}))
    assert not tool_call_match(call("run_backtest", **base), call("run_backtest", **BT))


def test_error_taxonomy_is_fixed():
    assert ERRORS == ("wrong_name", "missing_argument", "unexpected_argument", "wrong_value",
                      "query_mismatch", "malformed")


class FixedJudge:
    """Scores 1.0 unless the answer says 'bad'; keeps score tests independent of the rubric."""

    name = "fixed"

    def grade(self, row):
        from distill.ruler.judge import JudgeResult
        return JudgeResult(0.0 if "bad" in row["pred_answer"] else 1.0, [])


def _frame() -> pd.DataFrame:
    info = [call("get_model_info", model_id="sma_crossover")]
    out = [json.dumps({"total_return": 0.125, "sharpe": 1.31})]
    rows = [  # (category, pred_calls, pred_answer): perf rows 1-2 fully right, 3 wrong call, 4 ungrounded
        ("performance", info, "Total return was 12.5% with Sharpe 1.31."),
        ("performance", info, "Sharpe 1.31."),
        ("performance", [call("list_models")], "Total return was 12.5%."),
        ("performance", info, "bad: Total return was 99%."),
        ("methodology", [call("search_docs", query="split for ML")], "It uses no split."),
        ("methodology", [], ""),
        ("methodology", [call("search_docs", query="ML split")], f"<tool_response>{out[0]}</tool_response>"),
    ]
    return pd.DataFrame([{
        "trace_id": f"t{i}", "category": cat, "model_id": "sma_crossover", "model_kind": "rule",
        "ticker": "ACME", "question": "q", "gold_answer": "g",
        "gold_calls": json.dumps(info if cat == "performance" else [call("search_docs", query="ML split")]),
        "pred_calls": json.dumps(calls), "pred_answer": answer, "tool_outputs": json.dumps(out),
        "failure": "turn_limit" if not answer else None, "n_turns": 2, "raw_turns": "[]",
    } for i, (cat, calls, answer) in enumerate(rows)])


CFG = {**defaults("scoring"), "bootstrap_samples": 200, "ship_bar": {"tool_call": 0.9, "grounded": 0.99, "judge": 0.5}}


def _scores(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    frame = score_frame(df, FixedJudge(), CFG, tools=TOOLS)
    return frame, summarise(frame, CFG, "fixed", seed=1)


def test_per_question_table_explains_each_verdict():
    frame, _ = _scores(_frame())
    assert tuple(frame.columns) == SCORE_COLUMNS and len(frame) == 7
    rows = frame.set_index("trace_id")
    assert json.loads(rows.at["t3", "ungrounded"]) == ["99%"] and rows.at["t2", "call_error"] == "wrong_name"
    assert rows.at["t4", "tool_call"] and not rows.at["t4", "tool_call_strict"]
    assert json.loads(rows.at["t4", "leniencies"]) == ["query_paraphrase"]
    assert rows.at["t4", "strict_error"] == "query_mismatch" and rows.at["t4", "paraphrase_same_docs"] is not None
    # non-answers: not answered, not grounded, judge 0, whatever the judge would have said
    for trace_id, reason in (("t5", "no_answer"), ("t6", "markup_in_answer")):
        assert not rows.at[trace_id, "answered"] and rows.at[trace_id, "answer_reason"] == reason
        assert not rows.at[trace_id, "grounded"]
    assert rows.at["t6", "tool_call"]  # the call was right; the answer was not an answer


def test_summary_rates_ci_and_categories():
    _, scores = _scores(_frame())
    json.dumps(scores)  # JSON-able as written to results/scores/
    overall, perf = scores["overall"], scores["per_category"]["performance"]
    assert scores["n"] == overall["n"] == 7
    assert overall["tool_call"]["value"] == pytest.approx(5 / 7)   # t2 wrong name, t5 missing call
    assert overall["tool_call_strict"]["value"] == pytest.approx(4 / 7)  # paraphrased query fails strict
    assert overall["answered"]["value"] == pytest.approx(5 / 7)
    assert overall["grounded"]["value"] == pytest.approx(4 / 7)    # 99% ungrounded, two non-answers
    for metric in ("tool_call", "tool_call_strict", "answered", "grounded", "judge"):
        lo, hi = overall[metric]["ci95"]
        assert 0.0 <= lo <= overall[metric]["value"] <= hi <= 1.0
    assert (perf["n"], perf["tool_call"]["value"]) == (4, 0.75)
    assert overall["call_errors"]["wrong_name"] == 1 and overall["call_errors"]["missing_call"] == 1
    assert overall["failures"]["turn_limit"] == 1
    assert overall["answer_reasons"] == {"no_answer": 1, "markup_in_answer": 1, "echoed_tool_output": 0,
                                         "echoed_question": 0, "no_answer_content": 0}
    assert overall["lenient_only"]["query_paraphrase"] == 1
    assert _scores(_frame())[1] == scores  # seeded


def test_ship_bar_fail_and_pass():
    bar = _scores(_frame())[1]["ship_bar"]
    assert not bar["passed"] and not bar["tool_call"]["passed"] and bar["judge"]["passed"]
    bar = _scores(_frame().iloc[[0, 1, 4]])[1]["ship_bar"]
    assert bar["passed"] and bar["grounded"]["value"] == 1.0
