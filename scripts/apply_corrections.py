"""Rule apply_corrections: grounded + the planned change log → corrected."""
import sys

from distill.contracts import CORRECTIONS_LOG, read_parquet
from distill.dataset.corrections import CorrectionError, apply_plan
from distill.io import setup_logging, write_parquet

log = setup_logging(snakemake.log[0])
try:
    grounded = read_parquet(snakemake.input.grounded, required=("trace_id", "final_answer", "messages"))
    corrected = apply_plan(grounded, read_parquet(snakemake.input.corrections_log, required=CORRECTIONS_LOG))
except CorrectionError as exc:
    log.error("%s", exc)
    sys.exit(1)
log.info("corrections: %d rows changed", corrected["corrected"].sum())
write_parquet(corrected, snakemake.output[0])
