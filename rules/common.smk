# Shared wiring: named runs, artifact paths, config sections, source-module inputs, wildcard constraints.

include: "sources.py"  # package_sources: a script's imports, derived with ast
include: "runs.py"  # STAGES, deep_merge, load_variants, stage_config, owner_dir

import glob
import os


PKG = "distill"


# Package data files a module reads at run time ({module file: glob}, relative to the workflow root):
# `script_sources` adds a module's files to every rule whose script reaches that module. Imports are
# derived; data reads are not (they hide in path arithmetic), so each reader is listed here, with how it
# reads. tests/test_rule_inputs.py fails when a data file under distill/ is claimed by no entry.
PACKAGE_DATA = {
    "distill/dataset/diagnostics.py": "distill/dataset/sql/*.sql",  # resources.files("distill.dataset.sql") / f"{name}.sql"
    "distill/workbench/docs.py": "distill/workbench/docs/*.md",  # DOCS_DIR.glob("*.md")
    "distill/workbench/prices.py": "distill/workbench/data/prices.parquet",  # PRICES_PATH
    "distill/teacher/base.py": "distill/teacher/system_prompt.md",  # resources.files("distill.teacher")
    "distill/ruler/judge/anthropic.py": "distill/ruler/judge/judge_prompt.md",  # resources.files("distill.ruler.judge")
    "distill/serving/chat_page.py": "distill/serving/static/chat.html",  # PAGE (the page; serve_eval reaches the module)
}

# Claude's responses and submitted batches, shared by every named run: content-addressed, so no run pays
# twice for a request (distill/claude/cache.py). Not a rule output: it outlives every rebuild.
CLAUDE_CACHE = "results/cache"


def script_sources(script):
    """Source inputs of the rule running `script` (path relative to the workflow root): the package
    modules it imports, transitively, plus the data files they read (see rules/sources.py). Snakemake
    does not track imported modules, so they are inputs: editing one re-runs exactly the rules whose
    scripts reach it, and what lies downstream."""
    return package_sources(workflow.basedir, script, PKG, PACKAGE_DATA)


# ---- named runs (rules/runs.py): the default plus every variant override file -------------------------

EXPERIMENTS = config["experiments"]
RUNS = {DEFAULT_RUN: config}
for _name, _override in load_variants(workflow.basedir, EXPERIMENTS["variants_dir"]).items():
    RUNS[_name] = validate(deep_merge(config, _override), f"{EXPERIMENTS['variants_dir']}/{_name}.yaml")
for _name, _run in RUNS.items():  # a missing corrections file would otherwise surface as a rule's missing input
    if _run["corrections"]["file"] and not os.path.exists(_run["corrections"]["file"]):
        _source = "config.yaml" if _name == DEFAULT_RUN else f"{EXPERIMENTS['variants_dir']}/{_name}.yaml"
        raise ConfigError(f"{_source}: corrections.file: {_run['corrections']['file']!r} does not exist "
                          f"(a path relative to the workflow directory; null for no corrections)")
KEPT = EXPERIMENTS["kept"]  # {name: results tree kept aside from an earlier build}
if clash := sorted(set(KEPT) & set(RUNS)):
    raise ValueError(f"experiments.kept: {clash} already name a run (the default or a variant)")


def run_of(wildcards):
    """The run a job belongs to, by its {run_dir}; a path naming no variant is an error that says so."""
    name = name_of(wildcards.run_dir)
    if name not in RUNS:
        raise ValueError(f"results/{wildcards.run_dir}: no variant {name!r} in {EXPERIMENTS['variants_dir']}/ "
                         f"(runs: {', '.join(sorted(RUNS))})")
    return name


def run_cfg(wildcards):
    return RUNS[run_of(wildcards)]


def artifact(run, stage, name):
    """results/<owner dir><name>: where run `run` finds the artifact `name` of `stage` (rules/runs.py)."""
    return f"results/{owner_dir(RUNS, run, stage)}{name}"


def path(stage, name, base_stage=None):
    """Input function: `artifact` for the requesting run, with {epoch} filled in; epoch 0 (the untrained
    base) belongs to `base_stage` when one is given."""
    def resolve(wildcards):
        at_base = base_stage is not None and int(wildcards.epoch) == 0
        return artifact(run_of(wildcards), base_stage if at_base else stage, name).format(**wildcards)
    return resolve


def params(stage):
    """Params function: the keys of `stage` from the requesting run's config (rules/runs.py STAGES), so
    editing another section never trips Snakemake's params rerun trigger for this rule."""
    return lambda wildcards: stage_config(run_cfg(wildcards), stage)


def epochs(name):
    """Epochs of a run's student: 0 (the untrained base, the baseline every epoch is compared with) onward."""
    return list(range(RUNS[name]["student"]["train"]["epochs"] + 1))


def score_files(run, kind):
    """A run's per-epoch score files (kind 'json' or 'parquet'), each from its owner."""
    return [artifact(run, "baseline_scores" if n == 0 else "scores", f"scores/epoch_{n}.{kind}") for n in epochs(run)]


def per_epoch(kind):
    """Input function: `score_files` of the requesting run."""
    return lambda wildcards: score_files(run_of(wildcards), kind)


def unconstrained_scores(kind):
    """Input function: the requesting run's last epoch scored without predict.constrain (report.md's comparison)."""
    def files(wildcards):
        run = run_of(wildcards)
        return artifact(run, "scores", f"scores/unconstrained/epoch_{epochs(run)[-1]}.{kind}")
    return files


def gpus(wildcards):
    return run_cfg(wildcards)["student"]["gpus"]


def report_baseline(wildcards):
    """An earlier results tree's pick that report.md compares with (config report.baseline), or nothing."""
    root = run_cfg(wildcards)["report"]["baseline"]
    if not root:
        return []
    return [os.path.join(root, "selection.json")] + sorted(glob.glob(os.path.join(root, "scores", "epoch_*.json")))


# The rules that call Claude, with the config sections whose `backend` decides it (a rule that makes a
# call must be listed, or a run without the key fails inside the job instead of before it).
CLAUDE_CALLERS = {"run_teacher": ("teacher",), "score_epoch": ("judge",), "score_unconstrained": ("judge",),
                  "evaluate_serving": ("teacher", "judge")}


def check_claude_key(jobs):
    """Stop before the first job when a job to run calls Claude (CLAUDE_CALLERS, with that section's
    backend `anthropic` in its run) and ANTHROPIC_API_KEY is unset. Called from `onstart`, which
    Snakemake skips on a dry-run: `-n` still validates a production config without the key, and the
    teacher's estimate needs no key."""
    from distill.claude.client import MissingKeyError, api_key, uses_anthropic

    needing = set()
    for job in jobs:
        name = name_of(getattr(job.wildcards, "run_dir", None) or "")
        for section in CLAUDE_CALLERS.get(job.rule.name, ()):
            if name in RUNS and section in uses_anthropic(RUNS[name]):
                needing.add((name, section))
    if needing:
        try:
            api_key()
        except MissingKeyError as exc:
            users = ", ".join(f"{section} of run {name!r}" for name, section in sorted(needing))
            raise MissingKeyError(f"{exc} (needed by the {users}); no job was started") from None


onstart:
    check_claude_key(workflow.dag.needrun_jobs())


wildcard_constraints:
    epoch=r"\d+",
    run_dir=r"(variants/[A-Za-z0-9_-]+/)?",
