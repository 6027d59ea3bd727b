"""The shared chat renderer: layout, assistant-only masks (checked by decoding) and turn parsing."""

from __future__ import annotations

import json

import pytest

from distill.student.chat import (
    ASSISTANT_HEADER,
    IGNORE,
    IM_END,
    encode,
    generation_prompt,
    parse_assistant,
    render,
    system_prompt,
    tool_signature,
)

TOOLS = [
    {"name": "list_models", "description": "All models.", "input_schema": {"type": "object", "properties": {}}},
    {
        "name": "run_backtest",
        "description": "Backtest a model.",
        "input_schema": {
            "type": "object",
            "properties": {
                "model_id": {"type": "string"},
                "ticker": {"type": "string"},
                "fee_bps": {"type": "number"},
            },
            "required": ["model_id", "ticker"],
        },
    },
]
TRACE = [
    {"role": "system", "content": "The teacher's long system prompt."},
    {"role": "user", "content": "How did sma_cross do on SPY, and at 10 bps fees?"},
    {
        "role": "assistant",
        "content": "Let me run both.",
        "tool_calls": [
            {"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY"}},
            {"name": "run_backtest", "arguments": '{"model_id": "sma_cross", "ticker": "SPY", "fee_bps": 10}'},
        ],
    },
    {"role": "tool", "name": "run_backtest", "content": '{"total_return": 0.125}'},
    {"role": "tool", "name": "run_backtest", "content": '{"total_return": 0.101}'},
    {"role": "assistant", "content": "", "tool_calls": [{"name": "list_models", "arguments": {}}]},
    {"role": "tool", "name": "list_models", "content": '["sma_cross"]'},
    {"role": "assistant", "content": "It returned 12.5%, or 10.1% at 10 bps."},
]
# The assistant turns exactly as the model must generate them, written out by hand.
ASSISTANT_TURNS = [
    (
        "Let me run both.\n"
        '<tool_call>{"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY"}}</tool_call>\n'
        '<tool_call>{"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY", "fee_bps": 10}}'
        "</tool_call><|im_end|>"
    ),
    '<tool_call>{"name": "list_models", "arguments": {}}</tool_call><|im_end|>',
    "It returned 12.5%, or 10.1% at 10 bps.<|im_end|>",
]



def test_tool_signature_marks_optional_arguments_and_gives_the_purpose() -> None:
    assert tool_signature(TOOLS[0]) == "list_models(): All models"
    assert tool_signature(TOOLS[1]) == "run_backtest(model_id: string, ticker: string, fee_bps?: number): Backtest a model"
    long = {**TOOLS[0], "description": "Full record of one model: data source (bundled). Returns JSON."}
    assert tool_signature(long) == "list_models(): Full record of one model: data source"
    assert tool_signature({**TOOLS[0], "description": ""}) == "list_models()"


def test_render_replaces_system_and_uses_hermes_tool_format() -> None:
    text = render(TRACE, TOOLS)
    assert text.startswith(f"<|im_start|>system\n{system_prompt(TOOLS)}<|im_end|>\n")
    assert "teacher" not in text
    assert "<tools>\nlist_models(): All models\nrun_backtest(" in text
    assert "<|im_start|>user\nHow did sma_cross do on SPY, and at 10 bps fees?<|im_end|>\n" in text
    for turn in ASSISTANT_TURNS:
        assert f"{ASSISTANT_HEADER}{turn}\n" in text
    # consecutive tool results share one user turn, in call order
    assert (
        '<|im_start|>user\n<tool_response>{"total_return": 0.125}</tool_response>\n'
        '<tool_response>{"total_return": 0.101}</tool_response><|im_end|>\n'
    ) in text
    assert text.endswith(f"{ASSISTANT_HEADER}It returned 12.5%, or 10.1% at 10 bps.{IM_END}\n")


def test_arguments_are_never_double_encoded() -> None:
    text = render(TRACE, TOOLS)
    assert '"arguments": "' not in text
    first_turn = text.split(ASSISTANT_HEADER)[1]
    block = first_turn.split("<tool_call>")[2].split("</tool_call>")[0]
    assert json.loads(block)["arguments"] == {"model_id": "sma_cross", "ticker": "SPY", "fee_bps": 10}


def test_generation_prompt_opens_an_assistant_turn() -> None:
    prompt = generation_prompt(TRACE[:2], TOOLS)
    assert prompt == render(TRACE[:2], TOOLS) + "<|im_start|>assistant\n"


