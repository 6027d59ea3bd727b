"""The one chat renderer shared by training, prediction and scoring: ChatML with Hermes-style tools.

Layout (Qwen2.5's tool format, made compact because every training token costs time on a CPU):

    <|im_start|>system
    {SYSTEM_INSTRUCTION}
    <tools>
    run_backtest(model_id: string, ticker: string, fee_bps?: number)   # one line per tool
    </tools><|im_end|>
    <|im_start|>user
    {question}<|im_end|>
    <|im_start|>assistant
    {optional text}
    <tool_call>{"name": "...", "arguments": {...}}</tool_call><|im_end|>
    <|im_start|>user
    <tool_response>{tool output}</tool_response>
    <tool_response>{next output}</tool_response><|im_end|>     # consecutive results share a turn
    <|im_start|>assistant
    {final answer}<|im_end|>

The trace's own system message (the teacher's long prompt) is replaced by the student's system prompt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from distill.workbench.registry import MODELS

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
ASSISTANT_HEADER = f"{IM_START}assistant\n"
# Prose, not a literal `{"name": ..., "arguments": {...}}` template: a small student copies such a
# template verbatim (seen after one epoch on SmolLM2), and `{...}` is not JSON.
SYSTEM_INSTRUCTION = (
    "You are a trading-models workbench assistant. Use the tools; cite only numbers they return. "
    "To call a tool, write a JSON object with keys name and arguments inside <tool_call></tool_call>."
)
IGNORE = -100  # label of tokens that carry no loss
PARSE_ERRORS = ("bad_json", "unknown_tool", "bad_arguments")
# How an agent loop can end without a final turn: a turn that does not parse, or tools called until the
# turn limit. Whether a final turn *answers* is distill.ruler.answers' question, asked when scoring.
LOOP_FAILURES = (*PARSE_ERRORS, "turn_limit")
# A block may lack its closing tag when the turn ended right after the JSON (see parse_assistant).
TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
CALL_END = "</tool_call>"  # a call is closed once this is written

Message = dict[str, Any]


@dataclass(frozen=True)
class ParsedTurn:
    """One generated assistant turn: free text, well-formed calls, and the first error (PARSE_ERRORS)."""

    content: str
    calls: list[dict] = field(default_factory=list)
    error: str | None = None


def arguments_object(arguments: Any) -> dict | None:
    """Call arguments as a dict, or None when they are not an object.

    Leniency: a JSON string holding an object is parsed (some models and APIs double-encode
    arguments); any other string or type is not an object.
    """
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    return arguments if isinstance(arguments, dict) else None


def tool_signature(tool: dict) -> str:
    """`name(arg: type, optional?: type): what it is for` from an Anthropic-shape tool, in one line.

    The purpose is the description's first clause (up to "(" or the end of its first sentence): it is
    what tells the student which tool a question needs, at a few tokens per tool.
    """
    schema = tool.get("input_schema") or {}
    required = set(schema.get("required", []))
    args = ", ".join(
        f"{name}{'' if name in required else '?'}: {spec.get('type', 'any')}"
        for name, spec in (schema.get("properties") or {}).items()
    )
    purpose = re.split(r"\s*\(|\.(?:\s|$)", tool.get("description") or "", maxsplit=1)[0].strip()
    return f"{tool['name']}({args})" + (f": {purpose}" if purpose else "")


def system_prompt(tools: list[dict]) -> str:
    """The student's compact system prompt: the instruction plus one signature line per tool."""
    signatures = "\n".join(tool_signature(t) for t in tools)
    # The questions name models by name, the tools take ids: the catalogue line is what links them.
    models = "; ".join(f"{m.id} = {m.name}" for m in MODELS.values())
    return f"{SYSTEM_INSTRUCTION}\nModels: {models}\n<tools>\n{signatures}\n</tools>"


