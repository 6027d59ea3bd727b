"""Grounding filter: keep a teacher trace only if every number its answer cites comes from a tool.

The student learns to copy numbers from tool outputs, so a teacher answer that states a number no
tool returned (a hallucination, or arithmetic the student cannot reproduce) is dropped. A tool output
that parses as JSON is read as JSON (its field names give kinds, below); any other output, and every
JSON string, is read as text, so no output is required to parse.

Every number, cited or source, has a kind (KINDS), read from how it is written and, in a JSON tool
output, from its field name (_KEY_KINDS, after the engine's fields): percent ("12.5%"; total_return_pct
in percent, total_return, cagr, max_drawdown, win_rate as fractions), bps ("25 bps", fee_bps), money
("$4,879.78", "USD 10"; fees_paid), count (a number before a count noun: "57 trades", "20-day",
"1,564 bars"; n_trades, num_trades, bars), ratio (sharpe, sortino, calmar, *_ratio, *_factor) or number
(a plain number: an answer's Sharpe of 1.90, a multiplier "1.5x", or a JSON number whose field name
says nothing). A count also has a noun family (a bar and a session are a trading day): 57 trades is not
57 years. A cited number is supported only by a source number of a compatible kind (KIND_MATCHES): a
count never comes from a percent, an amount, a ratio or a count of something else ("13 trades" is not
"13.4%", "97 trades" is not "97.1%", "4 years" is not "$4,879.78", "2 trades" is not a Sharpe of 2.0),
a percent or an amount never from a ratio, a count or each other ("$1.90" is not a Sharpe of 1.90). A
count is a whole number: "0.7 trades" is supported by nothing, and in a source counts nothing (so an
answer's "0.7 trades" does not state the gold's Sharpe of 0.7). Thousands separators make one number
("$4,879.78" is 4879.78, never 4, 879.78 or 4879 and 78); compact JSON ("[1,234]") is read as JSON, so
it holds 1 and 234. Dates are no kind of value: they are masked on both sides (below).

Leniencies, each with its reason (the tests give every one a positive and a negative case):

* Percent <-> fraction: "12.5%" matches 0.125 and a source "12.5%" matches an answer 0.125, because
  tools return fractions and answers write percentages (and vice versa).
* Rounding: the SOURCE is rounded to the precision the answer wrote ("1.23" matches 1.2345, "12%"
  matches 0.1234), with either half-up or half-down ties, because answers round for readability.
  A source is never compared at a coarser precision than the answer wrote ("1.24" vs 1.2345 fails).
  A count matches a source count of its noun family (or of a field that names none: num_x), or a
  plain source number only when that is whole ("2 trades" is not a plain 1.9).
* Currency ($, EUR, GBP symbols and codes), k/M/B/bn/mn/thousand/million/billion and bp/bps/basis
  points: formatting; the value is scaled before comparing. A unit may follow after a space or a
  hyphen ("25 bps", "25bps" and "25-bps" all read as 0.0025); percent and bps compare scaled.
* Literal: the written number also matches the same plain source number unscaled, because sources
  often carry units in a field name this module does not know (aum_busd: 2.1, ret: 12.5). A plain
  cited number matches a bps source as written too ("a fee of 10" from fee_bps: 10), but a percent only
  as its fraction ("0.134" from "13.4%", never "13.4"): a bare 13.4 is the percent-as-number slip.
* A plain cited number (no unit, no count noun) claims no kind, so it may match a ratio, a count or an
  amount of its value ("Sharpe 1.9", "it made 57", "fees of 4,879.78").
* Sign: absolute values are compared, both ways ("3.4%", "-3.4%" and "a drawdown of 3.4%" all match
  -0.034, and "-3.4%" matches 0.034), because answers put direction in words ("fell", "drawdown").
  Cost: a flipped sign is not caught here.

Hyphen-joined numbers are cited:

* A number joined by a hyphen to a word, a unit or another number is cited under the same rules as
  any other number, because it still states a value a tool must have returned: "20-day" cites 20,
  "45.3%-ish" cites 45.3%, "a 99.9%-accurate model" cites 99.9%, "25-bps" cites "25-bps" read as
  25 bps, and the hyphen ranges "10-20" and "12%-99%" cite both ends. A hyphen right
  after a number is a joiner, not the next number's minus sign ("10-20" cites 20, not -20).
  Only a hyphen inside an identifier (a word starting with a letter, below: GPT-4) hides digits.

Not cited numbers (never reported):

* Dates and times (2020-01-02, 01/02/2020, "Jan 2, 2020", "March 2021", 09:30) and years (a bare
  4-digit integer 1900-2100): they label a point in time rather than state a measured value.
* Identifiers: a word that starts with a letter or underscore and contains a digit, where a word runs
  on through letters, digits, underscores and single '.', '+' or '-' joiners (SMA_20, epoch_3, RSI14,
  x86_64, v2, H100, Q1, t+1, T+2, GPT-4, COVID-19, Qwen2.5-7B: none of their digits is cited), plus
  call arguments (GARCH(1,1), SMA(20)) and digits glued after a letter or before a letter other than a
  unit ("5m bars": lower-case "m"/"b" are not read as million/billion). Exception: a currency code
  glued to an amount ("USD1,000") is an amount. These name a configuration; the number itself is
  checked where the answer states it as a value ("a window of 20 days").
* Slash-joined numbers ("80/20"): a ratio or split label, not a value.
* Ordinals (1st, 2nd): a position, not a quantity.
* List markers of one or two digits ("1.", "12)", "## 1.", "**1.**", "(1)" at line start; "(1)"/"(12)"
  anywhere): enumeration, not content ("(1000)" at line start is a number). Cost: a count written as
  "(12)" is not checked.
* Anything inside `code spans` or fenced code blocks: quoted code or arguments, not claims.
"""
from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from distill.io import tool_outputs

