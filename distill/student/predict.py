"""The student's agent loop, batched across questions: generate, parse, run the real tools, repeat.

Every turn, the still-active conversations are rendered with the shared chat renderer, tokenised whole,
and continued greedily; a turn with tool calls executes them and continues, a turn without calls is the
final turn. Generation runs on `distill.student.decode.GreedyDecoder`: the system prompt's keys/values are
computed once, each conversation keeps its keys/values across turns (a turn prefills only what its
prompt adds), and a row leaves the batch as soon as it ends; the tokens are those `model.generate`
gives on the same prompts (tests/test_predict.py). A model the decoder cannot drive
(`distill.student.decode.unsupported`) falls back to `model.generate` on left-padded batches, re-rendered every
turn, with a log line saying why. Failures end a conversation with a reason from chat.LOOP_FAILURES
instead of raising, so the scorer and the report can count them by kind. Whether the final turn answers
the question is decided when scoring (distill.ruler.answers), so that a change to that definition never
re-runs generation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from peft import PeftModel
from transformers import GenerationConfig

from distill.student.chat import IM_END, generation_prompt, parse_assistant
from distill.student.constrain import UNCONSTRAINED, ConstrainConfig, Constrainer
from distill.student.decode import GreedyDecoder, RowCache, common_prefix_len, unsupported
from distill.dataset.split import sample_per_category
from distill.io import dumps
from distill.student.base_model import load_base

log = logging.getLogger(__name__)
# False forces the reference path (`generate` on re-rendered prompts) for every model; tests compare both.
CACHED_DECODER = True


def load_student(
    base_dir: Path, adapter_dir: Path | None, quantization: str = "none", dtype: str = "float32"
) -> tuple[Any, Any]:
    """The base model with an epoch's adapter applied (adapter_dir None = epoch 0, the untrained base).

    Float models get the adapter merged into their weights, which generates faster than an unmerged
    LoRA and gives the same outputs; NF4 weights cannot absorb it without requantising, so it stays apart.
    """
    model, tokenizer = load_base(str(base_dir), quantization, dtype)
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
        if quantization == "none":
            model = model.merge_and_unload()
    model.eval()
    return model, tokenizer


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy completions of `prompts`, each stopped at `<|im_end|>`, in batches of similar length."""
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
    )
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # less padding per batch
    texts: dict[int, str] = {}
    new_tokens, start = 0, time.perf_counter()
    for b in range(0, len(order), batch_size):
        indices = order[b : b + batch_size]
        batch = [prompts[i] for i in indices]
        enc = tokenizer(batch, add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        enc = enc.to(model.device)
        out = model.generate(**enc, generation_config=config)
        new = out[:, enc["input_ids"].shape[1] :]  # [batch, generated]
        new_tokens += int((new != tokenizer.pad_token_id).sum())
        texts.update(zip(indices, tokenizer.batch_decode(new, skip_special_tokens=True)))
    seconds = time.perf_counter() - start
    log.info(
        "generated %d new tokens for %d prompts in %.1fs (%.1f tok/s, batch %d)",
        new_tokens, len(prompts), seconds, new_tokens / seconds, batch_size,
    )  # fmt: skip
    return [texts[i] for i in range(len(prompts))]


@dataclass
class _Run:
    """One question's conversation and what the loop recorded for it."""

    messages: list[dict]
    pred_calls: list[dict] = field(default_factory=list)
    tool_outputs: list[str] = field(default_factory=list)
    raw_turns: list[str] = field(default_factory=list)
    pred_answer: str = ""
    failure: str | None = None

    def step(self, text: str, tools: list[dict], execute: Callable[[str, dict], str]) -> bool:
        """Apply one generated turn; True while the conversation still waits for another turn."""
        self.raw_turns.append(text)
        parsed = parse_assistant(text, tools)
        if parsed.error:
            self.failure = parsed.error
            return False
        if not parsed.calls:
            self.pred_answer = parsed.content
            return False
        self.messages.append({"role": "assistant", "content": parsed.content, "tool_calls": parsed.calls})
        for call in parsed.calls:
            output = execute(call["name"], call["arguments"])
            self.pred_calls.append(call)
            self.tool_outputs.append(output)
            self.messages.append({"role": "tool", "name": call["name"], "content": output})
        return True


def predict(
    model: Any,
    tokenizer: Any,
    questions: list[dict],
    tools: list[dict],
    execute: Callable[[str, dict], str],
    max_turns: int,
    max_new_tokens: int,
    batch_size: int,
    constrain: ConstrainConfig = UNCONSTRAINED,
) -> list[dict]:
    """Run the agent loop for every question; one record per question, in input order.

    Each record is the question dict plus pred_calls (calls executed, in order), pred_answer,
    tool_outputs, failure (None or one of chat.LOOP_FAILURES), n_turns and raw_turns, as Python objects
    (the predictions parquet stores the lists as JSON text). A conversation still calling tools
    after `max_turns` generations fails with turn_limit. `constrain` says which rules of
    distill.student.constrain hold while decoding (they need the cached decoder).
    """
    runs = [_Run(messages=[{"role": "user", "content": q["question"]}]) for q in questions]
    reason = "disabled (CACHED_DECODER = False)" if not CACHED_DECODER else unsupported(model)
    if runs and reason is None:
        constrainer = Constrainer(tokenizer, tools, constrain) if constrain.any else None
        _loop_cached(model, tokenizer, runs, tools, execute, max_turns, max_new_tokens, batch_size, constrainer)
    else:
        if runs:
            log.info("cached decoder not used, generating with model.generate: %s", reason)
            if constrain.any:
                log.warning("constrained decoding needs the cached decoder: %s decodes unconstrained", constrain)
        _loop_generate(model, tokenizer, runs, tools, execute, max_turns, max_new_tokens, batch_size)
    return [
        {
            **question,
            "pred_calls": run.pred_calls,
            "pred_answer": run.pred_answer,
            "tool_outputs": run.tool_outputs,
            "failure": run.failure,
            "n_turns": len(run.raw_turns),
            "raw_turns": run.raw_turns,
        }
        for question, run in zip(questions, runs)
    ]


def _loop_generate(
    model: Any, tokenizer: Any, runs: list[_Run], tools: list[dict], execute: Callable[[str, dict], str],
    max_turns: int, max_new_tokens: int, batch_size: int,
) -> None:  # fmt: skip
    """The reference loop: every turn, all active conversations re-rendered and passed to `generate`."""
    active = list(range(len(runs)))
    for turn in range(1, max_turns + 1):
        if not active:
            break
        prompts = [generation_prompt(runs[i].messages, tools) for i in active]
        texts = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
        active = [i for i, text in zip(active, texts) if runs[i].step(text, tools, execute)]
        log.info("turn %d: %d conversations still calling tools", turn, len(active))
    for i in active:
        runs[i].failure = "turn_limit"


def _token_ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _loop_cached(
    model: Any, tokenizer: Any, runs: list[_Run], tools: list[dict], execute: Callable[[str, dict], str],
    max_turns: int, max_new_tokens: int, batch_size: int, constrainer: Constrainer | None,
) -> None:  # fmt: skip
    """The agent loop on `GreedyDecoder`, one group of `batch_size` conversations at a time, all turns.

    Groups (of similar first-prompt length) bound the memory the kept caches take. Every turn's prompt is
    the whole rendered conversation tokenised, as in `_loop_generate`; the decoder reuses what it cached.
    """
    start = time.perf_counter()
    first = [_token_ids(tokenizer, generation_prompt(run.messages, tools)) for run in runs]
    # The prefix all prompts share (the system turn and the user header), less one token so that every
    # prompt still has a token to feed.
    n_prefix = min(len(ids) for ids in first) - 1
    for ids in first[1:]:
        n_prefix = min(n_prefix, common_prefix_len(first[0], ids))
    decoder = GreedyDecoder(
        model, first[0][:n_prefix], eos_id=tokenizer.convert_tokens_to_ids(IM_END), pad_id=tokenizer.pad_token_id
    )
    order = sorted(range(len(runs)), key=lambda i: len(first[i]))  # less padding per group
    turn_counts = [0] * (max_turns + 1)  # conversations generating at each turn, over all groups
    for g in range(0, len(order), batch_size):
        active = order[g : g + batch_size]
        caches = {i: RowCache() for i in active}
        for turn in range(1, max_turns + 1):
            if not active:
                break
            turn_counts[turn] += len(active)
            prompts = first if turn == 1 else None
            ids = [prompts[i] if prompts else _token_ids(tokenizer, generation_prompt(runs[i].messages, tools))
                   for i in active]  # fmt: skip
            constraints = [constrainer.turn(runs[i].tool_outputs) for i in active] if constrainer else None
            new = decoder.generate(ids, max_new_tokens, [caches[i] for i in active], store=turn < max_turns,
                                   constraints=constraints)
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            if constraints:  # a turn the repeat rule stopped counts up to its cut
                texts = [turn.final_text for turn in constraints]
            active = [i for i, text in zip(active, texts) if runs[i].step(text, tools, execute)]
            caches = {i: caches[i] for i in active}
        for i in active:
            runs[i].failure = "turn_limit"
    seconds = time.perf_counter() - start
    log.info(
        "cached decoder: %d questions, conversations per turn %s, prefix %d tokens computed once, "
        "%d prompt tokens prefilled, %d new tokens in %d steps, %.1fs (%.1f new tok/s, batch %d)",
        len(runs), turn_counts[1:], n_prefix, decoder.prefill_tokens, decoder.generated_tokens, decoder.steps,
        seconds, decoder.generated_tokens / seconds, batch_size,
    )  # fmt: skip


def held_out_questions(evals: pd.DataFrame, max_examples: int, seed: int) -> pd.DataFrame:
    """The distinct held-out questions the student answers (`predict.max_examples`, spread over categories).

    One row per distinct question: the grid repeats methodology questions, and greedy decoding would answer
    every copy the same way, so copies would only weigh that question more in the scores."""
    return sample_per_category(evals.drop_duplicates("question"), max_examples, seed)


def prediction_frame(questions: pd.DataFrame, records: list[dict]) -> pd.DataFrame:
    """The predictions artifact (CONTRACTS.md): the questions' identity and gold, and what `predict` recorded."""
    return pd.DataFrame({
        **{c: questions[c] for c in ("trace_id", "category", "model_id", "model_kind", "ticker", "question", "gold_calls")},
        "gold_answer": questions["final_answer"],
        "pred_calls": [dumps(r["pred_calls"]) for r in records],
        "pred_answer": [r["pred_answer"] for r in records],
        "tool_outputs": [dumps(r["tool_outputs"]) for r in records],
        "failure": [r["failure"] for r in records],
        "n_turns": [r["n_turns"] for r in records],
        "raw_turns": [dumps(r["raw_turns"]) for r in records],
    })
