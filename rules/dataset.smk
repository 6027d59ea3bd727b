rule ground_traces:
    """Grounding filter: keep traces whose answers cite only numbers the tools returned."""
    input:
        traces=path("traces", "traces.parquet"),
        code=script_sources("scripts/ground_traces.py"),
    output:
        kept="results/{run_dir}grounded.parquet",
        rejected="results/{run_dir}grounding_rejected.parquet",
    params:
        cfg=params("grounded"),
    log:
        "results/{run_dir}logs/ground_traces.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/ground_traces.py"


def corrections_file(wildcards):
    """The run's corrections file, or nothing (corrections.file: null, e.g. the `uncorrected` variant)."""
    file = run_cfg(wildcards)["corrections"]["file"]
    return [file] if file else []


rule plan_corrections:
    """Declarative gold fixes checked against the data: the per-row change log, before anything is applied
    (a bad corrections file stops here, leaving corrected.parquet and all downstream as they were)."""
    input:
        grounded=path("grounded", "grounded.parquet"),
        corrections=corrections_file,
        schema="schemas/corrections.schema.yaml",
        code=script_sources("scripts/plan_corrections.py"),
    output:
        "results/{run_dir}corrections_log.parquet",
    params:
        cfg=params("corrected"),
    log:
        "results/{run_dir}logs/plan_corrections.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/plan_corrections.py"


rule apply_corrections:
    """The planned gold fixes applied: corrected.parquet, each row's corrections named."""
    input:
        grounded=path("grounded", "grounded.parquet"),
        corrections_log=path("corrected", "corrections_log.parquet"),
        code=script_sources("scripts/apply_corrections.py"),
    output:
        "results/{run_dir}corrected.parquet",
    log:
        "results/{run_dir}logs/apply_corrections.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/apply_corrections.py"


rule split_dataset:
    """Deterministic train/eval split, stratified by category, grouped by gold plan (split.group_by)."""
    input:
        corrected=path("corrected", "corrected.parquet"),
        code=script_sources("scripts/split_dataset.py"),
    output:
        train="results/{run_dir}split/train.parquet",
        eval="results/{run_dir}split/eval.parquet",
    params:
        cfg=params("split"),
    log:
        "results/{run_dir}logs/split_dataset.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/split_dataset.py"


rule diagnose_dataset:
    """DuckDB diagnostics: counts, saturation, train/eval overlap, rejections, suspect gold, corrections, diff."""
    input:
        grounded=path("grounded", "grounded.parquet"),
        rejected=path("grounded", "grounding_rejected.parquet"),
        corrected=path("corrected", "corrected.parquet"),
        corrections_log=path("corrected", "corrections_log.parquet"),
        train=path("split", "split/train.parquet"),
        eval=path("split", "split/eval.parquet"),
        code=script_sources("scripts/diagnose_dataset.py"),
    output:
        directory("results/{run_dir}diagnostics"),
    params:
        cfg=params("diagnostics"),
    log:
        "results/{run_dir}logs/diagnose_dataset.log",
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
        old="[A-Za-z0-9_/-]+",
        new="[A-Za-z0-9_/-]+",
    log:
        "results/logs/diff/{old}-vs-{new}.log",
    script:
        "../scripts/diff_datasets.py"
