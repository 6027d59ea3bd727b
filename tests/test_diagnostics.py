"""DuckDB diagnostics: each query on small parquet fixtures that follow CONTRACTS.md, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from distill.contracts import CORRECTED
from tests.test_contracts import complete
from distill.config import defaults
from distill.dataset import diagnostics
from distill.workbench.registry import MODELS

REPO = Path(__file__).resolve().parents[1]

RULE_SPLIT = "SMA Crossover is validated on an 80/20 train/test split with out-of-sample results."
RULE_OK = "SMA Crossover runs a full-period backtest with no train/test split (nothing is fitted)."
ML_OK = ("Ridge Return Forecaster uses a chronological 80/20 train/test split: fitted on the first 80%, "
         "results reported out-of-sample on the last 20%.")
ML_NO_SPLIT = "Ridge Return Forecaster is a full-period backtest with no split."


def row(trace_id: str, model_id: str, category: str, answer: str, question: str | None = None) -> dict:
    """One grounded.parquet row (CONTRACTS.md columns) with defaults for what the queries ignore."""
    m = MODELS[model_id]
    return {
        "scenario_id": trace_id, "model_id": model_id, "model_kind": m.kind, "options": m.options,
        "ticker": m.tickers[0], "category": category, "template_id": f"{category}_0",
        "question": question or f"What about {m.name} ({category})?",
        "gold_calls": json.dumps([{"name": "get_model_info", "arguments": {"model_id": model_id}}]),
        "trace_id": trace_id, "messages": "[]", "final_answer": answer, "tool_outputs": "[]",
        "backend": "offline", "teacher_model": "simulator", "injected_faults": "[]", "cost_usd": 0.0,
        "ungrounded": "[]",
    }


def write(tmp_path: Path, name: str, rows: list[dict]) -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def suspect(rows: list[dict], tmp_path: Path) -> set[tuple[str, str]]:
    df = diagnostics.suspect_gold_rows(write(tmp_path, "d.parquet", rows))
    return set(zip(df["trace_id"], df["issue"]))


def test_suspect_gold_split_claims(tmp_path: Path) -> None:
    found = suspect([
        row("t1", "sma_crossover", "methodology", RULE_SPLIT),
        row("t2", "sma_crossover", "methodology", RULE_OK),
        row("t3", "ridge_forecaster", "methodology", ML_OK),
        row("t4", "ridge_forecaster", "methodology", ML_NO_SPLIT),
        row("t5", "covered_call", "methodology", "Premia come from Black-Scholes; it does not use a "
                                                 "train/test split."),
    ], tmp_path)
    assert found == {("t1", "split_claim_on_rule_model"), ("t4", "no_split_on_ml_model")}


def test_suspect_gold_data_source(tmp_path: Path) -> None:
    found = suspect([
        row("d1", "ridge_forecaster", "data_source", "Daily close prices and volume (bundled synthetic set)."),
        row("d2", "sma_crossover", "data_source", "Minute-level order book data from a live exchange feed."),
        row("d3", "sma_crossover", "data_source", "Daily closing prices and trading volume."),
        row("d4", "covered_call", "data_source", "Daily close prices; premia priced with Black-Scholes."),
        row("d5", "donchian_breakout", "data_source", "Daily close prices only."),
        dict(row("d6", "sma_crossover", "performance", "Total return 3%."), model_id="no_such_model"),
    ], tmp_path)
    assert found == {("d2", "data_source_missing_terms"), ("d2", "data_source_foreign_terms"),
                     ("d3", "data_source_foreign_terms"), ("d5", "data_source_missing_terms"),
                     ("d6", "unknown_model")}


def test_suspect_gold_and_judge_agree_on_the_same_answer(tmp_path: Path) -> None:
    """One rule (distill.ruler.claims) serves both: every answer the diagnostics call a contradiction, the
    judge caps, and the other way round."""
    from distill.ruler.judge import make_judge

    judge = make_judge(defaults("judge"))
    answers = [RULE_SPLIT, RULE_OK, ML_OK, ML_NO_SPLIT, "It held out nothing: a full-period backtest.",
               "It is evaluated out of sample on held-out data."]
    for model_id in ("sma_crossover", "ridge_forecaster"):
        rows = [row(f"{model_id}{i}", model_id, "methodology", a) for i, a in enumerate(answers)]
        flagged = {t for t, issue in suspect(rows, tmp_path) if issue != "data_source_missing_terms"}
        capped = {r["trace_id"] for r in rows if "registry_contradiction" in judge.grade(
            {"question": r["question"], "category": "methodology", "model_id": model_id, "ticker": r["ticker"],
             "gold_answer": RULE_OK, "gold_calls": "[]", "tool_outputs": [], "pred_answer": r["final_answer"]}
        ).reasons}
        assert flagged == capped and flagged, model_id


def test_saturation_counts_unique_questions_plans_and_answers(tmp_path: Path) -> None:
    rows = [row(f"m{i}", "sma_crossover", "methodology", RULE_OK,
                question=["How is slippage modelled?", "  how is SLIPPAGE   modelled?", "What fees apply?"][i % 3])
            for i in range(6)]
    rows += [row(f"p{i}", "sma_crossover", "performance", f"ok {i}", question=f"Return on ticker {i}?")
             for i in range(2)]
    df = diagnostics.run_query("saturation", dataset=write(tmp_path, "d.parquet", rows)).set_index("category")
    assert df.loc["methodology", ["n_rows", "n_unique_questions", "n_unique_plans", "n_unique_answers"]].tolist() \
        == [6, 2, 1, 1]
    assert (df.loc["methodology", "rows_per_question"], df.loc["methodology", "rows_per_plan"]) == (3.0, 6.0)
    # every row() shares one gold plan: data_source-like saturation that question counts hide
    assert (df.loc["performance", "rows_per_question"], df.loc["performance", "rows_per_plan"]) == (1.0, 2.0)
    assert df.index[0] == "methodology"  # most saturated first


def test_overlap_counts_what_the_held_out_rows_share_with_training(tmp_path: Path) -> None:
    plan = lambda *tickers: json.dumps([{"name": "run_backtest", "arguments": {"ticker": t}} for t in tickers])
    train = [dict(row("a", "sma_crossover", "performance", "A", question="Q a"), gold_calls=plan("ACME")),
             dict(row("b", "sma_crossover", "what_if", "B", question="Q b"), gold_calls=plan("BOLT", "BOLT2"))]
    evals = [dict(row("c", "sma_crossover", "performance", "A", question="q A "), gold_calls=plan("ACME")),
             dict(row("d", "sma_crossover", "what_if", "D", question="Q d"), gold_calls=plan("BOLT", "X")),
             dict(row("e", "sma_crossover", "what_if", "E", question="Q e"), gold_calls=plan("Y"))]
    df = diagnostics.run_query("overlap", train=write(tmp_path, "t.parquet", train),
                               eval=write(tmp_path, "e.parquet", evals)).set_index("category")
    cols = ["eval_rows", "same_question", "same_gold_plan", "same_gold_answer", "shares_a_gold_call"]
    assert df.loc["performance", cols].tolist() == [1, 1, 1, 1, 1]
    assert df.loc["what_if", cols].tolist() == [2, 0, 0, 0, 1]
    assert df.loc["(all)", cols].tolist() == [3, 1, 1, 1, 2]


def test_counts_and_rejections_grouping(tmp_path: Path) -> None:
    rows = [row("a", "sma_crossover", "performance", "x"), row("b", "ridge_forecaster", "performance", "x"),
            row("c", "sma_crossover", "what_if", "x")]
    counts = diagnostics.run_query("counts", dataset=write(tmp_path, "d.parquet", rows))
    key = counts.set_index(["category", "model_id", "model_kind"])["n_rows"]
    assert key[("performance", "sma_crossover", "rule")] == 1
    assert key[("performance", "(all)", "(all)")] == 2
    assert key[("(all)", "(all)", "rule")] == 2
    assert key[("(all)", "(all)", "(all)")] == 3

    rejected = [dict(r, reason=reason) for r, reason in
                zip(rows, ["ungrounded_number", "ungrounded_number", "tool_error"])]
    rej = diagnostics.run_query("rejections", rejected=write(tmp_path, "r.parquet", rejected))
    assert list(rej.itertuples(index=False, name=None)) == [
        ("tool_error", "what_if", 1), ("tool_error", "(all)", 1),
        ("ungrounded_number", "performance", 2), ("ungrounded_number", "(all)", 2)]


def test_corrections_counts(tmp_path: Path) -> None:
    log = [{"trace_id": t, "correction_id": "strip_split_boilerplate", "category": "methodology",
            "model_id": "sma_crossover", "old_answer": RULE_SPLIT, "new_answer": RULE_OK} for t in ("a", "b")]
    df = diagnostics.run_query("corrections", corrections_log=write(tmp_path, "log.parquet", log))
    assert df[["correction_id", "n_rows", "n_traces"]].values.tolist() == [["strip_split_boilerplate", 2, 2]]
    assert df["mean_len_delta"][0] == len(RULE_OK) - len(RULE_SPLIT)


def diff_fixtures(tmp_path: Path) -> tuple[Path, Path]:
    old = [row("gone", "sma_crossover", "performance", "abcd"),
           row("edit", "sma_crossover", "methodology", RULE_SPLIT),
           row("same", "sma_crossover", "methodology", RULE_OK)]
    new = [row("edit", "sma_crossover", "methodology", RULE_OK),
           row("same", "sma_crossover", "methodology", RULE_OK),
           row("fresh", "sma_crossover", "performance", "abcdefgh")]
    return write(tmp_path, "old.parquet", old), write(tmp_path, "new.parquet", new)


def test_diff_rows_and_length_delta(tmp_path: Path) -> None:
    tables = diagnostics.diff(*diff_fixtures(tmp_path))
    changes = dict(zip(tables["diff"]["trace_id"], tables["diff"]["change"]))
    assert changes == {"fresh": "added", "gone": "removed", "edit": "changed"}
    by_cat = tables["diff_by_category"].set_index("category")
    meth, perf = by_cat.loc["methodology"], by_cat.loc["performance"]
    assert (meth["rows_old"], meth["rows_new"], meth["n_changed"]) == (2, 2, 1)
    assert meth["mean_len_delta"] == pytest.approx((len(RULE_OK) - len(RULE_SPLIT)) / 2)
    assert (perf["n_added"], perf["n_removed"], perf["mean_len_delta"]) == (1, 1, 4.0)


def test_build_all_writes_every_table(tmp_path: Path) -> None:
    old, new = diff_fixtures(tmp_path)
    corrected = pd.read_parquet(new).assign(corrected=False, correction_ids="[]")
    corrected = complete(corrected, CORRECTED)
    rejected = pd.read_parquet(old).head(1).assign(reason="ungrounded_number")
    log = pd.DataFrame([{"trace_id": "edit", "correction_id": "c1", "category": "methodology",
                         "model_id": "sma_crossover", "old_answer": RULE_SPLIT, "new_answer": RULE_OK}])
    paths = {}
    for name, df in {"corrected": corrected, "rejected": rejected, "log": log}.items():
        paths[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(paths[name], index=False)
    out = tmp_path / "diagnostics"
    diagnostics.build_all(old, paths["rejected"], paths["corrected"], paths["log"], paths["corrected"],
                          paths["corrected"], out)
    names = {p.name for p in out.iterdir()}
    assert names == {f"{n}.parquet" for n in (
        "counts", "rejections", "saturation", "overlap", "suspect_gold_before", "suspect_gold_after",
        "corrections", "diff_grounded_corrected", "diff_by_category")} | {"summary.md"}
    assert set(pd.read_parquet(out / "suspect_gold_before.parquet")["trace_id"]) == {"edit"}
    assert pd.read_parquet(out / "suspect_gold_after.parquet").empty
    summary = (out / "summary.md").read_text()
    assert "## Unique questions, gold plans and gold answers per category (saturation)" in summary
    assert "## Train/eval overlap" in summary
    assert "| split_claim_on_rule_model | 1 | 0 |" in summary
    assert "1 added, 1 removed, 1 changed answers." in summary


def test_markdown_table_escapes_and_cuts() -> None:
    table = diagnostics.markdown_table(pd.DataFrame({"a": ["x|y\nz" + "w" * 100], "b": [1.23456]}), width=10)
    assert table.splitlines()[2] == "| x\\|y zwww… | 1.23 |"
    assert diagnostics.markdown_table(pd.DataFrame({"a": []})) == "_(none)_"


def test_cli_diff_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = diff_fixtures(tmp_path)
    assert diagnostics.main(["diff", str(old), str(new), "--out", str(tmp_path / "out")]) == 0
    assert "1 added, 1 removed, 1 changed answers." in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "out" / "diff.parquet")) == 3


def test_cli_diff_rejects_missing_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, _ = diff_fixtures(tmp_path)
    bad = write(tmp_path, "bad.parquet", [{"trace_id": "a", "answer": "x"}])
    assert diagnostics.main(["diff", str(old), str(bad)]) == 1
    assert "missing column(s) category, final_answer" in capsys.readouterr().err


def test_cli_diff_missing_file_exits_nonzero(tmp_path: Path) -> None:
    old, _ = diff_fixtures(tmp_path)
    missing = tmp_path / "nope.parquet"
    proc = subprocess.run([sys.executable, "-m", "distill.dataset.diagnostics", "diff", str(old), str(missing)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{missing}: no such file" in proc.stderr
    assert proc.stdout == ""
