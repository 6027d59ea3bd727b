"""Rule build_scenarios: config section → results/scenarios.parquet."""
from distill.io import setup_logging, write_parquet
from distill.dataset.scenarios import build_grid

log = setup_logging(snakemake.log[0])
grid = build_grid(snakemake.params.cfg)
log.info("scenarios: %d rows, per category %s", len(grid), grid["category"].value_counts().to_dict())
write_parquet(grid, snakemake.output[0])
