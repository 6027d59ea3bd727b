"""Gold corrections: selectors, both actions, the per-row log, and errors that name the entry."""
import json
from pathlib import Path

import pandas as pd
import pytest

from distill.dataset.corrections import CorrectionError, apply_plan, load_corrections, plan_corrections

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas" / "corrections.schema.yaml"
BOILER = "As with every workbench model, results use the default 80/20 train/test split and are reported out-of-sample."


def _row(trace_id, model_id, kind, template, answer):
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}]
    return {"trace_id": trace_id, "model_id": model_id, "model_kind": kind, "ticker": "ACME",
            "category": "methodology", "template_id": template, "final_answer": answer,
            "messages": json.dumps(msgs)}


@pytest.fixture
def frame():
    return pd.DataFrame([
        _row("t1", "sma_crossover", "rule", "method_validation", f"SMA Crossover is rule-based. {BOILER}"),
        _row("t2", "sma_crossover", "rule", "method_lookahead", f"It trades on the next bar. {BOILER}"),
        _row("t3", "ridge_forecaster", "ml", "method_validation", "Fitted on a chronological 80/20 train/test split."),
        _row("t4", "rsi_reversion", "rule", "method_lookahead", "It trades on the next bar."),
    ])


def apply_corrections(frame, entries):
    """Both rules' steps: plan (checked against the data), then apply."""
    log = plan_corrections(frame, entries)
    return apply_plan(frame, log), log


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_shipped_corrections_file_is_valid():
    entries = load_corrections(ROOT / "corrections.yaml", SCHEMA)
    assert [e["id"] for e in entries] == ["rule-validation-no-split", "rule-methodology-drop-split-boilerplate"]


def test_shipped_corrections_fix_split_claims_only_on_rule_models(frame):
    out, log = apply_corrections(frame, load_corrections(ROOT / "corrections.yaml", SCHEMA))
    by_id = out.set_index("trace_id")
    assert by_id.loc["t1", "final_answer"].startswith("SMA Crossover is rule-based with nothing to fit")
    assert by_id.loc["t2", "final_answer"] == "It trades on the next bar."
    assert "80/20" in by_id.loc["t3", "final_answer"]  # the ML model really is split: untouched
    assert not by_id.loc["t4", "corrected"]
    assert json.loads(by_id.loc["t1", "messages"])[-1]["content"] == by_id.loc["t1", "final_answer"]
    assert json.loads(by_id.loc["t2", "correction_ids"]) == ["rule-methodology-drop-split-boilerplate"]
    assert sorted(log["trace_id"]) == ["t1", "t2"]
    assert (log["old_answer"] != log["new_answer"]).all()


def test_trace_id_selector(tmp_path, frame):
    p = _write(tmp_path, "corrections:\n- id: fix-t4\n  reason: typo\n  select: {trace_ids: [t4]}\n  answer: '{model_name} trades next bar.'\n")
    out, log = apply_corrections(frame, load_corrections(p, SCHEMA))
    assert out.set_index("trace_id").loc["t4", "final_answer"] == "RSI Mean Reversion trades next bar."
    assert list(log["correction_id"]) == ["fix-t4"]


def test_entry_matching_no_row_is_an_error(tmp_path, frame):
    p = _write(tmp_path, "corrections:\n- id: stale\n  reason: r\n  select: {model_id: covered_call}\n  answer: x\n")
    with pytest.raises(CorrectionError, match="'stale' matches no row"):
        apply_corrections(frame, load_corrections(p, SCHEMA))


def test_unknown_trace_id_is_an_error(tmp_path, frame):
    p = _write(tmp_path, "corrections:\n- id: ids\n  reason: r\n  select: {trace_ids: [t1, nope]}\n  answer: x\n")
    with pytest.raises(CorrectionError, match="nope"):
        apply_corrections(frame, load_corrections(p, SCHEMA))


@pytest.mark.parametrize("text, needle", [
    ("corrections:\n- id: a\n  reason: r\n  select: {model_kind: quantum}\n  answer: x\n", "corrections/0/select/model_kind"),
    ("corrections:\n- id: a\n  reason: r\n  select: {}\n  answer: x\n", "corrections/0/select"),
    ("corrections:\n- id: a\n  reason: r\n  select: {model_id: m}\n  answr: x\n", "corrections/0"),
    ("corrections:\n- id: a\n  reason: r\n  select: {model_id: m}\n  remove_matching_sentences: true\n", "needs select.pattern"),
    ("corrections:\n- id: a\n  reason: r\n  select: {pattern: '('}\n  answer: x\n", "bad select.pattern"),
    ("corrections: [\n", "not valid YAML"),
])
def test_malformed_file_names_the_problem(tmp_path, text, needle):
    with pytest.raises(CorrectionError, match=needle.replace("(", r"\(")):
        load_corrections(_write(tmp_path, text), SCHEMA)


def test_two_entries_correcting_a_row_differently_is_an_error(tmp_path, frame):
    p = _write(tmp_path, "corrections:\n- id: one\n  reason: r\n  select: {template_id: method_lookahead}\n  answer: x\n"
                         "- id: two\n  reason: r\n  select: {trace_ids: [t4]}\n  answer: y\n")
    with pytest.raises(CorrectionError, match="'one' and 'two' both correct t4, differently"):
        apply_corrections(frame, load_corrections(p, SCHEMA))


def test_an_entry_repeating_an_earlier_ones_answer_is_no_conflict(tmp_path, frame):
    p = _write(tmp_path, "corrections:\n- id: one\n  reason: r\n  select: {template_id: method_lookahead}\n  answer: x\n"
                         "- id: two\n  reason: r\n  select: {trace_ids: [t4]}\n  answer: x\n")
    out, log = apply_corrections(frame, load_corrections(p, SCHEMA))
    assert sorted(log["trace_id"]) == ["t2", "t4"] and set(log["correction_id"]) == {"one"}
    assert out.set_index("trace_id").loc["t4", "final_answer"] == "x"


def test_a_log_planned_from_other_data_is_refused(frame):
    log = plan_corrections(frame, load_corrections(ROOT / "corrections.yaml", SCHEMA))
    edited = frame.assign(final_answer=frame["final_answer"].str.replace("SMA", "EMA"))
    with pytest.raises(CorrectionError, match="t1 has another gold answer than the log's old_answer; the log is stale"):
        apply_plan(edited, log)
    with pytest.raises(CorrectionError, match="t2 is not in the data"):
        apply_plan(frame[frame["trace_id"] != "t2"], log)
