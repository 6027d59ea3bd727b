"""Constrained greedy decoding: the student cannot write a number its tools did not return, a tool call that
does not match its tool's schema, or the same sentence twice (config `predict.constrain`).

* numbers: while the student writes text (not inside `<tool_call>`), a token is accepted only if the text
  it makes is grounded in this conversation's tool outputs by the ruler's own matcher
  (distill.dataset.grounding.CitableNumbers, the function the scorer calls): every number already closed
  is supported, and a number still being written (digits at the end of the text) can be completed to a
  supported one within the tokens the budget has left (one of `CitableNumbers.forms`, checked in context,
  e.g. "13.4" only as "13.4%" where the source is a fraction). The end token and the budget's last token
  need every number closed and supported. So a final answer is grounded by construction; the tests check it token by token against
  `ungrounded_numbers` on random adapters. Stricter than the matcher in two ways, both loopholes a trained
  student found: letters glued to a number ("-10.2ebted", "500.0000st") must be a unit (GLUED_SUFFIXES),
  since the matcher reads digits before letters as an identifier and checks none of them; and a number may
  not start with a zero before a digit ("-02.0", "0100-01-01"), which the matcher reads as another number
  (02.0 = 2.0) or as a date it does not check. Neither occurs in any gold answer.
* tool_calls: an llguidance grammar for the whole turn (free text without '<', then `<tool_call>` blocks
  whose JSON is {"name": <tool>, "arguments": <that tool's input_schema>}, with json.dumps' separators as
  the renderer writes them, free strings and decimals bounded), its token mask applied to the logits at
  every step. Unknown tools, bad JSON
  and bad arguments (enums, date patterns, numeric ranges, no unknown keys) cannot be written; a call under
  way when the token budget runs out may run on up to CALL_EXTENSION more tokens to close.
  docs/design.md "Constrained decoding" says why llguidance (mask time per token measured on this CPU).
* repeats (`block`, `stop` or `off`): a token that would repeat a run of REPEAT_WORDS words, or end a
  sentence (. ! ? or a newline) equal to an earlier one of the turn, is rejected (`block`, the no-repeat
  rule: the next best token is taken), or ends the turn there, cut back to its last complete sentence
  (`stop`). SmolLM2 otherwise loops "It is a daily close prices and volume (...) model" until its budget
  ends. bench/repeat_rule.py measures the held-out judge of each; config states the choice.

Checking is lazy: the candidates are tried in logit order and the first acceptable one is taken, which is
the argmax of the constrained distribution. Most tokens need no check at all: a token without a digit, far
from any digit and ending no sentence, cannot change what the matcher reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import numpy as np
import torch

from distill.dataset.grounding import CitableNumbers
from distill.student.chat import CALL_END, IM_END, TOOL_CALL_RE

# An open number at the end of the text: digits with the separators a number or date goes on with.
_OPEN_NUMBER = re.compile(r"\d[\d,.:/\-]*\Z")  # \Z: "$" also matches before a final newline
_DIGIT = re.compile(r"\d")
# Letters glued to the end of a number that starts a word ("-10.2ebted", "57trades"): the matcher cites none of
# these (digits before a letter are an identifier to it), so a student could write any number that way.
_GLUED = re.compile(r"(?<![\w.,])\d[\d,.]*(?P<glue>[^\W\d_]\w*)")
# What may follow a number directly: the units the matcher reads ("10k", "25bps", "1.5x"). Not ordinals: the
# matcher cites none ("-0th percentile" let a student write any digit).
GLUED_SUFFIXES = frozenset({"k", "K", "M", "B", "x", "bp", "bps", "bn", "mn"})
# A number that starts with a zero before a digit ("02.0", "-07", "0100-01-01"); a date's "-01" is not one.
_LEADING_ZERO = re.compile(r"(?<![\w.,:/-])-?0\d")
_GLUED_PREFIXES = frozenset(s[:i] for s in GLUED_SUFFIXES for i in range(1, len(s) + 1))
SENTENCE_END = re.compile(r"[.!?\n]")
# How far back a token without digits can change what the matcher reads (a count noun after a word).
_REACH = 64
_CLOSERS = ("", ".", ")")  # a written number may end as it is, as a list marker "1." or "(1)"
_CANDIDATES = (16, 512)  # logits tried, best first, before the whole vocabulary is sorted (a full sort of
# 49k logits costs ~12 ms; the base model's rambling needs it at one step in five)
REPEAT_WORDS = 6  # a run of this many words may occur once in a turn
MAX_STRING = 200  # characters of a free string argument in the grammar (a search query is a few words)
NUMBER_STEP = 0.0001  # a number argument has at most four decimals in the grammar (a bps fee needs none)
CALL_EXTENSION = 256  # tokens a call under way at the end of the budget may take to close


@dataclass(frozen=True)
class ConstrainConfig:
    """`predict.constrain` from config.yaml."""

    numbers: bool
    tool_calls: bool
    repeats: str  # one of REPEAT_MODES

    @classmethod
    def from_cfg(cls, cfg: dict) -> ConstrainConfig:
        return cls(numbers=cfg["numbers"], tool_calls=cfg["tool_calls"], repeats=cfg["repeats"])

    @property
    def any(self) -> bool:
        return self.numbers or self.tool_calls or self.repeats != "off"


REPEAT_MODES = ("block", "stop", "off")
UNCONSTRAINED = ConstrainConfig(numbers=False, tool_calls=False, repeats="off")
_LLG_TOKENIZERS: dict[int, Any] = {}


def _llg_tokenizer(tokenizer: Any) -> Any:
    """llguidance's view of a Hugging Face tokenizer (built once per tokenizer: ~0.5 s for 49k tokens)."""
    key = id(tokenizer)
    if key not in _LLG_TOKENIZERS:
        _LLG_TOKENIZERS[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=len(tokenizer))
    return _LLG_TOKENIZERS[key]


