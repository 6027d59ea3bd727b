"""distill.ruler.claims: the registry-contradiction and key-fact rules shared by the judge and the diagnostics."""

from __future__ import annotations

import pytest

from distill import config
from distill.ruler.claims import (CONTRADICTIONS, SUSPECT_ISSUES, affirmed, contradictions, named_entities,
                                  registry_sources, source_terms, stated_facts, suspect_gold)
from distill.workbench.registry import MODELS

RULE, ML = MODELS["sma_crossover"], MODELS["ridge_forecaster"]


def issues(text: str, spec=RULE, category: str = "methodology") -> set[str]:
    return {f.issue for f in contradictions(text, spec, category)}


def test_taxonomies_are_fixed():
    assert CONTRADICTIONS == ("split_claim_on_rule_model", "no_split_on_ml_model", "data_source_foreign_terms")
    assert SUSPECT_ISSUES == ("unknown_model", *CONTRADICTIONS, "data_source_missing_terms")


@pytest.mark.parametrize("text", [
    "As with every workbench model, results use the default 80/20 train/test split and are reported out-of-sample.",
    "It is validated on a chronological split.",
    "Results are held-out on the last 20% of the window.",
    "It is trained on the first 80% of the data.",
])
def test_split_claims_contradict_a_rule_model(text):
    assert issues(text) == {"split_claim_on_rule_model"}
    assert issues(text, ML) == set()


@pytest.mark.parametrize("text", [
    "SMA Crossover is rule-based with nothing to fit, so it is backtested over the full period with no "
    "train/test split.",
    "There is no train/test split and nothing is held out.",
    "It does not use an out-of-sample period.",
    "Without a train/test split, the whole window is the backtest.",
])
def test_negated_split_claims_do_not_contradict(text):
    assert issues(text) == set()


@pytest.mark.parametrize("text", [
    "It is backtested over the full period with no train/test split.",
    "Nothing is fitted: it is rule-based.",
    "It uses the entire history without any split.",
])
def test_no_split_claims_contradict_the_ml_model(text):
    assert issues(text, ML) == {"no_split_on_ml_model"}


def test_foreign_data_sources_contradict_on_data_source_questions_only():
    assert issues("It uses daily close prices and volume.", RULE, "data_source") == {"data_source_foreign_terms"}
    assert issues("It uses close prices, not volume.", RULE, "data_source") == set()
    assert issues("It uses close prices and volume.", ML, "data_source") == set()
    assert issues("Minute-level order book data.", RULE, "data_source") == {"data_source_foreign_terms"}
    assert issues("It uses daily close prices and volume.", RULE, "performance") == set()


def test_suspect_gold_adds_unknown_model_and_missing_terms():
    assert [f.issue for f in suspect_gold("Total return 3%.", "no_such_model", "performance")] == ["unknown_model"]
    found = suspect_gold("Donchian Breakout uses daily close prices.", "donchian_breakout", "data_source")
    assert [(f.issue, f.detail) for f in found] == [("data_source_missing_terms", "donchian_breakout uses: high, low")]


def test_registry_sources_follow_the_registry():
    assert registry_sources(ML) == {"close", "volume"}
    assert registry_sources(RULE) == {"close"}  # "bundled synthetic OHLCV set" names no field
    assert registry_sources(MODELS["donchian_breakout"]) == {"close", "high", "low"}
    assert registry_sources(MODELS["covered_call"]) == {"close", "black-scholes"}
    assert "high" not in source_terms("high-frequency tick data")


@pytest.mark.parametrize("text, facts", [
    ("fitted on a chronological 80/20 train/test split, out-of-sample", {"chronological", "train/test split",
                                                                         "out-of-sample"}),
    ("rule-based with nothing to fit, full period, no train/test split", {"nothing fitted", "full period", "no split"}),
    ("trades on the bar after each signal", {"next bar"}),
    ("priced with Black-Scholes from realized volatility", {"Black-Scholes", "realised volatility"}),
    ("It never trades on the next bar.", set()),
])
def test_stated_facts(text, facts):
    assert stated_facts(text) == facts


def test_negation_stays_within_its_sentence_and_window():
    assert affirmed("There is no cost. It uses a train/test split.", r"train/test split")
    assert not affirmed("It does not rely on any train/test split.", r"train/test split")
    assert affirmed("No fees apply to the signal, which then feeds a long and detailed train/test split.",
                    r"train/test split")  # the negation is more than the default negation_window words before


def test_named_entities():
    assert named_entities("SMA Crossover on ACME beat rsi_reversion on BOLT.") == {
        "sma_crossover", "rsi_reversion", "ACME", "BOLT"}
    assert named_entities("SMA Crossover on ACME.", tickers=False) == {"sma_crossover"}


