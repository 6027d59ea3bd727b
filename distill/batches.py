"""Micro-batches and the assistant-only loss of one batch: what one training or eval step computes.

Batches group examples of similar length (padding costs as much compute as real tokens), and the loss
skips two kinds of waste exactly: the system prompt every example shares runs once per batch, and the
output head runs only on labelled positions (docs/design.md, "Student").
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from distill.chat import IGNORE

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
        cache = DynamicCache(config=base.config)
        decoder(input_ids=torch.tensor([examples[0]["input_ids"][:n_prefix]], device=model.device), cache=cache)
        cache.batch_repeat_interleave(len(examples))
        prefix_mask = torch.ones(len(examples), n_prefix, dtype=batch["attention_mask"].dtype, device=model.device)
        positions = torch.arange(n_prefix, n_prefix + batch["input_ids"].shape[1], device=model.device)
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
