rule save_config:
    """A run's effective config (the default merged with its variant file), for comparisons."""
    input:
        code=script_sources("scripts/save_config.py"),
    output:
        "results/{run_dir}config.json",
    params:
        cfg=lambda wildcards: {k: v for k, v in run_cfg(wildcards).items() if k != "experiments"},
    log:
        "results/{run_dir}logs/save_config.log",
    script:
        "../scripts/save_config.py"


def run_files(name):
    """What a comparison reads of one run: a built run's artifacts (each from its owner) or a kept tree's."""
    if name in KEPT:
        root = KEPT[name]
        config = f"{root}/config.json"
        return {"scores": sorted(glob.glob(f"{root}/scores/epoch_*.json")),
                "tables": sorted(glob.glob(f"{root}/scores/epoch_*.parquet")),
                "selection": f"{root}/selection.json", "adapter": f"{root}/adapter",
                "train": f"{root}/split/train.parquet", "config": [config] if os.path.exists(config) else []}
    if name not in RUNS:
        raise ValueError(f"results/compare: {name!r} names no run; runs: {sorted(RUNS)}, kept: {sorted(KEPT)}")
    return {"scores": score_files(name, "json"), "tables": score_files(name, "parquet"),
            "selection": artifact(name, "selection", "selection.json"),
            "adapter": artifact(name, "adapter", "adapter"), "train": artifact(name, "split", "split/train.parquet"),
            "config": [f"results/{dir_of(name)}config.json"]}


def compare_inputs(wildcards):
    """Both runs' files, keyed a_<what> and b_<what>."""
    return {f"{side}_{key}": value for side in ("a", "b") for key, value in run_files(wildcards[side]).items()}


rule compare_runs:
    """Run-to-run triage: why each metric moved between two runs (ruler, checkpoint, data, config)."""
    input:
        unpack(compare_inputs),
        code=script_sources("scripts/compare_runs.py"),
    output:
        report="results/compare/{a}_vs_{b}.md",
        plot="results/compare/{a}_vs_{b}.png",
    wildcard_constraints:
        a="[A-Za-z0-9_-]+",
        b="[A-Za-z0-9_-]+",
    params:
        # the default config's settings of the statistics: bootstrap size and seed, flip and notable sizes
        cfg={"seed": config["seed"], "scoring": {"bootstrap_samples": config["scoring"]["bootstrap_samples"]},
             "report": {k: config["report"][k] for k in ("judge_flip", "notable_change")}},
    log:
        "results/logs/compare/{a}_vs_{b}.log",
    resources:
        mem_mb=2000,
    script:
        "../scripts/compare_runs.py"
