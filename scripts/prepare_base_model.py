"""Rule prepare_base_model: the student's base model as a pipeline artifact."""
from distill.io import setup_logging
from distill.student.base_model import prepare_base

log = setup_logging(snakemake.log[0])
base = snakemake.params.cfg["student"]["base"]
prepare_base(base, snakemake.output[0])
log.info("base model %r prepared in %s", base, snakemake.output[0])
