"""Rule diff_datasets: a markdown diff between two dataset parquet files."""
from distill.diagnostics import diff_markdown
from distill.io import setup_logging, write_text

setup_logging(snakemake.log[0])
write_text(diff_markdown(snakemake.input.old, snakemake.input.new), snakemake.output[0])
