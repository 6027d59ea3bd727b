"""The student behind the Anthropic Messages API: `POST /v1/messages` on a local HTTP server.

Why an API server: the workbench already talks to Claude through the official `anthropic` client, so a
server that speaks the same protocol makes the student a drop-in; the client switches between Claude
and the student by `base_url` alone (distill.serving.assistant, README "Serving").

A request is translated into the project's conversation schema (CONTRACTS.md) and rendered by the one
chat renderer (distill.student.chat) exactly as in training and prediction: the request's `tools` become the
student's compact tool block, `tool_use` blocks become `<tool_call>` blocks and `tool_result` blocks
become `<tool_response>` turns. The request's `system` text is accepted but, as in training, the
student sees its own system prompt built from the tools (it was never trained on another). The reply is
parsed by `distill.student.chat.parse_assistant`; each well-formed call becomes a `tool_use` block with a fresh
id. Decoding is greedy (sampling parameters are accepted and ignored) on `distill.student.decode.GreedyDecoder`
with the system prompt's keys/values computed once per tool set, under the rules of `predict.constrain`
(distill.student.constrain: numbers only from this conversation's tool results, calls that match the
request's tool schemas, no repeated six-word run or sentence).

stop_reason: `tool_use` when the turn holds well-formed calls (also when the token budget ran out right
after a complete call: the parser accepts it, as prediction does), `max_tokens` when the budget ran out
otherwise, `end_turn` when the student ended its turn. A turn whose calls do not parse comes back as
text as written (with `end_turn`): the client sees the markup, as distill.ruler.answers does.

Concurrency: one model, one lock around generation; requests queue (FastAPI runs them in threads).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from distill.student.chat import IM_END, Message, generation_prompt, parse_assistant, render
from distill.student.constrain import UNCONSTRAINED, ConstrainConfig, Constrainer
from distill.student.decode import GreedyDecoder, unsupported
from distill.student.predict import generate, load_student
from distill.student.base_model import for_inference, resolve_base

log = logging.getLogger(__name__)
MAX_DECODERS = 4  # distinct tool sets whose system-prompt keys/values are kept


# ---- the request, as the Messages API documents it (the fields the student can honour) ----------------

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


Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


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


class MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] = []
    tool_choice: dict | None = None
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


# ---- the model ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    """One generated assistant turn."""

    text: str
    input_tokens: int
    output_tokens: int
    ended: bool  # the student emitted its end-of-turn token (else the token budget ran out)


class StudentEngine:
    """The student loaded once; `complete` generates one assistant turn under a lock."""

    def __init__(self, model: Any, tokenizer: Any, name: str, constrain: ConstrainConfig = UNCONSTRAINED) -> None:
        self.model, self.tokenizer, self.name, self.constrain = model, tokenizer, name, constrain
        self.eos_id = tokenizer.convert_tokens_to_ids(IM_END)
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

    def complete(self, conversation: list[Message], tools: list[dict], max_tokens: int) -> Completion:
        prompt = generation_prompt(conversation, tools)
        ids = self._ids(prompt)
        with self._lock:
            if self._cached:
                decoder, constrainer = self._decoder(tools)
                outputs = [m["content"] for m in conversation if m["role"] == "tool"]
                constraints = [constrainer.turn(outputs)] if constrainer else None
                new = decoder.generate([ids], max_tokens, constraints=constraints)[0]
                text = constraints[0].final_text if constraints else self.tokenizer.decode(new, skip_special_tokens=True)
                ended = bool(new) and new[-1] == self.eos_id
                n_out = len(new)
            else:
                text = generate(self.model, self.tokenizer, [prompt], max_tokens, batch_size=1)[0]
                n_out = len(self._ids(text)) + 1
                ended = n_out <= max_tokens  # generate stops early only at the end token
        return Completion(text=text, input_tokens=len(ids), output_tokens=n_out, ended=ended)


def respond(engine: StudentEngine, request: MessagesRequest) -> dict:
    """The Messages API response to `request`: content blocks, stop_reason and usage."""
    if request.stream:
        raise InvalidRequest("stream: streaming is not supported by the student server; send stream=false")
    if request.tool_choice and request.tool_choice.get("type") not in ("auto", None):
        raise InvalidRequest("tool_choice: only {'type': 'auto'} is supported by the student server")
    tools = [t.model_dump(exclude={"cache_control"}) for t in request.tools]
    conversation = to_conversation(request.messages)
    turn = engine.complete(conversation, tools, request.max_tokens)
    parsed = parse_assistant(turn.text, tools)
    if parsed.calls and not parsed.error:
        content = ([{"type": "text", "text": parsed.content}] if parsed.content else []) + [
            {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": c["name"], "input": c["arguments"]}
            for c in parsed.calls]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": turn.text.strip()}]
        stop = "end_turn" if turn.ended else "max_tokens"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": engine.name,
        "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


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


def make_app(engine: StudentEngine) -> FastAPI:
    """The FastAPI app around one loaded `engine`."""
    app = FastAPI(title="distill student (Anthropic Messages API)")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(400, _validation_message(exc)), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)

    @app.post("/v1/messages")
    def messages(request: MessagesRequest) -> JSONResponse:  # sync: FastAPI runs it in a worker thread
        start = time.perf_counter()
        try:
            body = respond(engine, request)
        except InvalidRequest as exc:
            return JSONResponse(error_body(400, str(exc)), status_code=400)
        log.info("%s: %d in, %d out tokens, %s, %.2fs", body["id"], body["usage"]["input_tokens"],
                 body["usage"]["output_tokens"], body["stop_reason"], time.perf_counter() - start)
        return JSONResponse(body)

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


def serve_forever(engine: StudentEngine, host: str, port: int) -> None:
    """`python -m distill serve`: uvicorn in the foreground until interrupted."""
    log.info("serving %s on http://%s:%d/v1/messages", engine.name, host, port)
    uvicorn.run(make_app(engine), host=host, port=port, log_level="info")


def chosen_adapter(results_dir: str | Path) -> Path:
    """The adapter `results/selection.json` picked: `<results>/adapter/epoch_<task_epoch>`."""
    selection = Path(results_dir) / "selection.json"
    if not selection.exists():
        raise FileNotFoundError(f"{selection} not found: build it (snakemake --cores 2 {selection}) "
                                f"or name an adapter or merged model directory")
    adapter = Path(results_dir) / "adapter" / f"epoch_{json.loads(selection.read_text())['task_epoch']}"
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter}: no adapter there ({selection} names it)")
    return adapter
