"""Rule build_report: scores, predictions, selection, training metrics, diagnostics → report.md + PNG plots."""
import json
from pathlib import Path

import pandas as pd

from distill.io import epoch_of, setup_logging
from distill.report import build_report


log = setup_logging(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
scores = {epoch_of(p): json.loads(Path(p).read_text()) for p in inp.scores}
predictions = {epoch_of(p): pd.read_parquet(p, columns=["trace_id", "category", "question", "gold_calls"])
               for p in inp.predictions}
traces = pd.read_parquet(inp.traces, columns=["trace_id", "backend", "teacher_model", "injected_faults", "cost_usd"])
build_report(
    scores=scores,
    selection=json.loads(Path(inp.selection).read_text()),
    train_metrics=json.loads(Path(inp.metrics).read_text()),
    diagnostics_dir=Path(inp.diagnostics),
    predictions=predictions,
    traces=traces,
    cfg=snakemake.params.cfg,
    plot_paths={"metrics_by_epoch": Path(out.metrics_plot), "eval_loss_by_epoch": Path(out.loss_plot),
                "tool_call_by_category": Path(out.category_plot)},
    report_path=Path(out.report),
)
log.info("wrote %s for epochs %s", out.report, sorted(scores))
