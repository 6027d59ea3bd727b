"""Every script rule lists, as inputs, the `distill` modules its script imports (rules/sources.py).

"Imports" is established independently of the ast walker that derives the inputs: a subprocess runs
only each script's top-level import statements and reads the `distill` modules that land in
`sys.modules` (transitive imports included). "Inputs" come from Snakemake itself: the `input:` line of
every job in a `--forceall` dry run, on a copy of the repository (a dry run writes only `.snakemake/`).
No model is trained; the whole module takes ~15 s, mostly importing torch/transformers.
"""
import ast
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.workflow_helpers import ROOT, copy_workflow, script_rules, snakemake

PKG = "distill"
# Targets whose DAG holds every rule; test_every_script_rule_is_checked fails if one is left out.
TARGETS = ("results/report.md", "results/diagnostics", "results/diff/grounded-vs-corrected.md",
           "results/compare/uncorrected_vs_default.md", "results/teacher/estimate.md", "results/serve/eval.md",
           "results/export/merged")


def load_sources() -> types.ModuleType:
    """rules/sources.py as a module (exec'd, so no __pycache__ lands in rules/)."""
    path = ROOT / "rules" / "sources.py"
    mod = types.ModuleType("rule_sources")
    mod.__file__ = str(path)
    exec(compile(path.read_text(), str(path), "exec"), mod.__dict__)
    return mod


sources = load_sources()


def dry_run_inputs(root: Path) -> dict[str, list[set[str]]]:
    """{rule: [input files of each job]} from a --forceall dry run of TARGETS (Snakemake 9 prints a
    `rule NAME:` block per job, with its inputs comma-separated on one `    input:` line)."""
    proc = snakemake(root, "-n", "--forceall", *TARGETS, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs: dict[str, list[set[str]]] = {}
    for block in re.split(r"^(?=(?:local)?(?:rule|checkpoint) \w+:$)", out, flags=re.M)[1:]:
        name = re.match(r"(?:local)?(?:rule|checkpoint) (\w+):", block).group(1)
        line = re.search(r"^ {4}input: (.*)$", block, flags=re.M)
        jobs.setdefault(name, []).append(set(line.group(1).split(", ")) if line else set())
    total = int(re.search(r"^total\s+(\d+)$", out, flags=re.M).group(1))
    assert sum(map(len, jobs.values())) == total, "dry-run output format changed: jobs not all parsed"
    return jobs


# Runs in a subprocess: for each script, forget distill, exec only its top-level imports, and report
# which distill modules (by file, relative to the root) are then loaded.
_PROBE = r"""
import ast, json, os, sys
root, scripts = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
result = {}
for script in scripts:
    for name in [m for m in sys.modules if m == "distill" or m.startswith("distill.")]:
        del sys.modules[name]
    tree = ast.parse(open(os.path.join(root, script)).read())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    exec(compile(ast.Module(body=imports, type_ignores=[]), script, "exec"), {"__name__": "__probe__"})
    files = [os.path.relpath(m.__file__, root) for name, m in sys.modules.items()
             if (name == "distill" or name.startswith("distill.")) and getattr(m, "__file__", None)]
    result[script] = sorted(files)
print("PROBE" + json.dumps(result))
"""


def runtime_imports(root: Path, scripts: list[str]) -> dict[str, list[str]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(root), *scripts], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.rsplit("PROBE", 1)[1])


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = copy_workflow(tmp_path_factory.mktemp("wf") / "repo")
    rules = script_rules(root)
    jobs = dry_run_inputs(root)
    assert not (root / "results").exists(), "the dry run wrote results"
    return root, rules, jobs, runtime_imports(root, sorted(set(rules.values())))


def test_every_script_rule_is_checked(workflow):
    _, rules, jobs, _ = workflow
    assert rules, "no script rules found in rules/*.smk"
    missing = sorted(set(rules) - set(jobs))
    assert not missing, f"script rules not in the dry-run DAG of {TARGETS}: {missing} (add a target)"


def test_every_imported_module_is_an_input(workflow):
    root, rules, jobs, imported = workflow
    problems = []
    for rule, script in sorted(rules.items()):
        modules = set(imported[script])
        assert f"{PKG}/__init__.py" in modules, f"probe of {script} saw no distill import"
        assert all(not m.startswith("..") for m in modules), f"{script} imported distill from outside {root}"
        for inputs in jobs.get(rule, []):
            if modules - inputs:
                problems.append(f"{rule} ({script}) imports but does not list {sorted(modules - inputs)}")
    assert not problems, "\n".join(problems)


def test_source_inputs_are_exactly_what_the_script_reaches(workflow):
    """No stale or foreign module inputs either (they would re-run the rule for nothing): the .py
    inputs of each job are exactly what the ast walk reaches from that rule's own script."""
    root, rules, jobs, _ = workflow
    for rule, script in sorted(rules.items()):
        expected = set(sources.package_sources(root, script, PKG))
        for inputs in jobs[rule]:
            assert {f for f in inputs if f.startswith(f"{PKG}/") and f.endswith(".py")} == expected, rule


# Read when the Snakefile is parsed, not by a job: the schema fills the config's defaults, which reach each
# rule through its params, so a changed default re-runs what it changes through the params trigger.
PARSE_TIME = {f"{PKG}/config.schema.yaml"}


def test_every_package_data_file_is_an_input_of_some_rule(workflow):
    """Data files are mapped to their reader modules by hand (PACKAGE_DATA in rules/common.smk): a new
    data file or a renamed reader module fails here until the table covers it again."""
    root, _, jobs, _ = workflow
    listed = set().union(*(inputs for runs in jobs.values() for inputs in runs))
    data = {str(p.relative_to(root)) for p in (root / PKG).rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts} - PARSE_TIME
    assert data, "no package data files found"
    assert not sorted(data - listed), f"package data read by no rule per PACKAGE_DATA: {sorted(data - listed)}"


