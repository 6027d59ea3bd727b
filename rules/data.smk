rule build_scenarios:
    """The scenario grid: model × legal ticker × question template, with the gold tool plan."""
    input:
        code=script_sources("scripts/build_scenarios.py"),
    output:
        "results/scenarios.parquet",
    params:
        cfg=section("scenarios"),
    log:
        "results/logs/build_scenarios.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/build_scenarios.py"
