def adapter_for(wildcards):
    """Epoch 0 has no adapter: the untrained base answers."""
    return [] if int(wildcards.epoch) == 0 else path("adapter", "adapter")(wildcards)


rule predict_epoch:
    """The student runs the real agent loop on the held-out questions (epoch 0 = untrained base)."""
    input:
        eval=path("split", "split/eval.parquet"),
        base=path("base_model", "base_model"),
        adapter=adapter_for,
        code=script_sources("scripts/predict_epoch.py"),
    output:
        "results/{run_dir}predictions/epoch_{epoch}.parquet",
    params:
        cfg=params("predictions"),
        constrained=True,  # predict.constrain's rules hold (the predict_unconstrained copy drops them)
    log:
        "results/{run_dir}logs/predict_epoch/epoch_{epoch}.log",
    benchmark:
        "results/{run_dir}benchmarks/predict_epoch/epoch_{epoch}.tsv"
    threads: workflow.cores
    resources:
        gpu=gpus,  # config student.gpus; memory, runtime and partition come from the profile (profiles/slurm)
    script:
        "../scripts/predict_epoch.py"


use rule predict_epoch as predict_unconstrained with:
    output:
        "results/{run_dir}predictions/unconstrained/epoch_{epoch}.parquet",
    params:
        cfg=params("predictions"),
        constrained=False,
    log:
        "results/{run_dir}logs/predict_unconstrained/epoch_{epoch}.log",
    benchmark:
        "results/{run_dir}benchmarks/predict_unconstrained/epoch_{epoch}.tsv"


rule score_epoch:
    """Per held-out question: tool-call (overlap and exact rulers), answered, grounded, judge, with the
    reasons (.parquet); rates with CIs overall and per category, reason counts, ship bar (.json)."""
    input:
        predictions=path("predictions", "predictions/epoch_{epoch}.parquet", base_stage="baseline_predictions"),
        code=script_sources("scripts/score_epoch.py"),
    output:
        table="results/{run_dir}scores/epoch_{epoch}.parquet",
        summary="results/{run_dir}scores/epoch_{epoch}.json",
    params:
        cfg=params("scores"),
        cache=CLAUDE_CACHE,  # the Claude judge's responses, shared by every run
    log:
        "results/{run_dir}logs/score_epoch/epoch_{epoch}.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/score_epoch.py"


use rule score_epoch as score_unconstrained with:
    input:
        predictions=path("predictions", "predictions/unconstrained/epoch_{epoch}.parquet"),
        code=script_sources("scripts/score_epoch.py"),
    output:
        table="results/{run_dir}scores/unconstrained/epoch_{epoch}.parquet",
        summary="results/{run_dir}scores/unconstrained/epoch_{epoch}.json",
    log:
        "results/{run_dir}logs/score_unconstrained/epoch_{epoch}.log",


rule select_epoch:
    """The epoch the task metric picks vs the epoch eval loss picks, flagged when they differ."""
    input:
        scores=per_epoch("json"),
        adapter=path("adapter", "adapter"),
        code=script_sources("scripts/select_epoch.py"),
    output:
        "results/{run_dir}selection.json",
    params:
        cfg=params("selection"),
    log:
        "results/{run_dir}logs/select_epoch.log",
    script:
        "../scripts/select_epoch.py"