# teacher_error: the teacher's request failed after retries (the row is kept so the failure is counted).
REASONS = ("teacher_error", "no_final_answer", "tool_error", "ungrounded_number")

_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
          r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_ORD = r"(?:st|nd|rd|th)?"
# Dates and times, masked in both answers and sources: their parts are not quantities.
_DATE_RE = re.compile(
    r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b"
    r"|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?\b"
    rf"|\b(?:\d{{1,2}}{_ORD}\s+)?{_MONTH}(?:\s+\d{{1,2}}{_ORD}\b)?(?:,?\s+\d{{4}})?\b"
)
_CODE_RE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_CALL_ARGS_RE = re.compile(r"(?<=\w)\(\s*\d[\d.,\s]*\)")  # GARCH(1,1), SMA(20)
_LIST_MARKER_RE = re.compile(r"^[ \t>#*]*(?:\d{1,2}[.)]|\(\d{1,2}\))\**(?=[ \t\n])|\(\d{1,2}\)", re.MULTILINE)

_SCALE = {"%": 1e-2, "percent": 1e-2, "per cent": 1e-2, "bp": 1e-4, "bps": 1e-4,
          "basis points": 1e-4, "k": 1e3, "thousand": 1e3, "m": 1e6, "mn": 1e6, "million": 1e6,
          "b": 1e9, "bn": 1e9, "billion": 1e9}
# A unit word after the number: directly, after one space, or after a hyphen ("25-bps").
_WORD_SUFFIX = r"[\s-]?(?:%|percent\b|per\scent\b|bps\b|bp\b|basis\spoints\b|bn\b|mn\b" \
               r"|thousand\b|million\b|billion\b)"
