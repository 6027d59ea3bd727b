# Distil a hosted assistant (the teacher) into a small local student for the trading workbench.
# Wiring only: the logic lives in the `distill` package, one rules/<stage>.smk per stage of the DAG.
from snakemake.utils import min_version

from distill.config import ConfigError, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "config.yaml")  # schemas/config.schema.yaml; fills every default


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teacher.smk"
include: "rules/dataset.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/compare.smk"
include: "rules/serve.smk"


rule all:
    default_target: True
    input:
        "results/report.md",
