"""Rule plan_corrections: grounded + corrections file → the per-row change log, checked against the data."""
import sys

from distill.contracts import read_parquet
from distill.dataset.corrections import CorrectionError, load_corrections, plan_corrections
from distill.io import setup_logging, write_parquet

log = setup_logging(snakemake.log[0])
try:
    # corrections.file: null (e.g. the `uncorrected` variant) applies none: the gold stays as the teacher wrote it.
    files = snakemake.input.corrections
    entries = load_corrections(files[0], snakemake.input.schema) if files else []
    grounded = read_parquet(snakemake.input.grounded, required=("trace_id", "final_answer", "messages"))
    table = plan_corrections(grounded, entries)
except CorrectionError as exc:
    log.error("%s", exc)
    sys.exit(1)
log.info("corrections: %d rows to change %s", len(table), table["correction_id"].value_counts().to_dict())
write_parquet(table, snakemake.output[0])
