rule build_report:
    """report.md answering "did the student regress, and why?", with PNG plots beside it."""
    input:
        scores=expand("results/scores/epoch_{n}.json", n=ALL_EPOCHS),
        tables=expand("results/scores/epoch_{n}.parquet", n=ALL_EPOCHS),
        baseline=baseline_inputs(),
        selection="results/selection.json",
        metrics="results/adapter/metrics.json",
        diagnostics="results/diagnostics",
        traces="results/traces.parquet",
        code=script_sources("scripts/build_report.py"),
    output:
        report="results/report.md",
        metrics_plot=report("results/plots/metrics_by_epoch.png", caption="../report/metrics.rst", category="Student"),
        loss_plot=report("results/plots/eval_loss_by_epoch.png", caption="../report/loss.rst", category="Student"),
        category_plot=report("results/plots/tool_call_by_category.png", caption="../report/category.rst", category="Student"),
    params:
        cfg={"scoring": config["scoring"], "teacher": config["teacher"], "student": config["student"],
             "report": config["report"]},
    log:
        "results/logs/build_report.log",
    resources:
        mem_mb=2000,
    script:
        "../scripts/build_report.py"
