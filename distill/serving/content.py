"""A generated assistant turn as Messages API content: the blocks of a response, and the events of a stream.

One rule for both (`content_blocks`): a turn whose `<tool_call>` blocks all parse against the request's tools
becomes its text segments and `tool_use` blocks in the order written, with stop_reason `tool_use`; any other
turn is one text block as written (`end_turn`, or `max_tokens` when the budget ran out), so a client sees
broken markup as distill.ruler.answers does. A turn for a request without tools never shows markup (the
grammar forbids it under `predict.constrain.tool_calls`; otherwise it is cut out).

`TurnStream` sends a block while it is generated only as far as that rule is certain to keep it, and the rest
when the turn ends, so a streamed message accumulates to the non-streamed response for the same request:
text up to the first `<` (trailing whitespace and an incomplete UTF-8 character held back; with the `stop`
repeat mode, which may cut the turn back to its last sentence, up to the last sentence end); with the
tool-call grammar on, a call is final once `</tool_call>` is written (the grammar admits only calls that
parse), so each is sent as it closes, and the text after it streams on. Without the grammar a call may yet
fail to parse and turn the whole reply into text, so nothing after the first `<` is sent before the end.
"""

from __future__ import annotations

import json
import uuid

from distill.student.chat import CALL_END, TOOL_CALL_RE, parse_assistant
from distill.student.constrain import SENTENCE_END


def text_block(text: str) -> dict:
    return {"type": "text", "text": text}


def tool_use_block(call: dict) -> dict:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": call["name"], "input": call["arguments"]}


def content_blocks(text: str, tools: list[dict], ended: bool) -> tuple[list[dict], str]:
    """The response content and stop_reason of a generated turn `text` for a request offering `tools`."""
    parsed = parse_assistant(text, tools) if tools else None
    if parsed is None or not parsed.calls or parsed.error:
        shown = text if tools else TOOL_CALL_RE.sub("", text)
        return [text_block(shown.strip())], "end_turn" if ended else "max_tokens"
    blocks, pos = [], 0
    for match, call in zip(TOOL_CALL_RE.finditer(text), parsed.calls):  # no error: one call per block, in order
        if segment := text[pos : match.start()].strip():
            blocks.append(text_block(segment))
        blocks.append(tool_use_block(call))
        pos = match.end()
    if tail := text[pos:].strip():
        blocks.append(text_block(tail))
    return blocks, "tool_use"


def sse(event: dict) -> str:
    """One Server-Sent Event as the Messages API writes it: the event name is the payload's type."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"


def _same(sent: dict, final: dict, still_open: bool) -> bool:
    if sent["type"] != final["type"]:
        return False
    if sent["type"] == "tool_use":
        return (sent["name"], sent["input"]) == (final["name"], final["input"])
    return final["text"].startswith(sent["text"]) if still_open else final["text"] == sent["text"]


class TurnStream:
    """The content-block events of one turn, from its text as it grows (`update`) and its final blocks (`finish`).

    `live_calls`: calls were written under the tool-call grammar; `sentences_only`: the `stop` repeat mode may
    cut the turn back to its last complete sentence."""

    def __init__(self, tools: list[dict], live_calls: bool, sentences_only: bool) -> None:
        self.tools, self.sentences_only = tools, sentences_only
        self.live_calls = live_calls and bool(tools)
        self.sent: list[dict] = []  # blocks sent so far; the last is open while `self.open`
        self.open = False
        self.pos = 0  # characters of the turn already in closed blocks
        self.frozen = False  # nothing more is certain before the end

    def update(self, text: str) -> list[dict]:
        events: list[dict] = []
        while not self.frozen:
            rest = text[self.pos :]
            start = rest.find("<")
            if start < 0:
                events += self._extend(self._safe(rest))
                break
            if not self.live_calls:
                events += self._extend(self._safe(rest[:start]))
                self.frozen = True
                break
            end = rest.find(CALL_END, start)
            if end < 0:
                events += self._extend(self._safe(rest[:start]))
                break
            parsed = parse_assistant(rest[start : end + len(CALL_END)], self.tools)
            if parsed.error or len(parsed.calls) != 1:  # not expected under the grammar: leave it to the end
                events += self._extend(self._safe(rest[:start]))
                self.frozen = True
                break
            events += self._extend(rest[:start].strip())
            if self.frozen:
                break
            events += self._close() + self._whole(tool_use_block(parsed.calls[0]))
            self.pos += end + len(CALL_END)
        return events

    def finish(self, blocks: list[dict]) -> list[dict]:
        """The events that complete the sent blocks to `blocks` (content_blocks of the whole turn), or one
        error event when what was sent is not their beginning (not expected: the tests look for it)."""
        for k, sent in enumerate(self.sent):
            if k >= len(blocks) or not _same(sent, blocks[k], still_open=self.open and k == len(self.sent) - 1):
                return [{"type": "error", "error": {"type": "api_error", "message":
                                                    "the streamed turn diverged from its final form; "
                                                    "send the request again with stream=false"}}]
        events: list[dict] = []
        if self.open:
            events += self._extend(blocks[len(self.sent) - 1]["text"]) + self._close()
        for block in blocks[len(self.sent) :]:
            events += self._whole(block)
        return events

    def _safe(self, segment: str) -> str:
        """What of an unfinished text segment is certain to stay: stripped, without a partial character."""
        safe = segment.strip().rstrip("\ufffd").rstrip()
        if self.sentences_only:
            safe = safe[: max((m.end() for m in SENTENCE_END.finditer(safe)), default=0)].rstrip()
        return safe

    def _extend(self, target: str) -> list[dict]:
        """Bring the open text block to `target` (opening one if needed)."""
        if not target:
            return []
        events = []
        if not self.open:
            events.append({"type": "content_block_start", "index": len(self.sent), "content_block": text_block("")})
            self.sent.append(text_block(""))
            self.open = True
        block = self.sent[-1]
        if not target.startswith(block["text"]):  # an earlier character changed (not expected): wait for the end
            self.frozen = True
            return events
        if delta := target[len(block["text"]) :]:
            events.append({"type": "content_block_delta", "index": len(self.sent) - 1,
                           "delta": {"type": "text_delta", "text": delta}})
            block["text"] = target
        return events

    def _close(self) -> list[dict]:
        if not self.open:
            return []
        self.open = False
        return [{"type": "content_block_stop", "index": len(self.sent) - 1}]

    def _whole(self, block: dict) -> list[dict]:
        """A complete block: its start, its content as one delta, its stop."""
        index = len(self.sent)
        if block["type"] == "text":
            self.sent.append(text_block(""))
            self.open = True
            return [{"type": "content_block_start", "index": index, "content_block": text_block("")},
                    *self._extend(block["text"]), *self._close()]
        self.sent.append(block)
        return [{"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
                {"type": "content_block_delta", "index": index,
                 "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                {"type": "content_block_stop", "index": index}]
