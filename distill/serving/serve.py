"""The student behind the Anthropic Messages API: `POST /v1/messages` on a local HTTP server.

Why an API server: the workbench already talks to Claude through the official `anthropic` client, so a
server that speaks the same protocol makes the student a drop-in; the client switches between Claude
and the student by `base_url` alone (distill.serving.assistant, README "Serving").

A request (distill.serving.request) is translated into the project's conversation schema (CONTRACTS.md) and rendered by the one
chat renderer (distill.student.chat) exactly as in training and prediction: the request's `tools` become the
student's compact tool block, `tool_use` blocks become `<tool_call>` blocks and `tool_result` blocks
become `<tool_response>` turns. The request's `system` text is accepted but, as in training, the
student sees its own system prompt built from the tools (it was never trained on another). The reply is
parsed by `distill.student.chat.parse_assistant`; each well-formed call becomes a `tool_use` block with a fresh
id. Decoding is greedy (sampling parameters are accepted and ignored) on `distill.student.decode.GreedyDecoder`
with the system prompt's keys/values computed once per tool set, under the rules of `predict.constrain`
(distill.student.constrain: numbers only from this conversation's tool results, calls that match the
request's tool schemas, no repeated six-word run or sentence).

Content and stop_reason follow one rule (distill.serving.content.content_blocks): a turn whose calls all
parse becomes its text segments and `tool_use` blocks in order (`tool_use`); any other turn one text block
as written (`end_turn`, or `max_tokens` when the budget ran out). A request without tools never gets markup.

Endpoints: `POST /v1/messages` (with `stream: true`, Server-Sent Events token by token as the API sends
them, accumulating to the same message), `POST /v1/messages/count_tokens` (the rendered prompt in the
student's tokenizer), `GET /v1/models` and `/v1/models/{id}`. What the student cannot honour (image or
document blocks, a tool_choice other than auto, max_tokens beyond its context window) is a 400 in the API's
error shape naming the field, before any event is sent.

Concurrency: one model, one lock around generation; requests queue (FastAPI runs them in threads), and each
turn records how long it waited. A streaming client that disconnects stops its decoder at the next token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from distill.contracts import read_json
from distill.serving.chat_page import Workbench, add_chat_page
from distill.serving.content import TurnStream, content_blocks, sse
from distill.serving.request import CountTokensRequest, InvalidRequest, MessagesRequest, to_conversation
from distill.serving.threaded import Put, in_thread
from distill.student.chat import IM_END, Message, generation_prompt, render
from distill.student.constrain import UNCONSTRAINED, ConstrainConfig, Constrainer
from distill.student.decode import GreedyDecoder, unsupported
from distill.student.predict import generate, load_student
from distill.student.base_model import for_inference, resolve_base

log = logging.getLogger(__name__)
MAX_DECODERS = 4  # distinct tool sets whose system-prompt keys/values are kept


# ---- the model ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """A checked request in the project's terms: the conversation, the tools, the rendered prompt's ids."""

    conversation: list[Message]
    tools: list[dict]
    ids: list[int]


@dataclass(frozen=True)
class Completion:
    """One generated assistant turn."""

    text: str
    input_tokens: int
    output_tokens: int
    ended: bool  # the student emitted its end-of-turn token (else the token budget ran out)
    queued_s: float  # seconds the request waited for the model (another request held it)


class StudentEngine:
    """The student loaded once; `complete` generates one assistant turn under a lock."""

    def __init__(self, model: Any, tokenizer: Any, name: str, constrain: ConstrainConfig = UNCONSTRAINED) -> None:
        self.model, self.tokenizer, self.name, self.constrain = model, tokenizer, name, constrain
        self.eos_id = tokenizer.convert_tokens_to_ids(IM_END)
        self.context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._lock = threading.Lock()
        # Per system turn (the tools): the decoder with its prefix computed, and the turn constraints.
        self._decoders: OrderedDict[str, tuple[GreedyDecoder, Constrainer | None]] = OrderedDict()
        self._cached = unsupported(model) is None
        if not self._cached:
            log.info("cached decoder not used, generating with model.generate: %s", unsupported(model))

    @classmethod
    def load(cls, model_dir: str | Path, adapter_dir: str | Path | None, student_cfg: dict, name: str,
             constrain: ConstrainConfig = UNCONSTRAINED) -> StudentEngine:
        """`model_dir`: a base-model artifact or a merged export; `adapter_dir`: a PEFT adapter or None.

        The same loading and casting as prediction (distill.student.predict.load_student, student.for_inference).
        """
        quantization = student_cfg["quantization"]
        model, tokenizer = load_student(Path(resolve_base(model_dir)), Path(adapter_dir) if adapter_dir else None,
                                        quantization, student_cfg["dtype"])
        return cls(for_inference(model, student_cfg["autocast"], quantization), tokenizer, name, constrain)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prepare(self, request: CountTokensRequest, max_tokens: int | None = None) -> Prepared:
        """The request checked and rendered as in training and prediction (InvalidRequest names what is wrong);
        with `max_tokens`, also that it fits in the context window after the prompt."""
        choice = request.tool_choice or {"type": "auto"}
        if choice.get("type") != "auto" or set(choice) - {"type"}:
            raise InvalidRequest(f"tool_choice: {choice} is not supported by the student server; "
                                 f"only {{'type': 'auto'}} (or leaving it out)")
        tools = [t.model_dump(exclude={"cache_control"}) for t in request.tools]
        conversation = to_conversation(request.messages)
        ids = self._ids(generation_prompt(conversation, tools))
        if max_tokens is not None and self.context is not None and len(ids) + max_tokens > self.context:
            raise InvalidRequest(f"max_tokens: {max_tokens} > {self.context - len(ids)}, the most the student's "
                                 f"context window of {self.context} tokens leaves after this prompt's {len(ids)}")
        return Prepared(conversation, tools, ids)

    def _decoder(self, tools: list[dict]) -> tuple[GreedyDecoder, Constrainer | None]:
        """The decoder whose prefix is the system turn for `tools` (its keys/values computed once), and the
        constraints of its turns (None when `constrain` holds no rule)."""
        system = render([], tools)
        if system not in self._decoders:
            decoder = GreedyDecoder(self.model, self._ids(system), self.eos_id, self.tokenizer.pad_token_id)
            constrainer = None
            if self.constrain.any:
                try:
                    constrainer = Constrainer(self.tokenizer, tools, self.constrain)
                except ValueError as exc:  # a client's schema llguidance cannot compile: its calls go unchecked
                    log.warning("%s; tool calls for this tool set are not constrained", exc)
                    constrainer = Constrainer(self.tokenizer, tools, replace(self.constrain, tool_calls=False))
            self._decoders[system] = (decoder, constrainer)
            while len(self._decoders) > MAX_DECODERS:
                self._decoders.popitem(last=False)
        self._decoders.move_to_end(system)
        return self._decoders[system]

    def complete(self, prepared: Prepared, max_tokens: int,
                 on_text: Callable[[str], bool] | None = None) -> Completion:
        """One assistant turn for `prepared`. `on_text(text so far)` is called at every token (the cached
        decoder) or once at the end (model.generate); False stops generating (the client went away)."""
        conversation, tools, ids = prepared.conversation, prepared.tools, prepared.ids
        waited = time.perf_counter()
        with self._lock:
            queued = time.perf_counter() - waited
            if self._cached:
                decoder, constrainer = self._decoder(tools)
                outputs = [m["content"] for m in conversation if m["role"] == "tool"]
                constraints = [constrainer.turn(outputs)] if constrainer else None
                seen: list[int] = []

                def on_token(_: int, token: int) -> bool:
                    seen.append(token)
                    text = constraints[0].text if constraints else self.tokenizer.decode(seen, skip_special_tokens=True)
                    return on_text(text)

                new = decoder.generate([ids], max_tokens, constraints=constraints,
                                       on_token=on_token if on_text else None)[0]
                text = constraints[0].final_text if constraints else self.tokenizer.decode(new, skip_special_tokens=True)
                ended = bool(new) and new[-1] == self.eos_id
                n_out = len(new)
            else:
                text = generate(self.model, self.tokenizer, [generation_prompt(conversation, tools)], max_tokens,
                                batch_size=1)[0]
                n_out = len(self._ids(text)) + 1
                ended = n_out <= max_tokens  # generate stops early only at the end token
                if on_text:
                    on_text(text)
        return Completion(text=text, input_tokens=len(ids), output_tokens=n_out, ended=ended, queued_s=queued)


def _message(engine: StudentEngine, content: list[dict], stop: str | None, usage: dict) -> dict:
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": engine.name,
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {**usage, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def respond(engine: StudentEngine, request: MessagesRequest) -> dict:
    """The Messages API response to `request`: content blocks, stop_reason and usage."""
    prepared = engine.prepare(request, request.max_tokens)
    turn = engine.complete(prepared, request.max_tokens)
    content, stop = content_blocks(turn.text, prepared.tools, turn.ended)
    return _message(engine, content, stop, {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens})


async def stream(engine: StudentEngine, prepared: Prepared, max_tokens: int) -> AsyncIterator[str]:
    """The response to a `stream: true` request as Server-Sent Events, token by token as the decoder writes
    them (distill.serving.content.TurnStream). Generation runs in its own thread (distill.serving.threaded):
    when the client goes away this generator is closed and the decoder stops at its next token."""

    def work(put: Put) -> Completion:
        return engine.complete(prepared, max_tokens, on_text=put)

    turn = TurnStream(prepared.tools, engine.constrain.tool_calls, engine.constrain.repeats == "stop")
    message = _message(engine, [], None, {"input_tokens": len(prepared.ids), "output_tokens": 0})
    yield sse({"type": "message_start", "message": message})
    yield sse({"type": "ping"})
    async for batch in in_thread(work, "student-stream"):
        texts = [value for kind, value in batch if kind == "put"]
        for event in turn.update(texts[-1]) if texts else []:  # only the latest text matters
            yield sse(event)
        kind, value = batch[-1]
        if kind == "put":
            continue
        if kind == "error":  # reported to the client as an error event, and logged
            log.error("streamed generation failed", exc_info=value)
            yield sse(error_body(500, f"generation failed: {value}"))
            return
        blocks, stop = content_blocks(value.text, prepared.tools, value.ended)
        for event in turn.update(value.text) + turn.finish(blocks):
            yield sse(event)
            if event["type"] == "error":
                return
        yield sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": value.output_tokens}})
        yield sse({"type": "message_stop"})
        log.info("%s: streamed %d in, %d out tokens, %s, queued %.2fs", message["id"], value.input_tokens,
                 value.output_tokens, stop, value.queued_s)


# ---- HTTP -----------------------------------------------------------------------------------------------

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 413: "request_too_large", 422: "invalid_request_error"}


def error_body(status: int, message: str) -> dict:
    """The API's error shape."""
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "; ".join(parts)


