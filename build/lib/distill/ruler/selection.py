"""Checkpoint selection: the epoch the task metric picks vs the epoch eval loss would pick.

Eval loss rewards imitating the teacher's tokens; the task metric rewards calling the right tools and
answering correctly. They often disagree (the small student's best epoch is not its lowest-loss one), so
both picks and both sets of figures are recorded and the disagreement is flagged for the report.
"""

from __future__ import annotations

from typing import Any


def _metric_values(score: dict | None, metric: list[str]) -> dict[str, float | None]:
    """The overall value of each metric in a score file (None when unscored or no rows)."""
    overall = (score or {}).get("overall", {})
    return {m: overall.get(m, {}).get("value") for m in metric}


def _sort_key(values: dict[str, float | None], metric: list[str]) -> tuple[float, ...]:
    """Lexicographic key, higher is better; a missing value ranks below every real one."""
    return tuple(float("-inf") if values[m] is None else values[m] for m in metric)


def select_epoch(scores: dict[int, dict], eval_losses: dict[int, float],
                 metric: list[str]) -> dict[str, Any]:
    """Pick the best trained epoch (>= 1) by `metric` (lexicographic; ties go to the earliest epoch) and
    by lowest eval loss (ties to the earliest), and report both with their figures.

    Epoch 0 (the untrained student) is a baseline for the report, not a checkpoint to ship, so neither
    pick considers it. Raises ValueError when there is no trained epoch to pick from.
    """
    metric = list(metric)
    scored = sorted(int(e) for e in scores if int(e) >= 1)
    with_loss = sorted(int(e) for e in eval_losses if int(e) >= 1)
    if not scored or not with_loss:
        raise ValueError(f"no trained epoch to select from: scored {sorted(scores)}, "
                         f"eval losses for {sorted(eval_losses)}")
    scores = {int(e): s for e, s in scores.items()}
    losses = {int(e): float(v) for e, v in eval_losses.items()}

    # max() keeps the first of equal keys and the epochs are ascending, so ties go to the earliest.
    task_epoch = max(scored, key=lambda e: _sort_key(_metric_values(scores[e], metric), metric))
    loss_epoch = min(with_loss, key=lambda e: losses[e])

    def figures(epoch: int) -> dict[str, Any]:
        return {**_metric_values(scores.get(epoch), metric), "eval_loss": losses.get(epoch)}

    return {
        "metric": metric,
        "task_epoch": task_epoch,
        "eval_loss_epoch": loss_epoch,
        "disagree": task_epoch != loss_epoch,
        "figures": {"task_epoch": figures(task_epoch), "eval_loss_epoch": figures(loss_epoch)},
        "candidates": scored,
    }
