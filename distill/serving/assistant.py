"""The workbench assistant: one question in, an answer out, through the student, the teacher, or both.

Modes (MODES):
- student:  the student served behind the Messages API (`python -m distill serve`) answers;
- teacher:  the teacher answers: Claude through the same tool-use loop and client, with only `base_url`
            and the model differing (that is the toggle), or by default the offline teacher SIMULATOR,
            which plays the question's scenario from the grid (it cannot answer other questions);
- fallback: the student answers first; when its final turn is not an answer (distill.ruler.answers) or cites
            a number its own tool outputs do not support (the scorer's grounded answer), the teacher answers
            instead. The result records which backend answered and why (FALLBACK_REASONS).

Student and Claude run the one loop of distill.claude.loop with the real workbench tools. The student
gets the loop's turn budget of prediction (`predict.max_turns` generations of `predict.max_new_tokens`),
so its answers are those of results/predictions for the same questions (checked by the serving
evaluation). Its answer is its final turn as written, as in prediction and scoring: whether that is an
answer is distill.ruler.answers' question, asked the same way everywhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anthropic
import pandas as pd

from distill.ruler.answers import grounded_answer
from distill.claude.cache import Send, cached, message_sender, response_cache, streaming_sender
from distill.claude.client import make_client
from distill.claude.loop import Event, LoopResult, run_tool_loop
from distill.claude.usage import USAGE_FIELDS
from distill.claude.pricing import cost_usd
from distill.teacher.base import SYSTEM_PROMPT
from distill.teacher.offline import OfflineTeacher
from distill.workbench.tools import TOOLS, is_error

MODES = ("student", "teacher", "fallback")
# Why the teacher answered in fallback mode: the student's final turn was not an answer (with the
# distill.ruler.answers reason appended, e.g. "not_an_answer:markup_in_answer"), it cited a number no tool
# output of its own run supports, or the student server failed (the API error's class appended).
FALLBACK_REASONS = ("not_an_answer", "ungrounded_number", "student_error")
STUDENT_MODEL = "distill-student"  # the `model` the student's requests name (the server serves one model)


@dataclass
class Attempt:
    """One backend's run on one question, in the project's trace schema (CONTRACTS.md)."""

    backend: str  # "student" or "teacher"
    messages: list[dict]
    answer: str  # the final turn as written ("" when the loop ended on tool calls)
    tool_calls: list[dict]
    tool_outputs: list[str]
    stop: str
    usage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_FIELDS, 0))
    cost_usd: float | None = 0.0  # None: the model has no price in config `pricing`
    requests: int = 0


@dataclass
class Answer:
    """What the assistant answered, who answered (`backend`), why the teacher did in fallback (`reason`),
    and every attempt made (the student's first in fallback mode)."""

    question: str
    mode: str
    backend: str
    reason: str | None
    attempt: Attempt
    attempts: list[Attempt]
    seconds: float

    @property
    def text(self) -> str:
        return self.attempt.answer


def from_loop(backend: str, result: LoopResult, cost: float | None) -> Attempt:
    """An Attempt from the tool loop; the answer is the last assistant turn when it called no tool."""
    last = result.messages[-1]
    answer = last["content"] if last["role"] == "assistant" and not last.get("tool_calls") else ""
    calls = [c for m in result.messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    return Attempt(backend, result.messages, answer, calls, result.tool_outputs, result.stop, result.usage,
                   cost, result.requests)


class Backend(Protocol):
    """One way to answer; `on_event` sees the run as it happens (distill.claude.loop's events, and
    `{"type": "text", "text"}` for the text each turn writes)."""

    name: str

    def run(self, question: str, scenario: dict | None = None, on_event: Event | None = None) -> Attempt: ...


def announcing(send: Send, on_event: Event | None) -> Send:
    """`send` that reports each response's text as one text event (a backend that does not stream)."""
    if on_event is None:
        return send

    def wrapped(request: dict) -> dict:
        response = send(request)
        text = "".join(b["text"] for b in response.get("content") or [] if b.get("type") == "text")
        if text:
            on_event({"type": "text", "text": text})
        return response

    return wrapped


def replay(messages: list[dict], on_event: Event | None) -> None:
    """A finished trace's turns as the events a live loop would have sent, in order."""
    for message in messages if on_event else []:
        if message["role"] == "assistant":
            if message["content"]:
                on_event({"type": "text", "text": message["content"]})
            for call in message.get("tool_calls") or []:
                on_event({"type": "tool_call", "name": call["name"], "arguments": call["arguments"]})
        elif message["role"] == "tool":
            on_event({"type": "tool_result", "name": message["name"], "content": message["content"],
                      "is_error": is_error(message["content"])})


class StudentBackend:
    """The student behind `base_url`, through the official SDK client and the shared tool loop."""

    name = "student"

    def __init__(self, base_url: str, max_new_tokens: int, max_generations: int) -> None:
        # The student server takes no key; the SDK insists on one being set.
        self.client = anthropic.Anthropic(base_url=base_url, api_key="local-student", max_retries=0, timeout=600)
        self.send = message_sender(self.client)
        self.params = {"model": STUDENT_MODEL, "system": SYSTEM_PROMPT, "tools": TOOLS, "max_tokens": max_new_tokens}
        self.max_turns = max_generations - 1  # run_tool_loop's max_turns counts tool round trips

    def run(self, question: str, scenario: dict | None = None, on_event: Event | None = None) -> Attempt:
        """With `on_event`, each turn streams (`stream: true`) and its text deltas are reported as they come."""
        send = self.send
        if on_event is not None:
            send = streaming_sender(self.client, lambda delta: on_event({"type": "text", "text": delta}))
        return from_loop(self.name, run_tool_loop(send, self.params, question, self.max_turns, on_event), 0.0)


class ClaudeTeacher:
    """Claude through the same loop and client (the teacher's request parameters, cached, priced)."""

    name = "teacher"

    def __init__(self, tcfg: dict, pricing: dict, cache_dir: str | Path) -> None:
        from distill.teacher.anthropic import request_params

        acfg = tcfg["anthropic"]
        self.model, self.max_turns, self.pricing = tcfg["model"], tcfg["max_turns"], pricing
        self.params = request_params(tcfg)
        client = make_client(acfg["max_retries"], acfg["timeout_s"])
        self.send = cached(message_sender(client), response_cache(cache_dir))

    def run(self, question: str, scenario: dict | None = None, on_event: Event | None = None) -> Attempt:
        result = run_tool_loop(announcing(self.send, on_event), self.params, question, self.max_turns, on_event)
        return from_loop(self.name, result, cost_usd(result.usage, self.pricing, self.model))


class SimulatorTeacher:
    """The offline teacher SIMULATOR standing in for Claude: it plays the question's scenario (given,
    or looked up in the grid by question text); it costs nothing and answers only grid questions."""

    name = "teacher"

    def __init__(self, tcfg: dict, seed: int, scenarios: pd.DataFrame) -> None:
        self.teacher = OfflineTeacher(tcfg, seed)
        first = scenarios.sort_values("scenario_id").drop_duplicates("question")
        self.by_question = {r["question"]: r for r in first.to_dict("records")}

    def run(self, question: str, scenario: dict | None = None, on_event: Event | None = None) -> Attempt:
        if scenario is None:
            if question not in self.by_question:
                raise KeyError("the offline teacher simulator answers only the scenario grid's questions "
                               "(results/scenarios.parquet); configure teacher.backend: anthropic for others")
            scenario = self.by_question[question]
        trace = self.teacher.play(scenario)
        replay(trace.messages, on_event)
        calls = [c for m in trace.messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        return Attempt(self.name, trace.messages, trace.final_answer, calls, trace.tool_outputs, "end_turn")


def make_teacher_backend(cfg: dict, scenarios: pd.DataFrame | None, cache_dir: str | Path) -> Backend:
    """The teacher the config names: `teacher.backend` offline (the simulator) or anthropic (Claude)."""
    backend = cfg["teacher"]["backend"]
    if backend == "offline":
        if scenarios is None:
            raise ValueError("the offline teacher simulator needs the scenario grid (results/scenarios.parquet)")
        return SimulatorTeacher(cfg["teacher"], cfg["seed"], scenarios)
    if backend == "anthropic":
        return ClaudeTeacher(cfg["teacher"], cfg["pricing"], cache_dir)
    raise ValueError(f"teacher.backend: unknown backend {backend!r}")


def fallback_reason(attempt: Attempt, question: str, category: str | None = None,
                    scoring: dict | None = None, claims: dict | None = None) -> str | None:
    """Why the student's attempt must go to the teacher, or None when it stands (FALLBACK_REASONS): it
    is not an answer, or not a grounded one, by the scorer's own rule (distill.ruler.answers)."""
    check, ungrounded = grounded_answer(attempt.answer, question, category, attempt.tool_outputs, scoring, claims)
    if not check.answered:
        return f"not_an_answer:{check.reason}"
    return "ungrounded_number" if ungrounded else None


class Assistant:
    """Answers workbench questions in one of MODES with the given backends."""

    def __init__(self, student: Backend | None, teacher: Backend | None, scoring: dict | None = None,
                 claims: dict | None = None) -> None:
        """`scoring`, `claims`: the config sections whose answer rules the fallback applies (schema
        defaults if None)."""
        self.backends = {"student": student, "teacher": teacher}
        self.scoring, self.claims = scoring, claims

    def _backend(self, name: str) -> Backend:
        backend = self.backends[name]
        if backend is None:
            raise ValueError(f"this assistant has no {name} backend")
        return backend

    def answer(self, question: str, mode: str, scenario: dict | None = None, on_event: Event | None = None) -> Answer:
        """`on_event` sees every attempt as it runs: `{"type": "attempt", "backend"}` when one starts, its
        events with `backend` added, and `{"type": "fallback", "reason"}` when the teacher takes over."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        emit = on_event or (lambda _: None)

        def run(name: str) -> Attempt:
            backend = self._backend(name)
            emit({"type": "attempt", "backend": backend.name})
            tagged = (lambda event: on_event({**event, "backend": backend.name})) if on_event else None
            return backend.run(question, scenario, tagged)

        start = time.perf_counter()
        if mode == "fallback":
            try:
                attempts = [run("student")]
                reason = fallback_reason(attempts[0], question, (scenario or {}).get("category"), self.scoring,
                                         self.claims)
            except anthropic.APIError as exc:  # the student server is down or failed: the teacher still answers
                attempts, reason = [], f"student_error:{type(exc).__name__}"
            if reason:
                emit({"type": "fallback", "reason": reason})
                attempts.append(run("teacher"))
        else:
            attempts, reason = [run(mode)], None
        final = attempts[-1]
        return Answer(question, mode, final.backend, reason, final, attempts, time.perf_counter() - start)


def describe(answer: Answer) -> list[str]:
    """The lines `python -m distill chat` prints: every tool call and result of every attempt, then who
    answered (and why the teacher did) and the answer."""
    lines: list[str] = []
    for attempt in answer.attempts:
        for message in attempt.messages:
            for call in message.get("tool_calls") or []:
                lines.append(f"[{attempt.backend}] tool call: {call['name']}({call['arguments']})")
            if message["role"] == "tool":
                lines.append(f"[{attempt.backend}] tool result: {message['content']}")
        if attempt is not answer.attempt:
            lines.append(f"[{attempt.backend}] answered: {attempt.answer!r}")
    why = f" (the student's answer fell back: {answer.reason})" if answer.reason else ""
    lines.append(f"[{answer.backend}{why}, {answer.seconds:.1f}s] {answer.text}")
    return lines


def usage_cost(attempts: list[Attempt]) -> float | None:
    """Dollars spent on the teacher over these attempts; None when a priced model was not in the table."""
    costs = [a.cost_usd for a in attempts if a.backend == "teacher"]
    return None if any(c is None for c in costs) else float(sum(costs))
