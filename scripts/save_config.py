"""Rule save_config: a run's effective config → results/<run>config.json."""
from distill.io import setup_logging, write_json

setup_logging(snakemake.log[0])
write_json(snakemake.params.cfg, snakemake.output[0])
