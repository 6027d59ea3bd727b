"""The tool layer: schemas, error results that name the bad argument, docs search, docs facts."""

from __future__ import annotations

import inspect
import json

import jsonschema
import pytest

from distill.dataset.grounding import ungrounded_numbers
from distill.workbench import docs, prices
from distill.workbench.backtest import run_backtest
from distill.workbench.registry import MODELS, OPTIONABLE, TICKERS
from distill.workbench.tools import TOOL_NAMES, TOOLS, execute, is_error

GOOD = {"model_id": "sma_crossover", "ticker": "ACME", "start": "2020-01-01", "end": "2022-12-31"}


def test_tools_have_the_anthropic_shape_and_valid_schemas():
    assert TOOL_NAMES == ("list_models", "get_model_info", "run_backtest", "search_docs")
    for tool in TOOLS:
        assert set(tool) == {"name", "description", "input_schema"}
        schema = tool["input_schema"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"])


def test_run_backtest_schema_defaults_match_the_engine():
    props = TOOLS[TOOL_NAMES.index("run_backtest")]["input_schema"]["properties"]
    engine = inspect.signature(run_backtest).parameters
    for name in ("fee_bps", "slippage_bps"):
        assert props[name]["default"] == engine[name].default


@pytest.mark.parametrize(("name", "arguments", "needle"), [
    ("no_such_tool", {}, "name"),
    ("list_models", "[1, 2]", "arguments"),
    ("list_models", "{not json", "arguments"),
    ("list_models", 42, "arguments"),
    ("list_models", {"verbose": True}, "verbose"),
    ("get_model_info", {}, "model_id"),
    ("get_model_info", {"model_id": "gpt_trader"}, "model_id"),
    ("get_model_info", {"model_id": 3}, "model_id"),
    ("run_backtest", {**GOOD, "model_id": "nope"}, "model_id"),
    ("run_backtest", {k: v for k, v in GOOD.items() if k != "ticker"}, "ticker"),
    ("run_backtest", {**GOOD, "ticker": "AAPL"}, "ticker"),
    ("run_backtest", {**GOOD, "model_id": "covered_call", "ticker": "BOLT"}, "ticker"),
    ("run_backtest", {**GOOD, "start": "2020-1-1"}, "start"),
    ("run_backtest", {**GOOD, "start": "2021-02-30"}, "start"),
    ("run_backtest", {**GOOD, "end": 20221231}, "end"),
    ("run_backtest", {**GOOD, "start": "2022-06-01", "end": "2021-06-01"}, "start"),
    ("run_backtest", {**GOOD, "start": "2010-01-01"}, "start"),
    ("run_backtest", {**GOOD, "end": "2030-01-01"}, "end"),
    ("run_backtest", {**GOOD, "start": "2022-11-01"}, "start/end"),
    ("run_backtest", {**GOOD, "fee_bps": -3}, "fee_bps"),
    ("run_backtest", {**GOOD, "fee_bps": 1e308}, "fee_bps"),  # absurd fees
    ("run_backtest", {**GOOD, "fee_bps": True}, "fee_bps"),
    ("run_backtest", json.dumps(GOOD)[:-1] + ', "fee_bps": NaN}', "fee_bps"),  # JSON as Python reads it
    ("run_backtest", json.dumps(GOOD)[:-1] + ', "slippage_bps": Infinity}', "slippage_bps"),
    ("run_backtest", json.dumps(GOOD)[:-1] + ', "fee_bps": 1e400}', "fee_bps"),
    ("run_backtest", {**GOOD, "start": "2021-06-01", "end": "2021-06-01"}, "start/end"),  # empty windows
    ("run_backtest", {**GOOD, "start": "2021-06-05", "end": "2021-06-06"}, "0 trading days"),
    ("run_backtest", {**GOOD, "slippage_bps": "2"}, "slippage_bps"),
    ("run_backtest", {**GOOD, "capital": 1e6}, "capital"),
    ("search_docs", {"query": ""}, "query"),
    ("search_docs", {"query": "   "}, "query"),
    ("search_docs", {}, "query"),
])
def test_bad_arguments_return_an_error_naming_the_argument(name, arguments, needle):
    output = execute(name, arguments)
    assert is_error(output)
    assert needle in json.loads(output)["error"]


def test_illegal_ticker_error_lists_the_legal_tickers():
    output = execute("run_backtest", {**GOOD, "model_id": "covered_call", "ticker": "HALO"})
    assert ", ".join(OPTIONABLE) in json.loads(output)["error"]


def test_good_calls_return_json_results():
    models = json.loads(execute("list_models", {}))
    assert [m["model_id"] for m in models] == list(MODELS)
    assert set(models[0]) == {"model_id", "name", "kind", "options_strategy"}
    for model_id, spec in MODELS.items():
        info = spec.info()
        del info["description"]  # prose no answer cites: left out of the tool output (tokens)
        assert json.loads(execute("get_model_info", {"model_id": model_id})) == info
    result = execute("run_backtest", json.dumps({**GOOD, "fee_bps": 4}))  # arguments as JSON text
    assert not is_error(result)
    engine = run_backtest(**GOOD, fee_bps=4)
    shown = json.loads(result)
    assert set(shown) == set(engine) - {"model_id"}
    assert shown["n_trades"] == engine["n_trades"] and shown["fee_bps"] == "4"


def test_backtest_figures_are_shown_as_an_answer_states_them_and_stay_grounded():
    """Percentages, Sharpe and dollars display-ready, and an answer that copies them is grounded."""
    engine = run_backtest(**GOOD)
    shown = json.loads(execute("run_backtest", GOOD))
    assert shown["total_return"] == f"{engine['total_return'] * 100:.1f}%"
    assert shown["sharpe"] == f"{engine['sharpe']:.2f}" and shown["fees_paid"] == f"${engine['fees_paid']:,.2f}"
    answer = (f"It returned {shown['total_return']} with a Sharpe ratio of {shown['sharpe']}, a drawdown of "
              f"{shown['max_drawdown']} and {shown['fees_paid']} in costs.")
    assert ungrounded_numbers(answer, [json.dumps(shown)]) == []
    assert ungrounded_numbers(answer.replace(shown["sharpe"], "9.99"), [json.dumps(shown)]) == ["9.99"]


def test_is_error():
    assert is_error('{"error": "x"}') and is_error("not json")
    assert not is_error("[]") and not is_error('{"total_return": 0.1}')


@pytest.mark.parametrize(("query", "doc"), [
    ("train test split", "ml_validation.md"),
    ("Black-Scholes volatility", "options_pricing.md"),
    ("fees slippage basis points", "fees_slippage.md"),
    ("synthetic tickers date range", "data.md"),
    ("max drawdown sharpe definition", "backtest.md"),
])
def test_search_docs_finds_the_right_document(query, doc):
    hits = json.loads(execute("search_docs", {"query": query}))
    assert hits[0]["doc"] == doc
    assert len(hits) <= 3 and all(set(h) == {"doc", "snippet"} for h in hits)  # best first


def test_search_docs_unknown_words_find_nothing():
    assert docs.search_docs("zyxwvut qqq") == []


def test_docs_state_the_registry_and_engine_facts():
    text = {p.name: p.read_text() for p in docs.DOCS_DIR.glob("*.md")}
    assert set(text) == {"data.md", "backtest.md", "fees_slippage.md", "ml_validation.md",
                         "options_pricing.md"}
    assert all(150 <= len(t.split()) <= 300 for t in text.values())
    assert all(t in text["data.md"] for t in TICKERS) and prices.START in text["data.md"]
    assert ", ".join(OPTIONABLE[:-1]) + " and " + OPTIONABLE[-1] in text["options_pricing.md"]
    assert "1 bp fee and 2 bps of slippage" in text["fees_slippage.md"]
    rule_ids = [m for m, spec in MODELS.items() if spec.kind == "rule"]
    assert all(m in text["ml_validation.md"] for m in rule_ids)
