"""Named runs: the default config plus one override file per variant, and which run owns each artifact.

A variant (`<experiments.variants_dir>/<name>.yaml`) lists only the config keys it changes (e.g.
`student: {train: {epochs: 6}}`); its effective config is the default deep-merged with it. Every rule
is written once, with a `{run_dir}` wildcard that is empty for the default run (so the design card's
paths stay `results/traces.parquet` ... `results/report.md`) and `variants/<name>/` for a variant.

Sharing: an artifact belongs to a *stage* (STAGES), which reads a few config keys and depends on
upstream stages. Two runs whose configs agree on every key the stage and its upstream stages read
build the same artifact, so a variant uses the default's file for it (`owner_dir`): a variant that
only changes training plans no teacher or grounding job, and its epoch-0 predictions (the untrained
base) are the default's. A rule's params are exactly its stage's keys (`stage_config`), so a rule can
never read a key that the sharing decision did not look at.

Plain Python without Snakemake globals (rules/common.smk includes it; tests/test_runs.py imports it).
Names must not be Snakemake keywords (module, rule, input, run, ...).
"""
import copy
import json
import os

import yaml

DEFAULT_RUN = "default"
VARIANTS_ROOT = "variants"  # under results/: results/variants/<name>/...

# stage: (config keys its rule reads, dotted; upstream stages)
STAGES = {
    "scenarios": (("seed", "scenarios"), ()),
    "traces": (("seed", "teacher"), ("scenarios",)),
    "estimate": (("teacher", "pricing"), ("scenarios",)),
    "grounded": (("grounding",), ("traces",)),
    "corrected": (("corrections",), ("grounded",)),
    "split": (("seed", "split"), ("corrected",)),
    "diagnostics": (("claims",), ("split",)),
    "base_model": (("student.base",), ()),
    "adapter": (("seed", "student.max_seq_len", "student.quantization", "student.dtype", "student.autocast",
                 "student.malloc_mmap_threshold_mb", "student.lora", "student.train"), ("split", "base_model")),
    "baseline_predictions": (("seed", "predict", "student.quantization", "student.dtype", "student.autocast"),
                             ("split", "base_model")),
    "predictions": (("seed", "predict", "student.quantization", "student.dtype", "student.autocast"), ("adapter",)),
    "baseline_scores": (("seed", "scoring", "judge", "claims"), ("baseline_predictions",)),
    "scores": (("seed", "scoring", "judge", "claims"), ("predictions",)),
    "selection": (("selection",), ("scores", "baseline_scores", "adapter")),
    "report": (("seed", "scoring", "teacher", "pricing", "student.base", "student.quantization", "student.lora", "student.train",
                "predict.constrain", "report"), ("selection", "diagnostics", "traces")),
    "serving": (("seed", "predict", "student.quantization", "student.dtype", "student.autocast", "scoring", "judge",
                 "claims", "teacher", "pricing", "serve"), ("selection", "scores", "split")),
    "export": (("student.dtype",), ("selection", "adapter", "base_model")),
}


def deep_merge(base, override):
    """`base` with `override` merged in, recursively for mappings (neither argument is modified)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_variants(root, variants_dir):
    """{name: override dict} for every `<variants_dir>/<name>.yaml` (relative to `root`), sorted by name.

    A variant may not change `experiments` (which runs exist is the default config's business), and its
    name may not hold `_vs_` (comparison targets are `<a>_vs_<b>`) or be `default`.
    """
    folder = os.path.join(root, variants_dir)
    found = {}
    for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        name, ext = os.path.splitext(entry)
        if ext not in (".yaml", ".yml"):
            continue
        path = os.path.join(variants_dir, entry)
        if name == DEFAULT_RUN or "_vs_" in name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{path}: a variant name is letters, digits, '-' and '_', not 'default', no '_vs_'")
        with open(os.path.join(root, path), encoding="utf-8") as fh:
            override = yaml.safe_load(fh) or {}
        if not isinstance(override, dict):
            raise ValueError(f"{path}: a variant is a mapping of the config keys it changes")
        if "experiments" in override:
            raise ValueError(f"{path}: a variant cannot change `experiments`")
        found[name] = override
    return found


def dir_of(name):
    """The `{run_dir}` wildcard value of a run: '' for the default, 'variants/<name>/' for a variant."""
    return "" if name == DEFAULT_RUN else f"{VARIANTS_ROOT}/{name}/"


def name_of(dir_value):
    """Inverse of dir_of."""
    return DEFAULT_RUN if not dir_value else dir_value.strip("/").split("/", 1)[1]


def _get(cfg, dotted):
    value = cfg
    for part in dotted.split("."):
        value = value[part]
    return value


def stage_config(cfg, stage):
    """The part of `cfg` that `stage`'s rule reads, nested as in the config (its params)."""
    out = {}
    for dotted in STAGES[stage][0]:
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _get(cfg, dotted)
    return out


def stage_key(cfg, stage):
    """Everything that decides `stage`'s artifact: its own keys and those of every upstream stage."""
    seen, todo = {}, [stage]
    while todo:
        s = todo.pop()
        if s not in seen:
            seen[s] = stage_config(cfg, s)
            todo.extend(STAGES[s][1])
    return json.dumps(seen, sort_keys=True, default=str)


def owner_dir(runs, name, stage):
    """The `{run_dir}` of the run whose artifact `name` uses for `stage`: the default's when both configs
    agree on everything the stage depends on, else its own. Adding a variant never moves another run's
    artifacts (ownership depends only on the run itself and the default)."""
    if name != DEFAULT_RUN and stage_key(runs[name], stage) == stage_key(runs[DEFAULT_RUN], stage):
        return ""
    return dir_of(name)
