"""Rule diagnose_dataset: DuckDB diagnostics over the dataset artifacts → results/diagnostics/."""
from distill.dataset.diagnostics import build_all
from distill.io import setup_logging

log = setup_logging(snakemake.log[0])
i = snakemake.input
build_all(i.grounded, i.rejected, i.corrected, i.corrections_log, i.train, i.eval, snakemake.output[0],
          snakemake.params.cfg["claims"])
log.info("diagnostics written to %s", snakemake.output[0])