def _bounded(schema: Any) -> Any:
    """`schema` with a `maxLength` of MAX_STRING on every free string (no enum, const, pattern or bound) and a
    `multipleOf` of NUMBER_STEP on every number that has none (else "2.0000000..." runs on until the
    extension ends: seen on the trained student's what-if calls)."""
    if isinstance(schema, list):
        return [_bounded(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _bounded(v) for k, v in schema.items()}
    if out.get("type") == "string" and not {"enum", "const", "pattern", "maxLength", "format"} & set(out):
        out["maxLength"] = MAX_STRING
    if out.get("type") == "number" and "multipleOf" not in out:
        out["multipleOf"] = NUMBER_STEP
    return out


def turn_grammar(tools: list[dict]) -> str:
    """The Lark grammar of one assistant turn: text, then tool calls matching the tools' schemas.

    Free strings (MAX_STRING) and decimals (NUMBER_STEP) are bounded so that every call can end within the
    budget's extension; the integer part of a number is bounded only by the schema's own maximum. With no
    tools the turn is text alone: no `<tool_call>` can be written."""
    if not tools:
        return 'start: TEXT?\nTEXT: /[^<]+/\n'
    bodies = [{"type": "object", "properties": {"name": {"const": t["name"]},
                                                "arguments": _bounded(t.get("input_schema") or {"type": "object"})},
               "required": ["name", "arguments"], "additionalProperties": False} for t in tools]
    schema = {"anyOf": bodies, "x-guidance": {"whitespace_flexible": False, "item_separator": ", ",
                                              "key_separator": ": "}}
    return ('start: TEXT? (call TEXT?)*\n'
            'call: "<tool_call>" body "</tool_call>"\n'
            f'body: %json {json.dumps(schema)}\n'
            'TEXT: /[^<]+/\n')


class Constrainer:
    """What one decoder needs to constrain its turns: the tokenizer's pieces and the tools' grammar."""

    def __init__(self, tokenizer: Any, tools: list[dict], config: ConstrainConfig) -> None:
        self.tokenizer, self.config = tokenizer, config
        self.eos_id = tokenizer.convert_tokens_to_ids(IM_END)
        self._grammar = None
        if config.tool_calls:
            self._llg = _llg_tokenizer(tokenizer)
            self._grammar = llguidance.grammar_from("lark", turn_grammar(tools))
            error = llguidance.LLMatcher.validate_grammar(self._grammar, self._llg)
            if error:
                raise ValueError(f"tool-call grammar for {[t['name'] for t in tools]} is invalid: {error}")
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        text = [tokenizer.convert_tokens_to_string([p]) if p is not None else "" for p in pieces]
        # Tokens that write a digit: far from a number, the only ones the number rule checks.
        self.digit = frozenset(i for i, t in enumerate(text) if _DIGIT.search(t))
        # Tokens that can change the repeat rule's verdict: those that end in a non-word character (the last
        # word is complete) or end a sentence; a token ending inside a word adds neither a word nor a sentence.
        self.repeat_break = frozenset(i for i, t in enumerate(text)
                                      if not t[-1:].isalnum() or SENTENCE_END.search(t))

    def turn(self, tool_outputs: list[str]) -> TurnConstraint:
        """The constraint of one new assistant turn of a conversation whose tools returned `tool_outputs`."""
        matcher = llguidance.LLMatcher(self._llg, self._grammar, log_level=0) if self._grammar else None
        numbers = CitableNumbers(tool_outputs) if self.config.numbers else None
        return TurnConstraint(self, matcher, numbers)


class TurnConstraint:
    """One turn being generated: `pick` chooses the next token, `feed` records the one taken."""

    def __init__(self, owner: Constrainer, matcher: Any, numbers: CitableNumbers | None) -> None:
        self.owner, self.matcher, self.numbers = owner, matcher, numbers
        self.ids: list[int] = []
        self.text = ""
        self._mask = llguidance.torch.allocate_token_bitmask(1, owner._llg.vocab_size) if matcher else None
        self._viable: dict[tuple[int, str], int | None] = {}  # (head length, open number) -> _completion
        self.cut: int | None = None  # `stop` mode: the characters of `text` that count, once a repeat ended it

    @property
    def in_call(self) -> bool:
        """Inside a `<tool_call>` block not yet closed (the grammar, not the number rule, governs it)."""
        return self.text.rfind("<tool_call>") > self.text.rfind(CALL_END)

    def pick(self, logits: torch.Tensor, remaining: int) -> int:
        """The highest-scoring acceptable token for `logits` [vocab]; `remaining`: tokens left in the budget
        after this one (an open number must be completable within them)."""
        logits = logits.clone()
        if self.matcher is not None:
            llguidance.torch.fill_next_token_bitmask(self.matcher, self._mask, 0)
            logits[~self._allowed(len(logits))] = float("-inf")
        if self.in_call or not (self.numbers or self.owner.config.repeats != "off"):
            return int(logits.argmax())
        tried = 0
        for k in (*_CANDIDATES, None):
            whole = k is None or k >= len(logits)
            order = (logits.argsort(descending=True) if whole else logits.topk(k).indices).tolist()
            for token in order[tried:]:
                if logits[token] == float("-inf"):
                    return self.owner.eos_id
                refused = self._refusal(token, remaining)
                if refused is None:
                    return token
                if refused == "repeat" and self.owner.config.repeats == "stop" and self._stop():
                    return self.owner.eos_id
            tried = len(order)
        return self.owner.eos_id  # nothing acceptable: end the turn (not expected: the end token closes text)

    def _allowed(self, vocab: int) -> torch.Tensor:
        """The grammar's bitmask as booleans [vocab] (unpacked with numpy: llguidance's torch.compile'd kernel
        takes ~6 ms a call on this CPU)."""
        bits = np.unpackbits(self._mask[0].numpy().view(np.uint8), bitorder="little")
        allowed = torch.zeros(vocab, dtype=torch.bool)
        n = min(vocab, len(bits))
        allowed[:n] = torch.from_numpy(bits[:n].astype(bool))
        return allowed

    def _stop(self) -> bool:
        """`stop` mode: end the turn at its last complete sentence, if the end token may be written there."""
        closed = self.text.rfind(CALL_END)  # never cut into a call ("0.5" holds a sentence end)
        floor = closed + len(CALL_END) if closed >= 0 else 0
        cut = max((m.end() for m in SENTENCE_END.finditer(self.text, floor)), default=floor)
        if self.numbers is not None and self.numbers.ungrounded(TOOL_CALL_RE.sub("", self.text[:cut])):
            return False
        self.cut = cut
        return True

    @property
    def final_text(self) -> str:
        """The turn as it counts: what was generated, or in `stop` mode up to where the repeat was cut."""
        return self.text if self.cut is None else self.text[: self.cut]

    def feed(self, token: int) -> None:
        if self.matcher is not None and not self.matcher.consume_token(token):
            raise AssertionError(f"grammar refused token {token}: {self.matcher.get_error()}")
        self.ids.append(token)
        self.text = self.owner.tokenizer.decode(self.ids, skip_special_tokens=True)

    # ---- the rules --------------------------------------------------------------------------------------

    def _refusal(self, token: int, remaining: int) -> str | None:
        """Which rule refuses `token` ("repeat" or "number"), or None when it may be written."""
        owner = self.owner
        end = token == owner.eos_id
        near = bool(_DIGIT.search(self.text[-_REACH:]))
        check_numbers = self.numbers is not None and (end or remaining <= 0 or token in owner.digit or near)
        check_repeat = owner.config.repeats != "off" and (end or token in owner.repeat_break)
        if not (check_numbers or check_repeat):
            return None
        text = self.text if end else self.owner.tokenizer.decode([*self.ids, token], skip_special_tokens=True)
        answer = TOOL_CALL_RE.sub("", text)  # what parse_assistant calls the turn's content
        if check_repeat and _repeats(answer, closed=end):
            return "repeat"
        if check_numbers and (_malformed(answer, closed=end)
                              or not self._grounded(answer, remaining=-1 if end else remaining)):
            return "number"
        return None

    def _grounded(self, answer: str, remaining: int) -> bool:
        """Every closed number supported, and the open one (digits at the end) completable to a supported one
        within `remaining` tokens (counted as characters, an upper bound: every character is a token);
        with none remaining (or the end token) every number must be closed."""
        assert self.numbers is not None
        match = _OPEN_NUMBER.search(answer) if remaining > 0 else None
        if match is None:
            return not self.numbers.ungrounded(answer)
        head, open_number = answer[: match.start()], match.group()
        if self.numbers.ungrounded(head):
            return False
        shortest = self._completion(head, open_number)
        return shortest is not None and shortest <= remaining

    def _completion(self, head: str, number: str) -> int | None:
        """Characters of the shortest grounded completion of the open `number` after `head`, with the token
        that closes it: as written (or as a list marker), one of the citable forms it begins, or, split at a
        separator ("10-2"), its parts in turn; None when there is none."""
        key = (len(head), number)
        if key not in self._viable:
            assert self.numbers is not None
            lengths = [len(closer) + 1 for closer in _CLOSERS
                       if not self.numbers.ungrounded(f"{head}{number}{closer} ")]
            lengths += [len(digits) + len(unit) - len(number) + 1 for digits, unit in self.numbers.forms()
                        if digits.startswith(number) and not self.numbers.ungrounded(f"{head}{digits}{unit} ")]
            cut = max(number.rfind(sep) for sep in "-/:")
            if not lengths and 0 < cut < len(number) - 1:
                closed_part = head + number[: cut + 1]
                rest = None if self.numbers.ungrounded(closed_part) else self._completion(closed_part, number[cut + 1 :])
                lengths += [] if rest is None else [rest]
            self._viable[key] = min(lengths) if lengths else None
        return self._viable[key]


def _malformed(text: str, closed: bool) -> bool:
    """A number in the last _REACH characters written in a form the matcher does not check: with a leading
    zero, or with letters glued to it that are not a unit (the word at the end, unless `closed`, may still be
    the prefix of one: "25b" on its way to "25bps")."""
    start = max(0, len(text) - _REACH)  # the lookbehinds see before the start
    if _LEADING_ZERO.search(text, start):
        return True
    for match in _GLUED.finditer(text, start):
        at_end = match.end() == len(text) and not closed
        if match.group("glue") not in (_GLUED_PREFIXES if at_end else GLUED_SUFFIXES):
            return True
    return False


def _normalise(sentence: str) -> str:
    return " ".join(sentence.lower().strip(" .!?\n").split())


def _repeats(text: str, closed: bool) -> bool:
    """The text repeats itself: its last REPEAT_WORDS words (once the last is complete) occur earlier, the
    loop that never ends its sentence ("It is a daily close prices and volume ... model" again and again),
    or two sentences of at least three words are the same (a sentence counts once its end, . ! ? or a
    newline, is written, or, with `closed`, when the turn ends)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) > REPEAT_WORDS and (closed or not text[-1:].isalnum()):
        tail = words[-REPEAT_WORDS:]
        if any(words[i : i + REPEAT_WORDS] == tail for i in range(len(words) - REPEAT_WORDS)):
            return True
    parts = [p for p in re.split(r"(?<=[.!?\n])", text) if len(p.split()) >= 3]
    if parts and not closed and not SENTENCE_END.search(parts[-1][-1]):
        parts.pop()  # still being written
    seen = [_normalise(p) for p in parts]
    return len(seen) != len(set(seen))
