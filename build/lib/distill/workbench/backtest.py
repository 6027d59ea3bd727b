"""Vectorised, deterministic backtests of the five registry models on the synthetic price set.

Execution model (see docs/backtest.md): a signal computed from data up to the close of day t-1 is
traded at the open of day t, so no position ever uses a price it could not have seen. Indicators use
the ticker's whole history before each day, so a window starting in 2020 begins warmed up. Fees and
slippage are charged in basis points on traded notional. The ML model is fitted on the first 80% of the
window and every reported metric covers only the last 20%; rule models are backtested over the full
window with no split.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd

from distill.workbench.prices import load_prices
from distill.workbench.registry import MODELS, ModelSpec

MIN_BARS = 60  # the ML model needs enough bars for both its train and its test part
MAX_COST_BPS = 1000.0  # fee or slippage above 10% per trade is surely a typo
TRADING_DAYS = 252
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _norm_cdf(x: float) -> float:
    """Standard normal CDF via math.erf (no scipy dependency for one function)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def bs_call(spot: float, strike: float, t: float, rate: float, vol: float) -> float:
    """Black-Scholes price of a European call; at expiry or zero vol, its (discounted) intrinsic value."""
    if t <= 0 or vol <= 0:
        return max(spot - strike * math.exp(-rate * max(t, 0.0)), 0.0)
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol**2) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    return spot * _norm_cdf(d1) - strike * math.exp(-rate * t) * _norm_cdf(d2)


# ---- signals: target position (0 = flat, 1 = long) known at each day's close ----------------------

def _hold_between(enter: pd.Series, leave: pd.Series) -> pd.Series:
    """Stateful long/flat rule, vectorised: 1 after an entry day until the next exit day."""
    state = pd.Series(np.nan, index=enter.index)
    state[enter] = 1.0
    state[leave & ~enter] = 0.0
    return state.ffill().fillna(0.0)


def sma_signal(px: pd.DataFrame, p: dict) -> pd.Series:
    """Long while the fast SMA is above the slow SMA (flat until both exist)."""
    fast = px["close"].rolling(p["fast_window"]).mean()
    slow = px["close"].rolling(p["slow_window"]).mean()
    return (fast > slow).astype(float)


def rsi_signal(px: pd.DataFrame, p: dict) -> pd.Series:
    """Wilder RSI: enter below `entry_below`, exit above `exit_above`."""
    delta = px["close"].diff()
    smooth = {"alpha": 1.0 / p["rsi_window"], "adjust": False, "min_periods": p["rsi_window"]}
    gain = delta.clip(lower=0).ewm(**smooth).mean()
    loss = (-delta.clip(upper=0)).ewm(**smooth).mean()
    rsi = 100 - 100 / (1 + gain / loss)
    return _hold_between(rsi < p["entry_below"], rsi > p["exit_above"])


def donchian_signal(px: pd.DataFrame, p: dict) -> pd.Series:
    """Enter on a close above the prior N-day high, exit on a close below the prior M-day low."""
    upper = px["high"].rolling(p["entry_window"]).max().shift(1)
    lower = px["low"].rolling(p["exit_window"]).min().shift(1)
    return _hold_between(px["close"] > upper, px["close"] < lower)


def _ridge_features(px: pd.DataFrame, lags: int) -> pd.DataFrame:
    """Features known at day t's close: the last `lags` returns and the 20-day volume z-score."""
    ret = px["close"].pct_change()
    feats = {f"ret_lag{k}": ret.shift(k) for k in range(lags)}
    vol = np.log(px["volume"].astype(float))
    feats["volume_z"] = (vol - vol.rolling(20).mean()) / vol.rolling(20).std()
    return pd.DataFrame(feats)


def ridge_signal(px: pd.DataFrame, p: dict, train: pd.DatetimeIndex) -> pd.Series:
    """Ridge regression of the next day's return, fitted in numpy on the `train` days only; long if > 0."""
    feats = _ridge_features(px, p["lags"])
    target = px["close"].pct_change().shift(-1)
    # Only samples whose target day is also a training day: the test period never leaks into the fit.
    fit = feats.loc[train[:-1]].assign(y=target.loc[train[:-1]]).dropna()
    if len(fit) < 2 * feats.shape[1]:
        raise ValueError(f"start/end: only {len(fit)} usable training rows for the ML model; "
                         "widen the window")
    x, y = fit.drop(columns="y").to_numpy(), fit["y"].to_numpy()
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-12
    xs, y_mean = (x - mean) / std, y.mean()
    coef = np.linalg.solve(xs.T @ xs + p["alpha"] * np.eye(xs.shape[1]), xs.T @ (y - y_mean))
    forecast = ((feats - mean) / std).to_numpy() @ coef + y_mean
    return pd.Series(np.where(np.isnan(forecast), 0.0, (forecast > 0).astype(float)), index=px.index)


_RULE_SIGNALS: dict[str, Callable[[pd.DataFrame, dict], pd.Series]] = {
    "sma_crossover": sma_signal, "rsi_reversion": rsi_signal, "donchian_breakout": donchian_signal,
}


