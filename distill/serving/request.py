"""A Messages API request as the student server accepts it, and its translation into the project's
conversation schema (CONTRACTS.md): `tool_use` blocks become calls, `tool_result` blocks tool turns.

The models forbid unknown fields, so a field the student cannot honour is a 400 naming it; fields valid for
the API that it cannot serve (image and document blocks, assistant prefill) raise InvalidRequest, also a 400.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from distill.student.chat import Message


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cache_control: dict | None = None  # accepted for compatibility; nothing is cached


class TextBlock(_Block):
    type: Literal["text"]
    text: str


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock] = ""
    is_error: bool = False


class MediaBlock(BaseModel):
    """An image or document block: valid for the API, refused by the student (it reads text only)."""
    model_config = ConfigDict(extra="allow")
    type: Literal["image", "document"]


Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock | MediaBlock, Field(discriminator="type")]


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    input_schema: dict
    cache_control: dict | None = None


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`: the conversation part of a Messages request."""
    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] = []
    tool_choice: dict | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stream: bool = False
    temperature: float | None = None  # greedy decoding: sampling parameters are accepted and ignored
    top_p: float | None = None
    top_k: int | None = None
    metadata: dict | None = None


class InvalidRequest(ValueError):
    """A request the API shape allows but the student cannot serve; answered with 400."""


def _blocks(content: str | list) -> list:
    return [TextBlock(type="text", text=content)] if isinstance(content, str) else content


def to_conversation(messages: list[InputMessage]) -> list[Message]:
    """API messages → the project's conversation schema (CONTRACTS.md), checking what the API checks."""
    if messages[0].role != "user":
        raise InvalidRequest("messages: the first message must use the user role")
    if messages[-1].role != "user":
        raise InvalidRequest("messages: the last message must use the user role (assistant prefill is not supported)")
    names: dict[str, str] = {}  # tool_use id -> tool name
    out: list[Message] = []
    for i, message in enumerate(messages):
        blocks = _blocks(message.content)
        for k, b in enumerate(blocks):
            if isinstance(b, MediaBlock):
                raise InvalidRequest(f"messages.{i}.content.{k}: {b.type} blocks are not supported by the "
                                     f"student server (it reads text only)")
        text = "\n".join(b.text for b in blocks if isinstance(b, TextBlock)).strip()
        if message.role == "assistant":
            if any(isinstance(b, ToolResultBlock) for b in blocks):
                raise InvalidRequest(f"messages.{i}: tool_result blocks belong in a user message")
            uses = [b for b in blocks if isinstance(b, ToolUseBlock)]
            names.update((b.id, b.name) for b in uses)
            out.append({"role": "assistant", "content": text,
                        "tool_calls": [{"name": b.name, "arguments": b.input} for b in uses]})
            continue
        if any(isinstance(b, ToolUseBlock) for b in blocks):
            raise InvalidRequest(f"messages.{i}: tool_use blocks belong in an assistant message")
        for b in blocks:
            if isinstance(b, ToolResultBlock):
                if b.tool_use_id not in names:
                    raise InvalidRequest(f"messages.{i}: tool_result for unknown tool_use_id {b.tool_use_id!r}")
                body = b.content if isinstance(b.content, str) else "\n".join(t.text for t in b.content)
                out.append({"role": "tool", "name": names[b.tool_use_id], "content": body})
        if text or not any(isinstance(b, ToolResultBlock) for b in blocks):
            out.append({"role": "user", "content": text})
    return out
