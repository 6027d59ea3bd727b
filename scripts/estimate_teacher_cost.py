"""Rule estimate_teacher_cost: results/scenarios.parquet → results/teacher/estimate.md (no call made)."""

from distill.contracts import read_parquet
from distill.io import setup_logging, write_text
from distill.teacher.anthropic import request_params
from distill.teacher.estimate import estimate_markdown

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
text = estimate_markdown(read_parquet(snakemake.input.scenarios), cfg["teacher"], cfg["pricing"],
                         request_params(cfg["teacher"]))
write_text(text, snakemake.output[0])
log.info("wrote %s", snakemake.output[0])
