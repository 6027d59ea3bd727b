"""Which conversations the student trains on, and how they are batched (no model needed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from distill.student.chat import IGNORE, first_turn
from distill.student.batches import micro_batches, shared_prefix_len
from distill.student.train import training_conversations


def _conversation(i: int) -> list[dict]:
    return [
        {"role": "system", "content": "teacher prompt"},
        {"role": "user", "content": f"question {i}"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "list_models", "arguments": {}}]},
        {"role": "tool", "name": "list_models", "content": "[]"},
        {"role": "assistant", "content": f"answer {i}"},
    ]


def test_first_turn_ends_at_the_first_assistant_message() -> None:
    conv = _conversation(0)
    assert first_turn(conv) == conv[:3]
    with pytest.raises(ValueError, match="no assistant turn"):
        first_turn(conv[:2])


@pytest.mark.parametrize(("share", "cut_per_category"), [(0.0, 0), (0.5, 2), (0.75, 3), (1.0, 4)])
def test_first_turn_share_is_applied_per_category(share: float, cut_per_category: int) -> None:
    df = pd.DataFrame({"category": ["a", "b"] * 4, "messages": [json.dumps(_conversation(i)) for i in range(8)]})
    rows = training_conversations(df, share)
    assert len(rows) == 8
    cut = [len(r) == 3 for r in rows]
    for category in ("a", "b"):
        flags = [c for c, cat in zip(cut, df["category"]) if cat == category]
        assert flags == [True] * cut_per_category + [False] * (4 - cut_per_category)  # the first in row order
    assert all(r[-1]["role"] == "assistant" for r in rows)


def _examples(lengths: list[int]) -> list[dict]:
    return [{"input_ids": [0] * n} for n in lengths]


def test_micro_batches_group_similar_lengths_and_cover_every_example_once() -> None:
    lengths = [250, 600, 260, 610, 240, 620, 255, 590]
    batches = micro_batches(_examples(lengths), 4, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(8))
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == [[240, 250, 255, 260], [590, 600, 610, 620]]


def test_micro_batches_are_seeded_and_vary_within_a_length_bucket() -> None:
    examples = _examples([300] * 16)
    order = lambda seed: [i for b in micro_batches(examples, 4, torch.Generator().manual_seed(seed)) for i in b]
    assert order(1) == order(1)
    assert order(1) != order(2)
    assert micro_batches(examples, 4, None)[0] == [0, 1, 2, 3]


def _example(ids: list[int], first_label: int) -> dict:
    return {"input_ids": ids, "labels": [IGNORE] * first_label + ids[first_label:]}


def test_shared_prefix_stops_at_the_first_difference() -> None:
    a, b = _example([1, 2, 3, 4, 5, 6, 7], 6), _example([1, 2, 3, 9, 5, 6, 7, 8], 6)
    assert shared_prefix_len([a, b]) == 3


def test_shared_prefix_stops_before_the_token_that_predicts_the_first_label() -> None:
    a, b = _example([1, 2, 3, 4, 5, 6], 4), _example([1, 2, 3, 4, 5, 6], 5)
    assert shared_prefix_len([a, b]) == 3  # position 3 predicts a's first label (position 4)
