"""The offline rubric judge: registry contradictions, gold key facts, empty answers."""

from __future__ import annotations

from distill.judge import CONTRADICTION_FACTOR, Judge, JudgeResult, RubricJudge
from distill.workbench.registry import MODELS

JUDGE = RubricJudge()


def grade(category: str, model_id: str, pred: str, gold: str, ticker: str | None = None) -> JudgeResult:
    return JUDGE.grade({"question": "q", "category": category, "model_id": model_id, "ticker": ticker,
                        "pred_answer": pred, "gold_answer": gold, "tool_outputs": []})


RULE_GOLD = f"SMA Crossover is validated by a {MODELS['sma_crossover'].validation}."
SPLIT_BOILERPLATE = ("SMA Crossover uses a chronological 80/20 train/test split: it is fitted on the "
                     "first 80% and results are reported out-of-sample.")


def test_rubric_judge_satisfies_protocol():
    judge: Judge = JUDGE
    assert judge.name == "rubric"


def test_empty_answer_scores_zero():
    assert grade("methodology", "sma_crossover", "   ", RULE_GOLD) == JudgeResult(0.0, ["empty answer"])


def test_correct_full_period_answer_scores_high():
    pred = ("SMA Crossover runs a full-period backtest with no train/test split, because nothing is "
            "fitted; there is no out-of-sample period.")
    result = grade("methodology", "sma_crossover", pred, RULE_GOLD)
    assert result.score >= 0.8, result
    assert not any("split" in r for r in result.reasons)


def test_split_claim_on_rule_model_is_penalised():
    result = grade("methodology", "sma_crossover", SPLIT_BOILERPLATE, RULE_GOLD)
    assert result.score <= CONTRADICTION_FACTOR
    assert any("train/test split for rule-based model" in r for r in result.reasons)


def test_no_split_claim_on_ml_model_is_penalised():
    gold = f"Ridge Return Forecaster uses a {MODELS['ridge_forecaster'].validation}."
    right = grade("methodology", "ridge_forecaster", "Ridge Return Forecaster is fitted on the first 80% "
                  "and tested out-of-sample on the last 20%.", gold)
    wrong = grade("methodology", "ridge_forecaster",
                  "Ridge Return Forecaster is a full-period backtest with no train/test split.", gold)
    assert wrong.score < right.score * CONTRADICTION_FACTOR + 1e-9
    assert not right.reasons or not any("ML model" in r for r in right.reasons)


def test_missing_gold_numbers_lower_the_score():
    gold = "SMA Crossover on ACME returned 12.5% with a Sharpe ratio of 1.31 and a max drawdown of 8.2%."
    full = grade("performance", "sma_crossover",
                 "On ACME, SMA Crossover returned 12.5%, Sharpe 1.31, max drawdown 8.2%.", gold, "ACME")
    partial = grade("performance", "sma_crossover",
                    "On ACME, SMA Crossover returned 12.5% with a Sharpe ratio of 0.9.", gold, "ACME")
    assert full.score > partial.score
    assert any("1.31" in r and "8.2%" in r for r in partial.reasons)


def test_unnamed_ticker_lowers_the_score():
    gold = "SMA Crossover on ACME returned 12.5%."
    named = grade("performance", "sma_crossover", "SMA Crossover on ACME returned 12.5%.", gold, "ACME")
    unnamed = grade("performance", "sma_crossover", "SMA Crossover returned 12.5%.", gold, "ACME")
    assert unnamed.score < named.score and any("ACME" in r for r in unnamed.reasons)


def test_data_source_not_in_registry_is_penalised():
    gold = f"SMA Crossover uses {MODELS['sma_crossover'].data_source}."
    right = grade("data_source", "sma_crossover", "SMA Crossover uses daily closing prices.", gold)
    wrong = grade("data_source", "sma_crossover", "SMA Crossover uses daily close prices and volume.", gold)
    negated = grade("data_source", "sma_crossover", "SMA Crossover uses close prices, not volume.", gold)
    assert right.score >= 0.8 and negated.score >= 0.8
    assert wrong.score <= CONTRADICTION_FACTOR and any("volume" in r for r in wrong.reasons)


def test_data_source_terms_the_registry_lists_must_be_named():
    gold = f"Covered Call Writer uses {MODELS['covered_call'].data_source}."
    full = grade("data_source", "covered_call",
                 "Covered Call Writer uses daily close prices; premia come from Black-Scholes.", gold)
    partial = grade("data_source", "covered_call", "Covered Call Writer uses daily close prices.", gold)
    assert full.score > partial.score and any("black-scholes" in r for r in partial.reasons)
