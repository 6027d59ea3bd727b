rule prepare_base_model:
    """The student's base model as an artifact (the embedded GGUF converted once to safetensors)."""
    input:
        code=script_sources("scripts/prepare_base_model.py"),
    output:
        directory("results/{run_dir}base_model"),
    params:
        cfg=params("base_model"),
    log:
        "results/{run_dir}logs/prepare_base_model.log",
    benchmark:
        "results/{run_dir}benchmarks/prepare_base_model.tsv"
    resources:
        mem_mb=4000,
    script:
        "../scripts/prepare_base_model.py"


rule train_student:
    """LoRA / QLoRA fine-tuning: adapter/epoch_<n>/ for every epoch (all kept) + metrics.json (eval loss)."""
    input:
        train=path("split", "split/train.parquet"),
        eval=path("split", "split/eval.parquet"),
        base=path("base_model", "base_model"),
        code=script_sources("scripts/train_student.py"),
    output:
        directory("results/{run_dir}adapter"),
    params:
        cfg=params("adapter"),
        checkpoints="results/{run_dir}checkpoints/train",
    log:
        "results/{run_dir}logs/train_student.log",
    benchmark:
        "results/{run_dir}benchmarks/train_student.tsv"
    threads: workflow.cores
    resources:
        gpu=gpus,  # config student.gpus; memory, runtime and partition come from the profile (profiles/slurm)
    script:
        "../scripts/train_student.py"