# ---- simulation: daily equity, position, costs and trade ids ---------------------------------------

def _simulate_positions(px: pd.DataFrame, signal: pd.Series, days: pd.DatetimeIndex,
                        cost: float, capital: float) -> pd.DataFrame:
    """Trade yesterday's signal at today's open; a trade runs from its entry day to its exit day."""
    pos = signal.shift(1).fillna(0.0).loc[days].to_numpy()
    prev = np.concatenate([[0.0], pos[:-1]])  # the book starts flat on the first evaluated day
    win = px.loc[days]
    gap = (win["open"] / px["close"].shift(1).loc[days]).fillna(1.0).to_numpy() - 1
    intraday = (win["close"] / win["open"]).to_numpy() - 1
    traded = np.abs(pos - prev)
    factor = (1 + prev * gap) * (1 - traded * cost) * (1 + pos * intraday)
    equity = capital * np.cumprod(factor)
    before = np.concatenate([[capital], equity[:-1]])
    fees = before * (1 + prev * gap) * traded * cost
    # Day d belongs to a trade if held on d or exited at d's open; ids count entries.
    trade = np.where((pos > 0) | (prev > 0), np.cumsum((pos > 0) & (prev == 0)) - 1, -1)
    return pd.DataFrame({"position": pos, "equity": equity, "fees": fees, "trade": trade}, index=days)


def _simulate_covered_call(px: pd.DataFrame, p: dict, days: pd.DatetimeIndex,
                           cost: float, capital: float) -> pd.DataFrame:
    """Long the stock from the first open; write a call at the close every `roll_every` days.

    The short call is marked daily with Black-Scholes at the current realised vol; at each roll the old
    call is bought back at that mark and a new one sold. Rolls start once realised vol exists.
    """
    log_ret = np.log(px["close"]).diff()
    vol = (log_ret.rolling(p["vol_window"]).std() * math.sqrt(TRADING_DAYS)).loc[days].to_numpy()
    spot = px["close"].loc[days].to_numpy()
    n = len(days)
    first = int(np.argmax(~np.isnan(vol))) if (~np.isnan(vol)).any() else n
    is_roll = (np.arange(n) >= first) & ((np.arange(n) - first) % p["roll_every"] == 0)
    cycle = np.where(np.arange(n) >= first, np.cumsum(is_roll) - 1, -1)
    roll_at = np.flatnonzero(is_roll)
    price = np.vectorize(bs_call, otypes=[float])
    rate, expiry = p["risk_free_rate"], p["days_to_expiry"]

    def call_value(k: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Mark on every day t of the call written at roll index k (0 where no call is open)."""
        strike = p["moneyness"] * spot[roll_at[k]]
        left = (expiry - (days[t] - days[roll_at[k]]).days.to_numpy()) / 365
        return price(spot[t], strike, left, rate, vol[t])

    idx, live = np.arange(n), cycle >= 0
    short_call = np.zeros(n)
    short_call[live] = call_value(cycle[live], idx[live])
    premium = np.zeros(n)
    premium[is_roll] = short_call[is_roll]
    buyback = np.zeros(n)
    rolled = is_roll & (cycle > 0)
    buyback[rolled] = call_value(cycle[rolled] - 1, idx[rolled])
    open0 = px["open"].loc[days].iloc[0]
    fees = (premium + buyback) * cost
    fees[0] += open0 * cost
    value = spot - short_call + np.cumsum(premium - buyback - fees)  # per share bought at open0
    shares = capital / open0
    return pd.DataFrame({"position": 1.0, "equity": shares * value, "fees": shares * fees,
                         "trade": cycle}, index=days)


def simulate(model_id: str, px: pd.DataFrame, start: str | pd.Timestamp,
             end: str | pd.Timestamp, fee_bps: float = 1.0,
             slippage_bps: float = 2.0, capital: float = 100_000) -> pd.DataFrame:
    """Daily book of one model on one ticker's price history `px` (indexed by date).

    Columns: position, equity (dollars, end of day), fees (dollars), trade (id, -1 when flat). Only
    evaluated days are returned: the last 20% of the window for the ML model, all of it otherwise.
    Pure function of its inputs, so tests can feed altered prices.
    """
    spec = MODELS[model_id]
    days = px.loc[start:end].index
    cost = (fee_bps + slippage_bps) / 1e4
    if spec.id in _RULE_SIGNALS:
        return _simulate_positions(px, _RULE_SIGNALS[spec.id](px, spec.parameters), days, cost, capital)
    if spec.kind == "ml":
        n_train = int(len(days) * spec.parameters["train_fraction"])
        signal = ridge_signal(px, spec.parameters, days[:n_train])
        return _simulate_positions(px, signal, days[n_train:], cost, capital)
    return _simulate_covered_call(px, spec.parameters, days, cost, capital)


def _cite(x: float, digits: int) -> float:
    """A plain float rounded for citing; `+ 0.0` turns -0.0 into 0.0 so answers never show "-0.0"."""
    return round(float(x), digits) + 0.0


def summarise(book: pd.DataFrame, capital: float) -> dict:
    """Headline metrics of a simulated book, rounded so that answers can cite them verbatim."""
    equity = book["equity"].to_numpy()
    daily = np.diff(equity, prepend=capital) / np.concatenate([[capital], equity[:-1]])
    total = equity[-1] / capital - 1
    years = len(equity) / TRADING_DAYS
    sd = daily.std(ddof=1)
    sharpe = daily.mean() / sd * math.sqrt(TRADING_DAYS) if sd > 0 else 0.0
    peak = np.maximum.accumulate(np.concatenate([[capital], equity]))[1:]
    before = pd.Series(np.concatenate([[capital], equity[:-1]]), index=book.index)
    trades = book[book["trade"] >= 0].assign(before=before).groupby("trade")
    trade_returns = trades["equity"].last() / trades["before"].first() - 1
    win_rate = (trade_returns > 0).mean() if len(trade_returns) else 0.0
    return {
        "total_return": _cite(total, 4),
        "cagr": _cite((1 + total) ** (1 / years) - 1, 4),
        "sharpe": _cite(sharpe, 2),
        "max_drawdown": _cite((equity / peak - 1).min(), 4),
        "n_trades": len(trade_returns),
        "win_rate": _cite(win_rate, 4),
        "fees_paid": _cite(book["fees"].sum(), 2),
    }


# ---- public entry point ----------------------------------------------------------------------------

@functools.cache
def _ticker_prices(ticker: str) -> pd.DataFrame:
    """One ticker's bars indexed by date (cached: backtests are called many times per ticker)."""
    prices = load_prices()
    return prices[prices["ticker"] == ticker].set_index("date").sort_index()


def _parse_date(name: str, value: str | date) -> pd.Timestamp:
    """Accept a datetime.date or a strict YYYY-MM-DD string; anything else names the argument."""
    if isinstance(value, date):
        return pd.Timestamp(value).normalize()
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD)")
    try:
        return pd.Timestamp(date.fromisoformat(value))
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a valid calendar date") from None


