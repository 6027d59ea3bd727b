"""The cached greedy decoder (distill.student.decode) against `model.generate`, and the agent loop on it.

A tiny random Llama (2 layers, hidden 64, the student's real vocabulary) in fp32 on CPU: greedy tokens
must be identical to `generate`'s, one turn and two, with rows ending at different steps; `predict`
must give the same records as the reference path (`generate` on re-rendered prompts). The rows end
early because the end token is chosen among the tokens the random model writes (decoder tests), or
because the model's end-token logit is made to win after a token it often writes (predict tests).
"""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, MistralConfig

from distill.student import predict as predict_module
from distill.student.chat import ASSISTANT_HEADER, IM_END, IM_START, ParsedTurn, generation_prompt, render
from distill.student.decode import GreedyDecoder, RowCache, common_prefix_len, unsupported
from distill.student.predict import predict
from tests.test_student import TOOLS  # the same two-tool set

QUESTIONS = [
    "Hi?",
    "How did sma_cross do on SPY between 2019-01-02 and 2023-12-29, and what would a 10 bps fee change?",
    "What data source does momentum use?",
    "Explain the covered call writer's option pricing in a few words, please.",
    "Which models are there?",
]
STEPS = 14
TOOL_OUTPUT = json.dumps({"models": ["sma_cross", "momentum"]})



def tiny_model(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    """Weights drawn wider than the default 0.02, so that the continuations depend on the prompt."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False,
        initializer_range=0.08,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def model(tokenizer) -> LlamaForCausalLM:
    return tiny_model(tokenizer)


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def first_prompts(tokenizer) -> list[list[int]]:
    return [ids_of(tokenizer, generation_prompt([{"role": "user", "content": q}], TOOLS)) for q in QUESTIONS]


def shared_prefix(prompts: list[list[int]]) -> list[int]:
    n = min(map(len, prompts)) - 1
    for p in prompts[1:]:
        n = min(n, common_prefix_len(prompts[0], p))
    return prompts[0][:n]


@torch.no_grad()
def hf_generate(model, prompts: list[list[int]], eos: int, pad: int, max_new_tokens: int = STEPS) -> list[list[int]]:
    """`model.generate` greedy on left-padded prompts; each row's new ids up to and including eos."""
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    rows = []
    for row in out[:, width:].tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


def early_eos(model, tokenizer, prompts: list[list[int]], min_spread: int = 3) -> int:
    """A token the model writes mid-turn in some rows only, to serve as their end token: the one that ends
    the rows at the most different steps."""
    free = hf_generate(model, prompts, tokenizer.convert_tokens_to_ids(IM_END), tokenizer.pad_token_id)
    candidates = {t for row in free for t in row[1:-2]}

    def spread(token: int) -> tuple[int, int]:
        ends = [row.index(token) if token in row else STEPS for row in free]
        return len(set(ends)), -token  # ties: the lowest id, for determinism

    best = max(sorted(candidates), key=spread)
    assert spread(best)[0] >= min_spread, free
    return best


def test_one_turn_equals_generate_with_rows_ending_at_different_steps(model, tokenizer) -> None:
    prompts = first_prompts(tokenizer)
    assert len({len(p) for p in prompts}) == len(prompts)  # all different lengths
    eos = early_eos(model, tokenizer, prompts)
    want = hf_generate(model, prompts, eos, tokenizer.pad_token_id)
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=tokenizer.pad_token_id)
    sizes = sorted(len(p) - len(decoder.prefix_ids) for p in prompts)
    assert len(GreedyDecoder._chunks(sizes)) > 1  # the prompts are prefilled in several runs
    got = decoder.generate(prompts, STEPS)
    assert got == want
    assert len({len(row) for row in got}) > 2  # the rows did end at different steps
    assert decoder.row_steps == sum(map(len, got)) < decoder.steps * len(prompts)  # ended rows cost nothing


