"""Constrained decoding (distill.student.constrain) against the ruler it must agree with.

The number rule is checked token by token on the student's real tokenizer: every token of a grounded
answer (by distill.dataset.grounding.ungrounded_numbers, the scorer's function) is accepted, and an answer
with an ungrounded number is refused at some token or at its end. Random logits (a model that knows
nothing) decoded under all three rules always give turns that parse, calls that match their schemas, and
grounded text, whatever tokens the logits favour.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from distill.dataset.grounding import CitableNumbers, ungrounded_numbers
from distill.student.chat import parse_assistant
from distill.student.constrain import ConstrainConfig, Constrainer, _repeats, turn_grammar
from distill.workbench.tools import TOOLS

BACKTEST = json.dumps({"model_id": "sma_crossover", "ticker": "ACME", "start": "2019-01-02", "end": "2023-12-29",
                       "total_return": 0.134, "cagr": 0.0258, "sharpe": 1.9, "max_drawdown": -0.034,
                       "n_trades": 57, "win_rate": 0.6, "fees_paid": 4879.78, "fee_bps": 10.0})
DOCS = "Costs: fees of 10 bps and slippage of 2 bps; 1,564 bars per ticker; the last 20% is held out."
OUTPUTS = [BACKTEST, DOCS]

GROUNDED = [
    "The total return was 13.4% with a Sharpe of 1.90.",
    "It made 57 trades and paid $4,879.78 in fees.",
    "Max drawdown: -3.4%, win rate 60%, CAGR 2.58%.",
    "Over 2019-01-02 to 2023-12-29 the return was 13%.",
    "1. Return 0.134\n2. Sharpe 1.9",
    "With 10 bps fees and 1,564 bars, the SMA_20 crossover returned 13.4%.",
    "The ML model is tested on the last 20% of the window.",
    "No number here at all.",
]
UNGROUNDED = [
    "The total return was 15.2%.",
    "It made 58 trades.",
    "The Sharpe was 2.4 in 2021.",
    "Fees were $879.78.",
    "It made 13 trades.",  # 13 only as a percent
    "The return was 13.4 points.",  # a percent written as a bare number
    "\n(1000) trades",
]


@pytest.fixture(scope="module")
def constrainer(tokenizer) -> Constrainer:
    return Constrainer(tokenizer, TOOLS, ConstrainConfig(numbers=True, tool_calls=True, repeats="block"))


def _walk(constrainer: Constrainer, text: str) -> tuple[int | None, bool]:
    """Feed `text`'s tokens: the index of the first token the rules refuse (None) and whether the end is accepted."""
    turn = constrainer.turn(OUTPUTS)
    ids = constrainer.tokenizer(text, add_special_tokens=False)["input_ids"]
    for k, token in enumerate(ids):
        if turn._refusal(token, remaining=100) is not None:
            return k, False
        turn.feed(token)
    return None, turn._refusal(constrainer.eos_id, remaining=100) is None


@pytest.mark.parametrize("answer", GROUNDED)
def test_every_token_of_a_grounded_answer_is_accepted(constrainer, answer):
    assert ungrounded_numbers(answer, OUTPUTS) == []  # the ruler's verdict first
    assert _walk(constrainer, answer) == (None, True)


@pytest.mark.parametrize("answer", UNGROUNDED)
def test_an_ungrounded_answer_is_refused_before_it_ends(constrainer, answer):
    assert ungrounded_numbers(answer, OUTPUTS)
    refused_at, end_ok = _walk(constrainer, answer)
    assert refused_at is not None or not end_ok


@pytest.mark.parametrize("answer", ["The drawdown was -3.4ebted to ACME.", "It made 57trades.", "Fees of 10bpsx.",
                                    "The Sharpe was in the -9th percentile.", "A tier of 500.0000st.",
                                    "The Sharpe ratio was -02.0.", "It ran from 0100-01-01."])
