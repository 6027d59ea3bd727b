"""Benchmark: the student server under N clients at once, streaming through the official `anthropic` SDK.

The real HTTP server (uvicorn, loopback) serves the chosen adapter under the config's `predict.constrain`
rules. First each question is asked alone (the reference, and the unloaded time to first token); then N
clients ask them all at once, each in its own thread with its own SDK client. Every concurrent reply must
equal its reference (greedy decoding: a client's answer must not depend on who else is asking), none may be
dropped. Reports p50/p95 latency, time to first token, the time each request queued for the model (one
model, one lock: requests wait their turn) and output tokens per second. Writes bench/results/serve_load.json.

    python bench/serve_load.py [--results results] [--clients 8] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import anthropic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from distill import config  # noqa: E402
from distill.io import read_parquet, write_json  # noqa: E402
from distill.serving.serve import ServerThread, StudentEngine, chosen_adapter, make_app  # noqa: E402
from distill.student.base_model import use_available_cores  # noqa: E402
from distill.student.constrain import ConstrainConfig  # noqa: E402
from distill.workbench.tools import TOOLS  # noqa: E402

OUT = Path(__file__).with_name("results") / "serve_load.json"


class TimedEngine(StudentEngine):
    """The engine, recording how long each turn waited for the model."""

    waits: list[float]

    def complete(self, *args, **kwargs):  # noqa: ANN002, ANN003
        turn = super().complete(*args, **kwargs)
        self.waits.append(turn.queued_s)
        return turn


def ask(url: str, question: str, max_tokens: int) -> dict:
    """One streamed request: its final content, time to first token, latency and output tokens."""
    client = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0, timeout=600)
    start, first = time.perf_counter(), None
    with client.messages.stream(model="student", max_tokens=max_tokens, tools=TOOLS,
                                messages=[{"role": "user", "content": question}]) as stream:
        for event in stream:
            if first is None and event.type == "content_block_delta":
                first = time.perf_counter()
        final = stream.get_final_message()
    end = time.perf_counter()
    content = [{k: v for k, v in b.model_dump(exclude_none=True).items() if k not in ("id", "citations", "parsed_output")}
               for b in final.content]
    return {"content": content, "ttft_s": (first or end) - start, "latency_s": end - start,
            "output_tokens": final.usage.output_tokens}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summary(runs: list[dict], wall: float) -> dict:
    lat, ttft = [r["latency_s"] for r in runs], [r["ttft_s"] for r in runs]
    return {"requests": len(runs), "wall_s": round(wall, 2),
            "latency_p50_s": round(statistics.median(lat), 2), "latency_p95_s": round(_pct(lat, 0.95), 2),
            "ttft_p50_s": round(statistics.median(ttft), 2), "ttft_p95_s": round(_pct(ttft, 0.95), 2),
            "output_tokens_per_s": round(sum(r["output_tokens"] for r in runs) / wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    use_available_cores()
    cfg = config.load(ROOT / "config.yaml")
    results = Path(args.results)
    adapter = chosen_adapter(results)
    scores = read_parquet(results / "scores" / f"{adapter.name}.parquet")
    questions = list(dict.fromkeys(scores.sort_values("category", kind="stable")["question"]))
    questions = [questions[round(i * (len(questions) - 1) / max(1, args.clients - 1))] for i in range(args.clients)]
    engine = TimedEngine.load(results / "base_model", adapter, cfg["student"], "student",
                              ConstrainConfig.from_cfg(cfg["predict"]["constrain"]))
    engine.waits = []
    with ServerThread(make_app(engine)) as server:
        ask(server.url, questions[0], 4)  # warm: the system prompt's keys/values and the grammar built once
        start = time.perf_counter()
        alone = [ask(server.url, q, args.max_tokens) for q in questions]
        alone_wall = time.perf_counter() - start
        engine.waits.clear()
        together: dict[int, dict] = {}

        def client(i: int) -> None:
            together[i] = ask(server.url, questions[i], args.max_tokens)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(questions))]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1200)
        wall = time.perf_counter() - start
    concurrent = [together[i] for i in sorted(together)]
    same = sum(together.get(i, {}).get("content") == alone[i]["content"] for i in range(len(questions)))
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "adapter": str(adapter),
           "clients": len(questions), "max_tokens": args.max_tokens, "constrain": cfg["predict"]["constrain"],
           "alone": _summary(alone, alone_wall), "concurrent": _summary(concurrent, wall),
           "queued_p50_s": round(statistics.median(engine.waits), 2), "queued_max_s": round(max(engine.waits), 2),
           "replies_equal_to_alone": f"{same}/{len(questions)}", "dropped": len(questions) - len(together)}
    print(json.dumps(out, indent=2))
    write_json(out, OUT)


if __name__ == "__main__":
    main()
