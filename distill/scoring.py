"""Tool-call scoring and per-epoch score files (DESIGN.md "Scoring").

The lenient ruler (`tool_call_match`) measures tool use, not phrasing: each leniency it grants is written
in the docstring of the function that grants it, with its reason, and has a unit test. The strict ruler
(`strict_call_match`) is kept beside it so the report can show how much the leniencies matter.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from distill.chat import arguments_object
from distill.grounding import ungrounded_numbers

if TYPE_CHECKING:  # judge.py imports this module's tokeniser
    from distill.judge import Judge

# Why a single call failed, first failure only, in this order of checking (BFCL-style fixed taxonomy).
ERRORS = ("wrong_name", "missing_argument", "unexpected_argument", "wrong_value", "query_mismatch",
          "malformed")
# Why a call sequence failed when every compared position matched: the counts differ.
SEQUENCE_ERRORS = ("missing_call", "extra_call")
# The agent loop's own failure reasons (predictions `failure` column, CONTRACTS.md).
PREDICTION_FAILURES = ("bad_json", "unknown_tool", "bad_arguments", "turn_limit", "no_answer")
METRICS = ("tool_call", "tool_call_strict", "grounded", "judge")

# Argument roles by name: JSON schema has no notion of "identifier" or "free text", the workbench's names do.
IDENTIFIER_ARGS = frozenset({"model_id", "ticker"})
DATE_ARGS = frozenset({"start", "end"})
FREE_TEXT_ARGS = frozenset({"query"})

STOP_WORDS = frozenset("""
a about an and any are as at be by can could do does for from how i if in is it its me my of on or our
please show so tell than that the their them then there these this those to us was we what when where
which who why will with would you your
""".split())

DEFAULT_CFG: dict[str, Any] = {
    "query_overlap": 0.5,
    "bootstrap_samples": 1000,
    "seed": 0,
    "ship_bar": {"tool_call": 0.90, "grounded": 0.99, "judge": 0.7},
}

Call = dict[str, Any]
Ruler = Callable[[Call, Call], bool]
_ABSENT = object()


@dataclass(frozen=True)
class CallCheck:
    """Uniform check result: `error` is one of ERRORS (or SEQUENCE_ERRORS for a sequence), None if valid."""

    valid: bool
    error: str | None = None
    detail: str = ""


def _parse_call(call: Any) -> tuple[str, dict] | None:
    """(name, arguments) of a call, or None if malformed.

    Leniency: `arguments` given as JSON text is parsed, and an absent/null `arguments` means `{}`.
    Reason: Hermes-style `<tool_call>` JSON and the Anthropic API both allow these shapes for the same
    call, and list_models takes no arguments at all.
    """
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    args = arguments_object({} if call.get("arguments") is None else call["arguments"])
    return None if args is None else (call["name"], args)


def _tool_schemas(tools: Sequence[dict] | None) -> dict[str, dict]:
    """input_schema per tool name; the workbench's TOOLS unless given (imported late: it loads prices)."""
    if tools is None:
        from distill.workbench.tools import TOOLS
        tools = TOOLS
    return {t["name"]: t.get("input_schema") or {} for t in tools}


def content_tokens(text: str) -> set[str]:
    """Lower-cased alphanumeric tokens minus STOP_WORDS: the words that carry a query's meaning."""
    return set(re.findall(r"[a-z0-9]+", text.lower())) - STOP_WORDS