def test_numbers_in_forms_the_matcher_does_not_check_are_refused(constrainer, answer):
    """Forms a trained student used to write numbers no tool returned, each passing the matcher with an
    invented value: letters glued on (the matcher reads digits before letters as an identifier; only a unit
    may follow a number) and a leading zero (02.0 reads as 2.0; 0100-01-01 is a date it does not check)."""
    assert ungrounded_numbers(answer.replace("57", "58").replace("3.4", "9.9"), OUTPUTS) == []
    refused_at, end_ok = _walk(constrainer, answer)
    assert refused_at is not None or not end_ok


def test_units_glued_to_a_number_are_accepted(constrainer):
    answer = "Fees were 10bps, from 2019-01-02 the run returned 13.4% with a win rate of 0.6."
    assert ungrounded_numbers(answer, OUTPUTS) == []
    assert _walk(constrainer, answer) == (None, True)


def test_citable_forms_are_exactly_what_the_matcher_accepts():
    numbers = CitableNumbers(OUTPUTS)
    forms = numbers.forms()
    assert ("13.4", "%") in forms and ("4,879.78", "") in forms and ("57", "") in forms and ("10", " bps") in forms
    assert ("13.4", "") not in forms  # a fraction is never a bare percent number
    for digits, unit in forms:
        assert ungrounded_numbers(f"It is {digits}{unit}.", OUTPUTS) == [], (digits, unit)


def test_repeated_sentences_are_found():
    assert _repeats("It uses daily closes. It uses daily closes.", closed=False)
    assert _repeats("It uses daily closes. Then more. it uses  daily closes", closed=True)
    assert not _repeats("It uses daily closes. It uses daily closes", closed=False)  # not ended yet
    assert not _repeats("Yes. Yes. It uses daily closes.", closed=False)  # under three words
    loop = "It is a daily close prices and volume (OHLCV set) model with lags 5. It is a daily close prices and"
    assert _repeats(loop + " ", closed=False) and not _repeats(loop[: loop.index("It is", 5) + 14], closed=False)


def test_an_open_number_must_close_within_the_budget(constrainer):
    turn = constrainer.turn(OUTPUTS)
    for token in constrainer.tokenizer("It paid $4,879.", add_special_tokens=False)["input_ids"]:
        turn.feed(token)
    seven = constrainer.tokenizer("7", add_special_tokens=False)["input_ids"][0]
    assert turn._refusal(seven, remaining=2) is None  # "$4,879.7" -> "$4,879.78 " takes "8" and a closing token
    assert turn._refusal(seven, remaining=1) is not None


def test_the_grammar_bounds_free_strings_only():
    grammar = turn_grammar(TOOLS)
    assert '"maxLength": 200' in grammar  # search_docs' query
    assert '"pattern": "^\\\\d{4}-\\\\d{2}-\\\\d{2}$"' in grammar  # dates keep their pattern, no bound added


def _decode_random(constrainer: Constrainer, seed: int, steps: int, boost: dict[int, float]) -> str:
    """Decode `steps` tokens from random logits (plus `boost`) under the rules; the turn's text."""
    gen = torch.Generator().manual_seed(seed)
    turn = constrainer.turn(OUTPUTS)
    ids = []
    for step in range(steps + 256):
        logits = torch.randn(len(constrainer.tokenizer), generator=gen)
        for token, bias in boost.items():
            logits[token] += bias
        token = turn.pick(logits, remaining=steps - step - 1)
        turn.feed(token)
        ids.append(token)
        if token == constrainer.eos_id or (step + 1 >= steps and not turn.in_call):
            break
    return constrainer.tokenizer.decode(ids, skip_special_tokens=True)


def test_random_logits_always_give_parseable_calls_and_grounded_text(constrainer, tokenizer):
    vocab = tokenizer.get_vocab()
    digits = [vocab[str(d)] for d in range(10)]
    favour = {vocab["<"]: 4.0, vocab["%"]: 3.0, vocab["$"]: 3.0, **{d: 4.0 for d in digits}}
    schemas = {t["name"]: t["input_schema"] for t in TOOLS}
    n_calls = 0
    for seed in range(12):
        text = _decode_random(constrainer, seed, steps=60, boost=favour)
        parsed = parse_assistant(text, TOOLS)
        assert parsed.error is None, (seed, text)
        for call in parsed.calls:
            jsonschema.validate(call["arguments"], schemas[call["name"]])
        n_calls += len(parsed.calls)
        assert ungrounded_numbers(parsed.content, OUTPUTS) == [], (seed, text)
    assert n_calls >= 3  # the boost on "<" made calls happen, so the grammar was exercised


