"""Rule run_teacher: results/scenarios.parquet → results/traces.parquet (Claude's responses cached)."""
from distill.io import setup_logging
from distill.teacher import build_traces

setup_logging(snakemake.log[0])
build_traces(snakemake.params.cfg, snakemake.input.scenarios, snakemake.output[0], snakemake.params.cache)
