rule build_scenarios:
    """The scenario grid: model × legal ticker × question template, with the gold tool plan."""
    input:
        code=script_sources("scripts/build_scenarios.py"),
    output:
        "results/{run_dir}scenarios.parquet",
    params:
        cfg=params("scenarios"),
    log:
        "results/{run_dir}logs/build_scenarios.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/build_scenarios.py"
