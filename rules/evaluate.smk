rule predict_epoch:
    """The student runs the real agent loop on the held-out questions (epoch 0 = untrained base)."""
    input:
        eval="results/split/eval.parquet",
        base="results/base_model",
        adapter=adapter_for,
        code=script_sources("scripts/predict_epoch.py"),
    output:
        "results/predictions/epoch_{epoch}.parquet",
    params:
        cfg={"seed": config["seed"], "predict": config["predict"],
             "quantization": config["student"]["quantization"], "dtype": config["student"]["dtype"]},
    log:
        "results/logs/predict_epoch/epoch_{epoch}.log",
    benchmark:
        "results/benchmarks/predict_epoch/epoch_{epoch}.tsv"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        gpu=GPUS,
        runtime=60,
    script:
        "../scripts/predict_epoch.py"


rule score_epoch:
    """Per held-out question: tool-call (overlap and exact rulers), answered, grounded, judge, with the
    reasons (.parquet); rates with CIs overall and per category, reason counts, ship bar (.json)."""
    input:
        predictions="results/predictions/epoch_{epoch}.parquet",
        code=script_sources("scripts/score_epoch.py"),
    output:
        table="results/scores/epoch_{epoch}.parquet",
        summary="results/scores/epoch_{epoch}.json",
    params:
        cfg={"seed": config["seed"], "scoring": config["scoring"], "judge": config["judge"]},
    log:
        "results/logs/score_epoch/epoch_{epoch}.log",
    resources:
        mem_mb=1000,
    script:
        "../scripts/score_epoch.py"


rule select_epoch:
    """The epoch the task metric picks vs the epoch eval loss picks, flagged when they differ."""
    input:
        scores=expand("results/scores/epoch_{n}.json", n=ALL_EPOCHS),
        metrics="results/adapter/metrics.json",
        code=script_sources("scripts/select_epoch.py"),
    output:
        "results/selection.json",
    params:
        cfg=section("selection"),
    log:
        "results/logs/select_epoch.log",
    script:
        "../scripts/select_epoch.py"
