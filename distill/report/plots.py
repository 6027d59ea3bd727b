"""PNG plots for report.md: task metrics, eval loss and per-category tool-call, by epoch.

Figures are drawn on matplotlib's Agg canvas without pyplot: no display is needed on a cluster node or
in CI, and no global figure state leaks between calls. Writes are atomic, so a failed plot never leaves
a half-written PNG that Snakemake would take for output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from distill.io import atomic_path
from distill.report.figures import stat
from distill.ruler.stats import METRICS

COLORS = {"tool_call": "tab:blue", "tool_call_strict": "tab:cyan", "answered": "tab:purple", "grounded": "tab:green",
          "judge": "tab:orange"}


def _figure() -> tuple[Figure, Axes]:
    """A 7 × 4 in figure on the Agg canvas, and its axes."""
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: str | Path) -> None:
    """Save as PNG through a temp sibling (format given: the temp name's suffix is not .png)."""
    with atomic_path(path, ".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _error_bars(stats: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Values and asymmetric CI half-widths (2 × n) for errorbar; NaN where a value is missing."""
    values = np.array([np.nan if s.get("value") is None else s["value"] for s in stats], dtype=float)
    ci = [s.get("ci95") or [None, None] for s in stats]
    lo = np.array([np.nan if c[0] is None else c[0] for c in ci], dtype=float)
    hi = np.array([np.nan if c[1] is None else c[1] for c in ci], dtype=float)
    return values, np.nan_to_num(np.vstack([values - lo, hi - values]), nan=0.0).clip(min=0.0)


def metrics_by_epoch(scores: dict[int, dict], path: str | Path) -> None:
    """Each task metric vs epoch with its 95% CI; the ship bar (from the score files) dashed."""
    epochs = sorted(scores)
    fig, ax = _figure()
    for i, metric in enumerate(METRICS):
        values, err = _error_bars([stat(scores[e], metric) for e in epochs])
        offset = (i - (len(METRICS) - 1) / 2) * 0.04  # keep overlapping error bars apart
        ax.errorbar(np.array(epochs) + offset, values, yerr=err, marker="o", capsize=3,
                    color=COLORS[metric], label=metric)
    bar = scores[epochs[-1]].get("ship_bar", {}) if epochs else {}
    for metric, spec in bar.items():
        if isinstance(spec, dict) and spec.get("threshold") is not None:
            ax.axhline(spec["threshold"], ls="--", lw=1, color=COLORS.get(metric, "grey"),
                       label=f"ship bar {metric} ({spec['threshold']:g})")
    ax.set(xlabel="epoch (0 = untrained base)", ylabel="rate / mean score", ylim=(-0.05, 1.05),
           xticks=epochs, title="Task metrics by epoch (95% bootstrap CI)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never hides a point
    _save(fig, path)


def eval_loss_by_epoch(losses: dict[int, float], task_epoch: int | None, loss_epoch: int | None,
                       path: str | Path) -> None:
    """Eval loss vs epoch with the task-metric pick and the eval-loss pick marked, to show whether they differ."""
    epochs = sorted(losses)
    fig, ax = _figure()
    if epochs:
        ax.plot(epochs, [losses[e] for e in epochs], marker="o", color="tab:purple", label="eval loss")
        ax.set_xticks(epochs)
    else:
        ax.text(0.5, 0.5, "no eval loss recorded", ha="center", va="center", transform=ax.transAxes)
    for epoch, label, color, marker in ((loss_epoch, "eval-loss pick", "tab:red", "s"),
                                        (task_epoch, "task-metric pick", "tab:blue", "*")):
        if epoch is not None and epoch in losses:
            ax.plot([epoch], [losses[epoch]], marker=marker, ms=16, ls="none", mfc="none", mew=2,
                    color=color, label=f"{label}: epoch {epoch}")
    ax.set(xlabel="epoch (0 = untrained base)", ylabel="eval loss (assistant tokens)",
           title="Eval loss by epoch")
    ax.legend(fontsize=8)
    _save(fig, path)


def tool_call_by_category(scores: dict[int, dict], epochs: list[int], path: str | Path) -> None:
    """Grouped bars of tool-call accuracy per category, one bar per epoch given (base vs selected)."""
    categories = sorted({c for e in epochs for c in scores[e].get("per_category", {})})
    x = np.arange(len(categories))
    width = 0.8 / max(len(epochs), 1)
    fig, ax = _figure()
    for i, epoch in enumerate(epochs):
        values, err = _error_bars([stat(scores[epoch], "tool_call", c) for c in categories])
        ax.bar(x + (i - (len(epochs) - 1) / 2) * width, np.nan_to_num(values), width, yerr=err,
               capsize=3, label=f"epoch {epoch}")
    ax.set_xticks(x, categories)
    ax.set(ylabel="tool-call accuracy", ylim=(0, 1.05), title="Tool-call accuracy by category")
    ax.legend(fontsize=8)
    _save(fig, path)
