"""The rubric judge on real gold rows (the scenario grid played by the teacher simulator, faults off):
gold answers and faithful rewordings pass; non-answers, bare names, "I don't know", wrong numbers,
answers about another model and registry contradictions do not."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from distill.config import load
from distill.ruler.judge import JUDGE_REASONS, Judge, JudgeResult, make_judge
from distill.dataset.scenarios import build_grid
from distill.teacher import make_teacher

CONFIG = load("config.yaml")
JUDGE = make_judge(CONFIG["judge"])
PASS = CONFIG["scoring"]["ship_bar"]["judge"]  # what "passes" means: the ship bar's judge threshold
CAP = CONFIG["judge"]["rubric"]["contradiction_cap"]


@pytest.fixture(scope="module")
def gold() -> dict[tuple[str, str], dict]:
    """One real judge row per (template, model): gold answer, gold calls and the gold run's tool outputs."""
    grid = build_grid(CONFIG)
    faults = {k: 0.0 for k in CONFIG["teacher"]["faults"]}
    teacher = make_teacher({**CONFIG, "teacher": {**CONFIG["teacher"], "faults": faults}})
    rows = {}
    for sc in grid.drop_duplicates(["template_id", "model_id"]).to_dict("records"):
        trace = teacher.play(sc)
        rows[(sc["template_id"], sc["model_id"])] = {
            "question": sc["question"], "category": sc["category"], "model_id": sc["model_id"],
            "ticker": sc["ticker"], "gold_answer": trace.final_answer, "gold_calls": sc["gold_calls"],
            "tool_outputs": trace.tool_outputs, "pred_answer": trace.final_answer}
    return rows


def grade(row: dict, answer: str) -> JudgeResult:
    return JUDGE.grade({**row, "pred_answer": answer})


def test_interface_and_taxonomy():
    judge: Judge = JUDGE
    assert judge.name == "rubric"
    assert make_judge({"backend": "rubric"}).cfg == CONFIG["judge"]["rubric"]  # schema defaults = config.yaml's
    assert JUDGE_REASONS == ("no_answer", "markup_in_answer", "echoed_tool_output", "echoed_question",
                             "no_answer_content", "missing_number", "wrong_number", "missing_fact", "wrong_entity",
                             "registry_contradiction")
    with pytest.raises(ValueError, match="judge: backend: 'nope' is not one of"):
        make_judge({"backend": "nope"})


def test_every_gold_answer_scores_full_marks(gold):
    for key, row in gold.items():
        result = grade(row, row["gold_answer"])
        assert result.score == 1.0 and result.reasons == [], (key, result)


REWORDINGS = {
    ("method_validation", "sma_crossover"):
        "Because SMA Crossover fits nothing, there is no train/test split: it is backtested across the entire period.",
    ("method_validation", "ridge_forecaster"):
        "It is trained on the first 80% of the window in time order and evaluated out of sample on the last 20%.",
    ("method_lookahead", "rsi_reversion"):
        "It enters on the next bar after a signal, so it never trades on the close that generated the signal.",
    ("method_options", "covered_call"):
        "Premiums are priced with the Black-Scholes formula, taking the stock's realized volatility as input.",
    ("data_source", "donchian_breakout"):
        "Donchian Breakout relies on daily highs, lows and closing prices from the bundled synthetic OHLCV data.",
    ("data_source", "ridge_forecaster"): "It uses the daily closing prices and trading volume of the ticker.",
}


@pytest.mark.parametrize("key", sorted(REWORDINGS))
def test_faithful_rewordings_pass(gold, key):
    result = grade(gold[key], REWORDINGS[key])
    assert result.score >= PASS, result