@pytest.mark.parametrize("text", [
    "Donchian Breakout has a low drawdown and a high Sharpe ratio.",
    "It is a high-risk model with low turnover; it uses daily close prices.",
])
def test_high_and_low_as_adjectives_are_no_data_source(text):
    """'low'/'high' as adjectives named a foreign data source, capping a correct answer at 0.2."""
    assert source_terms(text) <= {"close"}
    assert issues(text, RULE, "data_source") == set()


@pytest.mark.parametrize("text", [
    "Donchian Breakout uses daily high, low and close prices (bundled synthetic OHLCV set).",
    "It reads the highs and lows of each bar, and the close.",
    "It uses the daily high and low prices.",
])
def test_high_and_low_as_price_fields_are_data_sources(text):
    assert {"high", "low"} <= source_terms(text)


def test_rule_based_said_of_another_model_states_nothing_about_this_one():
    """'rule-based' inside a sentence about the ML model matched 'nothing fitted' with no check."""
    text = "Unlike the rule-based crossover, the ridge model is fitted on a chronological 80/20 train/test split."
    assert "nothing fitted" not in stated_facts(text)
    assert issues(text, ML) == set()
    assert "nothing fitted" in stated_facts("Covered Call Writer is a rule-based model.")
    assert "nothing fitted" in stated_facts("SMA Crossover is rule-based with nothing to fit.")


@pytest.mark.parametrize("text", ["It does not use volume, only daily close prices.",
                                  "Daily close prices without volume.", "Close prices; no volume."])
def test_a_negated_data_source_is_not_named(text):
    """'does not use volume' earned the volume fact; one matcher now reads every fact negation-aware."""
    assert source_terms(text) == {"close"}


def test_the_negation_window_comes_from_the_claims_config():
    text = "No fees apply to the signal, which then feeds a long and detailed train/test split."
    assert affirmed(text, r"train/test split")  # the default window (5 words) does not reach "No"
    assert not affirmed(text, r"train/test split", {"negation_window": 15})
    assert "train/test split" not in stated_facts(text, {"negation_window": 15})


def test_costs_are_a_methodology_fact():
    assert "fees and slippage" in stated_facts("It pays fees and slippage in basis points on every trade.")
    assert "fees and slippage" not in stated_facts("There are no fees.")


@pytest.mark.parametrize("text, terms", [
    ("It enters above the 55-day high and exits below the 20-day low.", {"high", "low"}),
    ("It uses the highest high and lowest low of the channel.", {"high", "low"}),
    ("It trades the 20-day high-low range.", {"high", "low"}),
    ("It uses OHLC bars.", {"close", "high", "low"}),
    ("It uses OHLCV bars.", {"close", "high", "low", "volume"}),
    ("It uses daily close prices (bundled synthetic OHLCV set).", {"close"}),
    ("It reads the bundled synthetic OHLCV data.", set()),
    ("A daily high-risk bet on close prices.", {"close"}),
])
def test_price_fields_after_a_lookback_or_in_an_ohlc_list(text, terms):
    """A Donchian answer's '55-day high' named no data source; an OHLC field list names its fields, the
    bundled 'OHLCV set' (in every registry entry) none."""
    assert source_terms(text) == terms


@pytest.mark.parametrize("text, terms", [
    ("It does not use intraday data, news, or volume.", set()),
    ("Volume is not used; only daily close prices.", {"close"}),
    ("It uses daily close prices; volume data is not an input.", {"close"}),
    ("The close is used and volume is not.", {"close"}),
    ("It uses close and volume, not news.", {"close", "volume"}),
    ("It uses not only close prices but also volume.", {"close", "volume"}),
])
def test_a_negated_list_or_copula_names_no_source(text, terms):
    """'does not use news, or volume' and 'volume is not used' earned the volume fact."""
    assert source_terms(text) == terms


def test_a_contrast_cancels_its_phrase_only():
    """A contrast ('while', 'whereas', 'unlike X, which ...') introduces another model: what it says of that
    model is not claimed for this one; what follows the contrast's comma is."""
    assert issues("The ML model is fitted on a chronological 80/20 split, while the crossover is rule-based.",
                  ML) == set()
    text = "Unlike the crossover, which is rule-based, ridge is fitted on a chronological 80/20 split."
    assert stated_facts(text) == {"chronological", "train/test split"}
    assert issues("SMA Crossover uses close prices, whereas ridge also uses volume.", RULE, "data_source") == set()
    assert source_terms("Unlike SMA, ridge uses close prices and volume.") == {"close", "volume"}


def test_the_default_window_is_read_from_the_schema(monkeypatch):
    text = "It does not rely on volume."
    assert source_terms(text) == set()
    assert source_terms(text, {"negation_window": 2}) == {"volume"}  # "rely on" holds no negation
    assert source_terms(text, {"negation_window": 0}) == {"volume"}
    monkeypatch.setattr(config, "defaults", lambda *keys: {"negation_window": 0})
    assert source_terms(text) == {"volume"}