def test_predict_with_the_rules_on_a_random_model_never_fails_to_parse_nor_invents(tokenizer):
    from distill.student.chat import PARSE_ERRORS
    from distill.student.predict import predict
    from tests.test_predict import tiny_model

    questions = [{"question": q} for q in ("How did sma_crossover do on ACME?", "What data does ridge use?",
                                           "Fees of 25 bps: what changes?", "List the models.")]
    records = predict(tiny_model(tokenizer, seed=3), tokenizer, questions, TOOLS, lambda name, args: BACKTEST,
                      max_turns=2, max_new_tokens=24, batch_size=4,
                      constrain=ConstrainConfig(numbers=True, tool_calls=True, repeats="block"))
    for r in records:
        assert r["failure"] not in PARSE_ERRORS, r["raw_turns"]
        assert ungrounded_numbers(r["pred_answer"], r["tool_outputs"]) == [], r["pred_answer"]


def test_report_puts_the_unconstrained_figures_beside_the_constrained():
    import pandas as pd

    from distill.report.constraint import constraint_section

    def score(grounded):
        return {"overall": {"tool_call": {"value": 0.5, "ci95": [0.2, 0.8]}, "tool_call_strict": {"value": 0.4},
                            "answered": {"value": 1.0}, "grounded": {"value": grounded},
                            "judge": {"value": 0.6, "ci95": [0.4, 0.8]}}}
    on = pd.DataFrame({"question": ["q1", "q2"], "pred_answer": ["It made 57 trades.", "Same."],
                       "failure": [None, None]})
    off = on.assign(pred_answer=["It made 58 trades.", "Same."], failure=[None, "bad_json"])
    text = constraint_section(3, score(1.0), on, score(0.5), off, {"numbers": True, "tool_calls": False})
    assert "| constrained | 0.50 [0.20, 0.80] | 0.40 | 1.00 | 1.00 |" in text
    assert "| unconstrained | 0.50 [0.20, 0.80] | 0.40 | 1.00 | 0.50 |" in text and "`bad_json` ×1" in text
    assert "1 of 2 final answers differ" in text and "58 trades" in text
    assert "rules on (numbers)" in text


def test_the_served_student_decodes_under_the_same_rules(tokenizer):
    """A tiny model made to write spaced digits: unconstrained it invents numbers, served under the rules it
    cites only 7.77 (or nothing)."""
    from distill.serving.serve import Prepared, StudentEngine
    from distill.student.chat import generation_prompt
    from tests.test_predict import tiny_model

    model = tiny_model(tokenizer, seed=5)
    vocab = tokenizer.get_vocab()
    with torch.no_grad():
        model.lm_head.weight[[vocab[str(d)] for d in range(10)]] *= 6
        model.lm_head.weight[vocab["Ġ"]] *= 7
    output = json.dumps({"sharpe": 7.77})
    conversation = [{"role": "user", "content": "What Sharpe did sma_crossover get on ACME?"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"name": "run_backtest", "arguments": {"model_id": "sma_crossover", "ticker": "ACME",
                                                               "start": "2019-01-02", "end": "2023-12-29"}}]},
                    {"role": "tool", "name": "run_backtest", "content": output}]
    rules = ConstrainConfig(numbers=True, tool_calls=True, repeats="block")
    texts = {}
    for name, engine in (("free", StudentEngine(model, tokenizer, "tiny")),
                         ("constrained", StudentEngine(model, tokenizer, "tiny", rules))):
        prepared = Prepared(conversation, TOOLS, engine._ids(generation_prompt(conversation, TOOLS)))
        texts[name] = parse_assistant(engine.complete(prepared, max_tokens=40).text, TOOLS)
    assert ungrounded_numbers(texts["free"].content, [output]), texts["free"]  # the test can fail
    assert texts["constrained"].error is None
    assert ungrounded_numbers(texts["constrained"].content, [output]) == [], texts["constrained"]


