rule run_teacher:
    """The teacher plays the assistant on every scenario, calling the real workbench tools."""
    input:
        scenarios=path("scenarios", "scenarios.parquet"),
        code=script_sources("scripts/run_teacher.py"),
    output:
        "results/{run_dir}traces.parquet",
    params:
        cfg=params("traces"),
        cache=CLAUDE_CACHE,
    log:
        "results/{run_dir}logs/run_teacher.log",
    benchmark:
        "results/{run_dir}benchmarks/run_teacher.tsv"
    resources:
        mem_mb=2000,
    script:
        "../scripts/run_teacher.py"


rule estimate_teacher_cost:
    """Before any call: scenarios, requests, tokens and dollars of the teacher's grid, per request mode."""
    input:
        scenarios=path("scenarios", "scenarios.parquet"),
        code=script_sources("scripts/estimate_teacher_cost.py"),
    output:
        "results/{run_dir}teacher/estimate.md",
    params:
        cfg=params("estimate"),
    log:
        "results/{run_dir}logs/estimate_teacher_cost.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/estimate_teacher_cost.py"
