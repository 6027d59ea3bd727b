"""What each artifact must hold (CONTRACTS.md), checked where it is read.

A file that is truncated, foreign (another table under the same name) or not the format at all fails the
rule reading it with an ArtifactError naming the file and the problem, instead of a library traceback
several frames deep or, worse, wrong results computed from the wrong table. The required columns are the
ones CONTRACTS.md lists; tests/test_contracts.py checks the two agree. A leaf module (it imports no stage),
so every rule's script may read through it without the rule re-running when a stage's code changes.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from distill.claude.usage import USAGE_FIELDS

SCORE_COLUMNS = (  # one row per held-out question (distill.ruler.scoring.score_frame)
    "trace_id", "category", "model_id", "ticker", "question", "gold_answer", "pred_answer", "gold_calls",
    "pred_calls", "failure", "tool_call", "call_error", "call_error_detail", "leniencies", "tool_call_strict",
    "strict_error", "strict_error_detail", "paraphrase_same_docs", "answered", "answer_reason", "grounded",
    "ungrounded", "judge", "judge_reasons", "judge_details", "judge_rubric", "judge_rationale", "judge_error",
    "judge_model", *(f"judge_{key}" for key in USAGE_FIELDS),
)
SCENARIO = ("scenario_id", "model_id", "model_kind", "options", "ticker", "category", "template_id", "question",
            "gold_calls")
TRACE = (*SCENARIO, "trace_id", "messages", "final_answer", "tool_outputs", "backend", "teacher_model",
         "injected_faults", *USAGE_FIELDS, "requests", "batch_api", "teacher_error")
GROUNDED = (*TRACE, "ungrounded")
CORRECTED = (*GROUNDED, "corrected", "correction_ids")
CORRECTIONS_LOG = ("trace_id", "correction_id", "category", "model_id", "old_answer", "new_answer")
PREDICTION = ("trace_id", "category", "model_id", "model_kind", "ticker", "question", "gold_calls", "gold_answer",
              "pred_calls", "pred_answer", "tool_outputs", "failure", "n_turns", "raw_turns")

# Path patterns (matched against the path's end) -> the columns the artifact must have.
PARQUET: dict[str, tuple[str, ...]] = {
    "scenarios.parquet": SCENARIO,
    "traces.parquet": TRACE,
    "grounded.parquet": GROUNDED,
    "grounding_rejected.parquet": (*GROUNDED, "reason"),
    "corrected.parquet": CORRECTED,
    "corrections_log.parquet": CORRECTIONS_LOG,
    "split/train.parquet": (*CORRECTED, "split"),
    "split/eval.parquet": (*CORRECTED, "split"),
    "predictions/epoch_*.parquet": PREDICTION,
    "predictions/unconstrained/epoch_*.parquet": PREDICTION,
    "scores/epoch_*.parquet": SCORE_COLUMNS,
    "scores/unconstrained/epoch_*.parquet": SCORE_COLUMNS,
}
JSON: dict[str, tuple[str, ...]] = {
    "scores/epoch_*.json": ("n", "judge_name", "overall", "per_category", "ship_bar"),
    "scores/unconstrained/epoch_*.json": ("n", "judge_name", "overall", "per_category", "ship_bar"),
    "selection.json": ("task_epoch",),
    "adapter/metrics.json": ("epochs",),
}
REBUILD = "delete it and run snakemake again to rebuild it"


class ArtifactError(ValueError):
    """An artifact that cannot be read or does not hold what its contract says."""


def _contract(path: Path, table: dict[str, tuple[str, ...]]) -> tuple[str, tuple[str, ...]] | None:
    posix = path.as_posix()
    for pattern, required in table.items():
        if fnmatch.fnmatch(posix, pattern) or fnmatch.fnmatch(posix, f"*/{pattern}"):  # whole names only
            return pattern, required
    return None


def _check(path: Path, what: str, required: tuple[str, ...], has: list[str]) -> None:
    if missing := [c for c in required if c not in has]:
        raise ArtifactError(f"{path}: missing column(s) {', '.join(missing)}; {what} needs {', '.join(required)}")


def check_parquet(path: str | Path, required: tuple[str, ...] = ()) -> list[str]:
    """The file's column names, after checking it is a readable parquet file with the columns of its
    contract (by its path) and `required` (for a file the caller names, such as a dataset to diff)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable parquet file ({exc}); {REBUILD}") from None
    if contract := _contract(path, PARQUET):
        _check(path, f"a {contract[0]} artifact (CONTRACTS.md)", contract[1], names)
    _check(path, "this step", required, names)
    return names


def read_parquet(path: str | Path, required: tuple[str, ...] = (), columns: list[str] | None = None) -> pd.DataFrame:
    """The artifact as a DataFrame (only `columns`, if given), checked by check_parquet first."""
    check_parquet(path, required)
    try:
        return pq.read_table(path, columns=columns).to_pandas()
    except (pa.ArrowException, OSError) as exc:  # a readable footer over damaged pages
        raise ArtifactError(f"{path}: not a readable parquet file ({exc}); {REBUILD}") from None


def read_json(path: str | Path) -> Any:
    """A JSON artifact, its contract's keys checked."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}); {REBUILD}") from None
    if contract := _contract(path, JSON):
        pattern, required = contract
        has = list(data) if isinstance(data, dict) else []
        if missing := [k for k in required if k not in has]:
            raise ArtifactError(f"{path}: missing key(s) {', '.join(missing)}; a {pattern} artifact (CONTRACTS.md) "
                                f"needs {', '.join(required)}")
    return data