def _check_inputs(spec: ModelSpec, ticker: str, start: pd.Timestamp, end: pd.Timestamp,
                  costs: dict[str, float], capital: float) -> None:
    """Reject every argument the engine cannot honour, naming the argument in the message."""
    if ticker not in spec.tickers:
        raise ValueError(f"ticker: {ticker!r} is not legal for {spec.id}; legal tickers: "
                         f"{', '.join(spec.tickers)}")
    for name, bps in costs.items():
        if isinstance(bps, bool) or not isinstance(bps, (int, float)) or not 0 <= bps <= MAX_COST_BPS:
            raise ValueError(f"{name}: must be a number of basis points in [0, {MAX_COST_BPS:g}], "
                             f"got {bps!r}")
    if isinstance(capital, bool) or not isinstance(capital, (int, float)) or not capital > 0:
        raise ValueError(f"capital: must be a positive number, got {capital!r}")
    if start >= end:
        raise ValueError(f"start/end: start ({start.date()}) must be before end ({end.date()})")


def _period(spec: ModelSpec) -> str:
    """Which part of the window the metrics cover, in words an answer can quote."""
    if spec.kind == "ml":
        return f"out-of-sample (last {1 - spec.parameters['train_fraction']:.0%} of window)"
    return "full period"


def run_backtest(model_id: str, ticker: str, start: str | date, end: str | date, fee_bps: float = 1.0,
                 slippage_bps: float = 2.0, capital: float = 100_000) -> dict:
    """Backtest one model on one ticker; the summary the run_backtest tool returns.

    Raises ValueError naming the bad argument. The window may span calendar days outside trading
    (e.g. 2018-01-01..2023-12-31) but must lie within the data's calendar years.
    """
    if not isinstance(model_id, str) or model_id not in MODELS:
        raise ValueError(f"model_id: unknown model {model_id!r}; known: {', '.join(MODELS)}")
    spec = MODELS[model_id]
    t0, t1 = _parse_date("start", start), _parse_date("end", end)
    _check_inputs(spec, ticker, t0, t1, {"fee_bps": fee_bps, "slippage_bps": slippage_bps}, capital)
    px = _ticker_prices(ticker)
    first, last = px.index[0], px.index[-1]
    coverage = f"the price data covers {first.date()}..{last.date()}"
    if t0 < pd.Timestamp(first.year, 1, 1) or t0 > last:
        raise ValueError(f"start: {t0.date()} is outside the data; {coverage}")
    if t1 > pd.Timestamp(last.year, 12, 31) or t1 < first:
        raise ValueError(f"end: {t1.date()} is outside the data; {coverage}")
    n_bars = len(px.loc[t0:t1])
    if n_bars < MIN_BARS:
        raise ValueError(f"start/end: the window has {n_bars} trading days; at least {MIN_BARS} "
                         "are needed")
    book = simulate(model_id, px, t0, t1, fee_bps, slippage_bps, capital)
    return {
        "model_id": model_id,
        "ticker": ticker,
        "start": book.index[0].date().isoformat(),
        "end": book.index[-1].date().isoformat(),
        "period": _period(spec),
        "fee_bps": float(fee_bps),
        "slippage_bps": float(slippage_bps),
        **summarise(book, capital),
    }
