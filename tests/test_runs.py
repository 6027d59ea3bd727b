"""Named runs (rules/runs.py): which run owns each artifact, what a rule sees, and bad variant files."""
from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest
import yaml

from tests.workflow_helpers import rule_blocks, script_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs() -> types.ModuleType:
    """rules/runs.py as a module (exec'd, so no __pycache__ lands in rules/)."""
    path = ROOT / "rules" / "runs.py"
    mod = types.ModuleType("rule_runs")
    exec(compile(path.read_text(), str(path), "exec"), mod.__dict__)
    return mod


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def owners(runs, cfgs: dict, name: str) -> dict[str, str]:
    return {stage: runs.owner_dir(cfgs, name, stage) for stage in runs.STAGES}


def test_a_training_variant_shares_the_data_stages_and_builds_the_rest(runs, default):
    cfgs = {"default": default, "lr": runs.deep_merge(default, {"student": {"train": {"learning_rate": 5e-4}}})}
    own = {s for s, d in owners(runs, cfgs, "lr").items() if d}
    assert own == {"adapter", "predictions", "scores", "selection", "report", "serving", "export"}
    assert runs.owner_dir(cfgs, "lr", "adapter") == "variants/lr/"


def test_an_uncorrected_variant_shares_teacher_and_grounding_only(runs, default):
    cfgs = {"default": default, "uncorrected": runs.deep_merge(default, {"corrections": {"file": None}})}
    shared = {s for s, d in owners(runs, cfgs, "uncorrected").items() if not d}
    assert shared == {"scenarios", "traces", "estimate", "grounded", "base_model"}


def test_a_ruler_variant_shares_every_prediction(runs, default):
    cfgs = {"default": default, "strict": runs.deep_merge(default, {"scoring": {"query_jaccard": 1.0}})}
    own = {s for s, d in owners(runs, cfgs, "strict").items() if d}
    assert own == {"scores", "baseline_scores", "selection", "report", "serving", "export"}


def test_scheduling_keys_share_everything(runs, default):
    cfgs = {"default": default, "gpu": runs.deep_merge(default, {"student": {"gpus": 1}})}
    assert not any(owners(runs, cfgs, "gpu").values())


def test_params_are_exactly_the_stage_keys(runs, default):
    cfg = runs.stage_config(default, "predictions")
    assert cfg == {"seed": default["seed"], "predict": default["predict"],
                   "student": {k: default["student"][k] for k in ("quantization", "dtype", "autocast")}}
    assert "gpus" not in runs.stage_config(default, "adapter")["student"]


def test_every_stage_key_exists_in_the_config(runs, default):
    for stage in runs.STAGES:
        runs.stage_config(default, stage)  # KeyError names a stage key the config does not have
        for up in runs.STAGES[stage][1]:
            assert up in runs.STAGES, f"{stage}: unknown upstream stage {up!r}"


def test_dirs_and_names_round_trip(runs):
    assert runs.dir_of("default") == "" and runs.name_of("") == "default"
    assert runs.name_of(runs.dir_of("epochs6")) == "epochs6"


def test_deep_merge_leaves_its_arguments_alone(runs):
    base = {"a": {"b": 1, "c": [1]}}
    merged = runs.deep_merge(base, {"a": {"b": 2}})
    assert merged == {"a": {"b": 2, "c": [1]}} and base == {"a": {"b": 1, "c": [1]}}


@pytest.mark.parametrize("name, text, message", [
    ("default", "seed: 1\n", "not 'default'"),
    ("a_vs_b", "seed: 1\n", "no '_vs_'"),
    ("bad", "- 1\n", "a mapping"),
    ("exp", "experiments: {kept: {}}\n", "cannot change `experiments`"),
])
def test_bad_variant_files_are_named(runs, tmp_path, name, text, message):
    (tmp_path / "variants").mkdir()
    (tmp_path / "variants" / f"{name}.yaml").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        runs.load_variants(tmp_path, "variants")
    assert f"variants/{name}.yaml" in str(err.value)


def test_shipped_variants_load(runs):
    found = runs.load_variants(ROOT, "variants")
    assert {"uncorrected", "strict_ruler", "epochs6"} <= set(found)
    assert found["uncorrected"] == {"corrections": {"file": None}}


def _literal_reads(script: Path) -> set[tuple[str, ...]]:
    """Every `cfg["a"]["b"]...` chain of string subscripts in `script`, outermost only, as ("a", "b", ...)."""
    reads, inner = set(), set()
    for node in ast.walk(ast.parse(script.read_text())):
        if not isinstance(node, ast.Subscript) or id(node) in inner:
            continue
        keys, value = [], node
        while isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant):
            keys.append(value.slice.value)
            inner.add(id(value.value))
            value = value.value
        if isinstance(value, ast.Name) and value.id == "cfg" and keys:
            reads.add(tuple(reversed(keys)))
    return reads


def test_scripts_read_only_their_stage_keys(runs):
    """A script that reads a key its rule's params leave out fails only when the rule runs (a KeyError in a
    whole build); this catches the literal reads without building anything."""
    checked = 0
    blocks = rule_blocks(ROOT)
    for rule, script in script_rules(ROOT).items():
        if not (stage := re.search(r'cfg=params\("(\w+)"\)', blocks[rule])):
            continue
        keys = [tuple(k.split(".")) for k in runs.STAGES[stage.group(1)][0]]
        for read in _literal_reads(ROOT / script):
            assert any(read[:len(k)] == k or k[:len(read)] == read for k in keys), \
                f"{script} reads cfg{''.join(f'[{p!r}]' for p in read)}, not in stage {stage.group(1)!r}"
            checked += 1
    assert checked > 20  # the walker finds the scripts' reads at all
