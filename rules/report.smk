rule build_report:
    """report.md answering "did the student regress, and why?", with PNG plots beside it."""
    input:
        scores=per_epoch("json"),
        tables=per_epoch("parquet"),
        unconstrained=unconstrained_scores("json"),
        unconstrained_table=unconstrained_scores("parquet"),
        baseline=report_baseline,
        selection=path("selection", "selection.json"),
        adapter=path("adapter", "adapter"),
        diagnostics=path("diagnostics", "diagnostics"),
        traces=path("traces", "traces.parquet"),
        code=script_sources("scripts/build_report.py"),
    output:
        report="results/{run_dir}report.md",
        metrics_plot=report("results/{run_dir}plots/metrics_by_epoch.png", caption="../report/metrics.rst", category="Student"),
        loss_plot=report("results/{run_dir}plots/eval_loss_by_epoch.png", caption="../report/loss.rst", category="Student"),
        category_plot=report("results/{run_dir}plots/tool_call_by_category.png", caption="../report/category.rst", category="Student"),
    params:
        cfg=params("report"),
    log:
        "results/{run_dir}logs/build_report.log",
    resources:
        mem_mb=2000,
    script:
        "../scripts/build_report.py"