def model_info(engine: StudentEngine) -> dict:
    """The student as `GET /v1/models` describes a model."""
    return {"type": "model", "id": engine.name, "display_name": f"{engine.name} (distilled student)",
            "created_at": engine.created}


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes is a 413 in the API's shape, refused by its
    Content-Length before any of it is read, or as soon as a body sent without one (chunked) passes the
    limit. The body is read here and handed on whole (FastAPI would read it whole anyway, and would turn an
    error raised while reading into a 400)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.limit:
            return await self._refuse(send, length.decode(errors="replace"))
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before its request was complete
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send, f"more than {self.limit}")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay() -> dict:
            nonlocal first
            if first is not None:
                message, first = first, None
                return message
            return await receive()  # after the body: a streaming response listens for the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, send: Callable, length: str) -> None:
        limit_mb = self.limit / 2**20
        body = json.dumps(error_body(413, f"request body: {length} bytes is over the server's limit of "
                                          f"{limit_mb:g} MB (config serve.max_request_mb)")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def make_app(engine: StudentEngine, workbench: Workbench | None = None, max_request_mb: float = 32) -> FastAPI:
    """The FastAPI app around one loaded `engine`; with `workbench`, also the chat page at `/`."""
    app = FastAPI(title="distill student (Anthropic Messages API)")
    app.add_middleware(BodyLimit, limit=int(max_request_mb * 2**20))
    if workbench is not None:
        add_chat_page(app, workbench)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(400, _validation_message(exc)), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(InvalidRequest)
    async def unservable(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse(error_body(400, str(exc)), status_code=400)

    @app.post("/v1/messages")
    def messages(request: MessagesRequest) -> Response:  # sync: FastAPI runs it in a worker thread
        if request.stream:
            prepared = engine.prepare(request, request.max_tokens)  # a bad request: 400 before any event
            return StreamingResponse(stream(engine, prepared, request.max_tokens), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        start = time.perf_counter()
        body = respond(engine, request)
        log.info("%s: %d in, %d out tokens, %s, %.2fs", body["id"], body["usage"]["input_tokens"],
                 body["usage"]["output_tokens"], body["stop_reason"], time.perf_counter() - start)
        return JSONResponse(body)

    @app.post("/v1/messages/count_tokens")
    def count_tokens(request: CountTokensRequest) -> dict:
        """The prompt's tokens in the student's tokenizer, rendered exactly as for generation."""
        return {"input_tokens": len(engine.prepare(request).ids)}

    @app.get("/v1/models")
    def models() -> dict:
        return {"data": [model_info(engine)], "first_id": engine.name, "last_id": engine.name, "has_more": False}

    @app.get("/v1/models/{model_id}")
    def model(model_id: str) -> dict:
        if model_id != engine.name:
            raise HTTPException(404, f"model: {model_id!r} not found; this server serves {engine.name!r}")
        return model_info(engine)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.name}

    return app


class ServerThread:
    """uvicorn serving `app` in a background thread, as a context manager; port 0 = a free port.

    Used by the tests, the serving evaluation and `python -m distill chat` to run the real HTTP server
    in-process; `python -m distill serve` runs uvicorn in the foreground instead.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="student-server", daemon=True)
        self.url = ""

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the student server did not start (port taken?)")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve_forever(engine: StudentEngine, host: str, port: int, workbench: Workbench | None = None,
                  max_request_mb: float = 32) -> None:
    """`python -m distill serve`: uvicorn in the foreground until interrupted."""
    log.info("serving %s on http://%s:%d/v1/messages%s", engine.name, host, port,
             f", the chat page on http://{host}:{port}/" if workbench else "")
    uvicorn.run(make_app(engine, workbench, max_request_mb), host=host, port=port, log_level="info")


def chosen_adapter(results_dir: str | Path) -> Path:
    """The adapter `results/selection.json` picked: `<results>/adapter/epoch_<task_epoch>`."""
    selection = Path(results_dir) / "selection.json"
    if not selection.exists():
        raise FileNotFoundError(f"{selection} not found: build it (snakemake --cores 2 {selection}) "
                                f"or name an adapter or merged model directory")
    adapter = Path(results_dir) / "adapter" / f"epoch_{read_json(selection)['task_epoch']}"
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: no adapter there ({selection} names it)")
    return adapter
