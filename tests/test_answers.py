"""The one definition of an answer (distill.ruler.answers): each rule with a positive and a negative case."""

from __future__ import annotations

import json

import pytest

from distill.ruler.answers import ANSWER_REASONS, JSON_SHARE, check_answer, json_share

QUESTION = "What data source does SMA Crossover use when it runs on ACME?"
INFO = json.dumps({"model_id": "sma_crossover", "name": "SMA Crossover", "kind": "rule",
                   "data_source": "daily close prices (bundled synthetic OHLCV set)",
                   "parameters": {"fast_window": 20, "slow_window": 50}})


def reason(answer: str | None, question: str = QUESTION) -> str | None:
    return check_answer(answer, question).reason


def test_taxonomy_is_fixed():
    assert ANSWER_REASONS == ("no_answer", "markup_in_answer", "echoed_tool_output", "echoed_question")


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
    "I don't know.",  # an answer, though a useless one: the judge scores it, not this check
])
def test_real_answers_are_answers(answer):
    result = check_answer(answer, QUESTION)
    assert result.answered and result.reason is None


def test_json_share_counts_structure_not_prose():
    assert json_share(INFO) > 0.9
    assert json_share("SMA Crossover uses daily close prices.") == 0.0
    prose_with_quote = 'The tool says "data_source": "daily close prices" for SMA Crossover, so that is its data.'
    assert json_share(prose_with_quote) < JSON_SHARE


def test_no_question_skips_the_echo_rule():
    assert check_answer("SMA Crossover.", "").answered
