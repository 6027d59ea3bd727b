"""Reading figures out of score files and formatting them for markdown: shared by every section."""

from __future__ import annotations

from typing import Any

from distill.ruler.stats import HEADLINE

__all__ = ["HEADLINE", "excerpt", "fmt", "group", "stat", "top_counts", "value", "with_ci"]


def stat(score: dict | None, metric: str, category: str | None = None) -> dict:
    """A metric's {value, ci95} overall or for one category; {} when absent."""
    group = (score or {}).get("overall", {}) if category is None else \
        (score or {}).get("per_category", {}).get(category, {})
    found = group.get(metric)
    return found if isinstance(found, dict) else {}


def value(score: dict | None, metric: str, category: str | None = None) -> float | None:
    return stat(score, metric, category).get("value")


def group(score: dict | None, category: str | None = None) -> dict:
    """The overall group of a score file, or one category's."""
    return (score or {}).get("overall", {}) if category is None else \
        (score or {}).get("per_category", {}).get(category, {})


def fmt(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and x != x) else f"{x:.2f}"


def with_ci(s: dict) -> str:
    lo, hi = s.get("ci95") or (None, None)
    return fmt(s.get("value")) + ("" if lo is None else f" [{lo:.2f}, {hi:.2f}]")


def top_counts(counts: dict[str, int], k: int = 3) -> str:
    """'a ×3, b ×1' for the k most frequent non-zero reasons."""
    seen = sorted(((n, r) for r, n in counts.items() if n), key=lambda t: (-t[0], t[1]))[:k]
    return ", ".join(f"`{r}` ×{n}" for n, r in seen)


def excerpt(text: object, width: int) -> str:
    """One line of at most `width` characters in backticks (cut with …), or _(empty)_: how report.md and
    results/compare/ quote answers and questions."""
    text = " ".join(str(text or "").split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    return "`" + text.replace("`", "'") + "`" if text else "_(empty)_"