def figures(output: str) -> dict:
    """The backtest tool's display strings as numbers ("97.1%" -> 0.971, "$1,234.50" -> 1234.5, "1.90" -> 1.9)."""
    def number(v):
        if not isinstance(v, str) or not re.fullmatch(r"-?\$?[\d,]+(?:\.\d+)?%?", v):
            return v
        x = float(v.replace("$", "").replace(",", "").rstrip("%"))
        return x / 100 if v.endswith("%") else x
    return {k: number(v) for k, v in json.loads(output).items()}


def backtest_rewording(row: dict) -> str:
    """The performance facts in another order and wording, numbers formatted anew from the tool output."""
    r = figures(row["tool_outputs"][0])
    return (f"Sharpe {r['sharpe']:.2f}, total return {r['total_return']:.1%} ({r['cagr']:.1%} annualised), "
            f"worst drawdown {r['max_drawdown']:.1%}, win rate {r['win_rate']:.1%} over {r['n_trades']} "
            f"trades, ${r['fees_paid']:,.2f} in costs; {row['ticker']}, {r['period']}.")


def test_performance_rewording_passes(gold):
    row = gold[("performance", "sma_crossover")]
    assert grade(row, backtest_rewording(row)).score >= PASS


def shift_numbers(text: str) -> str:
    """Every number outside a date changed, written with the same precision: every cited figure wrong."""
    def shift(m: re.Match) -> str:
        decimals = len(m.group().partition(".")[2])
        return f"{float(m.group()) * 1.37 + 1.11:.{decimals}f}"
    return re.sub(r"(?<![\d.-])\d+(?:\.\d+)?(?![\d-])", shift, text)


@pytest.mark.parametrize("key", [("performance", "sma_crossover"), ("what_if_fee", "rsi_reversion"),
                                 ("what_if_slippage", "ridge_forecaster"), ("data_source", "sma_crossover")])
def test_wrong_numbers_fail(gold, key):
    result = grade(gold[key], shift_numbers(gold[key]["gold_answer"]))
    assert result.score < PASS and "wrong_number" in result.reasons, result


def test_a_wrong_number_costs_at_least_as_much_as_a_missing_one(gold):
    row = gold[("performance", "sma_crossover")]
    r = figures(row["tool_outputs"][0])
    right = f"It returned {r['total_return']:.1%} with a Sharpe ratio of {r['sharpe']:.2f}."
    missing = f"It returned {r['total_return']:.1%} with a Sharpe ratio."
    wrong = f"It returned {r['total_return']:.1%} with a Sharpe ratio of {r['sharpe'] + 0.5:.2f}."
    assert grade(row, right).score > grade(row, missing).score >= grade(row, wrong).score


@pytest.mark.parametrize("make, reason", [
    (lambda row: row["tool_outputs"][0], "echoed_tool_output"),
    (lambda row: f"<tool_response>{row['tool_outputs'][0]}</tool_response>", "markup_in_answer"),
    (lambda row: row["question"], "echoed_question"),
    (lambda row: "", "no_answer"),
])
def test_non_answers_score_zero(gold, make, reason):
    for key, row in gold.items():
        result = grade(row, make(row))
        assert result.score == 0.0 and result.reasons == [reason], (key, result)


@pytest.mark.parametrize("answer", ["I don't know.", "Sorry, I cannot help with that.", "{name}.",
                                    "{name} is a trading model."])
def test_empty_handed_answers_fail(gold, answer):
    for key, row in gold.items():
        name = {"sma_crossover": "SMA Crossover", "ridge_forecaster": "Ridge Return Forecaster",
                "rsi_reversion": "RSI Mean Reversion", "donchian_breakout": "Donchian Breakout",
                "covered_call": "Covered Call Writer"}[row["model_id"]]
        assert grade(row, answer.format(name=name)).score < PASS, key


