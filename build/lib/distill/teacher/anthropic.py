"""The Claude teacher: the official SDK plays the assistant over the grid with the real workbench tools.

Every request goes through the content-addressed response cache under results/cache/ (one file per
response, written the moment it arrives), so an interrupted stage resumes where it stopped and a
rebuild, a grounding or correction change, or one more ticker pays only for requests never made.
Direct mode runs `concurrency` conversations at once; batch mode (distill/teacher/batches.py) turns
the tool loops into rounds of Message Batches. Either way the traces come out in the simulator's
schema, in scenario order.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic

from distill.claude.cache import Send, cached, message_sender, response_cache
from distill.claude.client import describe_error, make_client
from distill.claude.loop import run_tool_loop
from distill.teacher.base import SYSTEM_PROMPT, Trace
from distill.teacher.batches import BatchRounds, RequestFailed
from distill.teacher.estimate import cached_prefix_note
from distill.workbench.tools import TOOLS

log = logging.getLogger(__name__)

EPHEMERAL = {"type": "ephemeral"}


def request_params(tcfg: dict) -> dict:
    """Every request field but `messages`, from the `teacher` config section.

    Sampling parameters are sent only when set (newer models answer 400 to non-default values). With
    prompt caching, the system block and the last tool carry `cache_control`: tools and system form the
    prefix every request of every conversation repeats.
    """
    acfg = tcfg["anthropic"]
    system: str | list[dict] = SYSTEM_PROMPT
    tools = TOOLS
    if acfg["prompt_caching"]:
        system = [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": EPHEMERAL}]
        tools = [*TOOLS[:-1], {**TOOLS[-1], "cache_control": EPHEMERAL}]
    return {"model": tcfg["model"], "max_tokens": acfg["max_tokens"], "system": system, "tools": tools,
            **acfg.get("sampling", {})}


class ClaudeTeacher:
    """Claude over the grid; `client` is an `anthropic.Anthropic` (made from config when None)."""

    backend = "anthropic"

    def __init__(self, tcfg: dict, cache_dir: str | Path, client: Any = None) -> None:
        acfg = tcfg["anthropic"]
        self.model = tcfg["model"]
        self.max_turns = tcfg["max_turns"]
        self.acfg = acfg
        self.batch_api = acfg["mode"] == "batch"
        self.max_missing_share = acfg["max_missing_share"]
        self.client = client or make_client(acfg["max_retries"], acfg["timeout_s"])
        self.cache = response_cache(cache_dir)
        self.batch_dir = Path(cache_dir) / "batches"
        self.params = request_params(tcfg)
        self.stats: dict[str, int] = {}  # "requests" paid now, "hits" answered from the cache

    def play_all(self, scenarios: list[dict]) -> list[Trace]:
        if self.acfg["prompt_caching"] and (note := cached_prefix_note(self.params)):
            log.warning("teacher: %s", note)
        if self.batch_api:
            rounds = BatchRounds(self.client, self.cache, self.batch_dir, self.acfg["batch_poll_s"], self.stats)
            traces = rounds.play(scenarios, self.play)
        else:
            send = cached(message_sender(self.client), self.cache, self.stats)
            with ThreadPoolExecutor(self.acfg["concurrency"]) as pool:  # map keeps scenario order
                traces = list(pool.map(lambda sc: self.play(send, sc), scenarios))
        self._log_usage(traces)
        return traces

    def play(self, send: Send, scenario: dict) -> Trace:
        """One conversation; a request that still fails after the SDK's retries becomes the trace's error."""
        try:
            result = run_tool_loop(send, self.params, scenario["question"], self.max_turns)
        except (anthropic.APIError, RequestFailed) as exc:
            log.warning("teacher: scenario %s failed: %s", scenario["scenario_id"], describe_error(exc))
            return Trace(messages=[], final_answer="", tool_outputs=[], error=describe_error(exc))
        return Trace(messages=result.messages, final_answer=result.final_answer, tool_outputs=result.tool_outputs,
                     usage=result.usage, requests=result.requests)

    def _log_usage(self, traces: list[Trace]) -> None:
        total = {key: sum(t.usage.get(key, 0) for t in traces) for key in traces[0].usage} if traces else {}
        log.info("teacher: %d requests paid now, %d answered from the cache; usage %s",
                 self.stats.get("requests", 0), self.stats.get("hits", 0), total)
        if self.acfg["prompt_caching"] and total and not (total["cache_creation_input_tokens"]
                                                          or total["cache_read_input_tokens"]):
            log.warning("teacher: prompt caching is on but no response reports cache tokens: nothing was "
                        "cached (the prefix is below the model's minimum prompt length)")
