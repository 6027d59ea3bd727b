"""Rule compare_runs: two runs' scores, selections, training metrics, training sets, configs → compare/<a>_vs_<b>.md."""
from pathlib import Path

from distill.compare import compare, load_run
from distill.io import setup_logging

log = setup_logging(snakemake.log[0])
inp, wc = snakemake.input, snakemake.wildcards


def side(s: str):
    config = inp[f"{s}_config"]
    return load_run(wc[s], scores=inp[f"{s}_scores"], tables=inp[f"{s}_tables"], selection=inp[f"{s}_selection"],
                    metrics=Path(inp[f"{s}_adapter"]) / "metrics.json", train=inp[f"{s}_train"],
                    config=config[0] if config else None)


compare(side("a"), side("b"), Path(snakemake.output.report), Path(snakemake.output.plot), snakemake.params.cfg)
log.info("wrote %s", snakemake.output.report)
