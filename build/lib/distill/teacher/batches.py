"""Message Batches for the teacher: many multi-turn tool loops as rounds of one batch each.

Each conversation runs the ordinary tool loop (distill.claude.loop) in its own thread; its `send`
answers from the response cache, or else waits for the next round. A round starts when every
unfinished conversation is waiting: it submits ONE batch holding each waiting conversation's next
request (custom_id = scenario id; identical requests are sent once), polls it every `batch_poll_s`,
maps the results back by custom_id (they come in no order), stores each response in the same cache
the direct mode uses, and lets the conversations run their tools and ask again.

The batch id of a submitted round is kept in `<cache>/batches/<hash of the round's requests>.json`
until its results are stored: a stage killed while polling replays the cached turns, forms the same
round and resumes polling that batch instead of paying for a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from distill.claude.cache import ResponseCache, Send, request_key
from distill.io import write_json

log = logging.getLogger(__name__)


class RequestFailed(RuntimeError):
    """A batch request that ended errored, canceled or expired."""


class BatchRounds:
    """Plays conversations through rounds of Message Batches; `stats` counts paid requests and hits."""

    def __init__(self, client: Any, cache: ResponseCache, state_dir: Path, poll_s: float,
                 stats: dict[str, int]) -> None:
        self.client = client
        self.cache = cache
        self.state_dir = Path(state_dir)
        self.poll_s = poll_s
        self.stats = stats
        self._cond = threading.Condition()
        self._pending: dict[str, dict] = {}  # custom_id -> request waiting for the next round
        self._answers: dict[str, dict | Exception] = {}  # custom_id -> its round's response or failure
        self._active = 0  # conversations not finished

    def play(self, scenarios: list[dict], play_one: Callable[[Send, dict], Any]) -> list[Any]:
        """`play_one(send, scenario)` for every scenario, in scenario order."""
        ids = [sc["scenario_id"] for sc in scenarios]
        if len(set(ids)) != len(ids):
            raise ValueError("batch mode needs unique scenario ids (they are the batches' custom_ids)")
        results: list[Any] = [None] * len(scenarios)
        errors: list[BaseException] = []

        def worker(i: int, scenario: dict) -> None:
            try:
                results[i] = play_one(self._sender(scenario["scenario_id"]), scenario)
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)
            finally:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()

        self._active = len(scenarios)
        threads = [threading.Thread(target=worker, args=(i, sc), daemon=True) for i, sc in enumerate(scenarios)]
        for thread in threads:
            thread.start()
        rounds = 0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._active == 0 or 0 < len(self._pending) == self._active)
                if self._active == 0:
                    break
                batch, self._pending = self._pending, {}
            rounds += 1
            answers = self._run_round(batch, rounds)
            with self._cond:
                self._answers.update(answers)
                self._cond.notify_all()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        log.info("teacher batches: %d round(s) for %d conversations", rounds, len(scenarios))
        return results

    def _sender(self, custom_id: str) -> Send:
        def send(request: dict) -> dict:
            hit = self.cache.get(request)
            if hit is not None:
                with self._cond:
                    self.stats["hits"] = self.stats.get("hits", 0) + 1
                return hit
            with self._cond:
                self._pending[custom_id] = request
                self._cond.notify_all()
                self._cond.wait_for(lambda: custom_id in self._answers)
                answer = self._answers.pop(custom_id)
            if isinstance(answer, Exception):
                raise answer
            return answer

        return send

    # -- one round: submit (or resume), poll, collect --------------------------------------------------

    def _run_round(self, waiting: dict[str, dict], number: int) -> dict[str, dict | Exception]:
        keys = {cid: request_key(req) for cid, req in waiting.items()}
        first: dict[str, str] = {}  # request key -> the custom_id that carries it (identical requests go once)
        for cid in sorted(waiting):
            first.setdefault(keys[cid], cid)
        carriers = sorted(first.values())
        round_hash = hashlib.sha256(json.dumps([[c, keys[c]] for c in carriers]).encode()).hexdigest()
        state = self.state_dir / f"{round_hash}.json"
        if state.exists():
            batch_id = json.loads(state.read_text())["batch_id"]
            log.info("teacher batches: round %d resumes batch %s (%d requests)", number, batch_id, len(carriers))
        else:
            batch = self.client.messages.batches.create(
                requests=[{"custom_id": cid, "params": waiting[cid]} for cid in carriers])
            batch_id = batch.id
            write_json({"batch_id": batch_id, "custom_ids": carriers}, state)
            log.info("teacher batches: round %d submitted batch %s (%d requests)", number, batch_id, len(carriers))
        while self.client.messages.batches.retrieve(batch_id).processing_status != "ended":
            time.sleep(self.poll_s)
        by_carrier = self._collect(batch_id, {cid: waiting[cid] for cid in carriers})
        state.unlink(missing_ok=True)  # its successes are cached; failures are asked again next run
        missing = RequestFailed(f"batch {batch_id}: no result")
        return {cid: by_carrier.get(first[keys[cid]], missing) for cid in waiting}

    def _collect(self, batch_id: str, requests: dict[str, dict]) -> dict[str, dict | Exception]:
        """Results by custom_id (raw JSON lines, as the API sent them); successes go into the cache."""
        raw = self.client.messages.batches.with_raw_response.results(batch_id).http_response.read().decode()
        out: dict[str, dict | Exception] = {}
        for line in filter(None, (ln.strip() for ln in raw.splitlines())):
            item = json.loads(line)
            cid, result = item["custom_id"], item["result"]
            if cid not in requests:
                continue
            if result["type"] == "succeeded":
                self.cache.put(requests[cid], result["message"])
                self.stats["requests"] = self.stats.get("requests", 0) + 1
                out[cid] = result["message"]
            else:
                detail = (result.get("error") or {}).get("error", {}).get("message", "")
                out[cid] = RequestFailed(f"batch {batch_id}: request {result['type']}{f': {detail}' if detail else ''}")
        return out
