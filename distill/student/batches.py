"""Micro-batches and the assistant-only loss of one batch: what one training or eval step computes.

Two exact ways to compute it (docs/design.md, "Training steps and the GPU path"), chosen by
`student.train.packing`:
- padded (`loss_sum`, the CPU default): batches of similar length, the system prompt every example
  shares run once per batch;
- packed (`packed_loss_sum`, the GPU profiles): the batch concatenated into one row whose position ids
  restart at every example, so no compute goes to padding.
Both run the output head only on labelled positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from distill.student.chat import IGNORE

LENGTH_BUCKET = 32  # tokens: examples this close in length count as equally long when batching


def collate(examples: list[dict], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch: ids with pad_id, labels with IGNORE, attention mask with 0."""
    width = max(len(e["input_ids"]) for e in examples)
    fill = {"input_ids": pad_id, "labels": IGNORE, "attention_mask": 0}
    return {
        key: torch.tensor([e[key] + [value] * (width - len(e[key])) for e in examples], device=device)
        for key, value in fill.items()
    }  # each [batch, width]


def shared_prefix_len(examples: list[dict]) -> int:
    """Leading tokens all `examples` share and that carry no loss: in practice the system prompt.

    Stops one token before the first labelled position (the hidden state there predicts that label),
    which also leaves every example at least two tokens after the prefix.
    """
    limit = min(_first_label(e) for e in examples) - 1
    first = examples[0]["input_ids"]
    n = 0
    while n < limit and all(e["input_ids"][n] == first[n] for e in examples):
        n += 1
    return n


class PrefixCache(DynamicCache):
    """The shared prefix's keys and values, read-only once `freeze` is called.

    A frozen cache returns prefix + new states without storing the new ones, so running a layer twice
    (gradient checkpointing recomputes each layer in the backward pass) reads the same states both times;
    a growing cache would hand the replay the suffix twice.
    """

    frozen = False

    def freeze(self) -> None:
        self.frozen = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if not self.frozen:
            return super().update(key_states, value_states, layer_idx, *args, **kwargs)
        layer = self.layers[layer_idx]
        return torch.cat([layer.keys, key_states], dim=-2), torch.cat([layer.values, value_states], dim=-2)


@contextmanager
def _checkpointing(decoder: Any, *, on: bool) -> Iterator[None]:
    """Checkpoint the decoder's layers (when enabled at setup) only where `on`, reading a read-only cache.

    The prefix pass writes the cache, so it runs un-checkpointed (one sequence a batch: its activations are
    small); the suffix pass reads the frozen cache, which transformers allows a checkpointed layer to keep
    only when told the layer does not write it (`_can_checkpoint_with_cache`).
    """
    layers = [m for m in decoder.modules() if hasattr(m, "_can_checkpoint_with_cache")]
    saved = [(m.gradient_checkpointing, m._can_checkpoint_with_cache) for m in layers]
    for m, (enabled, _) in zip(layers, saved):
        m.gradient_checkpointing, m._can_checkpoint_with_cache = enabled and on, True
    try:
        yield
    finally:
        for m, (enabled, can) in zip(layers, saved):
            m.gradient_checkpointing, m._can_checkpoint_with_cache = enabled, can


def loss_tokens(example: dict) -> int:
    return sum(label != IGNORE for label in example["labels"][1:])


def _first_label(example: dict) -> int:
    return next(t for t, label in enumerate(example["labels"]) if label != IGNORE)


