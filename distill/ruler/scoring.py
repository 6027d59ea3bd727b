"""Tool-call rulers and per-question scores (docs/design.md, "Scoring").

The lenient ruler (`tool_call_match`) measures tool use, not phrasing: each leniency it grants is written
in the docstring of the function that grants it, with its reason, has a unit test, and is recorded by
name (LENIENCIES) on the check that used it, so the report can say why the exact-match ruler
(`strict_call_match`), kept beside it, disagrees. `score_frame` scores every held-out question on
every metric: one row per question, the table behind every aggregate (distill.ruler.summary).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from distill.contracts import SCORE_COLUMNS
from distill import config
from distill.claude.usage import USAGE_FIELDS
from distill.io import dumps, json_list, tool_outputs
from distill.ruler.answers import grounded_answer
from distill.student.chat import arguments_object
from distill.ruler.judge import Judge, JudgeResult
from distill.ruler.text import content_tokens
from distill.workbench.docs import search_docs

# Why a single call failed, first failure only, in this order of checking (BFCL-style fixed taxonomy).
ERRORS = ("wrong_name", "missing_argument", "unexpected_argument", "wrong_value", "query_mismatch",
          "malformed")
# Why a call sequence failed when every compared position matched: the counts differ.
SEQUENCE_ERRORS = ("missing_call", "extra_call")
# Why a lenient pass is not an exact match: the leniencies it used (check_call's docstrings).
LENIENCIES = ("default_argument", "identifier_case", "date_format", "whitespace", "query_paraphrase")

# Argument roles by name: JSON schema has no notion of "identifier" or "free text", the workbench's names do.
IDENTIFIER_ARGS = frozenset({"model_id", "ticker"})
DATE_ARGS = frozenset({"start", "end"})
FREE_TEXT_ARGS = frozenset({"query"})

Call = dict[str, Any]
Check = Callable[[Call, Call], "CallCheck"]


@dataclass(frozen=True)
class CallCheck:
    """Uniform check result: `error` is one of ERRORS (or SEQUENCE_ERRORS for a sequence), None if valid;
    `leniencies` names the LENIENCIES a valid lenient check needed (empty for an exact match)."""

    valid: bool
    error: str | None = None
    detail: str = ""
    leniencies: tuple[str, ...] = ()


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


def query_jaccard(pred: str, gold: str) -> float:
    """Jaccard similarity |A∩B| / |A∪B| of content tokens; 0.0 when either set is empty.

    Symmetric, so a one-word query ("crossover") that is a subset of a five-word gold query scores 0.2,
    not 1.0 as the overlap coefficient did.
    """
    a, b = content_tokens(pred), content_tokens(gold)
    return len(a & b) / len(a | b) if a and b else 0.0


def retrieved(query: str, k: int) -> list[tuple[str, str, str]]:
    """The passages (doc, title, snippet) search_docs returns for `query`, best first, at most k."""
    try:
        return [(hit["doc"], hit["title"], hit["snippet"]) for hit in search_docs(query, k)]
    except ValueError:  # an empty query finds nothing
        return []


def same_documents(pred_query: str, gold_query: str, k: int) -> bool:
    """Whether BM25 (the search_docs tool) returns the gold query's top-k passages for the predicted
    query (in any order: the student reads them all): the test of whether a paraphrase is the same tool
    use. A gold query that finds nothing is matched by nothing."""
    gold = retrieved(gold_query, k)
    return bool(gold) and set(retrieved(pred_query, k)) == set(gold)


def query_match(pred: str, gold: str, cfg: dict) -> bool:
    """Whether a search_docs query that is not the gold query is the same tool use.

    Leniency: a paraphrase passes when BM25 returns the gold query's top `cfg["query_top_k"]` passages
    for it, or when the two queries' content words have Jaccard similarity ≥ `cfg["query_jaccard"]`.
    Reason: the tool's answer is what the student reads next, so a query that retrieves the same
    passages is the same call; the token test covers rewordings BM25 ranks a little differently. Both
    are symmetric in what they demand: a subset query ("model") retrieves other passages and shares too
    few words, so it fails.
    """
    if query_jaccard(pred, gold) >= cfg["query_jaccard"]:
        return True
    return cfg["query_top_k"] > 0 and same_documents(pred, gold, cfg["query_top_k"])


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


def same_value(pred: Any, gold: Any) -> bool:
    """Equality of JSON values with numbers by value: `fee_bps: 10` is `10.0` (JSON has one number
    type), under both rulers; a bool is no number and a numeric string ("10") is no number."""
    if _is_number(pred) and _is_number(gold):
        return pred == gold
    if isinstance(pred, dict) and isinstance(gold, dict):
        return pred.keys() == gold.keys() and all(same_value(pred[k], gold[k]) for k in pred)
    if isinstance(pred, list) and isinstance(gold, list):
        return len(pred) == len(gold) and all(same_value(p, g) for p, g in zip(pred, gold))
    return type(pred) is type(gold) and pred == gold


def _compare(key: str, pred: Any, gold: Any, prop: dict, cfg: dict) -> tuple[str | None, str | None]:
    """(error, leniency): error None if the values match under the role of `key`; leniency names the
    LENIENCIES entry that made two different values match (None for equal values).

    Leniencies: identifiers (model_id, ticker) compare after strip and case-folding, because the
    registry's ids are unique regardless of case, so the student named the right entity (tools.execute
    itself is case-sensitive: as with dates, a failed run costs grounded/judge, not this ruler); other
    strings compare after strip; queries by `query_match`. Not a leniency: numbers are equal by value
    (`same_value`), and a numeric string ("1") in a number field is a wrong value, because the schema
    says number and tools.execute rejects it.
    """
    if same_value(pred, gold):
        return None, None
    if key in FREE_TEXT_ARGS:
        ok = isinstance(pred, str) and isinstance(gold, str) and query_match(pred, gold, cfg)
        return (None, "query_paraphrase") if ok else ("query_mismatch", None)
    both_text = isinstance(pred, str) and isinstance(gold, str)
    if key in IDENTIFIER_ARGS:
        ok = both_text and pred.strip().casefold() == gold.strip().casefold()
        leniency = "whitespace" if both_text and pred.strip() == gold.strip() else "identifier_case"
    elif key in DATE_ARGS or prop.get("format") == "date":
        ok = _norm_date(pred) is not None and _norm_date(pred) == _norm_date(gold)
        leniency = "date_format"
    elif both_text:
        ok, leniency = pred.strip() == gold.strip(), "whitespace"
    else:
        ok, leniency = pred == gold, None
    return (None, leniency) if ok else ("wrong_value", None)


def check_call(pred: Call, gold: Call, *, tools: Sequence[dict] | None = None, cfg: dict | None = None) -> CallCheck:
    """Check one predicted call against the gold call; first failure wins, in the order of ERRORS.

    `cfg` is the `scoring` config section (its query_jaccard and query_top_k); without one, the
    schema's defaults.

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
    cfg = cfg or config.defaults("scoring")
    schema = _tool_schemas(tools).get(name, {})
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    used: list[str] = []

    def defaulted(key: str, value: Any) -> bool:
        prop = props.get(key, {})
        return (key not in required and "default" in prop
                and _compare(key, prop["default"], value, prop, cfg)[0] is None)

    for key in sorted(set(gold_args) - set(args)):
        if not defaulted(key, gold_args[key]):
            return CallCheck(False, "missing_argument", key)
        used.append("default_argument")
    for key in sorted(set(args) - set(gold_args)):
        if not defaulted(key, args[key]):
            return CallCheck(False, "unexpected_argument", key)
        used.append("default_argument")
    for key in sorted(set(args) & set(gold_args)):
        error, leniency = _compare(key, args[key], gold_args[key], props.get(key, {}), cfg)
        if error:
            return CallCheck(False, error, f"{key}: {args[key]!r} vs {gold_args[key]!r}")
        if leniency:
            used.append(leniency)
    return CallCheck(True, leniencies=tuple(sorted(set(used))))


