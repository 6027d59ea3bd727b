"""The whole DAG through real Snakemake on a tiny config: report, HTML report, incremental rebuilds."""
import json

import pandas as pd
import pytest

from tests.workflow_helpers import copy_workflow, edited_file, edited_config, planned_jobs, snakemake

pytestmark = pytest.mark.slow

TINY = {
    "scenarios": {"models": ["sma_crossover", "ridge_forecaster"], "tickers": ["ACME", "BOLT"]},
    "teacher": {"faults": {"ungrounded_number": 0.1, "split_boilerplate": 1.0, "query_paraphrase": 0.5}},
    "split": {"eval_fraction": 0.25},
    "student": {"max_seq_len": 384, "lora": {"r": 8, "layers_to_transform": [28, 29]},
                "train": {"epochs": 2, "batch_size": 4, "max_examples": 8}},
    "predict": {"max_examples": 4, "batch_size": 4, "max_new_tokens": 48, "max_turns": 2},
    "scoring": {"bootstrap_samples": 200},
}
REPORT = "results/report.md"
UPSTREAM = {"build_scenarios", "run_teacher", "ground_traces"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("wf") / "repo", TINY)
    proc = snakemake(wd, REPORT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return wd


def test_report_answers_the_question(built):
    text = (built / REPORT).read_text()
    assert "SIMULATOR" in text.upper()
    for epoch in (0, 1, 2):
        assert (built / f"results/scores/epoch_{epoch}.json").exists()
        assert (built / f"results/predictions/epoch_{epoch}.parquet").exists()
    for png in ("metrics_by_epoch", "eval_loss_by_epoch", "tool_call_by_category"):
        data = (built / f"results/plots/{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{png}.png" in text
    selection = json.loads((built / "results/selection.json").read_text())
    assert selection["task_epoch"] in (1, 2) and selection["eval_loss_epoch"] in (1, 2)
    for n in (1, 2):
        assert (built / f"results/adapter/epoch_{n}/adapter_config.json").exists()
    assert planned_jobs(built, REPORT) == {}



@pytest.mark.parametrize("module, also", [("ruler/scoring.py", set()), ("ruler/answers.py", set()), ("ruler/judge/rubric.py", set()),
                                          ("ruler/text.py", set()), ("ruler/claims.py", {"diagnose_dataset"})])
def test_scorer_edit_reruns_score_selection_report_only(built, module, also):
    """claims.py also holds the suspect-gold rules, so the diagnostics (seconds) re-run with it."""
    with edited_file(built / "distill" / module):
        jobs = planned_jobs(built, REPORT)
        assert set(jobs) == {"score_epoch", "score_unconstrained", "select_epoch", "build_report"} | also
        assert jobs["score_epoch"] == 3


def test_the_ruler_is_honest_on_the_built_tree(built):
    """Whatever the tiny student writes: markup or tool JSON is never answered, grounded or judged above 0,
    and no held-out gold plan occurs in training."""
    for epoch in (0, 1, 2):
        table = pd.read_parquet(built / f"results/scores/epoch_{epoch}.parquet")
        preds = pd.read_parquet(built / f"results/predictions/epoch_{epoch}.parquet")
        assert list(table["trace_id"]) == list(preds["trace_id"])
        fake = table["pred_answer"].str.contains(r"<tool_|<\|im_|^\s*[{\[]|^\s*$", regex=True)
        assert not table.loc[fake, "answered"].any() and not table.loc[fake, "grounded"].any()
        assert (table.loc[fake, "judge"] == 0).all()
        summary = json.loads((built / f"results/scores/epoch_{epoch}.json").read_text())
        assert summary["overall"]["answered"]["value"] == pytest.approx(table["answered"].mean())
    train = pd.read_parquet(built / "results/split/train.parquet")
    evals = pd.read_parquet(built / "results/split/eval.parquet")
    assert set(train["gold_calls"]).isdisjoint(evals["gold_calls"])
    overlap = pd.read_parquet(built / "results/diagnostics/overlap.parquet").set_index("category")
    assert overlap.loc["(all)", ["same_question", "same_gold_plan", "same_gold_answer"]].tolist() == [0, 0, 0]
    text = (built / REPORT).read_text()
    assert "## Held-out examples" in text and "- Student (epoch " in text and "answered" in text


def test_scoring_config_edit_reruns_score_selection_report_only(built, tmp_path):
    cfg = edited_config(built, tmp_path, {"scoring": {"query_jaccard": 0.7}})
    assert set(planned_jobs(built, REPORT, "--configfile", cfg)) == {"score_epoch", "score_unconstrained", "select_epoch", "build_report"}


def test_gold_correction_reruns_dataset_onward_never_teacher_or_grounding(built):
    fix = "train/test split; every metric covers the whole window."
    with edited_file(built / "corrections.yaml", lambda text: text.replace("train/test split.", fix)):
        jobs = planned_jobs(built, REPORT)
        assert {"plan_corrections", "apply_corrections", "split_dataset", "train_student", "predict_epoch", "predict_unconstrained",
                "score_epoch", "score_unconstrained", "select_epoch", "build_report", "diagnose_dataset"} == set(jobs)
        assert not UPSTREAM & set(jobs)


def test_html_report(built):
    proc = snakemake(built, REPORT, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (built / "report.html").read_text(errors="replace")
    assert "metrics_by_epoch.png" in html


def test_a_ruler_variant_rescoring_only_and_its_comparison(built):
    """variants/strict_ruler.yaml shares every prediction: building it plans scoring onward only, and
    the comparison puts the change on the ruler."""
    target = "results/variants/strict_ruler/report.md"
    assert set(planned_jobs(built, target)) == {"score_epoch", "score_unconstrained", "select_epoch", "build_report"}
    proc = snakemake(built, "results/compare/strict_ruler_vs_default.md")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    text = (built / "results/compare/strict_ruler_vs_default.md").read_text()
    assert "scoring.query_jaccard" in text and "## Summary" in text
    assert (built / "results/compare/strict_ruler_vs_default.png").read_bytes()[:4] == b"\x89PNG"
    assert not (built / "results/variants/strict_ruler/predictions").exists()


def test_a_training_variant_plans_no_data_job_and_adding_one_replans_nothing(built):
    compare = "results/compare/strict_ruler_vs_default.md"
    assert snakemake(built, compare).returncode == 0  # a variant already built (a no-op if it is)
    variant = built / "variants" / "lr.yaml"
    variant.write_text("student: {train: {learning_rate: 0.0005}}\n")
    try:
        jobs = planned_jobs(built, "results/variants/lr/report.md")
        assert set(jobs) == {"train_student", "predict_epoch", "predict_unconstrained", "score_epoch", "score_unconstrained",
                             "select_epoch", "build_report"}
        assert jobs["predict_epoch"] == 2  # epochs 1-2; epoch 0 (the untrained base) is the default's
        assert planned_jobs(built, REPORT) == {}
        assert planned_jobs(built, compare) == {}
    finally:
        variant.unlink()
