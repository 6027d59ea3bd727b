"""Rule train_student: split/train + split/eval → adapter/ (epoch_<n>/ for every epoch + metrics.json).

Training checkpoints live in params.checkpoints (not a rule output, so Snakemake does not
delete them when a job is interrupted): a rerun resumes from the last completed epoch, then the
adapters are published to the declared outputs.
"""
from distill.contracts import read_parquet
from distill.io import setup_logging
from distill.dataset.split import sample_per_category
from distill.student.base_model import cap_heap_growth, resolve_base, use_available_cores
from distill.student.checkpoints import publish_adapters
from distill.student.train import train, train_config, training_conversations
from distill.workbench import tools

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
log.info("torch threads: %d, mmap threshold fixed: %s", use_available_cores(),
         cap_heap_growth(cfg["student"]["malloc_mmap_threshold_mb"]))
train_df = sample_per_category(read_parquet(snakemake.input.train, required=("trace_id", "messages")),
                               cfg["student"]["train"]["max_examples"], cfg["seed"],
                               cfg["student"]["train"]["category_weights"])
eval_df = sample_per_category(read_parquet(snakemake.input.eval, required=("trace_id", "messages")),
                              cfg["student"]["train"]["max_eval_examples"], cfg["seed"])
log.info("training on %d conversations %s, eval loss on %d", len(train_df),
         train_df["category"].value_counts().to_dict(), len(eval_df))
# The eval conversations take the same shape as the training ones, so eval loss measures what is learnt.
share = cfg["student"]["train"]["first_turn_share"]
train(train_config(cfg), resolve_base(snakemake.input.base), training_conversations(train_df, share),
      training_conversations(eval_df, share), tools.TOOLS, out_dir=snakemake.params.checkpoints)
publish_adapters(snakemake.params.checkpoints, snakemake.output[0])
