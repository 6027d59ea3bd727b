"""Greedy batched decoding that reuses key/value caches: the shared prompt prefix and each conversation.

`distill.student.predict` used to re-render every conversation and call `model.generate` on left-padded batches
every agent turn, so each row re-ran the ~230-token system prompt every turn, a second turn re-ran the
whole conversation, and rows that had finished kept decoding padding until the longest row ended.
`GreedyDecoder` produces the same greedy tokens (tests/test_predict.py compares it with `generate`)
while it

* runs the prefix shared by every prompt (the system turn) once and repeats its keys/values per row;
* keeps each conversation's keys/values between turns in a `RowCache`: a turn prefills only the tokens
  its prompt adds to what the cache holds. The prompt is always the full token ids of the rendered
  conversation, as `generate` would see them; the cache is reused up to the first token where it
  differs from them (normally the whole previous prompt plus the generated turn; less where the
  re-rendered turn differs from what the model generated, e.g. a call re-serialised with other spacing),
  so a turn's input is exactly the old path's prompt whatever the model wrote;
* drops a row from the batch as soon as it emits the end token or reaches `max_new_tokens`.

Batch layout, per row: [shared prefix | padding | cached tokens | padding | new tokens], in buffers
allocated for the whole call (no concatenation per step), with an attention mask that hides the
padding and explicit position ids that count only real tokens, so every row computes what it would
compute alone. The new tokens are prefilled in runs of rows of similar count, so that a short row is not
padded to the longest (tool outputs differ by hundreds of tokens); decoding then runs on the whole batch. Greedy = argmax of the last position's logits, as `generate`
does without logits processors. The arithmetic is the same as `generate`'s up to floating-point
summation order (the prefix and the cached columns are computed in other batch shapes), so logits can
differ in their last bits and a near-tie could in principle pick another token; the tests and
bench/predict_speed.py find identical tokens.

Supported: causal LMs whose forward takes `attention_mask`, `position_ids` and a `cache` (transformers
5 Llama/Qwen/Mistral families, PEFT-wrapped or NF4 included) and whose cache layers are all plain
`DynamicLayer`s (no sliding window); `unsupported` says why another model is not, and the caller then
uses `generate`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from distill.student.constrain import CALL_EXTENSION, TurnConstraint


@dataclass
class RowCache:
    """Keys/values of one conversation's tokens after the shared prefix, kept between turns."""

    ids: list[int] = field(default_factory=list)  # the tokens whose keys/values are held, in order
    keys: list[torch.Tensor] = field(default_factory=list)  # per layer [kv_heads, len(ids), head_dim]
    values: list[torch.Tensor] = field(default_factory=list)


