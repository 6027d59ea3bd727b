"""Dollars from token counts with the price table in config (`pricing`), never from constants here.

List prices are per million tokens; a cache write costs `cache_write` × input, a cache read
`cache_read` × input, and Message Batches take `batch` × everything (config.yaml states the list
prices it was written with).
"""

from __future__ import annotations


def model_prices(pricing: dict, model: str) -> dict[str, float] | None:
    """{"input", "output"} per million tokens for `model`, matching a dated id to its alias
    (claude-sonnet-4-5-20250929 → claude-sonnet-4-5); None when the table has no entry."""
    table = pricing["models"]
    if model in table:
        return table[model]
    for name in sorted(table, key=len, reverse=True):
        if model.startswith(name):
            return table[name]
    return None


def cost_usd(usage: dict[str, int], pricing: dict, model: str, batch: bool = False) -> float | None:
    """What `usage` (summed usage fields) cost; None when the model has no price (the report says so)."""
    prices = model_prices(pricing, model)
    if prices is None:
        return None
    per_input = prices["input"] / 1e6
    dollars = (usage.get("input_tokens", 0) * per_input
               + usage.get("cache_creation_input_tokens", 0) * per_input * pricing["cache_write"]
               + usage.get("cache_read_input_tokens", 0) * per_input * pricing["cache_read"]
               + usage.get("output_tokens", 0) * prices["output"] / 1e6)
    return dollars * (pricing["batch"] if batch else 1.0)
