"""Checkpoint selection: task metric vs eval loss, ties, and the disagreement flag."""

from __future__ import annotations

import pytest

from distill.config import defaults
from distill.ruler.selection import select_epoch

METRIC = defaults("selection")["metric"]


def score(tool_call: float | None, judge: float | None) -> dict:
    return {"overall": {"tool_call": {"value": tool_call}, "judge": {"value": judge}}}


def test_disagreement_flagged_when_eval_loss_picks_a_later_epoch():
    scores = {0: score(0.0, 0.2), 1: score(0.5, 0.6), 2: score(0.8, 0.7), 3: score(0.6, 0.75)}
    losses = {0: 2.5, 1: 1.2, 2: 0.9, 3: 0.7}
    result = select_epoch(scores, losses, ["tool_call", "judge"])
    assert (result["task_epoch"], result["eval_loss_epoch"], result["disagree"]) == (2, 3, True)
    assert result["figures"]["task_epoch"] == {"tool_call": 0.8, "judge": 0.7, "eval_loss": 0.9}
    assert result["figures"]["eval_loss_epoch"] == {"tool_call": 0.6, "judge": 0.75, "eval_loss": 0.7}
    assert result["candidates"] == [1, 2, 3]  # epoch 0 is the untrained baseline


def test_agreement_not_flagged():
    result = select_epoch({1: score(0.5, 0.5), 2: score(0.9, 0.5)}, {1: 1.0, 2: 0.8}, METRIC)
    assert (result["task_epoch"], result["eval_loss_epoch"], result["disagree"]) == (2, 2, False)


def test_ties_break_lexicographically_then_earliest():
    scores = {1: score(0.8, 0.6), 2: score(0.8, 0.7), 3: score(0.8, 0.7)}
    assert select_epoch(scores, {1: 1.0, 2: 0.9, 3: 0.9}, METRIC)["task_epoch"] == 2  # judge breaks the tie
    result = select_epoch(scores, {1: 1.0, 2: 0.9, 3: 0.9}, ["tool_call"])
    assert (result["task_epoch"], result["eval_loss_epoch"]) == (1, 2)  # equal loss: earliest too


def test_unscored_metric_ranks_last():
    result = select_epoch({1: score(None, None), 2: score(0.1, 0.1)}, {1: 0.5, 2: 0.9}, METRIC)
    assert (result["task_epoch"], result["eval_loss_epoch"]) == (2, 1)


def test_no_trained_epoch_raises():
    with pytest.raises(ValueError, match="no trained epoch"):
        select_epoch({0: score(0.1, 0.1)}, {0: 2.0}, METRIC)