def test_render_rejects_unknown_roles() -> None:
    with pytest.raises(ValueError, match="role"):
        render([{"role": "function", "content": "x"}], TOOLS)


def test_unmasked_tokens_decode_to_exactly_the_assistant_turns(tokenizer) -> None:
    enc = encode(TRACE, TOOLS, tokenizer, max_len=4096)
    ids, labels = enc["input_ids"], enc["labels"]
    assert len(ids) == len(labels) == len(enc["attention_mask"])
    assert all(label in (IGNORE, token) for token, label in zip(ids, labels))
    runs: list[list[int]] = []  # contiguous unmasked token runs
    for i, label in enumerate(labels):
        if label != IGNORE:
            if i == 0 or labels[i - 1] == IGNORE:
                runs.append([])
            runs[-1].append(label)
    assert [tokenizer.decode(run) for run in runs] == ASSISTANT_TURNS


def test_encode_matches_tokenising_the_whole_render(tokenizer) -> None:
    """Training ids equal the ids a generation prompt of the same history would be built from."""
    enc = encode(TRACE, TOOLS, tokenizer, max_len=4096)
    assert enc["input_ids"] == tokenizer(render(TRACE, TOOLS), add_special_tokens=False)["input_ids"]


def test_truncation_keeps_the_start(tokenizer) -> None:
    full = encode(TRACE, TOOLS, tokenizer, max_len=4096)
    short = encode(TRACE, TOOLS, tokenizer, max_len=60)
    assert short["input_ids"] == full["input_ids"][:60]
    assert short["labels"] == full["labels"][:60]


CALL = '<tool_call>{"name": "run_backtest", "arguments": {"model_id": "m1", "ticker": "SPY"}}</tool_call>'
CALLED = {"name": "run_backtest", "arguments": {"model_id": "m1", "ticker": "SPY"}}
LIST_MODELS = {"name": "list_models", "arguments": {}}


@pytest.mark.parametrize(
    ("text", "content", "calls", "error"),
    [
        ("It returned 12%.", "It returned 12%.", [], None),
        (CALL, "", [CALLED], None),
        ("Checking.\n" + CALL + "\n" + CALL, "Checking.", [CALLED, CALLED], None),
        # leniency: arguments as a JSON string holding an object are parsed
        ('<tool_call>{"name": "list_models", "arguments": "{}"}</tool_call>', "", [LIST_MODELS], None),
        # leniency: a final block without its closing tag, JSON complete
        ('<tool_call>{"name": "list_models", "arguments": {}}', "", [LIST_MODELS], None),
        ('<tool_call>{"name": "list_models", "argu', "", [], "bad_json"),
        ("<tool_call>list_models()</tool_call>", "", [], "bad_json"),
        ('<tool_call>["list_models", {}]</tool_call>', "", [], "bad_json"),
        ('<tool_call>{"name": "list_models"}</tool_call>', "", [], "bad_json"),
        ('<tool_call>{"name": 3, "arguments": {}}</tool_call>', "", [], "bad_json"),
        ('<tool_call>{"name": "sell_everything", "arguments": {}}</tool_call>', "", [], "unknown_tool"),
        ('<tool_call>{"name": "list_models", "arguments": "all"}</tool_call>', "", [], "bad_arguments"),
        ('<tool_call>{"name": "list_models", "arguments": ["m1"]}</tool_call>', "", [], "bad_arguments"),
        # the well-formed call survives; the first error is reported
        (CALL + '<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "", [CALLED], "unknown_tool"),
    ],
)
def test_parse_assistant(text: str, content: str, calls: list[dict], error: str | None) -> None:
    parsed = parse_assistant(text, TOOLS)
    assert (parsed.content, parsed.calls, parsed.error) == (content, calls, error)


def test_parse_without_tools_does_not_check_names() -> None:
    parsed = parse_assistant('<tool_call>{"name": "anything", "arguments": {}}</tool_call>')
    assert parsed.error is None and parsed.calls == [{"name": "anything", "arguments": {}}]


def test_parse_inverts_render() -> None:
    body = ASSISTANT_TURNS[0].removesuffix(IM_END)
    parsed = parse_assistant(body, TOOLS)
    assert parsed.content == "Let me run both."
    assert parsed.calls == [
        {"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY"}},
        {"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY", "fee_bps": 10}},
    ]