# An identifier (masked before citing): a word that starts with a letter or underscore and runs on
# through word characters and single '.', '+' or '-' joiners; masked only if it contains a digit.
_IDENT_RE = re.compile(
    r"(?<!\w)(?<!\w[.+\-])"  # starts a word: not glued to, or hyphen-joined after, a previous word
    r"(?!(?:USD|EUR|GBP)\s?[-+\u2212]?[\d.])"  # a currency code glued to an amount is not one
    r"[^\W\d]\w*(?:[.+\-]\w+)*"  # a letter or underscore, then the joined run
)
_DIGIT_RE = re.compile(r"\d")
# A cited number. The token is atomic so a failed boundary check cannot backtrack into a shorter
# match ("5m" must not yield "5"). A hyphen before the number joins it to the previous number
# ("10-20", "12%-99%") and is not its sign; a hyphen after it joins a word or unit ("20-day").
_CITED_RE = re.compile(
    r"(?<![\w.,%/+\u2212])"  # not the tail of a glued number/word, decimal, "80/20" or "t+1"
    r"(?P<tok>(?>"
    r"(?P<s1>[-+\u2212])?(?P<cur>[$\u20ac\u00a3]|(?:USD|EUR|GBP)\s?)?(?P<s2>[-+\u2212])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?"
    rf"(?P<suf>{_WORD_SUFFIX}|[kKMB]\b|x\b|\u00d7)?"
    r"(?P<code>\s?(?:USD|EUR|GBP)\b)?"
    r"))"
    r"(?![\w%])"  # not glued to letters ("5m", "1st") or a second percent sign
    r"(?![.,/]\d)"  # not the head of a longer number, a date part or "80/20"
)
# Source numbers: deliberately looser (digits inside identifiers count) since the source is truth; a
# grouped number ("4,879.78") is one number, tried before its parts.
_SOURCE_RE = re.compile(
    r"(?<![\d.])(?P<cur>[$\u20ac\u00a3]|(?:USD|EUR|GBP)\s?)?[-+\u2212]?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?"
    rf"(?P<suf>{_WORD_SUFFIX}|[kKMB]\b)?(?P<code>\s?(?:USD|EUR|GBP)\b)?"
)
# A count noun right after a number, possibly after one word or a hyphen: "57 trades", "20-day", "30 days
# to expiry", "1,564 bars", "4 full years".
_COUNT_NOUN_RE = re.compile(
    r"[\s-]+(?:[a-z]+\s+)?(?P<noun>trades?|bars?|days?|sessions?|years?|months?|weeks?|tickers?|models?"
    r"|signals?|positions?|entries|exits?|contracts?|shares?|rolls?|lags?|times)\b", re.IGNORECASE)
# What a count counts: a daily bar or session is a trading day; other nouns count themselves.
_SAME_AS = {"bar": "day", "session": "day"}

KINDS = ("percent", "bps", "money", "count", "ratio", "number")
# For a cited number of each kind: the source kinds that can support it, each compared "scaled" (both in
# plain units: 12.5% is 0.125) or "literal" (the numbers as written: 12.5% is 12.5). A ratio (a field
# such as sharpe) supports only a plain number: never a percent, an amount or a count.
KIND_MATCHES: dict[str, tuple[tuple[str, str], ...]] = {
    "percent": (("percent", "scaled"), ("bps", "scaled"), ("number", "scaled"), ("number", "literal")),
    "bps": (("bps", "scaled"), ("percent", "scaled"), ("number", "scaled"), ("number", "literal")),
    "money": (("money", "scaled"), ("number", "scaled"), ("number", "literal")),
    "count": (("count", "literal"), ("number", "literal")),
    "number": (("number", "scaled"), ("number", "literal"), ("ratio", "scaled"), ("count", "scaled"),
               ("percent", "scaled"), ("bps", "literal"), ("money", "scaled")),
}
# JSON field names that give a plain JSON number its kind and the scale from its unit to plain units,
# first match wins (the engine's fields: distill.workbench.backtest.summarise and run_backtest). A
# fraction field (total_return: 0.134) is a percent written as a fraction; a _pct field one written in
# percent (total_return_pct: 13.4).
_KEY_KINDS = (
    (re.compile(r"bps$|basis_points"), "bps", 1e-4),
    (re.compile(r"pct|percent"), "percent", 1e-2),
    (re.compile(r"return|cagr|drawdown|_rate$|^rate$|fraction"), "percent", 1.0),
    (re.compile(r"sharpe|sortino|calmar|ratio$|factor$"), "ratio", 1.0),
    (re.compile(r"_paid$|pnl|capital|cash"), "money", 1.0),
    (re.compile(r"^(?:n|num)_|_count$|^count$|(?:^|_)(?:trades|bars|days|sessions|years|months|weeks)(?:_|$)"),
     "count", 1.0),
)
_KEY_NOUN_RE = re.compile(r"(?:^|_)(trades|bars|days|sessions|years|months|weeks)(?:_|$)")