def query_overlap(pred: str, gold: str) -> float:
    """Overlap coefficient |A∩B| / min(|A|,|B|) of content tokens; 0.0 when either set is empty.

    Leniency: a paraphrased search_docs query matches when most of the shorter query's content words
    appear in the other. Reason: BM25 retrieval depends on the content words, not on their order or on
    filler words, so two such queries find the same documents.
    """
    a, b = content_tokens(pred), content_tokens(gold)
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def _norm_date(value: Any) -> str | None:
    """YYYY-MM-DD, or None if not a date.

    Leniency: ISO forms with or without separators or a time part ("20190102", "2019/01/02",
    "2019-01-02T00:00:00") are the same day. Reason: the ruler asks whether the student chose the right
    day; tools.execute accepts only YYYY-MM-DD, so such a call fails when run, and that cost shows in the
    grounded rate, the judge and the strict ruler instead. Day-first and month-first forms
    ("02/01/2019") are ambiguous and are not accepted.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().replace("/", "-")
    for parse in (date.fromisoformat, lambda t: datetime.fromisoformat(t).date()):
        try:
            return parse(text).isoformat()
        except ValueError:
            continue
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_error(key: str, pred: Any, gold: Any, prop: dict, overlap: float) -> str | None:
    """None if the argument values match under the role of `key`, else the error name.

    Leniencies: identifiers (model_id, ticker) compare after strip and case-folding, because the
    registry's ids are unique regardless of case, so the student named the right entity (tools.execute
    itself is case-sensitive: as with dates, a failed run costs grounded/judge, not this ruler); numbers
    compare by value (1 == 1.0), because JSON does not distinguish them. Not a leniency: a numeric
    string ("1") in a number field is a wrong value, because the schema says number and tools.execute
    rejects it. Other strings compare after strip only.
    """
    if key in FREE_TEXT_ARGS:
        ok = isinstance(pred, str) and isinstance(gold, str) and query_overlap(pred, gold) >= overlap
        return None if ok else "query_mismatch"
    if key in IDENTIFIER_ARGS:
        ok = (isinstance(pred, str) and isinstance(gold, str)
              and pred.strip().casefold() == gold.strip().casefold())
    elif key in DATE_ARGS or prop.get("format") == "date":
        ok = _norm_date(pred) is not None and _norm_date(pred) == _norm_date(gold)
    elif prop.get("type") in ("number", "integer") or _is_number(gold):
        ok = _is_number(pred) and _is_number(gold) and math.isclose(pred, gold, rel_tol=1e-9, abs_tol=1e-12)
    elif isinstance(pred, str) and isinstance(gold, str):
        ok = pred.strip() == gold.strip()
    else:
        ok = pred == gold
    return None if ok else "wrong_value"


def check_call(pred: Call, gold: Call, *, tools: Sequence[dict] | None = None,
               query_overlap: float = 0.5) -> CallCheck:
    """Check one predicted call against the gold call; first failure wins, in the order of ERRORS.

    Argument sets are compared with the gold call's keys (the gold is the reference for which optional
    arguments the question needs). Leniency, both ways: an optional argument omitted on one side and given
    on the other equal to its schema default counts as present with that default. Reason: the tool
    executes both calls identically, so they are the same call. A malformed gold call raises ValueError:
    that is a data bug, not a student error.
    """
    parsed_gold = _parse_call(gold)
    if parsed_gold is None:
        raise ValueError(f"malformed gold call: {gold!r}")
    parsed = _parse_call(pred)
    if parsed is None:
        return CallCheck(False, "malformed", f"cannot parse {pred!r}")
    (name, args), (gold_name, gold_args) = parsed, parsed_gold
    if name != gold_name:
        return CallCheck(False, "wrong_name", f"{name!r} != {gold_name!r}")
    schema = _tool_schemas(tools).get(name, {})
    props, required = schema.get("properties", {}), set(schema.get("required", []))

    def defaulted(key: str, value: Any) -> bool:
        prop = props.get(key, {})
        return (key not in required and "default" in prop
                and _value_error(key, prop["default"], value, prop, query_overlap) is None)

    for key in sorted(set(gold_args) - set(args)):
        if not defaulted(key, gold_args[key]):
            return CallCheck(False, "missing_argument", key)
    for key in sorted(set(args) - set(gold_args)):
        if not defaulted(key, args[key]):
            return CallCheck(False, "unexpected_argument", key)
    for key in sorted(set(args) & set(gold_args)):
        error = _value_error(key, args[key], gold_args[key], props.get(key, {}), query_overlap)
        if error:
            return CallCheck(False, error, f"{key}: {args[key]!r} vs {gold_args[key]!r}")
    return CallCheck(True)


def tool_call_match(pred: Call, gold: Call, *, tools: Sequence[dict] | None = None,
                    query_overlap: float = 0.5) -> bool:
    """The lenient ruler of DESIGN.md: True when `check_call` finds no error."""
    return check_call(pred, gold, tools=tools, query_overlap=query_overlap).valid


def strict_call_match(pred: Call, gold: Call) -> bool:
    """Exact match after JSON-text parsing only: same name, same arguments as canonical JSON.

    No normalisation at all (case, dates, defaults, paraphrases, and 1 vs 1.0 all count), which is what
    makes it the reference for the sensitivity table.
    """
    parsed, parsed_gold = _parse_call(pred), _parse_call(gold)
    if parsed is None or parsed_gold is None:
        return False
    same_args = json.dumps(parsed[1], sort_keys=True) == json.dumps(parsed_gold[1], sort_keys=True)
    return parsed[0] == parsed_gold[0] and same_args


def sequence_match(pred_calls: list[Call], gold_calls: list[Call], *, ruler: Ruler) -> bool:
    """Per-trace tool-call accuracy: same number of calls and each position matches under `ruler`."""
    return len(pred_calls) == len(gold_calls) and all(ruler(p, g) for p, g in zip(pred_calls, gold_calls))


def check_sequence(pred_calls: list[Call], gold_calls: list[Call], **kwargs: Any) -> CallCheck:
    """The first failing position's CallCheck, else a count error; lenient ruler (kwargs: check_call's)."""
    for pred, gold in zip(pred_calls, gold_calls):
        result = check_call(pred, gold, **kwargs)
        if not result.valid:
            return result
    if len(pred_calls) < len(gold_calls):
        return CallCheck(False, "missing_call", f"{len(pred_calls)} of {len(gold_calls)} calls")
    if len(pred_calls) > len(gold_calls):
        return CallCheck(False, "extra_call", f"{len(pred_calls)} calls, gold has {len(gold_calls)}")
    return CallCheck(True)


def _json_list(cell: Any) -> list:
    """A JSON-list cell as a list; null/NaN (no calls, no outputs) as []."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return []
    return json.loads(cell) if isinstance(cell, str) else list(cell)


