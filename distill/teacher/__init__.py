"""Teacher backends. `make_teacher` picks one from the `teacher` config section."""

from __future__ import annotations

from distill.teacher.base import SYSTEM_PROMPT, Teacher, Trace, run_grid


def make_teacher(cfg: dict) -> Teacher:
    """cfg is the rule's params: {"seed": int, "teacher": {...}}."""
    tcfg = cfg["teacher"]
    if tcfg["backend"] == "offline":
        from distill.teacher.offline import OfflineTeacher

        return OfflineTeacher(tcfg, seed=cfg["seed"])
    raise ValueError(f"teacher.backend: unknown backend {tcfg['backend']!r}")


__all__ = ["SYSTEM_PROMPT", "Teacher", "Trace", "make_teacher", "run_grid"]
