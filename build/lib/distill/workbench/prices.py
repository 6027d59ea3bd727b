"""The workbench's bundled daily OHLCV price set: SYNTHETIC data from a seeded generator.

The tickers are not real securities. Each one follows a geometric random walk whose drift, volatility
and return autocorrelation switch between a few regimes, so trend-following, mean-reversion and
option-writing strategies genuinely differ. The generator is deterministic for a given seed; its output
is committed as `data/prices.parquet` (regenerate with `python -m distill.workbench.prices`) so that
every backtest the assistant cites is reproducible without re-running the generator.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from distill.workbench.registry import TICKERS

PRICES_PATH = Path(__file__).parent / "data" / "prices.parquet"
# Business days covered by the set (no holiday calendar: every weekday is a trading day).
START, END = "2018-01-02", "2023-12-29"
SEED = 7
SOURCE = "synthetic"  # value of the `source` column: nobody should mistake these for market prices
COLUMNS = ["date", "ticker", "open", "high", "low", "close", "volume", "source"]
_YEAR = 252  # trading days per year, to scale annual drift/vol to daily


def _regime_returns(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Daily log returns with 2-4 regime switches, plus a per-day "activity" level for volume.

    Each regime draws its own annual drift, annual vol and AR(1) coefficient: positive phi gives
    trends (breakout/crossover strategies win), negative phi gives mean reversion (RSI wins).
    """
    base_drift, base_vol = rng.uniform(-0.05, 0.18), rng.uniform(0.18, 0.45)
    cuts = np.sort(rng.choice(np.arange(120, n - 120), size=rng.integers(2, 5), replace=False))
    bounds = np.concatenate([[0], cuts, [n]])
    mu, sigma, phi = np.empty(n), np.empty(n), np.empty(n)
    for lo, hi in itertools.pairwise(bounds):
        mu[lo:hi] = (base_drift + rng.uniform(-0.25, 0.25)) / _YEAR
        sigma[lo:hi] = base_vol * rng.uniform(0.6, 1.6) / np.sqrt(_YEAR)
        phi[lo:hi] = rng.uniform(-0.2, 0.2)
    shocks = rng.standard_normal(n) * sigma
    ret = np.empty(n)
    prev = 0.0
    for t in range(n):  # AR(1) recursion; 1.5k steps per ticker, no need to vectorise
        prev = mu[t] + phi[t] * prev + shocks[t]
        ret[t] = prev
    return ret, np.abs(shocks) / sigma


def _ticker_frame(rng: np.random.Generator, ticker: str, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """OHLCV bars for one ticker: close from the walk, open gapped from the prior close."""
    n = len(dates)
    ret, activity = _regime_returns(rng, n)
    close = rng.uniform(20, 250) * np.exp(np.cumsum(ret))
    prev_close = np.concatenate([[close[0] / np.exp(ret[0])], close[:-1]])
    # Part of each day's move happens overnight (the gap), the rest intraday.
    open_ = prev_close * np.exp(ret * rng.uniform(0.1, 0.5, n))
    spread = np.abs(ret).mean() * rng.uniform(0.2, 1.0, (2, n))
    high = np.maximum(open_, close) * np.exp(spread[0])
    low = np.minimum(open_, close) * np.exp(-spread[1])
    # Volume rises with the size of the move, so the volume z-score carries some information.
    volume = rng.uniform(2e5, 5e6) * np.exp(0.35 * activity + 0.25 * rng.standard_normal(n))
    return pd.DataFrame({
        "date": dates, "ticker": ticker,
        "open": open_.round(2), "high": high.round(2), "low": low.round(2), "close": close.round(2),
        "volume": volume.round().astype("int64"), "source": SOURCE,
    })


def generate(seed: int = SEED) -> pd.DataFrame:
    """The synthetic price set: one row per (business day, ticker), sorted by ticker then date."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(START, END)
    frame = pd.concat([_ticker_frame(rng, t, dates) for t in TICKERS], ignore_index=True)
    return frame[COLUMNS]


@functools.lru_cache(maxsize=1)
def load_prices() -> pd.DataFrame:
    """The committed synthetic price set, read once per process. Shared: callers must not mutate it."""
    return pd.read_parquet(PRICES_PATH)


def main() -> None:
    """Regenerate the committed parquet from the seeded generator."""
    PRICES_PATH.parent.mkdir(parents=True, exist_ok=True)
    generate().to_parquet(PRICES_PATH, index=False, compression="zstd")
    print(f"wrote {PRICES_PATH} ({PRICES_PATH.stat().st_size / 1e3:.0f} kB, synthetic)")


if __name__ == "__main__":
    main()
