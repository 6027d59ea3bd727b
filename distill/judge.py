"""Reference-guided answer judges, 0–1 (DESIGN.md "Scoring").

`RubricJudge` is the offline default: it checks an answer against the registry's ground truth and the
gold answer's key facts, deterministically and for free. A Claude judge implements the same `Judge`
protocol (a `name` and `grade(row)`), so score files record which judge produced them.

Rubric of RubricJudge, in order:
1. Empty answer: score 0.
2. Components, each 0–1, averaged with WEIGHTS over those that apply to the row:
   numbers  (0.5) share of the numbers cited in the gold answer that the answer reproduces;
   sources  (0.3) data_source questions: share of the registry's data-source key terms the answer names;
   entities (0.2) the model (name or id) and ticker, counted only when the gold answer mentions them;
   wording  (0.2) share of the gold answer's content words the answer uses (a weak proxy for facts that
                  are words, e.g. "Black-Scholes", so it weighs least).
   No component applies (no gold answer): 1.0, so only the registry checks below decide.
3. Each contradiction of the registry multiplies the score by CONTRADICTION_FACTOR (0.3): a train/test
   split (80/20, out-of-sample, held-out) claimed for a rule model; no split or a full-period backtest
   claimed for the ML model; a data-source key term the registry does not list, on a data_source question.
   A fluent answer with a wrong fact must score below any sensible threshold, hence multiplicative.
Negation: a claim is ignored when a negation word ("no", "not", "without", "n't", ...) precedes it within
NEGATION_WINDOW words of the same sentence, so "there is no train/test split" is not a split claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from distill.grounding import ungrounded_numbers
from distill.scoring import content_tokens
from distill.workbench.registry import MODELS, ModelSpec

WEIGHTS = {"numbers": 0.5, "sources": 0.3, "entities": 0.2, "wording": 0.2}
CONTRADICTION_FACTOR = 0.3
NEGATION_WINDOW = 5

# Data-source key terms: the first five occur in registry data sources, the rest in none (always wrong).
SOURCE_TERMS = {
    "close": r"\bclos(?:e|es|ing)\b",
    "volume": r"\bvolumes?\b",
    "high": r"\bhighs?\b(?![\s-]*frequency)",
    "low": r"\blows?\b",
    "black-scholes": r"\bblack[\s-]*scholes\b",
    "intraday": r"\bintraday\b|\bminute\b|\btick data\b|\bhigh[\s-]*frequency\b",
    "fundamentals": r"\bfundamentals?\b|\bearnings\b|\bbalance sheets?\b",
    "news/sentiment": r"\bnews\b|\bsentiment\b",
    "order book": r"\border[\s-]*book\b",
}
SPLIT_CLAIM = (r"\btrain(?:ing)?\s*(?:/|-|and)\s*test\b|\b80\s*/\s*20\b|\b80\s*%\s*/\s*20\s*%"
               r"|\bout[\s-]of[\s-]sample\b|\bheld[\s-]out\b|\bhold[\s-]?out\b|\btest set\b|\btraining set\b")
NO_SPLIT_CLAIM = (r"\b(?:no|without(?:\s+(?:a|an|any))?)\s+(?:train(?:ing)?\s*[/-]\s*test\s+)?split\b"
                  r"|\bnothing is fitted\b|\bnot fitted\b")
FULL_PERIOD_CLAIM = r"\bfull[\s-]period\b|\bentire (?:period|window|history)\b"
_NEGATION = re.compile(r"\b(?:no|not|without|nothing|never|neither|nor|none|\w+n['’]t)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?;:](?:\s|$)")


@dataclass(frozen=True)
class JudgeResult:
    """A 0–1 score and the rubric findings behind it (empty when nothing was wrong)."""

    score: float
    reasons: list[str] = field(default_factory=list)


class Judge(Protocol):
    """What score_predictions needs: a name for the score file and a per-row grade."""

    name: str

    def grade(self, row: dict[str, Any]) -> JudgeResult: ...


def _affirmed(text: str, pattern: str) -> bool:
    """True if `pattern` occurs at least once without a negation shortly before it in its sentence."""
    for m in re.finditer(pattern, text, re.IGNORECASE):
        before = text[:m.start()]
        ends = list(_SENTENCE_END.finditer(before))
        window = before[ends[-1].end():] if ends else before
        if not _NEGATION.search(" ".join(window.split()[-NEGATION_WINDOW:])):
            return True
    return False


def _terms(text: str, affirmed_only: bool = False) -> set[str]:
    """The SOURCE_TERMS keys the text names (only non-negated mentions if `affirmed_only`)."""
    found = _affirmed if affirmed_only else (lambda t, p: re.search(p, t, re.IGNORECASE) is not None)
    return {term for term, pattern in SOURCE_TERMS.items() if found(text, pattern)}


def _contradictions(answer: str, spec: ModelSpec, category: str) -> list[str]:
    """Statements in the answer that the registry says are false for this model."""
    found = []
    if spec.kind == "rule" and _affirmed(answer, SPLIT_CLAIM):
        found.append(f"claims a train/test split for rule-based model {spec.id} (registry: full period)")
    if spec.kind == "ml" and (re.search(NO_SPLIT_CLAIM, answer, re.IGNORECASE)
                              or _affirmed(answer, FULL_PERIOD_CLAIM)):
        found.append(f"claims no train/test split for ML model {spec.id} (registry: 80/20 split)")
    if category == "data_source":
        foreign = _terms(answer, affirmed_only=True) - _terms(spec.data_source)
        if foreign:
            found.append(f"names data source(s) not in the registry for {spec.id}: {sorted(foreign)}")
    return found


def _entity_patterns(spec: ModelSpec | None, ticker: Any) -> dict[str, list[str]]:
    """Ways to name the model (full name, id, id with spaces; any case) and the ticker (as written)."""
    patterns = {}
    if spec is not None:
        names = (spec.name, spec.id, spec.id.replace("_", " "))
        patterns[spec.id] = [rf"(?i)\b{re.escape(n)}\b" for n in names]
    if isinstance(ticker, str) and ticker:
        patterns[ticker] = [rf"\b{re.escape(ticker)}\b"]
    return patterns


def _names(text: str, patterns: list[str]) -> bool:
    return any(re.search(p, text) for p in patterns)


class RubricJudge:
    """Offline reference-guided rubric (module docstring); deterministic, no network."""

    name = "rubric"

    def grade(self, row: dict[str, Any]) -> JudgeResult:
        answer = (row.get("pred_answer") or "").strip()
        if not answer:
            return JudgeResult(0.0, ["empty answer"])
        gold = (row.get("gold_answer") or "").strip()
        category = row.get("category") or ""
        spec = MODELS.get(row.get("model_id") or "")
        parts: dict[str, float] = {}
        reasons: list[str] = []

        gold_numbers = ungrounded_numbers(gold, [])  # nothing supports them: every number gold cites
        if gold_numbers:
            missing = ungrounded_numbers(gold, [answer])
            parts["numbers"] = 1 - len(missing) / len(gold_numbers)
            if missing:
                reasons.append(f"missing gold numbers: {missing}")
        if category == "data_source" and spec is not None:
            expected = _terms(spec.data_source)
            absent = expected - _terms(answer)
            parts["sources"] = 1 - len(absent) / len(expected)
            if absent:
                reasons.append(f"data-source terms not named: {sorted(absent)}")
        entities = {e: p for e, p in _entity_patterns(spec, row.get("ticker")).items() if _names(gold, p)}
        if entities:
            unnamed = [e for e, p in entities.items() if not _names(answer, p)]
            parts["entities"] = 1 - len(unnamed) / len(entities)
            if unnamed:
                reasons.append(f"does not name: {unnamed}")
        gold_words = {t for t in content_tokens(gold) if not t.isdigit()}
        if gold_words:
            parts["wording"] = len(gold_words & content_tokens(answer)) / len(gold_words)

        score = (sum(WEIGHTS[k] * v for k, v in parts.items()) / sum(WEIGHTS[k] for k in parts)
                 if parts else 1.0)
        if spec is not None:
            for contradiction in _contradictions(answer, spec, category):
                score *= CONTRADICTION_FACTOR
                reasons.append(contradiction)
        return JudgeResult(round(score, 4), reasons)


def make_judge(cfg: dict) -> Judge:
    """The judge named by the `judge` config section."""
    if cfg["backend"] == "rubric":
        return RubricJudge()
    raise ValueError(f"judge.backend: unknown backend {cfg['backend']!r}")
