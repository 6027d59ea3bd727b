"""Blocking work behind an async stream: the one way the server runs a decoder or an assistant for a
streamed response.

The work runs in its own thread and hands each item to `put`; the response reads them in batches (all that
arrived since the last read, so a slow client skips straight to the latest state). When the client goes
away the response generator is closed, and from then on `put` returns False: the work stops at its next
item (the decoder at its next token) instead of running to the end for nobody.
"""
from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

Put = Callable[[Any], bool]
Item = tuple[str, Any]  # ("put", item) ... then ("done", work's result) or ("error", the exception)


async def in_thread(work: Callable[[Put], Any], name: str) -> AsyncIterator[list[Item]]:
    """Run `work(put)` in a thread; yield batches of its items, the last batch ending in "done" or "error"."""
    items: queue.Queue[Item] = queue.Queue()
    gone = threading.Event()

    def put(item: Any) -> bool:
        if not gone.is_set():
            items.put(("put", item))
        return not gone.is_set()

    def run() -> None:
        try:
            items.put(("done", work(put)))
        except Exception as exc:  # the caller reports it; the thread must not die silently
            items.put(("error", exc))

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while True:
            batch = [await asyncio.to_thread(items.get)]
            while not items.empty():
                batch.append(items.get_nowait())
            yield batch
            if batch[-1][0] != "put":  # the thread's last item
                return
    finally:
        gone.set()
