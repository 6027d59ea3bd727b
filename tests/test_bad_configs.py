"""Bad configurations, table-driven, through the real `snakemake --cores 1 results/report.md`.

Each case edits one thing in a copy of the workflow (config.yaml, or a variant file) and must stop before any
job: a non-zero exit, a ConfigError naming the file, the key path and what is wrong, and the results/ tree
exactly as it was (a sentinel file and an earlier artifact untouched, nothing added).
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest
import yaml

from tests.workflow_helpers import _merge, copy_workflow, snakemake

pytestmark = pytest.mark.slow  # 25 Snakemake start-ups

TARGET = "results/report.md"
# (case, config override or ("variant", file text), what the error must say)
CASES = [
    ("wrong type", {"seed": "seven"}, "config.yaml: seed: 'seven' is not of type 'integer'"),
    ("unknown model", {"scenarios": {"models": ["sma_crossover", "momentum_9000"]}},
     "config.yaml: scenarios.models.1: 'momentum_9000' is not one of"),
    ("unknown ticker", {"scenarios": {"tickers": ["ACME", "ZZZZ"]}}, "config.yaml: scenarios.tickers.1: 'ZZZZ'"),
    ("bad date", {"scenarios": {"window": {"start": "2019/01/02"}}}, "config.yaml: scenarios.window.start"),
    ("negative fee", {"scenarios": {"what_if_fee_bps": [-5]}}, "config.yaml: scenarios.what_if_fee_bps.0: -5"),
    ("unknown backend", {"teacher": {"backend": "gpt"}}, "config.yaml: teacher.backend: 'gpt'"),
    ("zero teacher turns", {"teacher": {"max_turns": 0}}, "config.yaml: teacher.max_turns: 0"),
    ("fault rate above 1", {"teacher": {"faults": {"ungrounded_number": 1.5}}},
     "config.yaml: teacher.faults.ungrounded_number: 1.5"),
    ("misspelt fault", {"teacher": {"faults": {"ungrounded_numbr": 0.1}}}, "ungrounded_numbr"),
    ("unknown request mode", {"teacher": {"anthropic": {"mode": "stream"}}}, "config.yaml: teacher.anthropic.mode"),
    ("eval fraction above 1", {"split": {"eval_fraction": 1.5}}, "config.yaml: split.eval_fraction: 1.5"),
    ("unknown grouping", {"split": {"group_by": "ticker"}}, "config.yaml: split.group_by: 'ticker'"),
    ("unknown quantization", {"student": {"quantization": "int8"}}, "config.yaml: student.quantization: 'int8'"),
    ("zero rank", {"student": {"lora": {"r": 0}}}, "config.yaml: student.lora.r: 0"),
    ("zero epochs", {"student": {"train": {"epochs": 0}}}, "config.yaml: student.train.epochs: 0"),
    ("rate as text", {"student": {"train": {"learning_rate": "fast"}}}, "config.yaml: student.train.learning_rate"),
    ("misspelt key", {"student": {"train": {"epoch": 3}}}, "'epoch' was unexpected"),
    ("zero batch", {"predict": {"batch_size": 0}}, "config.yaml: predict.batch_size: 0"),
    ("unknown repeat rule", {"predict": {"constrain": {"repeats": "sometimes"}}},
     "config.yaml: predict.constrain.repeats: 'sometimes'"),
    ("ship bar above 1", {"scoring": {"ship_bar": {"judge": 1.2}}}, "config.yaml: scoring.ship_bar.judge: 1.2"),
    ("negative resamples", {"scoring": {"bootstrap_samples": -1}}, "config.yaml: scoring.bootstrap_samples: -1"),
    ("unknown metric", {"selection": {"metric": ["accuracy"]}}, "config.yaml: selection.metric.0: 'accuracy'"),
    ("port out of range", {"serve": {"port": 70000}}, "config.yaml: serve.port: 70000"),
    ("unknown section", {"trainer": {"epochs": 3}}, "'trainer' was unexpected"),
    ("missing corrections file", {"corrections": {"file": "no_such_corrections.yaml"}}, "config.yaml: corrections.file: 'no_such_corrections.yaml' does not exist"),
    ("variant with an unknown key", ("variant", "student:\n  train:\n    epochz: 2\n"),
     "variants/broken.yaml: student.train: Additional properties are not allowed ('epochz' was unexpected)"),
    ("variant with a bad value", ("variant", "split:\n  eval_fraction: 0\n"), "variants/broken.yaml: split.eval_fraction: 0"),
]


def tree(root: Path) -> dict[str, str]:
    """Every file under root with a digest of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    """One copy of the workflow with an earlier results/ tree in it (a sentinel and an old artifact)."""
    wd = copy_workflow(tmp_path_factory.mktemp("bad-configs") / "repo")
    (wd / "results").mkdir()
    (wd / "results" / "sentinel.txt").write_text("built before\n")
    (wd / "results" / "scores").mkdir()
    (wd / "results" / "scores" / "epoch_1.json").write_text('{"judge": 0.5}\n')
    return wd


@pytest.mark.parametrize("case, edit, needle", CASES, ids=[c[0] for c in CASES])
def test_a_bad_config_stops_before_any_job_naming_the_key(workflow, case, edit, needle) -> None:
    config_path, variant = workflow / "config.yaml", workflow / "variants" / "broken.yaml"
    pristine = config_path.read_text()
    before = tree(workflow / "results")
    try:
        if isinstance(edit, tuple):
            variant.write_text(edit[1])
        else:
            cfg = copy.deepcopy(yaml.safe_load(pristine))
            _merge(cfg, edit)
            config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        proc = snakemake(workflow, TARGET, timeout=300)
    finally:
        config_path.write_text(pristine)
        variant.unlink(missing_ok=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert needle in out, out[-3000:]
    assert "ConfigError" in out and "Job stats" not in out and "jobid:" not in out, "a job was planned or started"
    assert tree(workflow / "results") == before
