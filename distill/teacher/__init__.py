"""Teacher backends. `make_teacher` picks one from the `teacher` config section."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from distill.contracts import read_parquet
from distill.io import write_parquet
from distill.teacher.base import SYSTEM_PROMPT, Teacher, TeacherFailed, Trace, run_grid

log = logging.getLogger(__name__)


def make_teacher(cfg: dict, cache_dir: str | Path = "results/cache") -> Teacher:
    """cfg is the rule's params: {"seed": int, "teacher": {...}}; Claude's responses are cached under
    `cache_dir` (results/cache/, shared by every named run)."""
    tcfg = cfg["teacher"]
    if tcfg["backend"] == "offline":
        from distill.teacher.offline import OfflineTeacher

        return OfflineTeacher(tcfg, seed=cfg["seed"])
    if tcfg["backend"] == "anthropic":
        from distill.teacher.anthropic import ClaudeTeacher

        return ClaudeTeacher(tcfg, cache_dir)
    raise ValueError(f"teacher.backend: unknown backend {tcfg['backend']!r}")


def build_traces(cfg: dict, scenarios_path: str | Path, out_path: str | Path, cache_dir: str | Path) -> pd.DataFrame:
    """The teacher stage: play the grid and write traces.parquet, or raise (writing nothing) when more
    scenarios failed than the config allows."""
    teacher = make_teacher(cfg, cache_dir)
    log.info("teacher backend=%s model=%s", teacher.backend, teacher.model)
    traces = run_grid(read_parquet(scenarios_path), teacher)
    log.info("traces: %d (%d with teacher_error), %d requests", len(traces), traces["teacher_error"].notna().sum(),
             traces["requests"].sum())
    write_parquet(traces, out_path)
    return traces


__all__ = ["SYSTEM_PROMPT", "Teacher", "TeacherFailed", "Trace", "build_traces", "make_teacher", "run_grid"]
