"""The data half of the DAG through real Snakemake: config validation and incremental rebuilds."""
import pandas as pd
import pytest

from tests.workflow_helpers import copy_workflow, edited_file, edited_config, planned_jobs, snakemake

pytestmark = pytest.mark.slow
TARGET = "results/diagnostics"
SPLIT = "results/split/eval.parquet"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    wd = copy_workflow(tmp_path_factory.mktemp("wf") / "repo")
    proc = snakemake(wd, TARGET, SPLIT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return wd


def test_data_half_builds_and_shows_the_injected_faults(built):
    traces = pd.read_parquet(built / "results/traces.parquet")
    assert 320 <= len(traces) <= 400
    assert (traces["backend"] == "offline-simulator").all()
    rejected = pd.read_parquet(built / "results/grounding_rejected.parquet")
    assert set(rejected["reason"]) == {"ungrounded_number"}
    # every trace the simulator gave an invented number is rejected by grounding
    invented = set(traces.loc[traces["injected_faults"].str.contains("ungrounded_number"), "trace_id"])
    assert invented and invented <= set(rejected["trace_id"])
    before = pd.read_parquet(built / "results/diagnostics/suspect_gold_before.parquet")
    after = pd.read_parquet(built / "results/diagnostics/suspect_gold_after.parquet")
    assert (before["issue"] == "split_claim_on_rule_model").sum() > 10
    assert after.empty
    sat = pd.read_parquet(built / "results/diagnostics/saturation.parquet").set_index("category")
    assert sat.loc["methodology", "n_unique_questions"] == 26 < sat.loc["methodology", "n_rows"] / 4
    train = pd.read_parquet(built / "results/split/train.parquet")
    evals = pd.read_parquet(built / "results/split/eval.parquet")
    assert set(train["question"]).isdisjoint(evals["question"])
    assert set(train["gold_calls"]).isdisjoint(evals["gold_calls"])  # split.group_by: gold_plan
    sat_plans = sat.loc["data_source", ["n_unique_questions", "n_unique_plans"]].tolist()
    assert sat_plans[1] == 5 and sat_plans[0] > 5  # one plan per model, however many tickers


def test_up_to_date_tree_plans_nothing(built):
    assert planned_jobs(built, TARGET, SPLIT) == {}



def test_corrections_edit_reruns_corrected_and_after_only(built):
    with edited_file(built / "corrections.yaml", lambda text: text + "# a reviewer's note\n"):
        jobs = planned_jobs(built, SPLIT)
        assert set(jobs) == {"plan_corrections", "apply_corrections", "split_dataset"}
        assert set(planned_jobs(built, TARGET)) == {"plan_corrections", "apply_corrections", "split_dataset",
                                                   "diagnose_dataset"}


def test_grounding_edit_reruns_grounding_onward_never_the_teacher(built):
    with edited_file(built / "distill/dataset/grounding.py"):
        jobs = planned_jobs(built, SPLIT)
        assert set(jobs) == {"ground_traces", "plan_corrections", "apply_corrections", "split_dataset"}


def test_grounding_config_edit_reruns_grounding_not_teacher(built, tmp_path):
    cfg = edited_config(built, tmp_path, {"grounding": {"reject_tool_errors": False}})
    jobs = planned_jobs(built, SPLIT, "--configfile", cfg)
    assert set(jobs) == {"ground_traces", "plan_corrections", "apply_corrections", "split_dataset"}


def test_unrelated_config_edit_reruns_nothing_in_the_data_half(built, tmp_path):
    cfg = edited_config(built, tmp_path, {"scoring": {"query_jaccard": 0.6}, "student": {"gpus": 1}})
    assert planned_jobs(built, TARGET, "--configfile", cfg) == {}


BAD_CORRECTIONS = {  # name: (edit of the shipped corrections.yaml, what plan_corrections.log must say)
    "schema": (lambda t: t.replace("model_kind: rule\n      template_id", "model_kind: quantum\n      template_id", 1),
               "corrections.yaml: at corrections/0/select/model_kind: 'quantum' is not one of"),
    "malformed_yaml": (lambda t: t.replace("corrections:\n", "corrections: [\n", 1), "corrections.yaml: not valid YAML"),
    "unknown_trace_id": (lambda t: t + "  - id: typo\n    reason: r\n    select: {trace_ids: [no-such-trace]}\n"
                                       "    answer: x\n", "correction 'typo': trace id(s) not found: ['no-such-trace']"),
    "matches_nothing": (lambda t: t + "  - id: stale\n    reason: r\n    select: {model_id: ridge_forecaster, "
                                      "model_kind: rule}\n    answer: x\n", "correction 'stale' matches no row"),
    "conflict": (lambda t: t + "  - id: second-opinion\n    reason: r\n    select: {model_kind: rule, template_id: "
                               "method_validation}\n    answer: Backtested, never fitted.\n",
                 "corrections 'rule-validation-no-split' and 'second-opinion' both correct"),
}


@pytest.mark.parametrize("case", sorted(BAD_CORRECTIONS))
def test_a_bad_corrections_file_fails_and_leaves_corrected_untouched(built, case):
    """Planning checks the file against the data before anything is applied: the build stops naming the
    entry and the problem, and corrected.parquet (and so the split and every adapter) is byte for byte as
    it was."""
    edit, expected = BAD_CORRECTIONS[case]
    corrected = (built / "results/corrected.parquet").read_bytes()
    with edited_file(built / "corrections.yaml", edit):
        proc = snakemake(built, TARGET, SPLIT)
        assert proc.returncode != 0
        log = (built / "results/logs/plan_corrections.log").read_text()
        assert expected in log, log[-2000:]
        assert (built / "results/corrected.parquet").read_bytes() == corrected
    assert snakemake(built, TARGET, SPLIT).returncode == 0
    assert (built / "results/corrected.parquet").read_bytes() == corrected


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_a_damaged_input_artifact_fails_the_rule_naming_it(built, damage):
    """grounded.parquet cut in half (a disk that filled up) or replaced by another table: the next rule fails
    naming the file and the problem, and corrected.parquet stays as it was."""
    grounded = built / "results/grounded.parquet"
    good = grounded.read_bytes()
    corrected = (built / "results/corrected.parquet").read_bytes()
    try:
        if damage == "truncated":
            grounded.write_bytes(good[: len(good) // 2])
        else:
            pd.DataFrame({"trace_id": ["a"], "answer": ["x"]}).to_parquet(grounded)
        proc = snakemake(built, "results/corrected.parquet")
        assert proc.returncode != 0
        log = (built / "results/logs/plan_corrections.log").read_text() + proc.stderr
        expected = ("not a readable parquet file" if damage == "truncated"
                    else "missing column(s) scenario_id, model_id")
        assert f"results/grounded.parquet: {expected}" in log, log[-2000:]
        assert (built / "results/corrected.parquet").read_bytes() == corrected
    finally:
        grounded.write_bytes(good)
    assert snakemake(built, TARGET, SPLIT).returncode == 0
