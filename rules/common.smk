# Shared wiring: config sections, source-module inputs and wildcard constraints.

include: "sources.py"  # package_sources: a script's imports, derived with ast

import glob
import os


PKG = "distill"


# Package data files a module reads at run time ({module file: glob}, relative to the workflow root):
# `script_sources` adds a module's files to every rule whose script reaches that module. Imports are
# derived; data reads are not (they hide in path arithmetic), so each reader is listed here, with how it
# reads. tests/test_rule_inputs.py fails when a data file under distill/ is claimed by no entry.
PACKAGE_DATA = {
    "distill/diagnostics.py": "distill/sql/*.sql",  # resources.files("distill.sql") / f"{name}.sql"
    "distill/workbench/docs.py": "distill/workbench/docs/*.md",  # DOCS_DIR.glob("*.md")
    "distill/workbench/prices.py": "distill/workbench/data/prices.parquet",  # PRICES_PATH
}


def script_sources(script):
    """Source inputs of the rule running `script` (path relative to the workflow root): the package
    modules it imports, transitively, plus the data files they read (see rules/sources.py). Snakemake
    does not track imported modules, so they are inputs: editing one re-runs exactly the rules whose
    scripts reach it, and what lies downstream."""
    return package_sources(workflow.basedir, script, PKG, PACKAGE_DATA)


def section(name):
    """One config section plus the global seed: the only params a rule sees, so that editing another
    section never trips Snakemake's params rerun trigger for this rule."""
    return {"seed": config["seed"], name: config[name]}


EPOCHS = list(range(1, config["student"]["train"]["epochs"] + 1))
ALL_EPOCHS = [0] + EPOCHS  # epoch 0 = the untrained base, the baseline every epoch is compared with
GPUS = config["student"]["gpus"]


wildcard_constraints:
    epoch=r"\d+",


def student_section():
    """The training-relevant part of `student` (gpus only changes scheduling, not the adapter)."""
    return {"seed": config["seed"], "student": {k: v for k, v in config["student"].items() if k != "gpus"}}


def baseline_inputs():
    """An earlier results tree's pick that report.md compares with (config report.baseline), or nothing."""
    root = config["report"]["baseline"]
    if not root:
        return []
    return [os.path.join(root, "selection.json")] + sorted(glob.glob(os.path.join(root, "scores", "epoch_*.json")))


def adapter_for(wildcards):
    """Epoch 0 has no adapter: the base model answers."""
    n = int(wildcards.epoch)
    return [] if n == 0 else [f"results/adapter/epoch_{n}"]