def tool_call_match(pred: Call, gold: Call, *, tools: Sequence[dict] | None = None, cfg: dict | None = None) -> bool:
    """The lenient ruler of docs/design.md: True when `check_call` finds no error."""
    return check_call(pred, gold, tools=tools, cfg=cfg).valid


def strict_check_call(pred: Call, gold: Call) -> CallCheck:
    """Exact match after JSON-text parsing only: same name, same argument keys, same JSON values
    (numbers by value: 25 is 25.0, as JSON has one number type).

    No normalisation at all (case, dates, defaults and paraphrases all count), which is what makes it
    the reference for the sensitivity table. Errors use the same taxonomy as check_call.
    """
    parsed, parsed_gold = _parse_call(pred), _parse_call(gold)
    if parsed_gold is None:
        raise ValueError(f"malformed gold call: {gold!r}")
    if parsed is None:
        return CallCheck(False, "malformed", f"cannot parse {pred!r}")
    (name, args), (gold_name, gold_args) = parsed, parsed_gold
    if name != gold_name:
        return CallCheck(False, "wrong_name", f"{name!r} != {gold_name!r}")
    if missing := sorted(set(gold_args) - set(args)):
        return CallCheck(False, "missing_argument", missing[0])
    if extra := sorted(set(args) - set(gold_args)):
        return CallCheck(False, "unexpected_argument", extra[0])
    for key in sorted(args):
        if not same_value(args[key], gold_args[key]):
            error = "query_mismatch" if key in FREE_TEXT_ARGS else "wrong_value"
            return CallCheck(False, error, f"{key}: {args[key]!r} vs {gold_args[key]!r}")
    return CallCheck(True)


