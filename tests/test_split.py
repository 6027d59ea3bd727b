"""Split: deterministic, stratified by category, grouped so that nothing held out was trained on."""
import json

import pandas as pd
import pytest

from distill.dataset.split import group_keys, plan_key, sample_per_category, split_dataset


def _plan(*calls: tuple[str, dict]) -> str:
    return json.dumps([{"name": n, "arguments": a} for n, a in calls])


def _frame() -> pd.DataFrame:
    """Like the grid: methodology questions repeat (one per ticker); data_source questions differ by
    ticker only and share one gold plan per model; what-if questions are unique."""
    rows = []
    for m in range(5):
        for t in range(7):
            rows.append({"category": "data_source", "question": f"Data source of model {m} on ticker {t}?",
                         "gold_calls": _plan(("get_model_info", {"model_id": f"m{m}"}))})
        for q in range(2):
            rows += [{"category": "methodology", "question": f"How is model {m} validated ({q})?",
                      "gold_calls": _plan(("search_docs", {"query": f"model {m} topic {q}"}))}] * 6
    for q in range(54):
        rows.append({"category": "what_if", "question": f"What if question {q}?",
                     "gold_calls": _plan(("run_backtest", {"model_id": "m0", "ticker": f"T{q}"}))})
    return pd.DataFrame(rows).assign(trace_id=lambda d: [f"r{i}" for i in range(len(d))])


@pytest.mark.parametrize("group_by", ["gold_plan", "question"])
def test_split_is_disjoint_by_group_and_covers_all_rows(group_by):
    df = _frame()
    train, evals = split_dataset(df, 0.2, seed=7, group_by=group_by)
    assert set(group_keys(train, group_by)).isdisjoint(group_keys(evals, group_by))
    assert len(train) + len(evals) == len(df)
    assert set(evals["split"]) == {"eval"} and set(train["split"]) == {"train"}


def test_gold_plan_grouping_holds_out_plans_that_question_grouping_leaks():
    df = _frame()
    by_plan = split_dataset(df, 0.2, seed=7)
    assert set(by_plan[0]["gold_calls"]).isdisjoint(by_plan[1]["gold_calls"])
    by_question = split_dataset(df, 0.2, seed=7, group_by="question")
    assert not set(by_question[0]["gold_calls"]).isdisjoint(by_question[1]["gold_calls"])  # data_source leaks


def test_split_is_stratified_by_category():
    train, evals = split_dataset(_frame(), 0.2, seed=7)
    for cat, part in pd.concat([train, evals]).groupby("category"):
        share = (part["split"] == "eval").mean()
        assert 0.1 <= share <= 0.3, (cat, share)


def test_every_category_with_two_groups_is_evaluated():
    df = pd.DataFrame({"trace_id": ["a", "b", "c"], "category": "methodology", "question": ["x", "x", "y"],
                       "gold_calls": [_plan(("list_models", {}))] * 2 + [_plan(("search_docs", {"query": "y"}))]})
    train, evals = split_dataset(df, 0.01, seed=7)
    assert list(evals["trace_id"]) == ["c"] and len(train) == 2  # the smallest group, never all of it


def test_split_is_deterministic_and_order_independent():
    df = _frame()
    a = split_dataset(df, 0.2, seed=7)[1]
    b = split_dataset(df.sample(frac=1, random_state=1), 0.2, seed=7)[1]
    assert set(a["trace_id"]) == set(b["trace_id"])
    c = split_dataset(df, 0.2, seed=8)[1]
    assert set(a["trace_id"]) != set(c["trace_id"])


def test_plan_key_is_canonical_and_group_by_is_checked():
    assert plan_key('[{"name": "x", "arguments": {"b": 1, "a": 2}}]') == plan_key(
        '[{"arguments": {"a": 2, "b": 1}, "name": "x"}]')
    with pytest.raises(ValueError, match="split.group_by"):
        split_dataset(_frame(), 0.2, seed=7, group_by="ticker")


def test_sample_per_category_balances_and_is_deterministic():
    df = _frame()
    s = sample_per_category(df, 12, seed=7)
    assert len(s) == 12
    assert s["category"].value_counts().to_dict() == {"data_source": 4, "methodology": 4, "what_if": 4}
    assert list(s["trace_id"]) == list(sample_per_category(df.iloc[::-1], 12, seed=7)["trace_id"])
    assert len(sample_per_category(df, 0, seed=7)) == len(df)


def test_sample_per_category_weights_buy_a_category_more_rows_from_the_same_budget():
    df = _frame()
    s = sample_per_category(df, 12, seed=7, weights={"what_if": 2.0})
    assert s["category"].value_counts().to_dict() == {"what_if": 6, "data_source": 3, "methodology": 3}
    # a category that runs out (methodology: 60 rows) hands its turns to the others
    s = sample_per_category(df, 100, seed=7, weights={"methodology": 10.0})
    assert s["category"].value_counts().to_dict()["methodology"] == 60 and len(s) == 100
