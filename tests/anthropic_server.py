"""A real HTTP server on localhost that speaks the documented Messages and Message Batches shapes.

Tests point the official `anthropic` SDK at it (`base_url`) and script what it answers: a
`responder(body) -> Reply` decides each /v1/messages answer, so a test can play a multi-turn tool
loop, answer 429/529/500 with `retry-after`, or count requests. Every request is recorded with its
headers, so tests can check what was sent (and that the key only travels in `x-api-key`).

Endpoints: POST /v1/messages; POST /v1/messages/batches; GET /v1/messages/batches/{id} (the batch ends
after `batch_polls` retrievals); GET /v1/messages/batches/{id}/results (JSONL, in reverse order, as
the API guarantees no order); POST /v1/messages/batches/{id}/cancel.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from distill.workbench.registry import MODELS

_ids = itertools.count(1)


@dataclass
class Reply:
    status: int = 200
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


def usage(input_tokens: int = 100, output_tokens: int = 20, cache_write: int = 0, cache_read: int = 0) -> dict:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read}


def message(content: list[dict], stop_reason: str, model: str = "claude-test", **usage_kw: int) -> dict:
    return {"id": f"msg_{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": None, "usage": usage(**usage_kw)}


def text_reply(text: str, **usage_kw: int) -> Reply:
    return Reply(body=message([{"type": "text", "text": text}], "end_turn", **usage_kw))


def tool_reply(calls: list[tuple[str, Any]], text: str = "", **usage_kw: int) -> Reply:
    """A tool_use turn; each call is (tool name, input) and the input may be malformed on purpose."""
    blocks = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": f"toolu_{next(_ids):06d}", "name": name, "input": args} for name, args in calls]
    return Reply(body=message(blocks, "tool_use", **usage_kw))


def error_reply(status: int, kind: str, retry_after: float | None = None) -> Reply:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return Reply(status=status, body={"type": "error", "error": {"type": kind, "message": f"scripted {status}"}},
                 headers=headers)


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    answered: bool = False  # the whole response was written: a request the API completed (and billed)


class AnthropicServer:
    """Start with `with AnthropicServer(responder) as server:`; `server.url` is the base_url."""

    def __init__(self, responder: Callable[[dict], Reply], batch_polls: int = 2) -> None:
        self.responder = responder
        self.batch_polls = batch_polls
        self.requests: list[Recorded] = []
        self.batches: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> "AnthropicServer":
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def answered(self) -> list[dict]:
        """Bodies of the POST /v1/messages requests whose response was written in full, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/messages" and r.answered]

    def messages(self) -> list[dict]:
        """Bodies of the POST /v1/messages requests received, in order."""
        return [r.body for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    # -- routing --------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: Any) -> Reply:
        if method == "POST" and path == "/v1/messages":
            return self.responder(body)
        if method == "POST" and path == "/v1/messages/batches":
            return self._create_batch(body)
        parts = path.strip("/").split("/")  # v1 messages batches {id} [results|cancel]
        if len(parts) >= 4 and parts[:3] == ["v1", "messages", "batches"] and parts[3] in self.batches:
            batch = self.batches[parts[3]]
            if len(parts) == 4 and method == "GET":
                return self._poll(batch)
            if parts[4:] == ["results"] and method == "GET":
                return self._results(batch)
            if parts[4:] == ["cancel"] and method == "POST":
                batch["status"] = "canceling"
                return Reply(body=self._batch_object(batch))
        return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"{method} {path}"}})

    def _create_batch(self, body: dict) -> Reply:
        batch_id = f"msgbatch_{next(_ids):06d}"
        self.batches[batch_id] = {"id": batch_id, "requests": body["requests"], "polls": 0, "status": "in_progress"}
        return Reply(body=self._batch_object(self.batches[batch_id]))

    def _poll(self, batch: dict) -> Reply:
        batch["polls"] += 1
        if batch["polls"] >= self.batch_polls:
            batch["status"] = "ended"
        return Reply(body=self._batch_object(batch))

    def _results(self, batch: dict) -> Reply:
        lines = []
        for item in reversed(batch["requests"]):
            reply = self.responder(item["params"])
            if reply.status == 200:
                result = {"type": "succeeded", "message": reply.body}
            else:
                result = {"type": "errored", "error": {"type": "error", "error": reply.body["error"]}}
            lines.append(json.dumps({"custom_id": item["custom_id"], "result": result}))
        return Reply(body=None, headers={"_jsonl": "\n".join(lines)})

    def _batch_object(self, batch: dict) -> dict:
        n = len(batch["requests"])
        ended = batch["status"] == "ended"
        return {
            "id": batch["id"], "type": "message_batch", "processing_status": batch["status"],
            "request_counts": {"processing": 0 if ended else n, "succeeded": n if ended else 0,
                               "errored": 0, "canceled": 0, "expired": 0},
            "created_at": "2026-12-02T00:00:00Z", "expires_at": "2026-12-03T00:00:00Z",
            "ended_at": "2026-12-02T00:10:00Z" if ended else None, "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch['id']}/results" if ended else None,
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                if method == "POST" and (not raw or len(raw) < length):
                    self.close_connection = True  # a client killed mid-send: the API never saw a request
                    return
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0]
                record = Recorded(method, path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(record)
                    reply = server._route(method, path, body)
                jsonl = reply.headers.pop("_jsonl", None)
                payload = (jsonl if jsonl is not None else json.dumps(reply.body)).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/binary" if jsonl is not None else "application/json")
                self.send_header("content-length", str(len(payload)))
                self.send_header("request-id", f"req_{next(_ids):06d}")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                record.answered = True

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler


# -- a deterministic responder for teacher runs over a grid ------------------------------------------

def first_int(value: object) -> int | None:
    """The first integer in a parsed tool result (a number the answer may cite)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return next((n for n in map(first_int, items) if n is not None), None)


class GridResponder:
    """Answers per conversation, deterministically: the first request gets a get_model_info call for the
    model the question names, the next an answer citing a number from that tool result. With
    cache_control in the request it reports a prompt-cache write the first time, reads after."""

    def __init__(self, delay: float = 0.0, fail: str | None = None) -> None:
        self.delay, self.fail = delay, fail
        self.cache_seen = False
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> Reply:
        time.sleep(self.delay)
        question = body["messages"][0]["content"]
        if self.fail and self.fail in question:
            return error_reply(500, "api_error")
        usage = {}
        if isinstance(body.get("system"), list) and "cache_control" in body["system"][-1]:
            with self.lock:
                usage = {"cache_read": 700} if self.cache_seen else {"cache_write": 700}
                self.cache_seen = True
        if len(body["messages"]) == 1:
            model_id = next((m.id for m in MODELS.values() if m.name in question), "sma_crossover")
            return tool_reply([("get_model_info", {"model_id": model_id})], **usage)
        result = body["messages"][-1]["content"][0]["content"]
        return text_reply(f"It uses a window of {first_int(json.loads(result))}.", **usage)
