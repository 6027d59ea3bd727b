"""Never pay twice: a content-addressed store of Claude responses under results/cache/.

The key is the SHA-256 of the full request (model, system, tools, messages, every parameter sent),
serialised canonically, so any change to what is asked makes a new request and nothing else does.
Each response is written atomically the moment it arrives: an interrupted stage resumes from the
cache, and a rebuild, a grounding or correction change, or one more ticker in the grid pays only for
requests it has never made. Failed requests are not stored (they are retried on the next run). The
API key is a header, never part of a request, so it never reaches the cache.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
from pathlib import Path
from typing import Any, Callable

from distill.io import atomic_path

Send = Callable[[dict], dict]


def request_key(request: dict) -> str:
    """Hex digest of the canonical JSON of `request`."""
    blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """Responses by request key, one JSON file each: {"request": ..., "response": ...}."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: dict) -> dict | None:
        path = self._path(request_key(request))
        if not path.exists():
            return None
        return json.loads(path.read_text())["response"]

    def put(self, request: dict, response: dict) -> None:
        with atomic_path(self._path(request_key(request))) as tmp:
            tmp.write_text(json.dumps({"request": request, "response": response}, ensure_ascii=False))


def response_cache(cache_dir: str | Path) -> ResponseCache:
    """The one store every Claude caller (teacher, judge, assistant) shares: `<cache_dir>/anthropic/`,
    with `cache_dir` results/cache/ in the pipeline, so a request any of them paid for is paid once."""
    return ResponseCache(Path(cache_dir) / "anthropic")


def sdk_arguments(method: Callable) -> Callable[[dict], dict]:
    """The keyword arguments for an SDK `method` that send `request` as its body: the fields the method
    names, and the rest in `extra_body`."""
    named = set(inspect.signature(method).parameters)

    def arguments(request: dict) -> dict:
        extra = {key: value for key, value in request.items() if key not in named}
        fields = {key: value for key, value in request.items() if key in named}
        return {**fields, **({"extra_body": extra} if extra else {})}

    return arguments


def message_sender(client: Any) -> Send:
    """`send(request) -> response dict` through `client.messages.create` (the SDK retries).

    The response is the JSON exactly as the API sent it (the raw body): it is what the cache stores,
    and a model's malformed tool input survives it unchanged, to be answered with an error result.
    Request fields the SDK's `create` does not name (anthropic 2.16 has no temperature, top_p or top_k)
    travel in `extra_body`, so the body on the wire is still exactly the request the cache is keyed by.
    """
    arguments = sdk_arguments(client.messages.create)

    def send(request: dict) -> dict:
        return client.messages.with_raw_response.create(**arguments(request)).http_response.json()

    return send


def streaming_sender(client: Any, on_text: Callable[[str], None]) -> Send:
    """`send` through `client.messages.stream`: `on_text(delta)` at every text delta as it arrives, and the
    final message (the SDK's accumulation of the events) as the response dict. For the workbench page,
    which shows the answer as it is written; the pipeline's callers use message_sender."""
    arguments = sdk_arguments(client.messages.stream)

    def send(request: dict) -> dict:
        with client.messages.stream(**arguments(request)) as stream:
            for text in stream.text_stream:
                on_text(text)
            return stream.get_final_message().model_dump(mode="json")

    return send


def cached(send: Send, cache: ResponseCache, stats: dict[str, int] | None = None,
           accept: Callable[[dict], bool] | None = None) -> Send:
    """`send` with the cache in front; `stats` counts "hits" and "requests" (paid calls).

    `accept(response)` False keeps a response out of the cache (it is still returned): a reply the
    caller cannot use, such as a judge's malformed grading, is asked again on the next run.

    Safe to share between threads: concurrent identical requests (the same methodology question asked
    for several tickers) wait for the first one's response instead of each paying for it.
    """
    guard = threading.Lock()
    in_flight: dict[str, threading.Lock] = {}

    def count(kind: str) -> None:
        if stats is not None:
            with guard:
                stats[kind] = stats.get(kind, 0) + 1

    def send_cached(request: dict) -> dict:
        with guard:
            lock = in_flight.setdefault(request_key(request), threading.Lock())
        with lock:
            hit = cache.get(request)
            if hit is not None:
                count("hits")
                return hit
            response = send(request)
            if accept is None or accept(response):
                cache.put(request, response)
            count("requests")
            return response

    return send_cached
