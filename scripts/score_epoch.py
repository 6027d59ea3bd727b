"""Rule score_epoch: predictions/epoch_<n>.parquet → scores/epoch_<n>.json."""
from distill.io import read_parquet, setup_logging, write_json
from distill.judge import make_judge
from distill.scoring import score_predictions

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
preds = read_parquet(snakemake.input.predictions, required=("trace_id", "category", "gold_calls", "pred_calls"))
scores = score_predictions(preds, make_judge(cfg["judge"]), {**cfg["scoring"], "seed": cfg["seed"]})
scores = {"epoch": int(snakemake.wildcards.epoch), **scores}
log.info("epoch %s: %s", snakemake.wildcards.epoch, {k: v["value"] for k, v in scores["overall"].items() if isinstance(v, dict) and "value" in v})
write_json(scores, snakemake.output[0])
