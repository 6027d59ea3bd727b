"""The synthetic price set and the backtest engine: determinism, costs, validation split, no look-ahead."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from distill.workbench import backtest, prices
from distill.workbench.backtest import bs_call, run_backtest, simulate
from distill.workbench.registry import MODELS, OPTIONABLE, TICKERS

WINDOW = ("2020-01-01", "2022-12-31")


def test_committed_prices_equal_generator_output():
    pd.testing.assert_frame_equal(prices.load_prices(), prices.generate())


def test_prices_are_labelled_synthetic_and_cover_the_registry():
    px = prices.load_prices()
    assert set(px["source"]) == {"synthetic"}
    assert tuple(sorted(px["ticker"].unique())) == TICKERS
    assert px["date"].min() == pd.Timestamp(prices.START)
    assert px["date"].max() == pd.Timestamp(prices.END)
    assert (px["high"] >= px[["open", "close"]].max(axis=1)).all()
    assert (px["low"] <= px[["open", "close"]].min(axis=1)).all()
    assert prices.PRICES_PATH.stat().st_size < 1_000_000


def test_backtest_is_deterministic():
    for model_id, spec in MODELS.items():
        assert run_backtest(model_id, spec.tickers[0], *WINDOW) == run_backtest(
            model_id, spec.tickers[0], *WINDOW)


@pytest.mark.parametrize("model_id", list(MODELS))
def test_higher_costs_lower_return_monotonically(model_id):
    ticker = MODELS[model_id].tickers[0]
    runs = [run_backtest(model_id, ticker, *WINDOW, fee_bps=fee, slippage_bps=2.0)
            for fee in (0.0, 1.0, 5.0, 25.0)]
    returns = [r["total_return"] for r in runs]
    fees = [r["fees_paid"] for r in runs]
    assert returns == sorted(returns, reverse=True) and returns[0] > returns[-1]
    assert fees == sorted(fees) and fees[0] > 0


def test_ml_model_reports_only_the_out_of_sample_window():
    result = run_backtest("ridge_forecaster", "ACME", *WINDOW)
    days = backtest._ticker_prices("ACME").loc[WINDOW[0]:WINDOW[1]].index
    n_train = int(len(days) * MODELS["ridge_forecaster"].parameters["train_fraction"])
    assert result["start"] == days[n_train].date().isoformat()
    assert result["end"] == days[-1].date().isoformat()
    assert result["period"] == "out-of-sample (last 20% of window)"


def test_ml_fit_ignores_the_test_period():
    """Altering test-period prices must not change the fitted model, hence the first test positions."""
    px = backtest._ticker_prices("BOLT")
    book = simulate("ridge_forecaster", px, *WINDOW)
    altered = px.copy()
    altered.loc[book.index[10]:, ["open", "high", "low", "close"]] *= 1.3
    again = simulate("ridge_forecaster", altered, *WINDOW)
    assert book["position"].iloc[:11].equals(again["position"].iloc[:11])


@pytest.mark.parametrize("model_id", [m for m in MODELS if MODELS[m].kind == "rule"])
def test_rule_models_use_the_full_window(model_id):
    result = run_backtest(model_id, MODELS[model_id].tickers[0], *WINDOW)
    assert (result["start"], result["end"], result["period"]) == ("2020-01-01", "2022-12-30", "full period")


@pytest.mark.parametrize("model_id", list(MODELS))
def test_no_look_ahead(model_id):
    """Moving prices from day D on changes nothing before D, nor the position held on D itself.

    Both a crash (x0.2) and a spike (x5) are tried at many days D, so that a signal peeking at D's own
    close would flip one way or the other.
    """
    ticker = MODELS[model_id].tickers[-1]
    px = backtest._ticker_prices(ticker)
    book = simulate(model_id, px, *WINDOW)
    for cut in book.index[5::23]:
        for factor in (0.2, 5.0):
            altered = px.copy()
            altered.loc[cut:, ["open", "high", "low", "close"]] *= factor
            again = simulate(model_id, altered, *WINDOW)
            before = book.index < cut
            assert again.loc[before].equals(book.loc[before]), (cut, factor)
            assert again.at[cut, "position"] == book.at[cut, "position"], (cut, factor)


def test_covered_call_only_on_optionable_tickers():
    for ticker in TICKERS:
        if ticker in OPTIONABLE:
            assert run_backtest("covered_call", ticker, *WINDOW)["n_trades"] > 0
        else:
            with pytest.raises(ValueError, match="ticker.*legal tickers: " + ", ".join(OPTIONABLE)):
                run_backtest("covered_call", ticker, *WINDOW)


def test_metrics_are_in_sane_ranges_and_rounded_for_citing():
    for model_id, spec in MODELS.items():
        for ticker in spec.tickers:
            r = run_backtest(model_id, ticker, "2018-01-01", "2023-12-31")
            assert r["total_return"] > -1 and -1 <= r["max_drawdown"] <= 0
            assert 0 <= r["win_rate"] <= 1 and isinstance(r["n_trades"], int) and r["n_trades"] >= 0
            assert r["fees_paid"] > 0 and math.isfinite(r["sharpe"]) and math.isfinite(r["cagr"])
            for key, digits in (("total_return", 4), ("cagr", 4), ("max_drawdown", 4),
                                ("win_rate", 4), ("sharpe", 2), ("fees_paid", 2)):
                assert r[key] == round(r[key], digits)


def test_black_scholes_matches_textbook_values():
    assert bs_call(100, 100, 1.0, 0.05, 0.2) == pytest.approx(10.4506, abs=1e-4)
    assert bs_call(100, 90, 0.0, 0.02, 0.3) == 10.0  # expiry: intrinsic value
    assert 0 < bs_call(100, 105, 30 / 365, 0.02, 0.25) < 100


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"model_id": "nope"}, "model_id"),
    ({"ticker": "ZZZZ"}, "ticker"),
    ({"start": "2020-13-01"}, "start"),
    ({"end": "01/02/2021"}, "end"),
    ({"start": "2022-01-01", "end": "2021-01-01"}, "start/end"),
    ({"start": "2017-06-01"}, "start"),
    ({"end": "2024-03-01"}, "end"),
    ({"start": "2021-01-01", "end": "2021-02-15"}, "start/end"),
    ({"fee_bps": -1.0}, "fee_bps"),
    ({"slippage_bps": float("nan")}, "slippage_bps"),
    ({"capital": 0}, "capital"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, argument):
    args = {"model_id": "sma_crossover", "ticker": "ACME", "start": WINDOW[0], "end": WINDOW[1], **kwargs}
    with pytest.raises(ValueError, match=f"^{argument}:"):
        run_backtest(**args)


def test_window_edges_clip_to_trading_days():
    r = run_backtest("donchian_breakout", "GRID", "2018-01-01", "2023-12-31")
    assert (r["start"], r["end"]) == (prices.START, prices.END)
