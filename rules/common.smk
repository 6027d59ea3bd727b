# Shared wiring: config sections, source-module inputs and wildcard constraints.
import os

PKG = "distill"


def section(name):
    """One config section plus the global seed: the only params a rule sees, so that editing another
    section never trips Snakemake's params rerun trigger for this rule."""
    return {"seed": config["seed"], name: config[name]}


def src(*modules):
    """Source files of the package that a rule's script imports. Snakemake does not track imported
    modules, so they are listed as inputs: editing one re-runs the rule and what lies downstream."""
    return [os.path.join(PKG, m) for m in modules]


# Modules every stage imports (artifact I/O).
COMMON_SRC = src("io.py")
WORKBENCH_SRC = src(
    "workbench/registry.py",
    "workbench/prices.py",
    "workbench/backtest.py",
    "workbench/docs.py",
    "workbench/tools.py",
) + sorted(
    os.path.join(PKG, "workbench", "docs", f)
    for f in os.listdir(os.path.join(workflow.basedir, PKG, "workbench", "docs"))
    if f.endswith(".md")
) + [os.path.join(PKG, "workbench", "data", "prices.parquet")]

EPOCHS = list(range(1, config["student"]["train"]["epochs"] + 1))
ALL_EPOCHS = [0] + EPOCHS  # epoch 0 = the untrained base, the baseline every epoch is compared with
GPUS = config["student"]["gpus"]


wildcard_constraints:
    epoch=r"\d+",


def student_section():
    """The training-relevant part of `student` (gpus only changes scheduling, not the adapter)."""
    return {"seed": config["seed"], "student": {k: v for k, v in config["student"].items() if k != "gpus"}}


def adapter_for(wildcards):
    """Epoch 0 has no adapter: the base model answers."""
    n = int(wildcards.epoch)
    return [] if n == 0 else [f"results/adapter/epoch_{n}"]