def test_prefill_runs_bound_the_padding() -> None:
    assert GreedyDecoder._chunks([5, 5, 5, 6, 30, 31, 200]) == [(0, 4), (4, 6), (6, 7)]
    assert GreedyDecoder._chunks([3, 3, 3]) == [(0, 3)] and GreedyDecoder._chunks([1]) == [(0, 1)]


def test_rows_ending_early_do_not_change_the_others(model, tokenizer) -> None:
    prompts = first_prompts(tokenizer)
    eos = early_eos(model, tokenizer, prompts)
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=tokenizer.pad_token_id)
    batched = decoder.generate(prompts, STEPS)
    alone = [decoder.generate([p], STEPS)[0] for p in prompts]
    assert batched == alone == [hf_generate(model, [p], eos, tokenizer.pad_token_id)[0] for p in prompts]


def test_position_ids_count_only_real_tokens(model, tokenizer) -> None:
    """Without a shared prefix, the padding sits at the start; positions must still start at 0 per row."""
    prompts = first_prompts(tokenizer)
    eos = tokenizer.convert_tokens_to_ids(IM_END)
    decoder = GreedyDecoder(model, [], eos_id=eos, pad_id=tokenizer.pad_token_id)
    assert decoder.generate(prompts, 6) == hf_generate(model, prompts, eos, tokenizer.pad_token_id, 6)


def test_second_turn_equals_generate_on_the_whole_conversation(model, tokenizer) -> None:
    prompts = first_prompts(tokenizer)
    eos = early_eos(model, tokenizer, prompts)
    pad = tokenizer.pad_token_id
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=pad)
    rows = [RowCache() for _ in prompts]
    first = decoder.generate(prompts, STEPS, rows)
    assert first == hf_generate(model, prompts, eos, pad)
    for row, prompt, turn in zip(rows, prompts, first):  # cached: the prompt and the turn but its last token
        assert row.ids == prompt[len(decoder.prefix_ids) :] + turn[:-1]
        assert all(k.shape[1] == len(row.ids) for k in row.keys + row.values)
    # Appended after each turn: the end of the generated turn and a rendered tool response (of different
    # lengths per row), then the open assistant header.
    responses = [f'\n{IM_START}user\n<tool_response>{{"n": {10**i}}}</tool_response>{IM_END}\n{ASSISTANT_HEADER}'
                 for i in range(len(prompts))]  # fmt: skip
    second = [p + t + ([] if t[-1] == eos else [eos]) + ids_of(tokenizer, r)
              for p, t, r in zip(prompts, first, responses)]  # fmt: skip
    before = decoder.prefill_tokens
    got = decoder.generate(second, STEPS, rows)
    assert got == hf_generate(model, second, eos, pad)
    appended = sum(len(s) - len(p) - len(t) + 1 for s, p, t in zip(second, prompts, first))
    assert decoder.prefill_tokens - before == appended  # only what the turn added was prefilled
    # A third turn on the kept caches.
    third = [s + t + ids_of(tokenizer, f"{IM_END}\n{ASSISTANT_HEADER}") for s, t in zip(second, got)]
    assert decoder.generate(third, STEPS, rows) == hf_generate(model, third, eos, pad)


def test_a_prompt_that_departs_from_the_cached_turn_is_recomputed_from_there(model, tokenizer) -> None:
    """The re-rendered turn need not be what the model wrote: the cache is used up to the first difference."""
    prompts = first_prompts(tokenizer)
    eos, pad = tokenizer.convert_tokens_to_ids(IM_END), tokenizer.pad_token_id
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=pad)
    rows = [RowCache() for _ in prompts]
    first = decoder.generate(prompts, 8, rows)
    rewritten = ids_of(tokenizer, '<tool_call>{"name": "list_models", "arguments": {}}</tool_call>')
    tail = ids_of(tokenizer, f"{IM_END}\n{IM_START}user\n<tool_response>[]</tool_response>{IM_END}\n{ASSISTANT_HEADER}")
    second = [p + t[: i % 4] + rewritten + tail for i, (p, t) in enumerate(zip(prompts, first))]
    assert decoder.generate(second, STEPS, rows) == hf_generate(model, second, eos, pad)