def strict_call_match(pred: Call, gold: Call) -> bool:
    """The exact-match ruler: True when `strict_check_call` finds no error."""
    return strict_check_call(pred, gold).valid


def check_sequence(pred_calls: list[Call], gold_calls: list[Call], check: Check) -> CallCheck:
    """Per-question tool-call accuracy: the first failing position's CallCheck under `check`, else a
    count error (SEQUENCE_ERRORS); a valid result carries the leniencies of every position."""
    used: set[str] = set()
    for pred, gold in zip(pred_calls, gold_calls):
        result = check(pred, gold)
        if not result.valid:
            return result
        used.update(result.leniencies)
    if len(pred_calls) < len(gold_calls):
        return CallCheck(False, "missing_call", f"{len(pred_calls)} of {len(gold_calls)} calls")
    if len(pred_calls) > len(gold_calls):
        return CallCheck(False, "extra_call", f"{len(pred_calls)} calls, gold has {len(gold_calls)}")
    return CallCheck(True, leniencies=tuple(sorted(used)))


def paraphrase_same_docs(pred_calls: list[Call], gold_calls: list[Call], k: int) -> bool | None:
    """For aligned search_docs calls whose queries differ: do all of them retrieve the gold query's
    top-k passages? None when no position has a differing search_docs query or k is 0 (no check)."""
    pairs = [(_parse_call(p), _parse_call(g)) for p, g in zip(pred_calls, gold_calls)]
    queries = [(p[1].get("query"), g[1].get("query")) for p, g in pairs
               if p and g and p[0] == g[0] == "search_docs" and p[1].get("query") != g[1].get("query")]
    queries = [(p, g) for p, g in queries if isinstance(p, str) and isinstance(g, str)]
    return all(same_documents(p, g, k) for p, g in queries) if queries and k else None


def _text(cell: Any) -> str:
    return cell if isinstance(cell, str) else ""


