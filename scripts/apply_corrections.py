"""Rule apply_corrections: grounded + corrections file → corrected + per-row corrections log."""
import sys

from distill.dataset.corrections import CorrectionError, apply_corrections, load_corrections
from distill.contracts import read_parquet
from distill.io import setup_logging, write_parquet

log = setup_logging(snakemake.log[0])
try:
    # corrections.file: null (e.g. the `uncorrected` variant) applies none: the gold stays as the teacher wrote it.
    files = snakemake.input.corrections
    entries = load_corrections(files[0], snakemake.input.schema) if files else []
    grounded = read_parquet(snakemake.input.grounded, required=("trace_id", "final_answer", "messages"))
    corrected, table = apply_corrections(grounded, entries)
except CorrectionError as exc:
    log.error("%s", exc)
    sys.exit(1)
log.info("corrections: %d rows changed %s", corrected["corrected"].sum(), table["correction_id"].value_counts().to_dict())
write_parquet(corrected, snakemake.output.corrected)
write_parquet(table, snakemake.output.log_table)
