"""Rule build_report: score files and tables, selection, training metrics, diagnostics → report.md + PNG plots."""
from pathlib import Path

from distill.contracts import read_json, read_parquet
from distill.io import epoch_of, setup_logging
from distill.report import build_report, load_baseline
from distill.report.cost import TRACE_COLUMNS

log = setup_logging(snakemake.log[0])
inp, out, cfg = snakemake.input, snakemake.output, snakemake.params.cfg
scores = {epoch_of(p): read_json(p) for p in inp.scores}
tables = {epoch_of(p): read_parquet(p) for p in inp.tables}
traces = read_parquet(inp.traces, columns=["trace_id", "injected_faults", *TRACE_COLUMNS])
build_report(
    scores=scores,
    tables=tables,
    selection=read_json(inp.selection),
    train_metrics=read_json(Path(inp.adapter) / "metrics.json"),
    diagnostics_dir=Path(inp.diagnostics),
    traces=traces,
    cfg=cfg,
    plot_paths={"metrics_by_epoch": Path(out.metrics_plot), "eval_loss_by_epoch": Path(out.loss_plot),
                "tool_call_by_category": Path(out.category_plot)},
    report_path=Path(out.report),
    baseline=load_baseline(cfg["report"]["baseline"]),
    unconstrained=(read_json(inp.unconstrained), read_parquet(inp.unconstrained_table)),
)
log.info("wrote %s for epochs %s", out.report, sorted(scores))
