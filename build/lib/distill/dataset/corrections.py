"""Declarative gold-answer corrections.

Bad gold data copied from the teacher is one of the three classic failures this pipeline makes cheap
to fix: a correction is a reviewed YAML entry, not an edit to a parquet file, so it is versioned,
re-applied on every rebuild and logged per row. Entries apply in file order; each must match at least
one row, otherwise the file is stale and the build stops.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from distill.io import dumps
from distill.workbench.registry import get_model

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class CorrectionError(ValueError):
    """A corrections file that is malformed or stale; the message names the entry."""


def load_corrections(path: str | Path, schema_path: str | Path) -> list[dict]:
    """Parse and validate the corrections file, naming the entry and key of the first error."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise CorrectionError(f"{path}: not valid YAML: {exc}") from None
    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<root>"
        raise CorrectionError(f"{path}: at {where}: {error.message}")
    entries = doc["corrections"]
    ids = [e["id"] for e in entries]
    if dupes := sorted({i for i in ids if ids.count(i) > 1}):
        raise CorrectionError(f"{path}: duplicate correction id(s) {dupes}")
    for e in entries:
        if e.get("remove_matching_sentences") and "pattern" not in e["select"]:
            raise CorrectionError(f"{path}: correction {e['id']!r}: remove_matching_sentences needs select.pattern")
        if "pattern" in e["select"]:
            try:
                re.compile(e["select"]["pattern"])
            except re.error as exc:
                raise CorrectionError(f"{path}: correction {e['id']!r}: bad select.pattern: {exc}") from None
    return entries


def _mask(df: pd.DataFrame, select: dict) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for key, value in select.items():
        if key == "trace_ids":
            mask &= df["trace_id"].isin(value)
        elif key == "pattern":
            mask &= df["final_answer"].str.contains(value, case=False, regex=True, na=False)
        else:
            mask &= df[key] == value
    return mask


def _new_answer(entry: dict, row: pd.Series) -> str:
    if entry.get("remove_matching_sentences"):
        pattern = re.compile(entry["select"]["pattern"], re.IGNORECASE)
        kept = [s for s in _SENTENCE.split(row["final_answer"]) if not pattern.search(s)]
        return " ".join(kept)
    model = get_model(row["model_id"])
    return entry["answer"].format(model_name=model.name, model_id=model.id, ticker=row["ticker"],
                                  validation=model.validation).strip()


def _replace_final_answer(messages_json: str, answer: str) -> str:
    """Keep the conversation consistent with the gold answer: the last assistant turn is the answer."""
    messages = json.loads(messages_json)
    for msg in reversed(messages):
        if msg["role"] == "assistant":
            msg["content"] = answer
            break
    return dumps(messages)


def apply_corrections(df: pd.DataFrame, entries: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply entries in order; return (corrected frame, per-row log). Unmatched entry → CorrectionError."""
    out = df.copy()
    out["corrected"] = False
    applied: dict[int, list[str]] = {i: [] for i in out.index}
    log_rows: list[dict] = []
    for entry in entries:
        unknown = set(entry["select"]) - {"trace_ids", "pattern"} - set(out.columns)
        if unknown:
            raise CorrectionError(f"correction {entry['id']!r}: select uses unknown column(s) {sorted(unknown)}")
        idx = out.index[_mask(out, entry["select"])]
        if len(idx) == 0:
            raise CorrectionError(f"correction {entry['id']!r} matches no row (select={entry['select']}); "
                                  "remove it or fix its selector")
        missing = set(entry["select"].get("trace_ids", [])) - set(out.loc[idx, "trace_id"])
        if missing:
            raise CorrectionError(f"correction {entry['id']!r}: trace id(s) not found: {sorted(missing)}")
        for i in idx:
            row = out.loc[i]
            new = _new_answer(entry, row)
            if not new:
                raise CorrectionError(f"correction {entry['id']!r} leaves an empty answer for {row['trace_id']}")
            log_rows.append({"trace_id": row["trace_id"], "correction_id": entry["id"],
                             "category": row["category"], "model_id": row["model_id"],
                             "old_answer": row["final_answer"], "new_answer": new})
            out.at[i, "final_answer"] = new
            out.at[i, "messages"] = _replace_final_answer(row["messages"], new)
            out.at[i, "corrected"] = True
            applied[i].append(entry["id"])
    out["correction_ids"] = [dumps(applied[i]) for i in out.index]
    log = pd.DataFrame(log_rows, columns=["trace_id", "correction_id", "category", "model_id",
                                          "old_answer", "new_answer"])
    return out, log