class _BufferedLayer(DynamicLayer):
    """A `DynamicLayer` whose keys/values live in a buffer allocated for the whole generation.

    `DynamicLayer.update` concatenates, copying the layer's whole cache at every step (a third of the
    decoding time of SmolLM2 on a CPU); this writes the new columns in place and returns views.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """`keys`/`values`: buffers [batch, kv_heads, capacity, head_dim] whose first `length` columns are set."""
        super().__init__()
        self.device, self.is_initialized = keys.device, True
        self._keys, self._values, self.length = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def _write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        end = self.length + keys.shape[-2]
        if end > self._keys.shape[2]:  # beyond the planned capacity: grow (not expected)
            extra = max(end, 2 * self._keys.shape[2]) - self._keys.shape[2]
            self._keys, self._values = (torch.cat([t, t.new_empty(*t.shape[:2], extra, t.shape[3])], 2)
                                        for t in (self._keys, self._values))  # fmt: skip
        self._keys[:, :, self.length : end] = keys
        self._values[:, :, self.length : end] = values
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple:
        self._write(key_states, value_states)
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError


def common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _inner_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself otherwise)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def unsupported(model: Any) -> str | None:
    """Why `GreedyDecoder` cannot drive `model`, or None when it can."""
    if not isinstance(model, torch.nn.Module) or getattr(model, "config", None) is None:
        return f"{type(model).__name__} is not a transformers model"
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    params = inspect.signature(_inner_model(model).forward).parameters
    missing = [p for p in ("attention_mask", "position_ids", "cache") if p not in params]
    if missing:
        return f"{type(_inner_model(model)).__name__}.forward takes no {', '.join(missing)}"
    try:
        layers = DynamicCache(config=config).layers
    except Exception as exc:  # noqa: BLE001 - any failure means: not a plain dynamic cache
        return f"DynamicCache cannot be built from the config ({exc})"
    kinds = sorted({type(layer).__name__ for layer in layers if type(layer) is not DynamicLayer})
    if kinds:
        return f"cache layers {kinds} (sliding window or other), not plain DynamicLayer"
    return None


class GreedyDecoder:
    """Greedy generation for batches of token-id prompts that all start with `prefix_ids`.

    The prefix's keys/values are computed once, here. Each `generate` call takes full prompts (prefix
    included) and, optionally, one `RowCache` per prompt that it reads and then replaces with the
    prompt's and the generated turn's keys/values, for the next turn of that conversation.
    """

    def __init__(self, model: Any, prefix_ids: list[int], eos_id: int, pad_id: int) -> None:
        reason = unsupported(model)
        if reason:
            raise ValueError(f"GreedyDecoder cannot drive this model: {reason}")
        self.model, self.eos_id, self.pad_id = model, eos_id, pad_id
        self.device = model.device
        self.prefix_ids = list(prefix_ids)
        self._logits_to_keep = "logits_to_keep" in inspect.signature(_inner_model(model).forward).parameters
        self.prefix_keys: list[torch.Tensor] = []  # per layer [1, kv_heads, prefix, head_dim]
        self.prefix_values: list[torch.Tensor] = []
        if self.prefix_ids:
            cache = DynamicCache()
            ids = torch.tensor([self.prefix_ids], device=self.device)
            positions = torch.arange(len(self.prefix_ids), device=self.device)[None]
            self._forward(ids, torch.ones_like(ids), positions, cache)
            self.prefix_keys = [layer.keys for layer in cache.layers]
            self.prefix_values = [layer.values for layer in cache.layers]
        self.prefill_tokens = 0  # statistics over all generate calls
        self.generated_tokens = 0
        self.steps = 0  # forward passes
        self.row_steps = 0  # rows in them: finished rows leave the batch, so this is below steps * batch

    @torch.no_grad()
    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: DynamicCache
    ) -> torch.Tensor:
        """Next-token logits [batch, vocab] at the last column; `cache` grows by ids.shape[1] columns."""
        kwargs = {"logits_to_keep": 1} if self._logits_to_keep else {}
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, **kwargs
        )
        return out.logits[:, -1, :].float()

    def _inputs(self, lengths: list[int], new: list[list[int]], width: int) -> tuple[torch.Tensor, ...]:
        """Attention mask [b, width + width_new], input ids and position ids [b, width_new] of the new tokens."""
        b, n_prefix, width_new = len(new), len(self.prefix_ids), max(map(len, new))
        mask = torch.zeros(b, width + width_new, dtype=torch.long)
        mask[:, :n_prefix] = 1
        ids = torch.full((b, width_new), self.pad_id, dtype=torch.long)
        positions = torch.zeros(b, width_new, dtype=torch.long)
        for i, (n_kept, row_new) in enumerate(zip(lengths, new)):
            mask[i, width - n_kept : width] = 1
            mask[i, width + width_new - len(row_new) :] = 1
            ids[i, width_new - len(row_new) :] = torch.tensor(row_new)
            start = n_prefix + n_kept
            positions[i, width_new - len(row_new) :] = torch.arange(start, start + len(row_new))
        return mask.to(self.device), ids.to(self.device), positions.to(self.device)

    def _buffers(self, kept: list[RowCache | None], lengths: list[int], width: int, width_new: int,
                 capacity: int) -> list[tuple[torch.Tensor, torch.Tensor]] | None:  # fmt: skip
        """Per layer, key and value buffers [b, kv_heads, capacity, head_dim] holding the prefix and the kept
        columns, zeros in the padding up to width + width_new; None without a prefix or a kept column (no
        shapes to copy)."""
        n_prefix = len(self.prefix_ids)
        template = next((r for r, n in zip(kept, lengths) if n), None)
        n_layers = len(self.prefix_keys) if n_prefix else (len(template.keys) if template else 0)
        if not n_layers:
            return None
        buffers = []
        for layer in range(n_layers):
            pair = []
            for part in ("keys", "values"):
                prefix = getattr(self, f"prefix_{part}")[layer] if n_prefix else None  # [1, heads, prefix, dim]
                like = prefix[0] if prefix is not None else getattr(template, part)[layer]  # [heads, len, dim]
                t = like.new_empty(len(lengths), like.shape[0], capacity, like.shape[2])
                if prefix is not None:
                    t[:, :, :n_prefix] = prefix
                t[:, :, n_prefix : width + width_new] = 0  # padding: masked, but must be finite (0 * NaN is NaN)
                for i, (row, n_kept) in enumerate(zip(kept, lengths)):
                    if n_kept:
                        t[i, :, width - n_kept : width] = getattr(row, part)[layer][:, :n_kept]
                pair.append(t)
            buffers.append((pair[0], pair[1]))
        return buffers

    @staticmethod
    def _chunks(sizes: list[int], waste: float = 0.25) -> list[tuple[int, int]]:
        """Runs [start, end) of ascending `sizes` to prefill together: a run grows while its padding (every
        row padded to the run's longest) stays within `waste` of its real tokens."""
        chunks, start, total = [], 0, 0
        for j, n in enumerate(sizes):
            if j > start and (j - start + 1) * n > (1 + waste) * (total + n):
                chunks.append((start, j))
                start, total = j, 0
            total += n
        return [*chunks, (start, len(sizes))]

    def _prefill(self, kept: list[RowCache | None], lengths: list[int], new: list[list[int]], max_new_tokens: int
                 ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Prefill the new tokens of rows sorted by their count: the batch cache, mask and next-token logits.

        Rows are prefilled in runs of similar length (`_chunks`), each run writing into its rows of the batch
        buffers, so a short row is not padded to the longest one (tool outputs differ by hundreds of tokens).
        """
        n_prefix = len(self.prefix_ids)
        width, width_new = n_prefix + max(lengths), max(map(len, new))
        mask, ids, positions = self._inputs(lengths, new, width)
        buffers = self._buffers(kept, lengths, width, width_new, width + width_new + max_new_tokens)
        if buffers is None:  # nothing to copy shapes from: one padded pass builds the cache
            cache = DynamicCache()
            logits = self._forward(ids, mask, positions, cache)
            buffers = []
            for layer in cache.layers:
                pair = []
                for t in (layer.keys, layer.values):
                    buffer = t.new_empty(*t.shape[:2], width_new + max_new_tokens, t.shape[3])
                    buffer[:, :, :width_new] = t
                    pair.append(buffer)
                buffers.append((pair[0], pair[1]))
        else:
            parts = []
            for s, e in self._chunks([len(n) for n in new]):
                m = len(new[e - 1])
                start = width + width_new - m  # the run's rows have no new token before this column
                chunk = DynamicCache()
                chunk.layers = [_BufferedLayer(k[s:e], v[s:e], length=start) for k, v in buffers]  # views
                parts.append(self._forward(ids[s:e, -m:], mask[s:e], positions[s:e, -m:], chunk))
            logits = torch.cat(parts)
        cache = DynamicCache()
        cache.layers = [_BufferedLayer(k, v, length=width + width_new) for k, v in buffers]
        return cache, mask, logits

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], max_new_tokens: int, rows: list[RowCache] | None = None, store: bool = True,
        constraints: list[TurnConstraint | None] | None = None,
        on_token: Callable[[int, int], bool] | None = None,
    ) -> list[list[int]]:
        """Greedy continuations of `prompts`: each row's new ids, ending with the end token when it came.

        With `rows`, row i's cache is reused where it agrees with prompts[i] and then, if `store`, replaced
        by the keys/values of prompts[i] plus its continuation (all but the last generated token, which was
        never fed), ready for a prompt that extends them (without `store`, e.g. on a last turn, it is left
        as it was). With `constraints`, row i's token is `constraints[i].pick`'s (distill.student.constrain),
        and a row inside a tool call when its budget ends may run on up to CALL_EXTENSION more to close it.
        `on_token(i, token)` is called as row i takes each token (a server streams from it); False ends the row
        there (its client has gone).
        """
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        n_prefix = len(self.prefix_ids)
        n_kept: dict[int, int] = {}
        for i, prompt in enumerate(prompts):
            if len(prompt) <= n_prefix or prompt[:n_prefix] != self.prefix_ids:
                raise ValueError(f"prompt {i} does not extend the decoder's prefix")
            rest = prompt[n_prefix:]
            n_kept[i] = min(common_prefix_len(rows[i].ids, rest), len(rest) - 1) if rows is not None else 0
        # Batch row j holds prompt active[j]; sorted by new tokens, so that runs of rows prefill together.
        active = sorted(range(len(prompts)), key=lambda i: len(prompts[i]) - n_prefix - n_kept[i])
        new = [prompts[i][n_prefix + n_kept[i] :] for i in active]
        kept = [rows[i] if rows is not None else None for i in active]
        cache, mask, logits = self._prefill(kept, [n_kept[i] for i in active], new, max_new_tokens)
        self.prefill_tokens += sum(map(len, new))

        generated: list[list[int]] = [[] for _ in prompts]
        while True:
            self.steps += 1
            self.row_steps += len(active)
            tokens = logits.argmax(dim=-1).tolist()
            finished = []
            for j, i in enumerate(active):
                turn = constraints[i] if constraints is not None else None
                if turn is not None:
                    tokens[j] = turn.pick(logits[j], remaining=max_new_tokens - len(generated[i]) - 1)
                    turn.feed(tokens[j])
                generated[i].append(tokens[j])
                budget = max_new_tokens + (CALL_EXTENSION if turn is not None and turn.in_call else 0)
                dropped = on_token is not None and not on_token(i, tokens[j])
                if dropped or tokens[j] == self.eos_id or len(generated[i]) >= budget:
                    finished.append(j)
            if rows is not None and store:
                for j in finished:
                    self._store(rows[active[j]], cache, j, mask, prompts[active[j]], generated[active[j]])
            keep = [j for j in range(len(active)) if j not in finished]
            if not keep:
                break
            if finished:
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask = mask[index]
                active = [active[j] for j in keep]
            ids = torch.tensor([[generated[i][-1]] for i in active], device=self.device)
            positions = torch.tensor([[len(prompts[i]) + len(generated[i]) - 1] for i in active], device=self.device)
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            logits = self._forward(ids, mask, positions, cache)
        self.generated_tokens += sum(map(len, generated))
        return generated

    def _store(self, row: RowCache, cache: DynamicCache, j: int, mask: torch.Tensor, prompt: list[int],
               gen: list[int]) -> None:
        """Replace `row` by batch row j's keys/values after the prefix: its real (unmasked) columns."""
        n_prefix = len(self.prefix_ids)
        columns = mask[j, n_prefix:].bool()
        row.ids = prompt[n_prefix:] + gen[:-1]
        row.keys = [layer.keys[j, :, n_prefix:][:, columns] for layer in cache.layers]  # copies
        row.values = [layer.values[j, :, n_prefix:][:, columns] for layer in cache.layers]
        if row.keys and row.keys[0].shape[1] != len(row.ids):
            raise AssertionError(f"cached {row.keys[0].shape[1]} columns for {len(row.ids)} tokens")
