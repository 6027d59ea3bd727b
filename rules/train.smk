rule prepare_base_model:
    """The student's base model as an artifact (the embedded GGUF converted once to safetensors)."""
    input:
        code=script_sources("scripts/prepare_base_model.py"),
    output:
        directory("results/base_model"),
    params:
        base=config["student"]["base"],
    log:
        "results/logs/prepare_base_model.log",
    benchmark:
        "results/benchmarks/prepare_base_model.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/prepare_base_model.py"


rule train_student:
    """LoRA / QLoRA fine-tuning; one adapter and eval loss per epoch, all kept."""
    input:
        train="results/split/train.parquet",
        eval="results/split/eval.parquet",
        base="results/base_model",
        code=script_sources("scripts/train_student.py"),
    output:
        adapters=directory(expand("results/adapter/epoch_{n}", n=EPOCHS)),
        metrics="results/adapter/metrics.json",
    params:
        cfg=student_section(),
        checkpoints="results/checkpoints/train",
    log:
        "results/logs/train_student.log",
    benchmark:
        "results/benchmarks/train_student.tsv"
    threads: workflow.cores
    resources:
        mem_mb=8000,
        gpu=GPUS,
        runtime=240,
    script:
        "../scripts/train_student.py"
