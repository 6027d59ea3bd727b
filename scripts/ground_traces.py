"""Rule ground_traces: traces → grounded (kept) + grounding_rejected (with reasons)."""
from distill.dataset.grounding import filter_traces
from distill.contracts import read_parquet
from distill.io import setup_logging, write_parquet

log = setup_logging(snakemake.log[0])
traces = read_parquet(snakemake.input.traces, required=("trace_id", "final_answer", "tool_outputs"))
kept, rejected = filter_traces(traces, **snakemake.params.cfg["grounding"])
log.info("grounding: kept %d, rejected %d %s", len(kept), len(rejected), rejected["reason"].value_counts().to_dict())
write_parquet(kept, snakemake.output.kept)
write_parquet(rejected, snakemake.output.rejected)
