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
                      JSON_SHARE of its non-space characters are JSON key-value pairs and brackets;
- echoed_question     it adds no content word to the question (STOP_WORDS aside), e.g. the question
                      repeated, or only the model's name.

The definition is applied where predictions are scored, not where they are generated, so that a
change to it re-runs scoring and never the expensive generation (docs/design.md, "Incrementality").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from distill.ruler.text import content_tokens

ANSWER_REASONS = ("no_answer", "markup_in_answer", "echoed_tool_output", "echoed_question")
JSON_SHARE = 0.5  # share of non-space characters in JSON structure above which the text is tool output

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


def check_answer(answer: str | None, question: str = "") -> AnswerCheck:
    """Whether a final answer answers the question; the first failing rule of the module docstring."""
    text = (answer or "").strip()
    if not text:
        return AnswerCheck(False, "no_answer", "empty final answer")
    if markup := _MARKUP.search(text):
        return AnswerCheck(False, "markup_in_answer", f"holds {markup.group()!r}")
    share = json_share(text)
    if _is_json_document(text) or share >= JSON_SHARE:
        return AnswerCheck(False, "echoed_tool_output", f"{share:.0%} JSON")
    if question and not content_tokens(text) - content_tokens(question):
        return AnswerCheck(False, "echoed_question", "adds no word to the question")
    return AnswerCheck(True)
