rule run_teacher:
    """The teacher plays the assistant on every scenario, calling the real workbench tools."""
    input:
        scenarios="results/scenarios.parquet",
        code=script_sources("scripts/run_teacher.py"),
    output:
        "results/traces.parquet",
    params:
        cfg=section("teacher"),
    log:
        "results/logs/run_teacher.log",
    benchmark:
        "results/benchmarks/run_teacher.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/run_teacher.py"
