"""The one tool-use loop over the Messages API, shared by the Claude teacher and the assistant.

Request, read tool_use blocks, execute the real workbench tools, send tool_result blocks back (a
tool error, or a malformed tool input from the model, is an `is_error` result the model can react
to), until the model ends its turn or `max_turns` round trips are spent. The transport is a `send`
function (request dict in, response dict out), so the same loop talks to Claude, to the cache in
front of Claude, or to the student behind `python -m distill serve`.

An `on_event` callback sees the loop as it runs (the workbench chat page): `{"type": "tool_call", "name",
"arguments"}` when a turn's calls are read, `{"type": "tool_result", "name", "content", "is_error"}` when a
tool has run. A turn's text is the sender's to report (distill.claude.cache.streaming_sender).

The result carries the conversation twice: in the API's shape (to continue it) and in the project's
trace schema, exactly as the offline simulator writes it, so everything downstream is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Event = Callable[[dict], None]

from distill.claude.usage import USAGE_FIELDS, add_usage
from distill.workbench import tools

ANSWER_STOPS = ("end_turn", "stop_sequence")  # stop reasons whose text is a finished answer


@dataclass
class LoopResult:
    messages: list[dict]  # trace schema: system, user, assistant {content, tool_calls}, tool {name, content}, ...
    final_answer: str  # text of the turn that ended the loop with an answer, else ""
    tool_outputs: list[str]  # tool results in call order
    stop: str  # the last stop_reason, or "turn_limit"
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_FIELDS, 0))
    requests: int = 0
    api_messages: list[dict] = field(default_factory=list)  # the conversation in the API's shape


def system_text(system: str | list[dict] | None) -> str:
    """The system prompt as plain text, whether sent as a string or as (cache-marked) text blocks."""
    if not system:
        return ""
    if isinstance(system, str):
        return system
    return "\n".join(block["text"] for block in system if block.get("type") == "text")


def run_tool_loop(send: Callable[[dict], dict], params: dict, question: str, max_turns: int,
                  on_event: Event | None = None) -> LoopResult:
    """Play one question; `params` holds model, system, tools, max_tokens and any other request field."""
    emit = on_event or (lambda _: None)
    api_messages: list[dict] = [{"role": "user", "content": question}]
    trace: list[dict] = [{"role": "system", "content": system_text(params.get("system"))},
                         {"role": "user", "content": question}]
    result = LoopResult(messages=trace, final_answer="", tool_outputs=[], stop="turn_limit", api_messages=api_messages)
    for turn in range(max_turns + 1):
        response = send({**params, "messages": api_messages})
        result.requests += 1
        add_usage(result.usage, response.get("usage"))
        blocks = response.get("content") or []
        text = "".join(b["text"] for b in blocks if b.get("type") == "text").strip()
        uses = [b for b in blocks if b.get("type") == "tool_use"]
        api_messages.append({"role": "assistant", "content": [_echo(b) for b in blocks if b.get("type") in ("text", "tool_use")]})
        result.stop = response.get("stop_reason") or "end_turn"
        if result.stop != "tool_use" or not uses:
            trace.append({"role": "assistant", "content": text})
            result.final_answer = text if result.stop in ANSWER_STOPS else ""
            return result
        trace.append({"role": "assistant", "content": text,
                      "tool_calls": [{"name": b["name"], "arguments": b.get("input")} for b in uses]})
        for use in uses:
            emit({"type": "tool_call", "name": use["name"], "arguments": use.get("input")})
        if turn == max_turns:
            result.stop = "turn_limit"
            return result
        results = []
        for use in uses:
            output = tools.execute(use["name"], use.get("input"))
            result.tool_outputs.append(output)
            trace.append({"role": "tool", "name": use["name"], "content": output})
            block = {"type": "tool_result", "tool_use_id": use["id"], "content": output}
            if tools.is_error(output):
                block["is_error"] = True
            emit({"type": "tool_result", "name": use["name"], "content": output, "is_error": tools.is_error(output)})
            results.append(block)
        api_messages.append({"role": "user", "content": results})
    return result


def _echo(block: dict[str, Any]) -> dict:
    """A response block as the next request must send it back (only the fields the API accepts)."""
    if block["type"] == "text":
        return {"type": "text", "text": block["text"]}
    args = block.get("input")
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": args if isinstance(args, dict) else {}}
