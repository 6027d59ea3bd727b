"""Padding-free packed batches (student.train.packing) on the real embedded student: the same loss and
gradients as the padded shared-prefix path, examples kept apart only without a key/value cache, and
gradient checkpointing that changes memory, not results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distill.student.batches import loss_sum, packed_loss_sum, shared_prefix_len
from distill.student.chat import encode
from distill.student.train import _setup_model, check_config, train
from tests.test_student import CFG, EVAL_ROWS, TOOLS, TRAIN_ROWS

pytestmark = pytest.mark.slow
PACKED = {**CFG, "packing": True, "lora": {**CFG["lora"], "dropout": 0.0, "layers_to_transform": None}}


def _loss_and_grads(model, step) -> tuple[float, int, list[torch.Tensor]]:
    model.zero_grad()
    loss, n = step()
    loss.backward()
    return loss.item(), n, [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.fixture(scope="module")
def model_and_examples(base_model_dir: Path):
    model, tokenizer = _setup_model(PACKED, base_model_dir)
    examples = [encode(c, TOOLS, tokenizer, 256) for c in TRAIN_ROWS[:4]]
    assert len({len(e["input_ids"]) for e in examples}) > 1  # padding would be needed
    return model, tokenizer, examples


def test_packed_loss_and_gradients_equal_the_padded_path(model_and_examples) -> None:
    model, tokenizer, examples = model_and_examples
    padded = _loss_and_grads(model, lambda: loss_sum(model, examples, tokenizer.pad_token_id))
    packed = _loss_and_grads(model, lambda: packed_loss_sum(model, examples))
    assert packed[1] == padded[1]  # the same labelled tokens, none lost at the boundaries
    assert packed[0] == pytest.approx(padded[0], rel=1e-5)
    for a, b in zip(packed[2], padded[2]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)  # fp32 summation order


@torch.no_grad()
def test_examples_stay_apart_only_without_a_cache(model_and_examples) -> None:
    """The installed transformers builds the block-diagonal mask from restarting position ids only when
    no cache is built; with the config default (use_cache=True) the second example sees the first."""
    model, _, examples = model_and_examples
    first, second = examples[0]["input_ids"], examples[1]["input_ids"]
    decoder = model.get_base_model().get_decoder()
    alone = decoder(input_ids=torch.tensor([second]), use_cache=False).last_hidden_state[0]
    ids = torch.tensor([first + second])
    positions = torch.tensor([list(range(len(first))) + list(range(len(second)))])
    without = decoder(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state[0, len(first):]
    cached = decoder(input_ids=ids, position_ids=positions, use_cache=True).last_hidden_state[0, len(first):]
    torch.testing.assert_close(without, alone, rtol=1e-4, atol=1e-4)
    assert (cached - alone).abs().max() > 1e-2


def test_gradient_checkpointing_changes_nothing_but_memory(base_model_dir: Path, model_and_examples) -> None:
    model, _, examples = model_and_examples
    plain = _loss_and_grads(model, lambda: packed_loss_sum(model, examples))
    checkpointed_model, _ = _setup_model({**PACKED, "gradient_checkpointing": True}, base_model_dir)
    checkpointed_model.train()
    assert checkpointed_model.get_base_model().is_activation_checkpointing
    checkpointed = _loss_and_grads(checkpointed_model, lambda: packed_loss_sum(checkpointed_model, examples))
    assert checkpointed[0] == pytest.approx(plain[0], rel=1e-5)
    for a, b in zip(checkpointed[2], plain[2]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_gradient_checkpointing_on_the_padded_path_changes_nothing_but_memory(base_model_dir: Path, model_and_examples) -> None:
    """The padded path reads the shared prefix from a frozen cache, so the checkpointed replay of each
    layer sees the same keys and values as its first run (a growing cache would hand it the suffix twice)."""
    model, tokenizer, examples = model_and_examples
    assert shared_prefix_len(examples) > 0  # the prefix cache is in play
    plain = _loss_and_grads(model, lambda: loss_sum(model, examples, tokenizer.pad_token_id))
    checkpointed_model, _ = _setup_model({**PACKED, "packing": False, "gradient_checkpointing": True}, base_model_dir)
    checkpointed_model.train()
    checkpointed = _loss_and_grads(checkpointed_model, lambda: loss_sum(checkpointed_model, examples, tokenizer.pad_token_id))
    assert checkpointed[0] == pytest.approx(plain[0], rel=1e-5)
    for a, b in zip(checkpointed[2], plain[2]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_packed_training_learns(base_model_dir: Path, tmp_path: Path) -> None:
    cfg = {**CFG, "packing": True, "gradient_checkpointing": True, "epochs": 1}
    metrics = train(cfg, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS, tmp_path)
    assert metrics["epochs"][1]["eval_loss"] < metrics["epochs"][0]["eval_loss"]


def test_liger_without_packing_fails_at_start_naming_the_key() -> None:
    with pytest.raises(ValueError, match="train.liger: true needs train.packing"):
        check_config({**CFG, "liger": True})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_liger_without_cuda_is_a_clear_error(base_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="train.liger: true needs a CUDA GPU"):
        train({**CFG, "packing": True, "liger": True}, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS, tmp_path)
