"""Artifact I/O: atomic writes and JSON columns.

Every artifact is written to a temporary file beside its target and renamed into place, so an
interrupted or failing job never leaves a partial file that Snakemake would take for a finished one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A pid- and thread-named sibling rather than mkstemp, whose 0600 mode would stick to the final file
    # (threads of one process may write the same target: concurrent teacher conversations, one cache).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{suffix or '.tmp'}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temp dir beside `target` that replaces it only if the block completes.

    A killed job therefore leaves either the old directory or none, never a half-written one that a
    later step (or a resume) would take for complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, ".parquet") as tmp:
        df.to_parquet(tmp, index=False)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path, ".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def dumps(obj: Any) -> str:
    """JSON for a parquet cell: nested data is stored as text so every reader (DuckDB too) sees it."""
    return json.dumps(obj, sort_keys=False, separators=(",", ":"))


def json_list(cell: Any) -> list:
    """A JSON-list cell (calls, tool outputs) as a list: text is parsed, a list is kept, null/NaN/absent
    (no calls, no tool ran) is []. Anything else is a data bug and raises TypeError naming the type."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return []
    if isinstance(cell, str):
        parsed = json.loads(cell or "[]")
    elif isinstance(cell, (list, tuple)) or hasattr(cell, "tolist"):
        parsed = list(cell)
    else:
        raise TypeError(f"expected a JSON list, got {type(cell).__name__}")
    if not isinstance(parsed, list):
        raise TypeError(f"expected a JSON list, got JSON {type(parsed).__name__}")
    return parsed


def tool_outputs(cell: Any) -> list[str]:
    """A tool_outputs cell as the list of output texts the tools returned (a non-text item, as a
    hand-written table may hold, is written back as JSON text: every reader sees text)."""
    return [o if isinstance(o, str) else json.dumps(o) for o in json_list(cell)]


def setup_logging(log_path: str | Path | None) -> logging.Logger:
    """Log to the rule's log file (and stderr), as every Snakemake rule must have a log."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    return logging.getLogger("distill")


def epoch_of(path: str | Path) -> int:
    """The epoch in an artifact name such as results/scores/epoch_<n>.json."""
    match = re.search(r"epoch_(\d+)(?:\.\w+)?$", str(path))
    if not match:
        raise ValueError(f"{path}: not an epoch_<n> artifact")
    return int(match.group(1))
