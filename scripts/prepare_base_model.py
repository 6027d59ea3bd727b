"""Rule prepare_base_model: the student's base model as a pipeline artifact."""
from distill.io import setup_logging
from distill.student import prepare_base

log = setup_logging(snakemake.log[0])
prepare_base(snakemake.params.base, snakemake.output[0])
log.info("base model %r prepared in %s", snakemake.params.base, snakemake.output[0])