def loss_sum(model: Any, examples: list[dict], pad_id: int) -> tuple[torch.Tensor, int]:
    """Summed next-token cross entropy over the assistant tokens of a micro-batch, and their count.

    Two savings, both exact (a test compares losses and gradients with the plain computation):
    - the shared prefix (the system prompt, ~60% of a first-turn example) runs once per batch and
      its key/value cache is repeated for every example, instead of once per example;
    - the output head runs only where a label is kept, so the [batch, seq, vocab] logits of the
      prompt tokens are never built. This assumes logits = lm_head(hidden), true for the
      Llama/Qwen/Mistral families (checked in _setup_model).
    """
    base = model.get_base_model()
    decoder = base.get_decoder()
    n_prefix = shared_prefix_len(examples) if len(examples) > 1 else 0
    batch = collate([{k: v[n_prefix:] for k, v in e.items()} for e in examples], pad_id, model.device)
    if n_prefix:
        cache = PrefixCache(config=base.config)
        with _checkpointing(decoder, on=False):
            decoder(input_ids=torch.tensor([examples[0]["input_ids"][:n_prefix]], device=model.device), cache=cache)
        cache.batch_repeat_interleave(len(examples))
        cache.freeze()
        prefix_mask = torch.ones(len(examples), n_prefix, dtype=batch["attention_mask"].dtype, device=model.device)
        positions = torch.arange(n_prefix, n_prefix + batch["input_ids"].shape[1], device=model.device)
        with _checkpointing(decoder, on=True):
            hidden = decoder(
                input_ids=batch["input_ids"],
                attention_mask=torch.cat([prefix_mask, batch["attention_mask"]], dim=1),  # [B, prefix + width]
                position_ids=positions.expand(len(examples), -1),
                cache=cache,
            ).last_hidden_state
    else:
        hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]  # token t is predicted from position t-1
    keep = labels != IGNORE  # [B, T-1]
    logits = base.get_output_embeddings()(hidden[:, :-1][keep])  # [kept, V]
    return F.cross_entropy(logits.float(), labels[keep], reduction="sum"), int(keep.sum())


def micro_batches(examples: list[dict], batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Batches of examples of similar length, in a seeded random order (by length without a generator).

    Mixing 250-token first turns with 600-token whole traces in one batch would pad the short ones
    to the long one, and padding costs as much compute as real tokens. Lengths are bucketed to LENGTH_BUCKET tokens
    and shuffled within a bucket, so batch membership still changes from epoch to epoch.
    """
    n = len(examples)
    noise = torch.rand(n, generator=generator).tolist() if generator is not None else [0.0] * n
    order = sorted(range(n), key=lambda i: (len(examples[i]["input_ids"]) // LENGTH_BUCKET, noise[i], i))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if generator is None:
        return batches
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


HeadLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (head weight, hidden, targets)


def packed_loss_sum(model: Any, examples: list[dict], head_loss: HeadLoss | None = None) -> tuple[torch.Tensor, int]:
    """`loss_sum` computed padding-free: the examples packed into one row, positions restarting at each.

    Examples stay apart because transformers (5.x, masking_utils.find_packed_sequence_indices) turns
    restarting position ids into a block-diagonal causal mask for sdpa and eager attention, but only
    when no attention mask and no key/value cache is passed: hence `use_cache=False` (the config
    default would build a cache, and later examples would then attend across the boundary; a test
    shows both). The first token of each example is never a target (it would be predicted from the
    previous example). `head_loss` replaces lm_head + cross entropy by a fused kernel (liger).
    """
    base = model.get_base_model()
    ids: list[int] = []
    targets: list[int] = []
    positions: list[int] = []
    for e in examples:
        ids += e["input_ids"]
        targets += [IGNORE] + e["labels"][1:]
        positions += range(len(e["input_ids"]))
    device = model.device
    hidden = base.get_decoder()(
        input_ids=torch.tensor([ids], device=device),  # [1, total]
        position_ids=torch.tensor([positions], device=device),
        use_cache=False,
    ).last_hidden_state
    labels = torch.tensor(targets[1:], device=device)  # token t is predicted from position t-1
    keep = labels != IGNORE
    kept = hidden[0, :-1][keep]  # [kept, H]
    head = base.get_output_embeddings()
    if head_loss is not None:
        return head_loss(head.weight, kept, labels[keep]), int(keep.sum())
    return F.cross_entropy(head(kept).float(), labels[keep], reduction="sum"), int(keep.sum())
