"""Rule build_report: score files and tables, selection, training metrics, diagnostics → report.md + PNG plots."""
import json
from pathlib import Path

import pandas as pd

from distill.io import epoch_of, setup_logging
from distill.report import build_report, load_baseline
from distill.report.cost import TRACE_COLUMNS

log = setup_logging(snakemake.log[0])
inp, out, cfg = snakemake.input, snakemake.output, snakemake.params.cfg
scores = {epoch_of(p): json.loads(Path(p).read_text()) for p in inp.scores}
tables = {epoch_of(p): pd.read_parquet(p) for p in inp.tables}
traces = pd.read_parquet(inp.traces, columns=["trace_id", "injected_faults", *TRACE_COLUMNS])
build_report(
    scores=scores,
    tables=tables,
    selection=json.loads(Path(inp.selection).read_text()),
    train_metrics=json.loads((Path(inp.adapter) / "metrics.json").read_text()),
    diagnostics_dir=Path(inp.diagnostics),
    traces=traces,
    cfg=cfg,
    plot_paths={"metrics_by_epoch": Path(out.metrics_plot), "eval_loss_by_epoch": Path(out.loss_plot),
                "tool_call_by_category": Path(out.category_plot)},
    report_path=Path(out.report),
    baseline=load_baseline(cfg["report"]["baseline"]),
    unconstrained=(json.loads(Path(inp.unconstrained).read_text()), pd.read_parquet(inp.unconstrained_table)),
)
log.info("wrote %s for epochs %s", out.report, sorted(scores))
