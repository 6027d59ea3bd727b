"""The report's "Teacher cost" section: tokens by kind from the trace columns, dollars from `pricing`.

Dollars are computed here, where they are shown, from the usage the traces recorded: editing the
price table re-runs the report only, never a teacher call.
"""

from __future__ import annotations

import pandas as pd

from distill.claude.usage import USAGE_FIELDS
from distill.claude.pricing import cost_usd

TRACE_COLUMNS = ("teacher_model", "backend", "batch_api", "requests", "teacher_error", *USAGE_FIELDS)
LABELS = {"input_tokens": "input", "output_tokens": "output", "cache_creation_input_tokens": "cache write",
          "cache_read_input_tokens": "cache read"}


def teacher_cost(traces: pd.DataFrame, pricing: dict) -> float | None:
    """Dollars the traces cost, by model and batch flag; None when a model has no price in `pricing`."""
    total = 0.0
    for (model, batch), group in traces.groupby(["teacher_model", "batch_api"]):
        dollars = cost_usd({key: int(group[key].sum()) for key in USAGE_FIELDS}, pricing, model, batch=bool(batch))
        if dollars is None:
            return None
        total += dollars
    return total


def teacher_cost_section(traces: pd.DataFrame, cfg: dict) -> str:
    """Tokens by kind, requests, missing scenarios and dollars; a plain line for the simulator."""
    if (traces["backend"] == "offline-simulator").all():
        return "Offline simulator: no cost."
    tokens = " · ".join(f"{LABELS[key]} {int(traces[key].sum()):,}" for key in USAGE_FIELDS)
    dollars = teacher_cost(traces, cfg["pricing"])
    models = ", ".join(f"`{m}`" for m in sorted(traces["teacher_model"].unique()))
    price = (f"${dollars:,.2f}" if dollars is not None
             else f"no price for {models} in `pricing.models`")
    missing = int(traces["teacher_error"].notna().sum())
    batch = int(traces["batch_api"].sum())
    return (f"Tokens: {tokens}; {int(traces['requests'].sum()):,} requests for {len(traces)} scenarios "
            f"({batch} through Message Batches). Cost: {price} (usage × `pricing`; responses already in "
            f"results/cache/ were paid once). Scenarios missing (request failed after retries): {missing}.")