@dataclass(frozen=True)
class GroundingResult:
    """Uniform verdict for one trace; reason is None when kept, else one of REASONS."""

    kept: bool
    reason: str | None
    ungrounded: list[str]


def _mask(text: str, pattern: re.Pattern[str]) -> str:
    """Blank out matches with spaces, keeping offsets so tokens can be reported as written."""
    return pattern.sub(lambda m: " " * len(m.group()), text)


def _blank_if_digits(m: re.Match[str]) -> str:
    """An identifier match blanked out if it contains a digit (else kept: plain words and units)."""
    return " " * len(m.group()) if _DIGIT_RE.search(m.group()) else m.group()


def _scale(suffix: str | None) -> float:
    """Multiplier from written units to plain units ('%' -> 0.01, 'k' -> 1000); 1 when none."""
    if not suffix:
        return 1.0
    key = " ".join(suffix.split()).lstrip("-").lower()  # "-bps" (hyphen-joined) reads as "bps"
    return _SCALE.get(key, 1.0)  # 'x'/'×' multipliers are plain values


def _cited_matches(answer: str) -> list[re.Match[str]]:
    """Matches of cited numbers, after masking code, call arguments, list markers, dates, identifiers."""
    text = answer
    for pattern in (_CODE_RE, _CALL_ARGS_RE, _LIST_MARKER_RE, _DATE_RE):
        text = _mask(text, pattern)
    text = _IDENT_RE.sub(_blank_if_digits, text)
    out = []
    for m in _CITED_RE.finditer(text):
        bare = not (m["s1"] or m["s2"] or m["cur"] or m["exp"] or m["suf"] or m["code"])
        if bare and len(m["num"]) == 4 and m["num"].isdigit() and 1900 <= int(m["num"]) <= 2100:
            continue  # a year
        out.append(m)
    return out


def cited_numbers(answer: str) -> list[str]:
    """The numbers an answer cites, as written, in order (duplicates kept)."""
    return [m["tok"].strip() for m in _cited_matches(answer)]


def _kind(m: re.Match[str], text: str) -> tuple[str, str | None]:
    """The kind of a number match (cited or source) from its unit, currency or the count noun after it,
    with the count's noun family (None for every other kind)."""
    unit = " ".join((m["suf"] or "").split()).lstrip("-").lower()
    if unit in ("%", "percent", "per cent"):
        return "percent", None
    if unit in ("bp", "bps", "basis points"):
        return "bps", None
    if m["cur"] or m["code"]:
        return "money", None
    if not unit and (noun := _COUNT_NOUN_RE.match(text, m.end())):
        return "count", _family(noun["noun"])
    return "number", None


def _family(noun: str) -> str:
    """'Trades' -> 'trade', 'bars' -> 'day': what a count counts, so 57 trades is not 57 years."""
    word = noun.lower()
    singular = word[:-3] + "y" if word.endswith("ies") else word.removesuffix("s")
    return _SAME_AS.get(singular, singular)


# A source number: kind, the count's noun family (None when not a count, or a count whose field names
# no noun: num_x), its absolute value as written and in plain units.
_Entry = tuple[str, str | None, float, float]


@dataclass(frozen=True)
class _Source:
    """Source numbers by (kind, noun family): sorted absolute values, scaled and literal."""

    scaled: dict[tuple[str, str | None], list[float]]
    literal: dict[tuple[str, str | None], list[float]]

    def values(self, mode: str, kind: str, noun: str | None, any_noun: bool) -> list[list[float]]:
        """The value lists of a kind: for a count, those of `noun` and of counts naming none, or of every
        noun when `any_noun` (a plain cited number says nothing of what it counts)."""
        table = self.scaled if mode == "scaled" else self.literal
        return [v for (k, n), v in table.items() if k == kind and (any_noun or n in (noun, None))]


def _key_kind(key: str) -> tuple[str, str | None, float] | None:
    """(kind, noun family, scale) a JSON field name gives its plain numbers; None when it says nothing."""
    name = key.lower()
    for pattern, kind, scale in _KEY_KINDS:
        if pattern.search(name):
            noun = _KEY_NOUN_RE.search(name)
            return kind, _family(noun[1]) if kind == "count" and noun else None, scale
    return None


