"""The five quant models of the workbench: the ground truth the assistant answers about.

Everything downstream (tools, the teacher simulator, corrections, the rubric judge, the diagnostics)
reads model facts from here, so a fact lives in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Synthetic tickers of the shipped price set (see prices.py); not real securities.
TICKERS: tuple[str, ...] = ("ACME", "BOLT", "CRUX", "DYNA", "ECHO", "FLUX", "GRID", "HALO")
# Tickers with a listed (simulated) options chain; the covered-call model is legal only on these.
OPTIONABLE: tuple[str, ...] = ("ACME", "CRUX", "ECHO", "GRID")


@dataclass(frozen=True)
class ModelSpec:
    """One workbench model. `kind` is "ml" (fitted, 80/20 chronological split) or "rule" (no fit)."""

    id: str
    name: str
    kind: str
    options: bool
    data_source: str
    description: str
    parameters: dict = field(default_factory=dict)
    tickers: tuple[str, ...] = TICKERS

    @property
    def validation(self) -> str:
        """How results are validated: the fact that the 80/20 boilerplate gets wrong for rule models."""
        if self.kind == "ml":
            return ("chronological 80/20 train/test split: fitted on the first 80% of the window, "
                    "results reported out-of-sample on the last 20%")
        return "full-period backtest with no train/test split (nothing is fitted)"

    def info(self) -> dict:
        """The public record returned by the get_model_info tool."""
        return {
            "model_id": self.id,
            "name": self.name,
            "kind": self.kind,
            "options_strategy": self.options,
            "data_source": self.data_source,
            "description": self.description,
            "parameters": dict(self.parameters),
            "validation": self.validation,
            "legal_tickers": list(self.tickers),
        }


MODELS: dict[str, ModelSpec] = {
    m.id: m
    for m in (
        ModelSpec(
            id="ridge_forecaster",
            name="Ridge Return Forecaster",
            kind="ml",
            options=False,
            data_source="daily close prices and volume (bundled synthetic OHLCV set)",
            description="Ridge regression on lagged returns and volume z-scores; long when the "
                        "forecast next-day return is positive, flat otherwise.",
            parameters={"lags": 5, "alpha": 1.0, "train_fraction": 0.8},
        ),
        ModelSpec(
            id="sma_crossover",
            name="SMA Crossover",
            kind="rule",
            options=False,
            data_source="daily close prices (bundled synthetic OHLCV set)",
            description="Long when the 20-day simple moving average is above the 50-day one, flat otherwise.",
            parameters={"fast_window": 20, "slow_window": 50},
        ),
        ModelSpec(
            id="rsi_reversion",
            name="RSI Mean Reversion",
            kind="rule",
            options=False,
            data_source="daily close prices (bundled synthetic OHLCV set)",
            description="Buys when the 14-day RSI drops below 30 and exits when it rises above 55.",
            parameters={"rsi_window": 14, "entry_below": 30, "exit_above": 55},
        ),
        ModelSpec(
            id="donchian_breakout",
            name="Donchian Breakout",
            kind="rule",
            options=False,
            data_source="daily high, low and close prices (bundled synthetic OHLCV set)",
            description="Enters long on a close above the prior 55-day high, exits on a close below "
                        "the prior 20-day low.",
            parameters={"entry_window": 55, "exit_window": 20},
        ),
        ModelSpec(
            id="covered_call",
            name="Covered Call Writer",
            kind="rule",
            options=True,
            data_source="daily close prices (bundled synthetic OHLCV set); option premia priced with "
                        "Black-Scholes from 20-day realised volatility",
            description="Holds the stock and sells a 30-day call 5% out of the money every 21 trading "
                        "days; premium priced with Black-Scholes from realised volatility.",
            parameters={"moneyness": 1.05, "days_to_expiry": 30, "roll_every": 21, "vol_window": 20,
                        "risk_free_rate": 0.02},
            tickers=OPTIONABLE,
        ),
    )
}


def get_model(model_id: str) -> ModelSpec:
    """Look a model up by id; KeyError names the known ids."""
    try:
        return MODELS[model_id]
    except KeyError:
        raise KeyError(f"unknown model_id {model_id!r}; known: {sorted(MODELS)}") from None
