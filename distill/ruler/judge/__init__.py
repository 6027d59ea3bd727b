"""Reference-guided answer judges, 0–1 (docs/design.md, "Judge"): the interface (base.py), the offline
rubric (rubric.py) and Claude (anthropic.py), chosen by `make_judge` from the `judge` config section.

Each backend is imported only when chosen, as distill.teacher does, so that the rubric judge never
loads the Anthropic SDK.
"""

from __future__ import annotations

import copy
from pathlib import Path

from distill.config import section_schema, validate
from distill.ruler.judge.base import GRADING_ERRORS, JUDGE_REASONS, Judge, JudgeResult

__all__ = ["GRADING_ERRORS", "JUDGE_REASONS", "Judge", "JudgeResult", "make_judge"]


def make_judge(cfg: dict, cache_dir: str | Path | None = None, claims: dict | None = None) -> Judge:
    """The judge named by the `judge` config section: the rubric with `rubric`, or Claude with `anthropic`,
    its responses cached under `<cache_dir>/anthropic/`. Keys the section lacks take the schema's defaults
    (so `make_judge({"backend": "rubric"})` is the default rubric); the section itself is not modified.
    `claims` (the `claims` section) is how the rubric reads facts out of text."""
    cfg = validate(copy.deepcopy(cfg), "judge", section_schema("judge"))
    backend = cfg["backend"]
    if backend == "rubric":
        from distill.ruler.judge.rubric import RubricJudge

        return RubricJudge(cfg["rubric"], claims)
    if backend == "anthropic":
        if cache_dir is None:
            raise ValueError("judge.backend: anthropic needs a response cache directory (cache_dir)")
        from distill.ruler.judge.anthropic import ClaudeJudge

        return ClaudeJudge(cfg["anthropic"], cache_dir)
    raise ValueError(f"judge.backend: unknown backend {backend!r}")