def _add(out: list[_Entry], kind: str, noun: str | None, literal: float, scale: float) -> None:
    """Record a source number; a count that is not whole ("0.7 trades") counts nothing and supports nothing."""
    if kind == "count" and literal != round(literal):
        return
    out.append((kind, noun, literal, literal * scale))


def _text_numbers(text: str, hint: tuple[str, str | None, float] | None, out: list[_Entry]) -> None:
    """Every number in a text; a plain number takes the kind of the field it is the value of (`hint`)."""
    masked = _mask(text, _DATE_RE)
    for m in _SOURCE_RE.finditer(masked):
        literal = abs(float(m["num"].replace(",", "") + (m["exp"] or "")))
        kind, noun = _kind(m, masked)
        scale = _scale(m["suf"])
        if kind == "number" and hint and not m["suf"]:
            kind, noun, scale = hint
        _add(out, kind, noun, literal, scale)


def _walk(value: Any, key: str, out: list[_Entry]) -> None:
    """Numbers of a parsed JSON value; each takes its kind from the nearest field name."""
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(v, str(k), out)
    elif isinstance(value, list):
        for v in value:
            _walk(v, key, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        kind, noun, scale = _key_kind(key) or ("number", None, 1.0)
        _add(out, kind, noun, abs(float(value)), scale)
    elif isinstance(value, str):
        _text_numbers(value, _key_kind(key), out)


def _source_numbers(tool_outputs: list[str]) -> _Source:
    """Every number of the outputs with its kind: JSON is read as JSON (field names give kinds), any
    other text as text."""
    found: list[_Entry] = []
    for output in tool_outputs:
        try:
            parsed = json.loads(output)
        except (TypeError, ValueError):
            _text_numbers(output, None, found)
            continue
        _walk(parsed, "", found)
    scaled: dict[tuple[str, str | None], list[float]] = {}
    literal: dict[tuple[str, str | None], list[float]] = {}
    for kind, noun, lit, sc in found:
        literal.setdefault((kind, noun), []).append(lit)
        scaled.setdefault((kind, noun), []).append(sc)
    return _Source({k: sorted(v) for k, v in scaled.items()}, {k: sorted(v) for k, v in literal.items()})


def _within(values: list[float], lo: float, hi: float, integer: bool) -> bool:
    """Some value in [lo, hi] (sorted `values`); with `integer`, a whole one."""
    i = bisect.bisect_left(values, lo)
    while i < len(values) and values[i] <= hi:
        if not integer or values[i] == round(values[i]):
            return True
        i += 1
    return False


def _supported(m: re.Match[str], answer: str, source: _Source) -> bool:
    """True if a source number of a compatible kind (KIND_MATCHES; a count of the same noun family or of
    none), in the answer's units and rounded to its precision, equals the cited number."""
    num = m["num"].replace(",", "")
    decimals = len(num.partition(".")[2]) - int((m["exp"] or "e0")[1:])
    n = abs(float(num + (m["exp"] or "")))
    tol = 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12  # source rounded to the answer's precision
    kind, noun = _kind(m, answer)
    for source_kind, mode in KIND_MATCHES[kind]:
        factor = _scale(m["suf"]) if mode == "scaled" else 1.0
        integer = kind == "count" and source_kind != "count"  # a plain source counts only if whole
        for values in source.values(mode, source_kind, noun, any_noun=kind != "count"):
            if _within(values, (n - tol) * factor, (n + tol) * factor, integer):
                return True
    return False


def _ungrounded(answer: str, source: _Source) -> list[str]:
    out: list[str] = []
    for m in _cited_matches(answer):
        tok = m["tok"].strip()
        if tok not in out and not _supported(m, answer, source):
            out.append(tok)
    return out


def ungrounded_numbers(answer: str, tool_outputs: list[str]) -> list[str]:
    """Cited numbers (as written, in order, de-duplicated) that no tool output supports."""
    return _ungrounded(answer, _source_numbers(tool_outputs))


def _decimal_forms(value: float) -> set[str]:
    """`value` written with 0 to 4 decimals, with and without thousands separators."""
    forms = set()
    for decimals in range(5):
        forms |= {f"{value:.{decimals}f}", f"{value:,.{decimals}f}"}
    return forms


class CitableNumbers:
    """The numbers of one conversation's tool outputs, parsed once, and the forms an answer may write them in.

    The grounded decoder (distill.student.constrain) asks this, token by token, the question the scorer
    asks of the finished answer: `ungrounded` is `ungrounded_numbers` on the same sources, so an answer
    the decoder lets through is grounded by construction.
    """

    def __init__(self, tool_outputs: list[str]) -> None:
        self._source = _source_numbers(tool_outputs)
        self._dates = sorted({m.group() for o in tool_outputs for m in _DATE_RE.finditer(o) if m.group()[0].isdigit()})
        self._forms: list[tuple[str, str]] | None = None

    def ungrounded(self, answer: str) -> list[str]:
        """`ungrounded_numbers(answer, tool_outputs)`, without parsing the outputs again."""
        return _ungrounded(answer, self._source)

    def forms(self) -> list[tuple[str, str]]:
        """(digits, unit) pairs that `ungrounded` accepts written alone: every source value in plain units,
        as written, in percent and in bps, at 0-4 decimals, with and without separators; and the dates the
        outputs hold. A superset of what an answer needs: the decoder checks each completion in context."""
        if self._forms is None:
            scaled = {v for vs in self._source.scaled.values() for v in vs}
            literal = {v for vs in self._source.literal.values() for v in vs}
            candidates = {(d, "") for v in scaled | literal for d in _decimal_forms(v)}
            candidates |= {(d, "%") for v in scaled for d in _decimal_forms(100 * v)}
            candidates |= {(d, " bps") for v in scaled for d in _decimal_forms(1e4 * v)}
            self._forms = sorted((d, u) for d, u in candidates if len(d) <= 16 and not self.ungrounded(d + u))
            self._forms += [(date, "") for date in self._dates]
        return self._forms


def _is_error(output: str) -> bool:
    """A tool output that is a JSON object with an 'error' key (tools.execute's failure shape)."""
    try:
        parsed = json.loads(output)
    except (TypeError, ValueError):
        return False
    return isinstance(parsed, dict) and "error" in parsed


def check_trace(final_answer: str | None, tool_outputs: list[str], *,
                reject_tool_errors: bool = True, teacher_error: str | None = None) -> GroundingResult:
    """Verdict for one trace; reasons are checked in REASONS order, the first that applies wins.

    reject_tool_errors=False keeps a trace whose tools all failed (e.g. to teach the student to report
    a tool error); its answer must still be grounded."""
    if teacher_error:
        return GroundingResult(False, "teacher_error", [])
    if not final_answer or not final_answer.strip():
        return GroundingResult(False, "no_final_answer", [])
    ungrounded = ungrounded_numbers(final_answer, tool_outputs)
    if reject_tool_errors and tool_outputs and all(_is_error(o) for o in tool_outputs):
        return GroundingResult(False, "tool_error", ungrounded)  # answered from a failed tool
    if ungrounded:
        return GroundingResult(False, "ungrounded_number", ungrounded)
    return GroundingResult(True, None, [])


def filter_traces(df: pd.DataFrame, *, reject_tool_errors: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split traces into (kept, rejected), both with `ungrounded` (JSON list), rejected with `reason`."""
    errors = df["teacher_error"] if "teacher_error" in df else [None] * len(df)  # absent: no teacher failed
    results = [
        check_trace(answer if isinstance(answer, str) else None, tool_outputs(outputs),
                    reject_tool_errors=reject_tool_errors, teacher_error=error if isinstance(error, str) else None)
        for answer, outputs, error in zip(df["final_answer"], df["tool_outputs"], errors)
    ]
    out = df.assign(ungrounded=[json.dumps(r.ungrounded) for r in results])
    kept_mask = pd.Series([r.kept for r in results], index=out.index, dtype=bool)
    kept = out[kept_mask].reset_index(drop=True)
    rejected = out[~kept_mask].assign(
        reason=[r.reason for r in results if not r.kept]
    ).reset_index(drop=True)
    return kept, rejected