def _text(cell: Any) -> str:
    return cell if isinstance(cell, str) else ""


def score_example(row: dict, judge: Judge, cfg: dict, tools: Sequence[dict] | None = None) -> dict:
    """One prediction scored on every metric; the row the report uses for per-example flips."""
    gold_calls, pred_calls = _json_list(row["gold_calls"]), _json_list(row["pred_calls"])
    outputs = [o if isinstance(o, str) else json.dumps(o) for o in _json_list(row["tool_outputs"])]
    answer = _text(row.get("pred_answer"))
    call = check_sequence(pred_calls, gold_calls, tools=tools, query_overlap=cfg["query_overlap"])
    ungrounded = ungrounded_numbers(answer, outputs) if answer.strip() else []
    verdict = judge.grade({
        "question": _text(row.get("question")), "category": row["category"],
        "model_id": row.get("model_id"), "ticker": row.get("ticker"), "pred_answer": answer,
        "gold_answer": _text(row.get("gold_answer")), "tool_outputs": outputs,
    })
    failure = row.get("failure")
    return {
        "trace_id": row["trace_id"], "category": row["category"],
        "tool_call": call.valid,
        "tool_call_strict": sequence_match(pred_calls, gold_calls, ruler=strict_call_match),
        "grounded": bool(answer.strip()) and not ungrounded,
        "judge": float(verdict.score),
        "call_error": call.error, "call_error_detail": call.detail, "ungrounded": list(ungrounded),
        "judge_reasons": list(verdict.reasons), "failure": failure if isinstance(failure, str) else None,
    }


def _estimate(values: np.ndarray, idx: np.ndarray | None) -> dict:
    """Mean with a percentile-bootstrap 95% CI over the resampled row indices `idx` (B × n)."""
    if idx is None:
        return {"value": None, "ci95": [None, None]}
    lo, hi = np.percentile(values[idx].mean(axis=1), [2.5, 97.5])
    return {"value": float(values.mean()), "ci95": [float(lo), float(hi)]}


def _summarise(rows: list[dict], cfg: dict) -> dict:
    """Rates with CIs and failure counts for one group; the same resamples serve every metric (paired)."""
    n = len(rows)
    rng = np.random.default_rng(cfg["seed"])  # reseeded per group: a group's CI never depends on others
    idx = rng.integers(0, n, size=(cfg["bootstrap_samples"], n)) if n else None
    summary: dict[str, Any] = {"n": n}
    for metric in METRICS:
        summary[metric] = _estimate(np.array([float(r[metric]) for r in rows]), idx)
    errors = Counter(r["call_error"] for r in rows if r["call_error"])
    summary["call_errors"] = {e: errors.get(e, 0) for e in ERRORS + SEQUENCE_ERRORS}
    failures = Counter(r["failure"] for r in rows if r["failure"])
    reasons = (*PREDICTION_FAILURES, *sorted(set(failures) - set(PREDICTION_FAILURES)))
    summary["failures"] = {f: failures.get(f, 0) for f in reasons}
    return summary


def score_predictions(df: pd.DataFrame, judge: Judge, cfg: dict, *,
                      tools: Sequence[dict] | None = None) -> dict:
    """The score file of one epoch: overall and per-category rates with CIs, the ship bar, per-example rows.

    `judge` is the mean judge score (0–1), not a pass rate. The ship bar compares point estimates (not CI
    bounds) with `cfg["ship_bar"]`; a metric with no rows fails it. Missing cfg keys take DEFAULT_CFG.
    """
    cfg = {**DEFAULT_CFG, **cfg, "ship_bar": {**DEFAULT_CFG["ship_bar"], **cfg.get("ship_bar", {})}}
    rows = [score_example(r, judge, cfg, tools) for r in df.to_dict("records")]
    overall = _summarise(rows, cfg)
    bar: dict[str, Any] = {}
    for metric, threshold in cfg["ship_bar"].items():
        value = overall[metric]["value"]
        passed = value is not None and value >= threshold
        bar[metric] = {"value": value, "threshold": threshold, "passed": passed}
    bar["passed"] = all(v["passed"] for v in bar.values())
    return {
        "n": len(rows),
        "judge_name": judge.name,
        "config": cfg,
        "overall": overall,
        "per_category": {c: _summarise([r for r in rows if r["category"] == c], cfg)
                         for c in sorted({r["category"] for r in rows})},
        "ship_bar": bar,
        "examples": rows,
    }
