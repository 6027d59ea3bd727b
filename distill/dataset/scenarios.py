"""The scenario grid: model × legal ticker × question template, each with its gold tool plan.

Templates are deliberately few. Methodology questions do not mention the ticker, so the grid asks the
same twenty-six methodology questions many times over: that saturation is real in production data and the
diagnostics must show it. Each methodology query names the model, so every methodology question has a
gold plan of its own and the split can hold out enough distinct ones to measure (split.min_eval_groups).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from distill.io import dumps
from distill.workbench.registry import get_model

CATEGORIES: tuple[str, ...] = ("data_source", "performance", "what_if", "methodology")


@dataclass(frozen=True)
class Template:
    id: str
    category: str
    text: str
    options_only: bool = False
    query: str = ""  # methodology only: the gold search_docs query


TEMPLATES: tuple[Template, ...] = (
    Template("data_source", "data_source", "What data source does {name} use when it runs on {ticker}?"),
    Template("performance", "performance",
             "How did {name} perform on {ticker} between {start} and {end}?"),
    Template("what_if_fee", "what_if",
             "How would a fee of {bps} bps instead of the default change {name}'s results on {ticker} "
             "between {start} and {end}?"),
    Template("what_if_slippage", "what_if",
             "What if slippage were {bps} bps instead of the default for {name} on {ticker} "
             "between {start} and {end}?"),
    Template("method_validation", "methodology", "How is {name} validated?",
             query="{name} validation train test split"),
    Template("method_lookahead", "methodology", "How does {name} avoid look-ahead bias in its backtest?",
             query="{name} look-ahead bias next bar execution"),
    Template("method_costs", "methodology", "How do trading costs affect {name}'s results?",
             query="{name} fees slippage costs"),
    Template("method_period", "methodology", "Over which period are {name}'s reported results measured?",
             query="{name} metrics reported period"),
    Template("method_fit", "methodology", "Is anything in {name} fitted to the data?",
             query="{name} fitted parameters"),
    Template("method_options", "methodology", "How are the option premiums of {name} priced?",
             options_only=True, query="option premium Black-Scholes realised volatility"),
)


def _call(name: str, **arguments) -> dict:
    return {"name": name, "arguments": arguments}


def scenario_id(*parts: object) -> str:
    """Stable id from the scenario's defining values: adding a ticker never renames existing rows."""
    digest = hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12]
    return f"sc-{digest}"


def build_grid(cfg: dict) -> pd.DataFrame:
    """Expand the `scenarios` config section into one row per question with its gold tool plan."""
    sc = cfg["scenarios"]
    start, end = sc["window"]["start"], sc["window"]["end"]
    rows: list[dict] = []
    for model_id in sc["models"]:
        model = get_model(model_id)
        for ticker in sc["tickers"]:
            if ticker not in model.tickers:
                continue  # an illegal pair is not a question the assistant should be asked
            # Costs are left at the tool's defaults unless the question changes them, as Claude writes
            # calls; it also keeps the calls short, and every call token is a training and generation step.
            base = _call("run_backtest", model_id=model_id, ticker=ticker, start=start, end=end)
            for t in TEMPLATES:
                if t.options_only and not model.options:
                    continue
                variants: list[tuple[str, dict, list[dict]]] = []
                fmt = {"name": model.name, "ticker": ticker, "start": start, "end": end}
                if t.category == "data_source":
                    variants.append((t.text.format(**fmt), {}, [_call("get_model_info", model_id=model_id)]))
                elif t.category == "performance":
                    variants.append((t.text.format(**fmt), {}, [base]))
                elif t.category == "what_if":
                    arg = "fee_bps" if t.id == "what_if_fee" else "slippage_bps"
                    for bps in sc[f"what_if_{arg}"]:
                        alt = _call("run_backtest", **{**base["arguments"], arg: float(bps)})
                        variants.append((t.text.format(bps=f"{bps:g}", **fmt), {arg: bps}, [base, alt]))
                else:
                    query = t.query.format(name=model.name.lower())
                    variants.append((t.text.format(**fmt), {}, [_call("search_docs", query=query)]))
                for question, extra, calls in variants:
                    rows.append({
                        "scenario_id": scenario_id(model_id, ticker, t.id, *extra.values(), start, end),
                        "model_id": model_id,
                        "model_kind": model.kind,
                        "options": model.options,
                        "ticker": ticker,
                        "category": t.category,
                        "template_id": t.id,
                        "question": question,
                        "gold_calls": dumps(calls),
                    })
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError("scenarios: the grid is empty (no legal model × ticker pair in config.scenarios)")
    return df
