"""Rule select_epoch: per-epoch scores + eval losses → selection.json."""
from pathlib import Path

from distill.contracts import read_json
from distill.io import epoch_of, setup_logging, write_json
from distill.ruler.selection import select_epoch

log = setup_logging(snakemake.log[0])
scores = {epoch_of(p): read_json(p) for p in snakemake.input.scores}
losses = {e["epoch"]: e["eval_loss"] for e in read_json(Path(snakemake.input.adapter) / "metrics.json")["epochs"]}
selection = select_epoch(scores, losses, snakemake.params.cfg["selection"]["metric"])
log.info("task metric picks epoch %s, eval loss picks epoch %s (disagree=%s)",
         selection["task_epoch"], selection["eval_loss_epoch"], selection["disagree"])
write_json(selection, snakemake.output[0])