def render_call(call: dict) -> str:
    """A call as one `<tool_call>` block; arguments always an object, never a JSON-encoded string."""
    arguments = arguments_object(call.get("arguments", {}))
    if arguments is None:
        raise ValueError(f"tool call arguments are not an object: {call!r}")
    body = json.dumps({"name": call["name"], "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>{body}</tool_call>"


def _assistant_body(message: Message) -> str:
    parts = [(message.get("content") or "").strip()]
    parts += [render_call(c) for c in message.get("tool_calls") or []]
    return "\n".join(p for p in parts if p)


def _turn(role: str, body: str) -> str:
    return f"{IM_START}{role}\n{body}{IM_END}\n"


def render(messages: list[Message], tools: list[dict]) -> str:
    """The whole conversation as ChatML text; its system message is replaced by `system_prompt`."""
    turns = [m for m in messages if m["role"] != "system"]
    out = [_turn("system", system_prompt(tools))]
    for i, message in enumerate(turns):
        role = message["role"]
        if role == "user":
            out.append(_turn("user", message["content"]))
        elif role == "assistant":
            out.append(_turn("assistant", _assistant_body(message)))
        elif role == "tool":
            opens = i == 0 or turns[i - 1]["role"] != "tool"
            closes = i == len(turns) - 1 or turns[i + 1]["role"] != "tool"
            out.append(
                (f"{IM_START}user\n" if opens else "\n")
                + f"<tool_response>{message['content']}</tool_response>"
                + (f"{IM_END}\n" if closes else "")
            )
        else:
            raise ValueError(f"unknown message role {role!r}")
    return "".join(out)


def first_turn(messages: list[Message]) -> list[Message]:
    """The conversation up to and including its first assistant turn (for most traces: the tool calls)."""
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            return messages[: i + 1]
    raise ValueError("conversation has no assistant turn")


def generation_prompt(messages: list[Message], tools: list[dict]) -> str:
    """The rendered conversation followed by an open assistant turn, for `generate`."""
    return render(messages, tools) + ASSISTANT_HEADER


def assistant_spans(messages: list[Message], tools: list[dict]) -> list[tuple[str, bool]]:
    """The rendered text cut into consecutive (piece, is_assistant) spans.

    Each assistant span is the difference between the prefix rendered up to that message (with the
    open assistant header) and the prefix that includes it, up to and including its `<|im_end|>`:
    exactly the text the model must generate for that turn. The newline after `<|im_end|>` is not
    part of it, because generation stops at `<|im_end|>`.
    """
    spans: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = generation_prompt(messages[:i], tools)
        after = render(messages[: i + 1], tools)
        end = after.rindex(IM_END) + len(IM_END)
        if not (before.startswith(done) and after.startswith(before)):
            raise AssertionError("renderer is not prefix-stable; assistant masks would be wrong")
        spans += [(before[len(done) :], False), (after[len(before) : end], True)]
        done = after[:end]
    spans.append((render(messages, tools)[len(done) :], False))
    return [(text, is_assistant) for text, is_assistant in spans if text]


def encode(messages: list[Message], tools: list[dict], tokenizer: Any, max_len: int) -> dict[str, list[int]]:
    """Token ids, labels (IGNORE outside assistant turns) and attention mask, truncated to max_len.

    Spans are tokenised separately and concatenated; every span boundary sits at a special token or
    right after `assistant\\n`, where byte-level BPE splits anyway, so the ids equal those of the
    whole rendered text (a test checks this) and the prompt a generation starts from.
    Truncation keeps the start: the system prompt, the question and the first tool call.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for text, is_assistant in assistant_spans(messages, tools):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if is_assistant else [IGNORE] * len(ids)
    input_ids, labels = input_ids[:max_len], labels[:max_len]
    return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}


def parse_assistant(text: str, tools: list[dict] | None = None) -> ParsedTurn:
    """Split a generated turn into text and tool calls; report the first problem found.

    Errors: bad_json (a block that is not JSON, or not an object with exactly "name" (a string) and
    "arguments"), unknown_tool (a name not in `tools`; unchecked when tools is None), bad_arguments
    (arguments that are not an object after the string leniency of `arguments_object`).
    Leniency: a final block without `</tool_call>` is accepted when its JSON is complete, since the
    turn may end right after it. `calls` holds the well-formed calls even when another block failed.
    """
    names = None if tools is None else {t["name"] for t in tools}
    calls: list[dict] = []
    errors: list[str] = []
    for block in TOOL_CALL_RE.findall(text):
        try:
            call = json.loads(block)
        except json.JSONDecodeError:
            errors.append("bad_json")
            continue
        if not isinstance(call, dict) or set(call) != {"name", "arguments"} or not isinstance(call["name"], str):
            errors.append("bad_json")
            continue
        arguments = arguments_object(call["arguments"])
        if names is not None and call["name"] not in names:
            errors.append("unknown_tool")
        elif arguments is None:
            errors.append("bad_arguments")
        else:
            calls.append({"name": call["name"], "arguments": arguments})
    content = TOOL_CALL_RE.sub("", text).strip()
    return ParsedTurn(content=content, calls=calls, error=errors[0] if errors else None)
