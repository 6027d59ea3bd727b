"""What counts as an answer: the one definition the scorer, the judge and the report share.

A small student that has not learnt to answer still ends its turn with *some* text: an empty turn, an
imitation of a `<tool_response>` block, the tool's JSON pasted back, or the question repeated. None of
these answers the user, so none may be scored as grounded or judged (an answer with no numbers is
trivially "grounded", and pasted tool JSON contains every gold number). `check_answer` names the
first problem from ANSWER_REASONS, checked in this order:

- no_answer           the final text is empty or whitespace;
- markup_in_answer    it holds chat or tool markup (`<tool_call>`, `<tool_response>`, `<|im_end|>`, ...),
                      i.e. the model imitates the protocol instead of talking to the user;
- echoed_tool_output  it is mostly tool-output JSON: it parses as a JSON object or array, or at least
                      `scoring.json_share` of its non-space characters are JSON key-value pairs and brackets;
- echoed_question     it adds no content word to the question (STOP_WORDS aside), e.g. the question
                      repeated, or only the model's name;
- no_answer_content   it states none of the facts its category asks for (CONTENT): no number for a
                      performance or what_if question, no data source for a data_source question, no
                      methodology fact (distill.ruler.claims.FACTS) for a methodology question; a refusal
                      ("I don't know.") after a search is no answer.

A grounded answer (`grounded_answer`) is an answer whose cited numbers the tool outputs of the same run
support: the scorer's `grounded` metric and the served assistant's fallback both ask it here.

The definition is applied where predictions are scored, not where they are generated, so that a
change to it re-runs scoring and never the expensive generation (docs/design.md, "Incrementality").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from distill import config
from distill.dataset.grounding import cited_numbers, ungrounded_numbers
from distill.ruler.claims import source_terms, stated_facts
from distill.ruler.text import content_tokens

ANSWER_REASONS = ("no_answer", "markup_in_answer", "echoed_tool_output", "echoed_question", "no_answer_content")
# What each category's answer must state at least one of, and how to say it is missing.
CONTENT = {
    "performance": (lambda text, _claims: cited_numbers(text), "states no number"),
    "what_if": (lambda text, _claims: cited_numbers(text), "states no number"),
    "data_source": (source_terms, "names no data source"),
    "methodology": (stated_facts, "states no methodology fact"),
}

_MARKUP = re.compile(
    r"</?(?:tool_call|tool_response|tool_use|tool_result|tools|function_calls?|invoke)\b[^>]*>"
    r"|<\|im_(?:start|end)\|>|<\|endoftext\|>",
    re.IGNORECASE,
)
# A JSON key with its value (a string, possibly cut off, a number or a literal), or a bracket.
_JSON_PART = re.compile(
    r'"(?:[^"\\\n]|\\.)*"\s*:\s*(?:"(?:[^"\\]|\\.)*"?|-?\d[\d.eE+-]*|true|false|null)?'
    r"|[{}\[\]]"
)


@dataclass(frozen=True)
class AnswerCheck:
    """`answered` is False exactly when `reason` (one of ANSWER_REASONS) is set; `detail` says why."""

    answered: bool
    reason: str | None = None
    detail: str = ""


def json_share(text: str) -> float:
    """Share of the text's non-space characters that are JSON key-value pairs or brackets."""
    total = len("".join(text.split()))
    if not total:
        return 0.0
    covered = sum(len("".join(m.group().split())) for m in _JSON_PART.finditer(text))
    return covered / total


def _is_json_document(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def check_answer(answer: str | None, question: str = "", category: str | None = None,
                 cfg: dict | None = None, claims: dict | None = None) -> AnswerCheck:
    """Whether a final answer answers the question; the first failing rule of the module docstring.

    `category` (one of CONTENT's keys) turns on the no_answer_content rule; `cfg` is the `scoring`
    config section (json_share) and `claims` the `claims` one, the schema's defaults without them.
    """
    cfg = cfg or config.defaults("scoring")
    text = (answer or "").strip()
    if not text:
        return AnswerCheck(False, "no_answer", "empty final answer")
    if markup := _MARKUP.search(text):
        return AnswerCheck(False, "markup_in_answer", f"holds {markup.group()!r}")
    share = json_share(text)
    if _is_json_document(text) or share >= cfg["json_share"]:
        return AnswerCheck(False, "echoed_tool_output", f"{share:.0%} JSON")
    if question and not content_tokens(text) - content_tokens(question):
        return AnswerCheck(False, "echoed_question", "adds no word to the question")
    if category in CONTENT and not CONTENT[category][0](text, claims):
        return AnswerCheck(False, "no_answer_content", CONTENT[category][1])
    return AnswerCheck(True)


def grounded_answer(answer: str | None, question: str, category: str | None, outputs: list[str],
                    cfg: dict | None = None, claims: dict | None = None) -> tuple[AnswerCheck, list[str]]:
    """(the answer check, the cited numbers no tool output supports): an answer is grounded when it is
    an answer and that list is empty. A non-answer is never grounded, and its numbers are not checked."""
    check = check_answer(answer, question, category, cfg, claims)
    return check, ungrounded_numbers(answer or "", outputs) if check.answered else []
