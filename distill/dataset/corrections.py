"""Declarative gold-answer corrections.

Bad gold data copied from the teacher is one of the three classic failures this pipeline makes cheap
to fix: a correction is a reviewed YAML entry, not an edit to a parquet file, so it is versioned,
re-applied on every rebuild and logged per row. Entries apply in file order; each must match at least
one row, otherwise the file is stale and the build stops, and no row may be corrected differently by two
entries.

Two steps, two rules: plan_corrections checks the file against the data and writes the change log
(corrections_log.parquet, reviewable with DuckDB before anything is applied); apply_corrections applies
it. A bad corrections file therefore fails the planning rule, and corrected.parquet, its downstream and
the trained adapters stay as they were.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pandas as pd
import yaml

from distill.contracts import CORRECTIONS_LOG
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


def plan_corrections(df: pd.DataFrame, entries: list[dict]) -> pd.DataFrame:
    """The per-row change log of applying `entries` in file order to the gold answers of `df`
    (CONTRACTS.md corrections_log.parquet), checked against the data: an entry that matches no row, names an
    unknown trace id, or changes a row an earlier entry already changed to something else is an error."""
    work = df.copy()  # the answers as the entries so far left them
    changed_by: dict[str, str] = {}
    log_rows: list[dict] = []
    for entry in entries:
        unknown = set(entry["select"]) - {"trace_ids", "pattern"} - set(work.columns)
        if unknown:
            raise CorrectionError(f"correction {entry['id']!r}: select uses unknown column(s) {sorted(unknown)}")
        if absent := set(entry["select"].get("trace_ids", [])) - set(work["trace_id"]):
            raise CorrectionError(f"correction {entry['id']!r}: trace id(s) not found: {sorted(absent)}")
        rows = work[_mask(work, entry["select"])]
        if rows.empty:
            raise CorrectionError(f"correction {entry['id']!r} matches no row (select={entry['select']}); "
                                  "remove it or fix its selector")
        if unmatched := set(entry["select"].get("trace_ids", [])) - set(rows["trace_id"]):
            raise CorrectionError(f"correction {entry['id']!r}: trace id(s) {sorted(unmatched)} fail its other "
                                  "select conditions")
        for i, row in rows.iterrows():
            new = _new_answer(entry, row)
            if not new:
                raise CorrectionError(f"correction {entry['id']!r} leaves an empty answer for {row['trace_id']}")
            if row["trace_id"] in changed_by:
                if new == row["final_answer"]:
                    continue  # says what an earlier entry already made it say
                raise CorrectionError(
                    f"corrections {changed_by[row['trace_id']]!r} and {entry['id']!r} both correct "
                    f"{row['trace_id']}, differently ({row['final_answer']!r} vs {new!r}); narrow one selector")
            changed_by[row["trace_id"]] = entry["id"]  # a row changes once, so its answer here is the original
            log_rows.append({"trace_id": row["trace_id"], "correction_id": entry["id"], "category": row["category"],
                             "model_id": row["model_id"], "old_answer": row["final_answer"], "new_answer": new})
            work.at[i, "final_answer"] = new
    return pd.DataFrame(log_rows, columns=list(CORRECTIONS_LOG))


def apply_plan(df: pd.DataFrame, log: pd.DataFrame) -> pd.DataFrame:
    """The corrected frame: each logged row's gold answer (and the conversation's last assistant turn)
    replaced, `corrected` and `correction_ids` added. A log that does not fit `df` (an unknown trace id, an
    old answer that is not the row's) is an error: it was planned from other data."""
    out = df.copy()
    by_id = dict(zip(out["trace_id"], out.index))
    out["corrected"] = False
    out["correction_ids"] = "[]"
    for entry in log.itertuples(index=False):
        i = by_id.get(entry.trace_id)
        if i is None or out.at[i, "final_answer"] != entry.old_answer:
            problem = "is not in the data" if i is None else "has another gold answer than the log's old_answer"
            raise CorrectionError(f"corrections log: {entry.trace_id} {problem}; the log is stale, plan it again")
        out.at[i, "final_answer"] = entry.new_answer
        out.at[i, "messages"] = _replace_final_answer(out.at[i, "messages"], entry.new_answer)
        out.at[i, "corrected"] = True
        out.at[i, "correction_ids"] = dumps([entry.correction_id])
    return out
