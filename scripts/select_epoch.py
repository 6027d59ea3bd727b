"""Rule select_epoch: per-epoch scores + eval losses → selection.json."""
import json
import re

from distill.io import setup_logging, write_json
from distill.selection import select_epoch

log = setup_logging(snakemake.log[0])
scores = {int(re.search(r"epoch_(\d+)", p).group(1)): json.load(open(p)) for p in snakemake.input.scores}
losses = {e["epoch"]: e["eval_loss"] for e in json.load(open(snakemake.input.metrics))["epochs"]}
selection = select_epoch(scores, losses, snakemake.params.cfg["selection"]["metric"])
log.info("task metric picks epoch %s, eval loss picks epoch %s (disagree=%s)",
         selection["task_epoch"], selection["eval_loss_epoch"], selection["disagree"])
write_json(selection, snakemake.output[0])