@pytest.mark.parametrize("key, suffix", [
    (("method_validation", "sma_crossover"), " It uses an 80/20 train/test split."),
    (("method_lookahead", "donchian_breakout"), " Results are reported out-of-sample on held-out data."),
    (("method_validation", "ridge_forecaster"), " Nothing is fitted; it is a full-period backtest."),
    (("data_source", "sma_crossover"), " It also reads trading volume."),
])
def test_registry_contradiction_caps_even_a_complete_answer(gold, key, suffix):
    result = grade(gold[key], gold[key]["gold_answer"] + suffix)
    assert result.score <= CAP and "registry_contradiction" in result.reasons, result


def test_answer_about_another_model_is_capped(gold):
    row = gold[("data_source", "sma_crossover")]
    result = grade(row, row["gold_answer"].replace("SMA Crossover", "RSI Mean Reversion"))
    assert result.score <= CAP and "wrong_entity" in result.reasons


def test_copying_contradicting_gold_earns_nothing_for_the_wrong_part(gold):
    """An uncorrected gold answer (split boilerplate on a rule model) is not a key fact to reproduce."""
    row = dict(gold[("method_lookahead", "sma_crossover")])
    row["gold_answer"] += " As with every workbench model, results use the default 80/20 train/test split."
    assert grade(row, gold[("method_lookahead", "sma_crossover")]["gold_answer"]).score >= PASS
    assert grade(row, row["gold_answer"]).score <= CAP


def test_weights_and_cap_come_from_config(gold):
    row = gold[("method_validation", "sma_crossover")]
    answer = row["gold_answer"] + " It uses an 80/20 train/test split."
    assert make_judge({"rubric": {"contradiction_cap": 0.5}}).grade(
        {**row, "pred_answer": answer}).score == 0.5
    words_only = make_judge({"rubric": {"weights": {"facts": 0.0, "wording": 1.0}}})
    assert words_only.grade({**row, "pred_answer": "It is validated over the full period."}).score < 0.5


def test_number_facts_use_the_grounding_matcher_and_its_kinds(gold):
    """A trade count stated as the wrong kind or value is no key fact, and a missing count is named:
    "It made 1.5 trades" matched the 15 (and its rounding) before the matcher knew kinds."""
    row = gold[("performance", "sma_crossover")]
    gold_answer = row["gold_answer"]
    assert "It made 15 trades" in gold_answer
    assert grade(row, gold_answer).score == 1.0
    fractional = grade(row, gold_answer.replace("It made 15 trades", "It made 1.5 trades"))
    assert fractional.score < 1.0 and {"missing_number", "wrong_number"} <= set(fractional.reasons)
    dropped = grade(row, gold_answer.replace("It made 15 trades with a win rate", "Its win rate was"))
    assert "missing_number" in dropped.reasons and "15" in dropped.details[dropped.reasons.index("missing_number")]
    as_money = grade(row, gold_answer.replace("paid $810.27", "paid $15"))
    assert "wrong_number" in as_money.reasons  # $15 is an amount, not the 15 trades


def test_a_count_of_another_noun_or_not_whole_is_no_trade_count(gold):
    """The gold's trade count is stated only by a whole count of trades: "15 days" is missing it (and is a
    wrong number), and a count that is not whole ("1.13 trades" beside a gold Sharpe of -1.13) is a wrong
    number that the gold's Sharpe no longer grounds, so a gold answer plus it no longer scores 1.0."""
    row = gold[("performance", "sma_crossover")]
    as_days = grade(row, row["gold_answer"].replace("It made 15 trades", "It held for 15 days"))
    assert "missing_number" in as_days.reasons and "15" in as_days.details[as_days.reasons.index("missing_number")]
    assert "wrong_number" in as_days.reasons
    row = gold[("what_if_fee", "ridge_forecaster")]
    sharpe = re.search(r"Sharpe ratio of -?(\d+\.\d+)", row["gold_answer"])[1]
    assert grade(row, row["gold_answer"]).score == 1.0
    fractional = grade(row, f"{row['gold_answer']} It made {sharpe} trades.")
    assert fractional.score < 1.0 and fractional.reasons == ["wrong_number"]
    assert fractional.details == [sharpe]
