"""One build's artifacts, loaded for comparison: score files and per-question tables per epoch, the
checkpoint selection, the training metrics, the training set and the effective config.

A run is read from explicit paths (`load_run`, what a rule passes) or from a results tree kept aside
from an earlier build (`load_tree`). A required file that is missing is an error naming it: a
comparison that silently dropped half its evidence would attribute changes to the wrong cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from distill.contracts import read_json, read_parquet
from distill.io import epoch_of


@dataclass(frozen=True)
class Run:
    """A named run: `scores`/`tables` by epoch, `selection` (selection.json), `metrics` (metrics.json),
    `train` (split/train.parquet, a path: the DuckDB diff reads it) and `config` (None when unknown)."""

    name: str
    scores: dict[int, dict]
    tables: dict[int, pd.DataFrame]
    selection: dict
    metrics: dict
    train: Path
    config: dict | None

    @property
    def task_epoch(self) -> int:
        return int(self.selection["task_epoch"])

    @property
    def loss_epoch(self) -> int:
        return int(self.selection["eval_loss_epoch"])


def _required(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (needed to compare runs)")
    return path


def _json(path: Path) -> Any:
    return read_json(_required(path))


def load_run(name: str, scores: list[Path], tables: list[Path], selection: Path, metrics: Path, train: Path,
             config: Path | None) -> Run:
    """A run from explicit artifact paths; epochs come from the epoch_<n> file names, and both picks
    must have been scored, since every comparison is made at them."""
    run = Run(name=name,
              scores={epoch_of(p): _json(p) for p in scores},
              tables={epoch_of(p): read_parquet(_required(p)) for p in tables},
              selection=_json(selection), metrics=_json(metrics), train=_required(train),
              config=None if config is None else _json(config))
    for epoch in (run.task_epoch, run.loss_epoch):
        if epoch not in run.scores or epoch not in run.tables:
            raise FileNotFoundError(f"run {name}: no score file or table for picked epoch {epoch}")
    return run


def load_tree(name: str, root: Path) -> Run:
    """A run from a results tree (root/scores, selection.json, adapter/metrics.json, split/train.parquet,
    optional config.json): an earlier build kept aside may predate config.json, so it is then unknown."""
    root = Path(root)
    scores = sorted((root / "scores").glob("epoch_*.json"))
    if not scores:
        raise FileNotFoundError(f"{root / 'scores' / 'epoch_<n>.json'}: no score files")
    config = root / "config.json"
    return load_run(name, scores, [p.with_suffix(".parquet") for p in scores], root / "selection.json",
                    root / "adapter" / "metrics.json", root / "split" / "train.parquet",
                    config if config.is_file() else None)