def test_a_generated_tool_call_turn_is_reused_whole(tokenizer) -> None:
    """The ids of the turn-2 prompt are the turn-1 prompt, the turn as the model writes it, `<|im_end|>`, then
    the tokenised rest: so when the model writes the turn as the renderer does, nothing of it is recomputed."""
    call = {"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY"}}
    messages = [{"role": "user", "content": "How did sma_cross do on SPY?"}]
    calls = [call, {"name": "list_models", "arguments": {}}]
    turn = [{"role": "assistant", "content": "Let me check.", "tool_calls": calls},
            {"role": "tool", "name": "run_backtest", "content": json.dumps({"total_return": 0.125})},
            {"role": "tool", "name": "list_models", "content": json.dumps(["sma_cross"])}]  # fmt: skip
    first = ids_of(tokenizer, generation_prompt(messages, TOOLS))
    written = render(messages + turn[:1], TOOLS)[len(generation_prompt(messages, TOOLS)) :].removesuffix(f"{IM_END}\n")
    generated = ids_of(tokenizer, written) + [tokenizer.convert_tokens_to_ids(IM_END)]
    second = ids_of(tokenizer, generation_prompt(messages + turn, TOOLS))
    assert second[: len(first) + len(generated)] == first + generated


def im_end_after(model, tokenizer, token: int) -> None:
    """Make `<|im_end|>` the model's choice wherever it would choose `token` (when that logit is positive)."""
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[tokenizer.convert_tokens_to_ids(IM_END)] = 1.5 * head[token]


@pytest.fixture(scope="module")
def ending_model(tokenizer) -> LlamaForCausalLM:
    """A tiny model that ends its turns at different lengths."""
    model = tiny_model(tokenizer, seed=2)
    prompts = first_prompts(tokenizer)
    im_end_after(model, tokenizer, early_eos(model, tokenizer, prompts))
    ends = hf_generate(model, prompts, tokenizer.convert_tokens_to_ids(IM_END), tokenizer.pad_token_id)
    lengths = {len(row) for row in ends}
    assert len(lengths) > 1, lengths
    return model


def forced_calls(monkeypatch: pytest.MonkeyPatch, rendered: bool) -> None:
    """Every generated turn is read as its text plus a list_models call (the random model writes none).

    rendered=False renders such a turn as the generated text itself (no call, no stripping), so its cache is
    reused whole; rendered=True renders it as the chat format does, stripped and with the call block, so the
    prompt departs from the cached turn.
    """
    monkeypatch.setattr(predict_module, "parse_assistant",
                        lambda text, tools: ParsedTurn(text, [{"name": "list_models", "arguments": {}}]))  # fmt: skip
    if not rendered:
        monkeypatch.setattr("distill.student.chat._assistant_body", lambda message: message["content"])


def run_both(monkeypatch, model, tokenizer, **kwargs) -> tuple[list[dict], list[dict]]:
    questions = [{"trace_id": f"t{i}", "question": q} for i, q in enumerate(QUESTIONS)]
    executed = {False: [], True: []}
    records = {}
    for cached in (False, True):

        def execute(name: str, arguments: dict, cached=cached) -> str:
            executed[cached].append((name, arguments))
            return TOOL_OUTPUT  # a function of the call only: the two paths execute in different orders

        monkeypatch.setattr(predict_module, "CACHED_DECODER", cached)
        records[cached] = predict(model, tokenizer, questions, TOOLS, execute, **kwargs)
    assert sorted(map(str, executed[False])) == sorted(map(str, executed[True]))
    return records[False], records[True]


def test_predict_equals_the_reference_path_in_one_turn(ending_model, tokenizer, monkeypatch) -> None:
    old, new = run_both(monkeypatch, ending_model, tokenizer, max_turns=2, max_new_tokens=STEPS, batch_size=2)
    assert new == old
    assert [r["trace_id"] for r in new] == [f"t{i}" for i in range(len(QUESTIONS))]
    assert all(r["n_turns"] == 1 for r in new)


