rule ground_traces:
    """Grounding filter: keep traces whose answers cite only numbers the tools returned."""
    input:
        traces="results/traces.parquet",
        code=script_sources("scripts/ground_traces.py"),
    output:
        kept="results/grounded.parquet",
        rejected="results/grounding_rejected.parquet",
    params:
        cfg=section("grounding"),
    log:
        "results/logs/ground_traces.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/ground_traces.py"


rule apply_corrections:
    """Declarative gold fixes, each applied correction logged per row."""
    input:
        grounded="results/grounded.parquet",
        corrections=config["corrections"]["file"],
        schema="schemas/corrections.schema.yaml",
        code=script_sources("scripts/apply_corrections.py"),
    output:
        corrected="results/corrected.parquet",
        log_table="results/corrections_log.parquet",
    log:
        "results/logs/apply_corrections.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/apply_corrections.py"


rule split_dataset:
    """Deterministic train/eval split, stratified by category, grouped by gold plan (split.group_by)."""
    input:
        corrected="results/corrected.parquet",
        code=script_sources("scripts/split_dataset.py"),
    output:
        train="results/split/train.parquet",
        eval="results/split/eval.parquet",
    params:
        cfg=section("split"),
    log:
        "results/logs/split_dataset.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/split_dataset.py"


rule diagnose_dataset:
    """DuckDB diagnostics: counts, saturation, train/eval overlap, rejections, suspect gold, corrections, diff."""
    input:
        grounded="results/grounded.parquet",
        rejected="results/grounding_rejected.parquet",
        corrected="results/corrected.parquet",
        corrections_log="results/corrections_log.parquet",
        train="results/split/train.parquet",
        eval="results/split/eval.parquet",
        code=script_sources("scripts/diagnose_dataset.py"),
    output:
        directory("results/diagnostics"),
    log:
        "results/logs/diagnose_dataset.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/diagnose_dataset.py"


rule diff_datasets:
    """Dataset diff between any two dataset parquet files, e.g. results/diff/grounded-vs-corrected.md."""
    input:
        old="results/{old}.parquet",
        new="results/{new}.parquet",
        code=script_sources("scripts/diff_datasets.py"),
    output:
        "results/diff/{old}-vs-{new}.md",
    wildcard_constraints:
        old="[A-Za-z0-9_/]+",
        new="[A-Za-z0-9_/]+",
    log:
        "results/logs/diff/{old}-vs-{new}.log",
    script:
        "../scripts/diff_datasets.py"
