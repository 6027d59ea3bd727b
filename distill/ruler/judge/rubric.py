"""The offline rubric judge (`judge.backend: rubric`): reference-guided, 0–1, deterministic, no network.

`RubricJudge` checks facts, not phrasing, in this order:
1. Not an answer (distill.ruler.answers): score 0, reason = the answer reason.
2. Key facts of the row, each worth one point:
   - the gold answer's numbers, in categories listed in `rubric.number_categories` (the questions
     that ask for figures); a gold number is stated when the answer supports it under the grounding
     rules (distill.dataset.grounding.ungrounded_numbers, the one matcher: kinds, percent ↔ fraction,
     rounding, units; a count only by a whole count of the same noun, so "0.7 trades" or "7 years"
     does not state "7 trades");
   - data_source: the data sources the registry lists for the model (distill.ruler.claims.registry_sources);
   - other categories: the named facts (distill.ruler.claims.FACTS) the gold answer states, except facts
     the registry contradicts for this model (so copying bad gold earns nothing).
   Wrong facts add a point to the denominator, so a wrong number costs as much as a missing one:
   - a number the answer cites that neither the gold answer nor the run's tool outputs support;
   - a model of the registry the answer names that neither the question nor the gold names (and a
     ticker, in the number categories, where results belong to one ticker).
   facts = stated key facts / (key facts + wrong facts).
3. wording: share of the gold answer's content words that the question does not already contain
   (compared on their first WORD_STEM letters) found in the answer; a weak proxy, so it weighs least.
   An echo of the question earns nothing here by construction.
4. score = weighted mean of the components that apply (`rubric.weights`); with none, 0.
5. A registry contradiction (distill.ruler.claims.contradictions), or an answer about another model or
   ticker (it names one and not the question's), caps the score at `rubric.contradiction_cap`: a
   fluent answer with a wrong fact about the model must not pass.
"""

from __future__ import annotations

from typing import Any

from distill import config
from distill.dataset.grounding import ungrounded_numbers
from distill.io import tool_outputs
from distill.ruler.claims import WRONG_FOR_KIND, contradictions, named_entities, registry_sources, source_terms, stated_facts
from distill.ruler.judge.base import JudgeResult, answer_check
from distill.ruler.text import content_tokens
from distill.workbench.registry import MODELS, ModelSpec

WORD_STEM = 5  # letters compared, so "fitted"/"fit" and "validated"/"validation" count as one word


def _stems(text: str) -> set[str]:
    return {t[:WORD_STEM] for t in content_tokens(text) if not t.isdigit()}


def _key_facts(gold: str, spec: ModelSpec | None, category: str, claims: dict) -> set[str]:
    """The named facts a correct answer must state (numbers aside)."""
    if spec is None:
        return set()
    if category == "data_source":
        return registry_sources(spec)
    return stated_facts(gold, claims) - WRONG_FOR_KIND.get(spec.kind, set())


def _answer_facts(answer: str, category: str, claims: dict) -> set[str]:
    """The facts the answer affirms: "does not use volume" earns no volume."""
    return source_terms(answer, claims) if category == "data_source" else stated_facts(answer, claims)


class RubricJudge:
    """Offline reference-guided rubric (module docstring); deterministic, no network."""

    name = "rubric"

    def __init__(self, cfg: dict, claims: dict | None = None) -> None:
        self.cfg = cfg  # the `judge.rubric` config section, defaults filled from the schema
        self.claims = claims or config.defaults("claims")  # how facts are read out of text

    def grade(self, row: dict[str, Any]) -> JudgeResult:
        answer, question = (row.get("pred_answer") or "").strip(), row.get("question") or ""
        check = answer_check(row)
        if not check.answered:
            return JudgeResult(0.0, [check.reason], [check.detail])
        gold, category = (row.get("gold_answer") or "").strip(), row.get("category") or ""
        spec = MODELS.get(row.get("model_id") or "")
        outputs = tool_outputs(row.get("tool_outputs"))
        found: list[tuple[str, str]] = []

        key_numbers = ungrounded_numbers(gold, []) if category in self.cfg["number_categories"] else []
        missing_numbers = ungrounded_numbers(gold, [answer]) if key_numbers else []
        key_facts = _key_facts(gold, spec, category, self.claims)
        missing_facts = sorted(key_facts - _answer_facts(answer, category, self.claims))
        wrong_numbers = ungrounded_numbers(answer, [gold, *outputs])
        wrong_entities = sorted(named_entities(answer, tickers=category in self.cfg["number_categories"])
                                - named_entities(f"{question} {gold}"))
        for reason, items in (("missing_number", missing_numbers), ("missing_fact", missing_facts),
                              ("wrong_number", wrong_numbers), ("wrong_entity", wrong_entities)):
            if items:
                found.append((reason, ", ".join(items)))

        parts: dict[str, float] = {}
        wrong = len(wrong_numbers) + len(wrong_entities)
        if key_numbers or key_facts or wrong:
            stated = len(key_numbers) - len(missing_numbers) + len(key_facts) - len(missing_facts)
            parts["facts"] = stated / (len(key_numbers) + len(key_facts) + wrong)
        if gold_words := _stems(gold) - _stems(question):
            parts["wording"] = len(gold_words & _stems(answer)) / len(gold_words)
        weights = self.cfg["weights"]
        score = sum(weights[k] * v for k, v in parts.items()) / sum(weights[k] for k in parts) if parts else 0.0

        if spec is not None and (contradicted := contradictions(answer, spec, category, self.claims)):
            score = min(score, self.cfg["contradiction_cap"])
            found += [("registry_contradiction", f"{c.issue}: {c.detail}") for c in contradicted]
        if wrong_entities and not named_entities(answer) & named_entities(question):
            score = min(score, self.cfg["contradiction_cap"])  # about another model or ticker altogether
        return JudgeResult(round(score, 4), [r for r, _ in found], [d for _, d in found])