def test_a_number_argument_cannot_run_on(constrainer, tokenizer):
    """The trained student once wrote "slippage_bps": 2.0000000... until its budget ran out (bad_json):
    with a model that always prefers "0", the grammar ends the decimals and the call closes."""
    turn = constrainer.turn([])
    head = ('<tool_call>{"name": "run_backtest", "arguments": {"model_id": "sma_crossover", "ticker": "ACME", '
            '"start": "2019-01-02", "end": "2023-12-29", "slippage_bps": 2.')
    for token in tokenizer(head, add_special_tokens=False)["input_ids"]:
        turn.feed(token)
    zero, ids = tokenizer.get_vocab()["0"], []
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        logits = torch.randn(len(tokenizer), generator=gen)
        logits[zero] += 100.0
        token = turn.pick(logits, remaining=100)
        turn.feed(token)
        ids.append(token)
        if not turn.in_call:
            break
    assert not turn.in_call, tokenizer.decode(ids)
    parsed = parse_assistant(head + tokenizer.decode(ids), TOOLS)
    assert parsed.error is None and len(parsed.calls) == 1, parsed


def test_stop_mode_ends_a_looping_turn_at_its_last_complete_sentence(tokenizer):
    """A model that wants to say the same sentence forever: `block` writes something else, `stop` ends the
    turn where the repeat would begin, cut back to the sentence before it; neither repeats a sentence."""
    sentence = tokenizer(" It uses daily closes.", add_special_tokens=False)["input_ids"]
    texts = {}
    for mode in ("block", "stop", "off"):
        turn = Constrainer(tokenizer, TOOLS, ConstrainConfig(numbers=True, tool_calls=True, repeats=mode)).turn([])
        gen = torch.Generator().manual_seed(0)
        for step in range(3 * len(sentence)):
            logits = torch.randn(len(tokenizer), generator=gen)
            logits[sentence[step % len(sentence)]] += 100.0  # the loop, by far the most likely token
            token = turn.pick(logits, remaining=100)
            turn.feed(token)
            if token == turn.owner.eos_id:
                break
        texts[mode] = turn.final_text
    assert _repeats(texts["off"], closed=True)  # the test can fail
    assert texts["stop"].strip() == "It uses daily closes.", texts["stop"]
    assert not _repeats(texts["block"], closed=True) and texts["block"].strip().startswith("It uses daily closes."), texts


def test_stop_mode_never_cuts_into_a_call(tokenizer):
    """The last sentence end may be a decimal point inside a call's JSON: the cut stays after the call."""
    turn = Constrainer(tokenizer, TOOLS, ConstrainConfig(numbers=False, tool_calls=False, repeats="stop")).turn([])
    call = '<tool_call>{"name": "run_backtest", "arguments": {"fee_bps": 2.5}}</tool_call>'
    for token in tokenizer(call + " Then it", add_special_tokens=False)["input_ids"]:
        turn.feed(token)
    assert turn._stop() and turn.final_text == call


def test_the_unpacked_grammar_mask_equals_llguidances(constrainer, tokenizer):
    import llguidance.torch

    turn = constrainer.turn([])
    for text in ("The answer", ' <tool_call>{"name": "run_backtest", "arguments": {"model_id": "sma'):
        for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
            turn.feed(token)
        llguidance.torch.fill_next_token_bitmask(turn.matcher, turn._mask, 0)
        reference = torch.zeros(1, len(tokenizer))
        llguidance.torch.apply_token_bitmask_inplace(reference, turn._mask)
        allowed = turn._allowed(len(tokenizer))
        assert torch.equal(allowed, reference[0] == 0) and 0 < int(allowed.sum()) < len(tokenizer)


def test_a_newline_closes_the_number_before_it(constrainer, tokenizer):
    """"13" is citable only as "13.4%": a newline after it closes it, so the newline is refused. (With "$" in the
    open-number pattern, which also matches before a final newline, "13" stayed open and the newline passed:
    a trained student's "alpha 10,\\n" then ended its budget ungrounded.)"""
    turn = constrainer.turn(OUTPUTS)
    for token in tokenizer("It returned 13", add_special_tokens=False)["input_ids"]:
        turn.feed(token)
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    assert turn._refusal(newline, remaining=100) == "number"
