"""The one definition of an answer (distill.ruler.answers): each rule with a positive and a negative case."""

from __future__ import annotations

import json

import pytest

from distill.config import defaults
from distill.ruler.answers import ANSWER_REASONS, check_answer, grounded_answer, json_share

QUESTION = "What data source does SMA Crossover use when it runs on ACME?"
INFO = json.dumps({"model_id": "sma_crossover", "name": "SMA Crossover", "kind": "rule",
                   "data_source": "daily close prices (bundled synthetic OHLCV set)",
                   "parameters": {"fast_window": 20, "slow_window": 50}})


def reason(answer: str | None, question: str = QUESTION) -> str | None:
    return check_answer(answer, question).reason


def test_taxonomy_is_fixed():
    assert ANSWER_REASONS == ("no_answer", "markup_in_answer", "echoed_tool_output", "echoed_question",
                              "no_answer_content")


@pytest.mark.parametrize("answer", [None, "", "   \n\t"])
def test_empty_is_no_answer(answer):
    assert reason(answer) == "no_answer"


@pytest.mark.parametrize("answer", [
    f"<tool_response>{INFO}</tool_response>",
    "SMA Crossover uses close prices.</tool_call>",
    "Let me check. <tool_call>",
    "It uses close prices.<|im_end|>",
    "<|im_start|>assistant\nIt uses close prices.",
    '<function_calls><invoke name="get_model_info">',
])
def test_markup_is_not_an_answer(answer):
    assert reason(answer) == "markup_in_answer"


@pytest.mark.parametrize("answer", [
    INFO,                                                    # the tool's JSON, whole
    INFO[:90],                                               # cut off mid-value, as max_new_tokens does
    '"total_return": 0.3297, "cagr": 0.0567, "sharpe": 0.34',  # key-value pairs without braces
    "[1, 2, 3]",
])
def test_tool_json_is_not_an_answer(answer):
    assert reason(answer) == "echoed_tool_output"


@pytest.mark.parametrize("answer", [
    QUESTION,
    "  what data source does sma crossover use when it runs on acme  ",
    "SMA Crossover.",
    "SMA Crossover on ACME?",
])
def test_echo_of_the_question_is_not_an_answer(answer):
    assert reason(answer) == "echoed_question"


@pytest.mark.parametrize("answer", [
    "SMA Crossover uses daily close prices (bundled synthetic OHLCV set).",
    "Daily close prices.",
    'It reads the "close" column of the bundled set, with parameters {fast 20, slow 50}.',
    "I don't know.",  # without a category, only the form is checked
])
def test_real_answers_are_answers(answer):
    result = check_answer(answer, QUESTION)
    assert result.answered and result.reason is None


def test_json_share_counts_structure_not_prose():
    assert json_share(INFO) > 0.9
    assert json_share("SMA Crossover uses daily close prices.") == 0.0
    prose_with_quote = 'The tool says "data_source": "daily close prices" for SMA Crossover, so that is its data.'
    assert json_share(prose_with_quote) < defaults("scoring")["json_share"]


def test_json_share_threshold_comes_from_config():
    half = '"sharpe": 0.34, "cagr": 0.05 are the figures the backtest reported for SMA Crossover today'
    assert reason(half) is None
    assert check_answer(half, QUESTION, cfg={**defaults("scoring"), "json_share": 0.2}).reason == "echoed_tool_output"


@pytest.mark.parametrize("category, answer, detail", [
    ("performance", "I don't know.", "states no number"),
    ("what_if", "Raising fees would lower the return of SMA Crossover.", "states no number"),
    ("data_source", "I could not find that in the documentation.", "names no data source"),
    ("methodology", "I'm not sure how that works for this model.", "states no methodology fact"),
])
def test_an_answer_that_states_nothing_asked_for_is_no_answer(category, answer, detail):
    """A refusal after a search used to score answered (and trivially grounded: it cites no number)."""
    result = check_answer(answer, QUESTION, category)
    assert (result.answered, result.reason, result.detail) == (False, "no_answer_content", detail)
    check, ungrounded = grounded_answer(answer, QUESTION, category, ['{"total_return": 0.125}'])
    assert not check.answered and ungrounded == []


@pytest.mark.parametrize("category, answer", [
    ("performance", "SMA Crossover returned 12.5% on ACME."),
    ("what_if", "At 50 bps the total return falls to 8.1%."),
    ("data_source", "SMA Crossover uses daily close prices."),
    ("methodology", "It trades at the next bar's open, so there is no look-ahead."),
    ("methodology", "Fees and slippage are charged in basis points on every trade."),
])
def test_an_answer_with_the_facts_asked_for_is_an_answer(category, answer):
    assert check_answer(answer, QUESTION, category).answered


def test_no_question_skips_the_echo_rule():
    assert check_answer("SMA Crossover.", "").answered
