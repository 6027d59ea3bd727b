# The student in use: served behind the Anthropic Messages API, measured as an assistant, exported merged.
# Not inputs of report.md: `snakemake --cores 2 results/serve/eval.md results/export/merged` asks for them.


rule evaluate_serving:
    """The chosen adapter behind the real HTTP server; the assistant answers the held-out questions in each mode
    (student, teacher, fallback): answered locally, answered, grounded, judge, latency, cost; checked against the
    chosen epoch's score table."""
    input:
        selection=path("selection", "selection.json"),
        scores=per_epoch("parquet"),
        eval=path("split", "split/eval.parquet"),
        base=path("base_model", "base_model"),
        adapter=path("adapter", "adapter"),
        code=script_sources("scripts/evaluate_serving.py"),
    output:
        md="results/{run_dir}serve/eval.md",
        table="results/{run_dir}serve/eval.parquet",
        summary="results/{run_dir}serve/eval.json",
    params:
        cfg=params("serving"),
        cache=CLAUDE_CACHE,  # with teacher.backend: anthropic, Claude's responses, shared with the teacher stage
    log:
        "results/{run_dir}logs/evaluate_serving.log",
    benchmark:
        "results/{run_dir}benchmarks/evaluate_serving.tsv"
    threads: workflow.cores
    resources:
        mem_mb=4000,
    script:
        "../scripts/evaluate_serving.py"


rule export_merged:
    """The chosen adapter merged into a float copy of the base: a plain checkpoint with the tokenizer and the
    project's renderer as its chat template."""
    input:
        selection=path("selection", "selection.json"),
        base=path("base_model", "base_model"),
        adapter=path("adapter", "adapter"),
        code=script_sources("scripts/export_merged.py"),
    output:
        directory("results/{run_dir}export/merged"),
    params:
        cfg=params("export"),
    log:
        "results/{run_dir}logs/export_merged.log",
    benchmark:
        "results/{run_dir}benchmarks/export_merged.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/export_merged.py"
