"""Run-to-run triage: results/compare/<a>_vs_<b>.md says, without opening a parquet file, why each
metric moved between a reference run `a` and a new run `b` (changes are b − a): the ruler, the
checkpoint choice, the gold/training data or the config.

runs.py loads a run (explicit paths or a results tree kept aside); distill.ruler.stats computes each
change with its bootstrap CI and the per-question flips, by the same rule report.md's verdict uses;
attribution.py gathers the evidence for each cause and writes one sentence per change beyond noise;
render.py turns it into markdown and a PNG.
"""

from __future__ import annotations

import os
from pathlib import Path

from distill import config
from distill.compare import render
from distill.compare.attribution import causes, gather
from distill.compare.runs import Run, load_run, load_tree
from distill.io import write_text
from distill.ruler.stats import flips

__all__ = ["Run", "compare", "load_run", "load_tree"]


def compare(a: Run, b: Run, md_path: Path, plot_path: Path, cfg: dict | None = None) -> str:
    """Write the comparison markdown at `md_path` (atomically) and its plot at `plot_path`; return the markdown.

    `cfg` holds the config's `seed`, `scoring` (bootstrap_samples) and `report` (judge_flip,
    notable_change) sections; what it lacks comes from the schema's defaults.
    """
    if a.name == b.name:
        raise ValueError(f"both runs are named {a.name!r}: name them apart, the tables key columns by run name")
    cfg = config.sections(cfg or {}, "seed", "scoring", "report", source="compare")
    md_path, plot_path = Path(md_path), Path(plot_path)
    ev = gather(a, b, cfg["scoring"]["bootstrap_samples"], cfg["seed"], cfg["report"]["notable_change"])
    judge_flip = cfg["report"]["judge_flip"]
    render.plot(ev, plot_path)
    link = Path(os.path.relpath(plot_path, md_path.parent)).as_posix()
    sentences, classic = causes(ev)
    sections = [
        f"# {a.name} → {b.name}: what changed, and why",
        f"Reference `{a.name}`, new run `{b.name}`; every change is {b.name} − {a.name} at each run's "
        "task-picked epoch.",
        "## Summary", render.summary_table(ev), f"![tool-call and judge by category]({link})",
        "## Likely causes", render.causes_section(sentences, classic),
        "## Changes", render.changes_section(ev),
        "## Attribution",
        "### Ruler", render.ruler_section(ev),
        "### Checkpoint choice", render.checkpoint_section(ev),
        "### Data", render.data_section(ev),
        "### Config", render.config_section(ev),
        "## Per-question flips", render.flips_section(ev, flips(a.tables[a.task_epoch], b.tables[b.task_epoch], judge_flip),
                                                     judge_flip),
    ]
    text = "\n\n".join(sections) + "\n"
    write_text(text, md_path)
    return text
