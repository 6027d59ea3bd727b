"""Rule run_teacher: results/scenarios.parquet → results/traces.parquet."""
import pandas as pd

from distill.io import setup_logging, write_parquet
from distill.teacher import make_teacher, run_grid

log = setup_logging(snakemake.log[0])
teacher = make_teacher(snakemake.params.cfg)
log.info("teacher backend=%s model=%s", teacher.backend, teacher.model)
traces = run_grid(pd.read_parquet(snakemake.input.scenarios), teacher)
log.info("traces: %d, cost_usd=%.4f", len(traces), traces["cost_usd"].sum())
write_parquet(traces, snakemake.output[0])
