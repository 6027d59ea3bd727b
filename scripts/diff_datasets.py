"""Rule diff_datasets: a markdown diff between two dataset parquet files."""
from distill.dataset.diagnostics import diff, diff_markdown
from distill.io import setup_logging, write_text

setup_logging(snakemake.log[0])
old, new = snakemake.input.old, snakemake.input.new
tables = diff(old, new)
write_text(diff_markdown(tables["diff"], tables["diff_by_category"], old, new), snakemake.output[0])
