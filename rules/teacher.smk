rule run_teacher:
    """The teacher plays the assistant on every scenario, calling the real workbench tools."""
    input:
        scenarios=path("scenarios", "scenarios.parquet"),
        code=script_sources("scripts/run_teacher.py"),
    output:
        "results/{run_dir}traces.parquet",
    params:
        cfg=params("traces"),
    log:
        "results/{run_dir}logs/run_teacher.log",
    benchmark:
        "results/{run_dir}benchmarks/run_teacher.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/run_teacher.py"
