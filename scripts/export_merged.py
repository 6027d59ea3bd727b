"""Rule export_merged: the adapter selection.json picked, merged into a float copy of the base."""
from distill.contracts import read_json

from distill.student.export import merge_adapter
from distill.io import setup_logging

log = setup_logging(snakemake.log[0])
epoch = read_json(snakemake.input.selection)["task_epoch"]
adapter = f"{snakemake.input.adapter}/epoch_{epoch}"
log.info("merging %s into a %s copy of %s", adapter, snakemake.params.cfg["student"]["dtype"], snakemake.input.base)
merge_adapter(snakemake.input.base, adapter, snakemake.output[0], snakemake.params.cfg["student"]["dtype"])
