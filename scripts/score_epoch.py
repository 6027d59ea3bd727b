"""Rule score_epoch: predictions/epoch_<n>.parquet → scores/epoch_<n>.parquet (per question) + .json (summary)."""
from distill.contracts import read_parquet
from distill.io import setup_logging, write_json, write_parquet
from distill.ruler.judge import make_judge
from distill.ruler.judge.rubric import RubricJudge
from distill.ruler.scoring import score_frame
from distill.ruler.summary import summarise

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.cfg
preds = read_parquet(snakemake.input.predictions, required=("trace_id", "category", "gold_calls", "pred_calls"))
judge = make_judge(cfg["judge"], snakemake.params.cache, cfg["claims"])
frame = score_frame(preds, judge, cfg["scoring"], rubric=RubricJudge(cfg["judge"]["rubric"], cfg["claims"]),  # agreement
                    claims=cfg["claims"])
scores = {"epoch": int(snakemake.wildcards.epoch), **summarise(frame, cfg["scoring"], judge.name, cfg["seed"])}
log.info("epoch %s: %s", snakemake.wildcards.epoch, {m: scores["overall"][m]["value"] for m in ("tool_call", "answered", "grounded", "judge")})
if judge.name == "anthropic":
    log.info("judge: %d requests paid now, %d answered from the cache; %d gradings failed",
             judge.stats.get("requests", 0), judge.stats.get("hits", 0), int(frame["judge_error"].notna().sum()))
write_parquet(frame, snakemake.output.table)
write_json(scores, snakemake.output.summary)
