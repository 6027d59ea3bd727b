"""The workbench chat page, served by the student server at `/` (README "The chat page").

The workbench's assistant with its toggle: pick a model and a ticker (the scenario grid's questions for them
are offered), ask, and watch the answer come: every tool call and result, the text as the student writes it,
and who answered (student / teacher / fallback, and why the teacher did). The toggle is the assistant's
MODES: student, Claude (the teacher: Claude when `teacher.backend: anthropic`, else the offline teacher
SIMULATOR, labelled as such) and fallback.

The page is static/chat.html (plain HTML and a little JS, no build step). It talks to two endpoints:
`GET /workbench/options` (models, tickers, the grid's questions, the toggle's modes and whether each can
run) and `POST /workbench/ask` (`{question, mode, model_id, ticker}`), which answers with Server-Sent
Events: distill.serving.assistant's events as they happen, then `{"type": "answer", ...}` (who answered,
why, the answer, seconds, cost) or `{"type": "error", "message"}`. The assistant reaches the student
through this same server's `/v1/messages` with `stream: true`, exactly as any client does; a page that
goes away stops the student's stream, and so its decoder, at the next token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from distill.contracts import read_parquet
from distill.claude.client import MissingKeyError
from distill.claude.loop import Event
from distill.dataset.scenarios import build_grid
from distill.serving.assistant import MODES, Answer, Assistant, Backend, StudentBackend, make_teacher_backend, usage_cost
from distill.serving.content import sse
from distill.serving.request import InvalidRequest
from distill.serving.threaded import Put, in_thread
from distill.workbench.registry import MODELS, TICKERS

log = logging.getLogger(__name__)
PAGE = Path(__file__).parent / "static" / "chat.html"
LABELS = {"student": "Student", "teacher": "Claude", "fallback": "Fallback"}


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    mode: str = Field(pattern="^(" + "|".join(MODES) + ")$")
    model_id: str | None = None
    ticker: str | None = None


@dataclass
class Workbench:
    """What the page's assistant needs besides the student: the teacher (None with the reason when it
    cannot run), the scenario grid, the answer rules of the fallback and the student's turn budget."""

    teacher: Backend | None
    teacher_label: str
    simulated: bool  # the teacher is the offline simulator, not Claude
    teacher_missing: str | None
    grid: pd.DataFrame
    scoring: dict
    claims: dict
    max_new_tokens: int
    max_turns: int

    @classmethod
    def from_config(cls, cfg: dict, results_dir: str | Path) -> Workbench:
        """The teacher `teacher.backend` names; the grid from results/scenarios.parquet, else built from cfg."""
        path = Path(results_dir) / "scenarios.parquet"
        grid = read_parquet(path) if path.exists() else build_grid(cfg)
        offline = cfg["teacher"]["backend"] == "offline"
        label = "offline teacher simulator, standing in for Claude" if offline else f"Claude {cfg['teacher']['model']}"
        try:
            teacher, missing = make_teacher_backend(cfg, grid, Path(results_dir) / "cache"), None
        except MissingKeyError as exc:  # the page still serves the student; the toggle says why Claude is off
            teacher, missing = None, str(exc)
        return cls(teacher, label, offline, missing, grid, cfg["scoring"], cfg["claims"], cfg["predict"]["max_new_tokens"],
                   cfg["predict"]["max_turns"])

    def options(self) -> dict:
        grid = self.grid.drop_duplicates(["model_id", "ticker", "question"])
        return {
            "models": [{"id": m.id, "name": m.name, "tickers": list(m.tickers)} for m in MODELS.values()],
            "tickers": list(TICKERS),
            "questions": grid[["model_id", "ticker", "category", "question"]].to_dict("records"),
            "modes": [{"id": mode, "label": self.toggle_label(mode),
                       "detail": self.teacher_label if mode == "teacher" else None,
                       "unavailable": self.teacher_missing if mode != "student" else None} for mode in MODES],
        }

    def toggle_label(self, mode: str) -> str:
        """The toggle's word for `mode`; the offline simulator is never shown as plain "Claude"."""
        return f"{LABELS[mode]} (simulator)" if mode == "teacher" and self.simulated else LABELS[mode]

    def scenario(self, ask: AskRequest) -> dict | None:
        """The grid's scenario for the question on the picked model and ticker (the simulator plays it and
        the fallback's answer rules know its category), or None for a question of the user's own."""
        rows = self.grid[(self.grid["question"] == ask.question.strip()) & (self.grid["model_id"] == ask.model_id)
                         & (self.grid["ticker"] == ask.ticker)].sort_values("scenario_id")
        return rows.iloc[0].to_dict() if len(rows) else None

    def ask(self, ask: AskRequest, student_url: str, on_event: Event) -> Answer:
        student = StudentBackend(student_url, self.max_new_tokens, self.max_turns)
        assistant = Assistant(student, self.teacher, self.scoring, self.claims)
        return assistant.answer(ask.question.strip(), ask.mode, self.scenario(ask), on_event)


def answer_event(answer: Answer) -> dict:
    """The page's last event: who answered and why, the answer, the time and the teacher's cost."""
    return {"type": "answer", "mode": answer.mode, "backend": answer.backend, "reason": answer.reason,
            "text": answer.text, "stop": answer.attempt.stop, "seconds": round(answer.seconds, 2),
            "cost_usd": usage_cost(answer.attempts)}


class PageGone(Exception):
    """The page stopped reading: the assistant's run is abandoned at its next event."""


async def page_events(work: Callable[[Event], None]) -> AsyncIterator[str]:
    """Run `work(emit)` (distill.serving.threaded) and send each event it emits as one Server-Sent Event;
    once the page has gone, the next emit raises PageGone and the question is abandoned."""

    def run(put: Put) -> None:
        def emit(event: dict) -> None:
            if not put(event):
                log.info("the chat page went away; its question was abandoned")
                raise PageGone
        work(emit)

    async for batch in in_thread(run, "workbench-ask"):
        for kind, value in batch:
            if kind == "put":
                yield sse(value)
            elif kind == "error":  # shown on the page, and logged
                log.error("the assistant failed", exc_info=value)
                message = value.args[0] if isinstance(value, KeyError) and value.args else str(value)
                yield sse({"type": "error", "message": f"{type(value).__name__}: {message}"})


def add_chat_page(app: FastAPI, workbench: Workbench) -> None:
    """The page and its two endpoints on the student server's app."""

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text()

    @app.get("/workbench/options")
    def options() -> dict:
        return workbench.options()

    @app.post("/workbench/ask")
    def ask(body: AskRequest, request: Request) -> StreamingResponse:
        if body.mode != "student" and workbench.teacher is None:
            raise InvalidRequest(f"mode: {body.mode} needs the teacher, which cannot run: {workbench.teacher_missing}")
        url = str(request.base_url).rstrip("/")  # the student: this server's own Messages API

        def work(emit: Event) -> None:
            emit(answer_event(workbench.ask(body, url, emit)))

        return StreamingResponse(page_events(work), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
