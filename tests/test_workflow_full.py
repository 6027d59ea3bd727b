"""The whole DAG through real Snakemake on a tiny config: report, HTML report, incremental rebuilds, the
same artifacts from `--cores 2` and from a build killed twice."""
import json
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from distill.student.checkpoints import completed_epochs
from tests.workflow_helpers import copy_workflow, edited_file, edited_config, kill_when, planned_jobs, snakemake

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



# Wall-clock measurements: the only thing two builds of the same inputs may differ in.
TIMINGS = re.compile(r"seconds|tokens_per_second|tok/s|latency")


def _less_timings(value: object) -> object:
    """JSON-like `value` without its wall-clock keys; tensors as (dtype, shape, bytes)."""
    if isinstance(value, dict):
        return {k: _less_timings(v) for k, v in value.items() if not TIMINGS.search(str(k))}
    if isinstance(value, (list, tuple)):
        return [_less_timings(v) for v in value]
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.contiguous().numpy().tobytes())
    return value


def _markdown_less_timings(text: str) -> str:
    """The report without the cells of its wall-clock columns (a header cell naming a time or a rate)."""
    out, timed, in_table = [], set(), False
    for line in text.splitlines():
        row = line.startswith("|")
        if row:
            cells = line.strip().strip("|").split("|")
            if not in_table:  # a table's header row
                timed = {i for i, cell in enumerate(cells) if TIMINGS.search(cell)}
            line = "|".join(cell for i, cell in enumerate(cells) if i not in timed)
        in_table = row
        out.append(line)
    return "\n".join(out)


def _content(path: Path) -> str | bytes:
    """A file's content less its wall-clock fields, as text where it is a table, JSON, a checkpoint or the
    report (so NaN == NaN and a time column does not count)."""
    if path.suffix == ".parquet":
        df = pd.read_parquet(path)
        return df.drop(columns=[c for c in df.columns if TIMINGS.search(c)]).to_csv(index=False)
    if path.suffix == ".json":
        return json.dumps(_less_timings(json.loads(path.read_text())), sort_keys=True)
    if path.suffix == ".pt":  # training state: its history holds each epoch's seconds
        return repr(_less_timings(torch.load(path, weights_only=True)))
    if path.suffix == ".md":
        return _markdown_less_timings(path.read_text())
    return path.read_bytes()


def artifacts(results: Path) -> dict[str, str | bytes]:
    """Every file of a build by its path (logs and Snakemake benchmark files, which hold times, left out)."""
    return {f.relative_to(results).as_posix(): _content(f) for f in sorted(results.rglob("*"))
            if f.is_file() and f.relative_to(results).parts[0] not in ("logs", "benchmarks")}


def test_two_cores_build_the_same_artifacts_as_one(built, tmp_path):
    """`--cores 2` runs jobs side by side in another order; every artifact (adapters, predictions, scores,
    plots and the report included) is the same as the `--cores 1` build's, byte for byte or, for JSON and
    parquet, value for value less the wall-clock fields."""
    wd = copy_workflow(tmp_path / "repo", TINY)
    proc = snakemake(wd, REPORT, "--cores", "2")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    one, two = artifacts(built / "results"), artifacts(wd / "results")
    assert sorted(one) == sorted(two)
    assert [name for name in one if one[name] != two[name]] == []


def test_a_build_killed_in_prediction_and_mid_epoch_ends_with_the_same_artifacts(built, tmp_path):
    """SIGKILL while a student predicts, then in the second epoch of training (the first one's checkpoint
    written), each time followed by `snakemake --unlock` and the same command: training resumes after
    epoch 1, and every artifact equals the uninterrupted build's."""
    wd = copy_workflow(tmp_path / "repo", TINY)
    logs, checkpoints = wd / "results/logs/predict_epoch", wd / "results/checkpoints/train"

    def predicting() -> bool:
        if not any("torch threads" in log.read_text() for log in logs.glob("*.log")):
            return False
        time.sleep(1.5)  # the student loaded and decoding
        return True

    kill_when(wd, predicting, REPORT)
    assert not list((wd / "results/predictions").glob("*.parquet"))
    assert snakemake(wd, "--unlock").returncode == 0

    def second_epoch_running() -> bool:
        if completed_epochs(checkpoints) != [1]:
            return False
        time.sleep(1)
        return True

    kill_when(wd, second_epoch_running, REPORT)
    assert completed_epochs(checkpoints) == [1] and not (wd / "results/adapter").exists()
    assert snakemake(wd, "--unlock").returncode == 0
    proc = snakemake(wd, REPORT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    assert "resuming after epoch 1" in (wd / "results/logs/train_student.log").read_text()
    one, resumed = artifacts(built / "results"), artifacts(wd / "results")
    assert sorted(one) == sorted(resumed)
    assert [name for name in one if one[name] != resumed[name]] == []


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
