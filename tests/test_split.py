"""Split: deterministic, stratified by category, grouped so no question is in both halves."""
import pandas as pd

from distill.split import split_dataset


def _frame():
    rows = []
    for cat, n_q, reps in [("methodology", 11, 7), ("performance", 36, 1), ("what_if", 54, 2)]:
        for q in range(n_q):
            for r in range(reps):
                rows.append({"trace_id": f"{cat}-{q}-{r}", "category": cat, "question": f"{cat} question {q}"})
    return pd.DataFrame(rows)


def test_split_is_disjoint_by_question_and_covers_all_rows():
    df = _frame()
    train, evals = split_dataset(df, 0.2, seed=7)
    assert set(train["question"]).isdisjoint(evals["question"])
    assert len(train) + len(evals) == len(df)
    assert set(evals["split"]) == {"eval"} and set(train["split"]) == {"train"}


def test_split_is_stratified_by_category():
    train, evals = split_dataset(_frame(), 0.2, seed=7)
    for cat, part in pd.concat([train, evals]).groupby("category"):
        share = (part["split"] == "eval").mean()
        assert 0.1 <= share <= 0.3, (cat, share)


def test_split_is_deterministic_and_order_independent():
    df = _frame()
    a = split_dataset(df, 0.2, seed=7)[1]
    b = split_dataset(df.sample(frac=1, random_state=1), 0.2, seed=7)[1]
    assert set(a["trace_id"]) == set(b["trace_id"])
    c = split_dataset(df, 0.2, seed=8)[1]
    assert set(a["trace_id"]) != set(c["trace_id"])


def test_sample_per_category_balances_and_is_deterministic():
    from distill.split import sample_per_category

    df = _frame()
    s = sample_per_category(df, 12, seed=7)
    assert len(s) == 12
    assert s["category"].value_counts().to_dict() == {"methodology": 4, "performance": 4, "what_if": 4}
    assert list(s["trace_id"]) == list(sample_per_category(df.iloc[::-1], 12, seed=7)["trace_id"])
    assert len(sample_per_category(df, 0, seed=7)) == len(df)