@pytest.mark.parametrize("rendered", [False, True], ids=["turn-reused", "turn-rerendered"])
def test_predict_equals_the_reference_path_over_turns(ending_model, tokenizer, monkeypatch, caplog, rendered) -> None:
    forced_calls(monkeypatch, rendered)
    caplog.set_level(logging.INFO, logger="distill.student.predict")
    old, new = run_both(monkeypatch, ending_model, tokenizer, max_turns=3, max_new_tokens=STEPS, batch_size=3)
    assert new == old
    assert all(r["n_turns"] == 3 and r["failure"] == "turn_limit" and len(r["pred_calls"]) == 3 for r in new)
    line = next(m for m in caplog.messages if m.startswith("cached decoder:"))
    assert "5 questions, conversations per turn [5, 5, 5]" in line
    if not rendered:  # each later turn prefilled only the tool turn and the header after the generated turn
        prefix, prefilled = map(int, re.search(r"prefix (\d+) tokens .*, (\d+) prompt tokens prefilled", line).groups())
        tail = ids_of(tokenizer, f"{IM_END}\n{IM_START}user\n<tool_response>{TOOL_OUTPUT}</tool_response>{IM_END}\n"
                                 f"{ASSISTANT_HEADER}")  # fmt: skip
        first = sum(len(p) - prefix for p in first_prompts(tokenizer))
        # +2 a turn: its last token when it stopped at max_new_tokens (never fed) and a re-encoding that
        # differs (a character split across tokens, decoded as U+FFFD)
        assert prefilled <= first + 2 * len(QUESTIONS) * (len(tail) + 2)


def test_peft_lora_model_equals_generate(tokenizer) -> None:
    from peft import LoraConfig, get_peft_model

    base = tiny_model(tokenizer, seed=2)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    model.eval()
    assert unsupported(model) is None
    prompts = first_prompts(tokenizer)
    eos = early_eos(model, tokenizer, prompts, min_spread=2)
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=tokenizer.pad_token_id)
    assert decoder.generate(prompts, STEPS) == hf_generate(model, prompts, eos, tokenizer.pad_token_id)


def test_unsupported_models_fall_back_to_generate_and_say_so(tokenizer, caplog) -> None:
    assert "not a transformers model" in unsupported(object())
    sliding = MistralConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, num_key_value_heads=1, sliding_window=16)  # fmt: skip
    from transformers import MistralForCausalLM

    assert "DynamicLayer" in unsupported(MistralForCausalLM(sliding))

    class Scripted:
        """generate() only: answers every prompt with the same final turn."""

        device = torch.device("cpu")

        def generate(self, input_ids, attention_mask, generation_config):
            reply = ids_of(tokenizer, "Done." + IM_END)
            return torch.cat([input_ids, torch.tensor([reply] * len(input_ids))], dim=1)

    caplog.set_level(logging.INFO, logger="distill.student.predict")
    records = predict(Scripted(), tokenizer, [{"question": "Hi?"}], TOOLS, lambda n, a: "", 2, 8, 4)
    assert records[0]["pred_answer"] == "Done." and records[0]["n_turns"] == 1
    assert any("cached decoder not used" in m and "Scripted is not a transformers model" in m for m in caplog.messages)


def test_nf4_student_with_its_adapter_unmerged_equals_generate(tokenizer, tmp_path) -> None:
    """QLoRA's student: NF4 weights (bitsandbytes, here on CPU) under a PeftModel that keeps the LoRA apart."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from distill.student.predict import load_student

    base = tiny_model(tokenizer, seed=3)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    model, tok = load_student(tmp_path / "base", tmp_path / "adapter", quantization="nf4")
    assert isinstance(model, PeftModel) and unsupported(model) is None
    assert "Linear4bit" in {type(m).__name__ for m in model.modules()}
    prompts = first_prompts(tok)
    eos = early_eos(model, tok, prompts, min_spread=2)
    decoder = GreedyDecoder(model, shared_prefix(prompts), eos_id=eos, pad_id=tok.pad_token_id)
    assert decoder.generate(prompts, STEPS) == hf_generate(model, prompts, eos, tok.pad_token_id)