def test_editing_split_reruns_the_rules_that_import_it(workflow):
    """The regression this derivation fixes: train_student and predict_epoch import distill.dataset.split."""
    _, _, jobs, _ = workflow
    users = {rule for rule, runs in jobs.items() if any(f"{PKG}/dataset/split.py" in inputs for inputs in runs)}
    assert {"split_dataset", "train_student", "predict_epoch"} <= users


# Rules that make what the scorer reads (predictions) and everything they depend on.
UPSTREAM_OF_SCORING = ("build_scenarios", "run_teacher", "ground_traces", "plan_corrections", "apply_corrections", "split_dataset",
                       "prepare_base_model", "train_student", "predict_epoch")
RULER_RULES = ("score_epoch", "select_epoch")


def readme_rows() -> dict[str, set[str]]:
    """{first cell: package files it names} for the README's incrementality table; a named folder
    stands for every file under it."""
    text = (ROOT / "README.md").read_text()
    table = text.split("| you change | re-runs | never re-runs |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[1:]:
        cell = line.split("|")[1].strip()
        files: set[str] = set()
        for path in re.findall(r"`([^`]+)`", cell):
            target = ROOT / path
            if path.startswith(f"{PKG}/") and target.is_dir():
                files |= {str(p.relative_to(ROOT)) for p in target.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
            elif path.startswith(f"{PKG}/"):
                assert target.is_file(), f"README names {path}, which does not exist"
                files.add(path)
        rows[cell] = files
    return rows


def test_readme_ruler_row_is_exactly_what_reruns_only_scoring(workflow):
    """The README's "you change the ruler" row names exactly the package files that score or select
    epochs and feed nothing upstream of the predictions, and every file the scorer reads has a row."""
    _, _, jobs, _ = workflow
    def inputs(rule_names):
        return {f for r in rule_names for run in jobs[r] for f in run if f.startswith(f"{PKG}/")}
    scoring, upstream = inputs(RULER_RULES), inputs(UPSTREAM_OF_SCORING)
    rows = readme_rows()
    ruler = next(files for cell, files in rows.items() if cell.startswith("the ruler"))
    assert ruler == scoring - upstream, (sorted(ruler - (scoring - upstream)), sorted((scoring - upstream) - ruler))
    unlisted = scoring - set().union(*rows.values())
    assert not unlisted, f"files whose edit re-scores but no README row names: {sorted(unlisted)}"


# --- the derivation itself, on a tiny fake package -------------------------------------------------

def write(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def fake(tmp_path):
    write(tmp_path, "pkg/__init__.py")
    write(tmp_path, "pkg/a.py", "import json\nfrom pkg.sub import tools\n")
    write(tmp_path, "pkg/sub/__init__.py")
    write(tmp_path, "pkg/sub/tools.py",
          "from typing import TYPE_CHECKING\n"
          "from .helper import h\n"               # relative import
          "from . import sibling\n"               # relative import of a submodule
          "import pkg.a\n"                        # a cycle
          "if TYPE_CHECKING:\n    from pkg.typed import T\n"
          "def f():\n    import pkg.deep.lazy as m\n    return m\n")
    write(tmp_path, "pkg/sub/helper.py", "from ..base import VALUE\n")  # two levels up
    write(tmp_path, "pkg/sub/sibling.py")
    write(tmp_path, "pkg/sub/data/x.csv", "1\n")
    write(tmp_path, "pkg/sub/data/y.csv", "2\n")
    write(tmp_path, "pkg/base.py", "VALUE = 1\n")
    write(tmp_path, "pkg/typed.py")
    write(tmp_path, "pkg/deep/__init__.py")
    write(tmp_path, "pkg/deep/lazy.py")
    write(tmp_path, "pkg/unused.py", "from pkg import base\n")
    write(tmp_path, "pkg/reader.py")
    write(tmp_path, "pkg/other_data.txt", "never read\n")
    write(tmp_path, "otherpkg/__init__.py")
    write(tmp_path, "scripts/run.py",
          "import os\nimport otherpkg\nfrom pkg.a import something  # a name, not a submodule\n"
          "from pkg.sub.tools import f\n")
    return tmp_path


DATA = {"pkg/sub/helper.py": "pkg/sub/data/*.csv", "pkg/reader.py": "pkg/other_data.txt"}


def test_derivation_follows_imports_transitively(fake):
    assert sources.package_sources(fake, "scripts/run.py", "pkg", DATA) == [
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/base.py",
        "pkg/deep/__init__.py",
        "pkg/deep/lazy.py",
        "pkg/sub/__init__.py",
        "pkg/sub/data/x.csv",
        "pkg/sub/data/y.csv",
        "pkg/sub/helper.py",
        "pkg/sub/sibling.py",
        "pkg/sub/tools.py",
        "pkg/typed.py",
    ]


def test_derivation_stays_inside_the_package_and_what_is_reached(fake):
    write(fake, "scripts/small.py", "import os\nimport pkg.base\n")
    assert sources.package_sources(fake, "scripts/small.py", "pkg", DATA) == ["pkg/__init__.py", "pkg/base.py"]
    write(fake, "scripts/none.py", "import otherpkg\n")
    assert sources.package_sources(fake, "scripts/none.py", "pkg", DATA) == []


def test_from_package_import_submodule(fake):
    write(fake, "scripts/sub.py", "from pkg import base, reader\n")
    assert sources.package_sources(fake, "scripts/sub.py", "pkg", DATA) == [
        "pkg/__init__.py", "pkg/base.py", "pkg/other_data.txt", "pkg/reader.py"]
