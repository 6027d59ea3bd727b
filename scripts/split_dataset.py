"""Rule split_dataset: corrected → split/train + split/eval."""
from distill.contracts import read_parquet
from distill.io import setup_logging, write_parquet
from distill.dataset.split import split_dataset

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
df = read_parquet(snakemake.input.corrected, required=("trace_id", "category", "question", "gold_calls"))
sp = cfg["split"]
train, evals = split_dataset(df, sp["eval_fraction"], cfg["seed"], sp["group_by"], sp["min_eval_groups"])
log.info("split: train %d, eval %d; eval per category %s", len(train), len(evals), evals["category"].value_counts().to_dict())
write_parquet(train, snakemake.output.train)
write_parquet(evals, snakemake.output.eval)