def score_question(row: dict, judge: Judge, cfg: dict, tools: Sequence[dict] | None = None,
                   rubric: Judge | None = None, claims: dict | None = None) -> dict:
    """One held-out question scored on every metric, with the reasons behind each verdict.

    answered and grounded: distill.ruler.answers.grounded_answer, on the tool outputs of the student's
    own run; judge: `judge.grade` for answers, and 0 with the
    answer reason for non-answers, whichever the judge (a paid judge is never asked about them); None
    when a paid judge's grading failed (`judge_error`). judge_rubric: the free `rubric` judge on the same
    answer, run beside a paid one so the report can show their agreement (None without `rubric`).
    """
    gold_calls, pred_calls = json_list(row["gold_calls"]), json_list(row["pred_calls"])
    outputs = tool_outputs(row["tool_outputs"])
    question, answer = _text(row.get("question")), _text(row.get("pred_answer"))
    lenient = check_sequence(pred_calls, gold_calls, lambda p, g: check_call(p, g, tools=tools, cfg=cfg))
    strict = check_sequence(pred_calls, gold_calls, strict_check_call)
    answered, ungrounded = grounded_answer(answer, question, row["category"], outputs, cfg, claims)
    judge_row = {
        "question": question, "category": row["category"], "model_id": row.get("model_id"),
        "ticker": row.get("ticker"), "gold_answer": _text(row.get("gold_answer")),
        "gold_calls": row["gold_calls"] if isinstance(row["gold_calls"], str) else dumps(gold_calls),
        "tool_outputs": outputs, "pred_answer": answer, "answer_check": answered,
    }
    unanswered = JudgeResult(0.0, [answered.reason], [answered.detail])  # never paid for
    verdict = judge.grade(judge_row) if answered.answered else unanswered
    second = (rubric.grade(judge_row) if answered.answered else unanswered) if rubric is not None else None
    usage = {key: int(verdict.usage.get(key, 0)) for key in USAGE_FIELDS}
    failure = row.get("failure")
    return {
        "trace_id": row["trace_id"], "category": row["category"], "model_id": row.get("model_id"),
        "ticker": row.get("ticker"), "question": question, "gold_answer": _text(row.get("gold_answer")),
        "pred_answer": answer, "gold_calls": dumps(gold_calls), "pred_calls": dumps(pred_calls),
        "failure": failure if isinstance(failure, str) else None,
        "tool_call": lenient.valid, "call_error": lenient.error, "call_error_detail": lenient.detail,
        "leniencies": dumps(list(lenient.leniencies)),
        "tool_call_strict": strict.valid, "strict_error": strict.error, "strict_error_detail": strict.detail,
        "paraphrase_same_docs": (paraphrase_same_docs(pred_calls, gold_calls, cfg["query_top_k"])
                                 if lenient.valid and not strict.valid else None),
        "answered": answered.answered, "answer_reason": answered.reason,
        "grounded": answered.answered and not ungrounded, "ungrounded": dumps(ungrounded),
        "judge": None if verdict.score is None else float(verdict.score), "judge_reasons": dumps(list(verdict.reasons)),
        "judge_details": dumps(list(verdict.details)),
        "judge_rubric": None if second is None else float(second.score), "judge_rationale": verdict.rationale,
        "judge_error": verdict.error, "judge_model": verdict.model,
        **{f"judge_{key}": value for key, value in usage.items()},
    }


def score_frame(df: pd.DataFrame, judge: Judge, cfg: dict, *, tools: Sequence[dict] | None = None,
                rubric: Judge | None = None, claims: dict | None = None) -> pd.DataFrame:
    """The per-question score table of one epoch (results/scores/epoch_<n>.parquet), in input order.

    `cfg` is the `scoring` config section (the rulers' keys are read here; the rest by distill.ruler.summary),
    `claims` the `claims` one (how the answer check reads facts; the schema's defaults without it).
    Rows are scored `judge.concurrency` at a time (a judge that waits on a server; 1 otherwise).
    """
    with ThreadPoolExecutor(getattr(judge, "concurrency", 1)) as pool:  # map keeps row order
        rows = list(pool.map(lambda r: score_question(r, judge, cfg, tools, rubric, claims), df.to_dict("records")))
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)
