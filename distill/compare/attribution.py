"""Why a metric moved between two runs: the evidence for each of the four causes, and one computed
sentence per change beyond noise.

The causes are the pipeline's three classic failures plus the config: the **ruler** (the scorer or
judge changed, or the lenient and exact rulers disagree on the change), the **checkpoint** (the change
depends on picking by the task metric rather than eval loss), the **gold data** (training answers or
held-out gold answers changed, from the DuckDB dataset diff) and the **config** (any other key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from distill.compare.runs import Run
from distill.dataset import diagnostics
from distill.ruler.stats import HEADLINE, OVERALL, Delta, deltas, groups, in_group, join_key, paired_key
from distill.ruler.summary import SUMMARY_KEYS as SCORING_SUMMARY_KEYS

# Config keys each metric's ruler reads. The summary's own keys (bootstrap, seed, ship bar) change no
# verdict, so they are config, not ruler.
RULER_PREFIX = {"tool_call": "scoring.", "judge": "judge"}
SUMMARY_KEYS = tuple(f"scoring.{k}" for k in SCORING_SUMMARY_KEYS)
CLASSIC = ("ruler", "checkpoint", "gold data")
UNSET = "(unset)"  # a key one config has and the other lacks


@dataclass(frozen=True)
class Evidence:
    """Everything the attribution reads, computed once for a pair of runs (a: reference, b: new)."""

    a: Run
    b: Run
    at_picks: dict[tuple[str, str], Delta]       # at each run's task pick (tool_call_strict included)
    at_loss_picks: dict[tuple[str, str], Delta]  # at each run's eval-loss pick
    paired_on: str | None                        # join column of the paired bootstrap, None if unpaired
    lenient_only: dict[str, tuple[int, int]]     # per group: lenient-only passes in a, in b
    ruler_diff: dict[str, tuple[Any, Any]]
    config_diff: dict[str, tuple[Any, Any]] | None  # None: a run's config is unknown
    same_predictions: bool
    train_diff: pd.DataFrame                     # diagnostics.diff rows (added/removed/changed)
    train_by_category: pd.DataFrame              # diagnostics.diff_by_category
    gold_changes: dict[str, int]                 # per group: held-out questions whose gold answer differs
    notable_change: float                        # report.notable_change: explained even within noise


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config as dotted keys: {"student": {"train": {"epochs": 3}}} → {"student.train.epochs": 3}."""
    out: dict[str, Any] = {}
    for key, val in cfg.items():
        if isinstance(val, dict) and val:
            out.update(flatten(val, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = val
    return out


def _differ(fa: dict[str, Any], fb: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (fa.get(k, UNSET), fb.get(k, UNSET)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


def is_ruler_key(key: str, metric: str | None = None) -> bool:
    prefixes = [RULER_PREFIX[metric]] if metric else list(RULER_PREFIX.values())
    summary = any(key == k or key.startswith(k + ".") for k in SUMMARY_KEYS)
    return key.startswith(tuple(prefixes)) and not summary


def _ruler_config(run: Run, with_config: bool) -> dict[str, Any]:
    """The ruler as the score files record it (so an old tree without config.json still has it),
    plus the config's scoring and judge keys when both runs have a config."""
    score = run.scores[run.task_epoch]
    flat = {**flatten({"scoring": score.get("config", {})}), "judge_name": score.get("judge_name")}
    if with_config:
        flat.update(flatten(run.config or {}))
    return {k: v for k, v in flat.items() if is_ruler_key(k)}


def _same_predictions(a: Run, b: Run) -> bool:
    """Whether both runs answered the same questions identically at every epoch (only scoring differs)."""
    if set(a.tables) != set(b.tables):
        return False
    for epoch, ta in a.tables.items():
        tb = b.tables[epoch]
        key = paired_key(ta, tb)
        if key is None:
            return False
        cols = ["pred_calls", "pred_answer"]
        if not ta.set_index(key)[cols].sort_index().equals(tb.set_index(key)[cols].sort_index()):
            return False
    return True


def _gold_changes(ta: pd.DataFrame, tb: pd.DataFrame) -> dict[str, int]:
    key = join_key(ta, tb)
    if key is None:
        return {}
    both = ta[[key, "category", "gold_answer"]].merge(tb[[key, "gold_answer"]], on=key, suffixes=("_a", "_b"))
    changed = both[both["gold_answer_a"] != both["gold_answer_b"]]
    return {**changed.groupby("category").size().to_dict(), OVERALL: len(changed)}


def gather(a: Run, b: Run, samples: int, seed: int, notable_change: float) -> Evidence:
    ta, tb = a.tables[a.task_epoch], b.tables[b.task_epoch]
    lenient = {g: tuple(int((t["tool_call"] & ~t["tool_call_strict"]).sum())
                        for t in (in_group(ta, g), in_group(tb, g))) for g in groups(ta, tb)}
    both_known = a.config is not None and b.config is not None
    config_diff = _differ(flatten(a.config or {}), flatten(b.config or {})) if both_known else None
    data = diagnostics.diff(a.train, b.train)
    return Evidence(
        a=a, b=b, at_picks=deltas(ta, tb, samples, seed, (*HEADLINE, "tool_call_strict")),
        at_loss_picks=deltas(a.tables[a.loss_epoch], b.tables[b.loss_epoch], samples, seed),
        paired_on=paired_key(ta, tb), lenient_only=lenient,
        ruler_diff=_differ(_ruler_config(a, both_known), _ruler_config(b, both_known)),
        config_diff=config_diff,
        same_predictions=_same_predictions(a, b), train_diff=data["diff"],
        train_by_category=data["diff_by_category"], gold_changes=_gold_changes(ta, tb),
        notable_change=notable_change)


def show(value: Any) -> str:
    """A config value as JSON (strings quoted, lists readable), UNSET as itself."""
    return value if value is UNSET else json.dumps(value)


def fmt_changes(changes: dict[str, tuple[Any, Any]], limit: int = 4) -> str:
    """'k: a → b; …' for the first `limit` keys, then how many more."""
    shown = [f"{k}: {show(va)} → {show(vb)}" for k, (va, vb) in list(changes.items())[:limit]]
    more = len(changes) - limit
    return "; ".join(shown) + (f"; {more} more" if more > 0 else "")


def noise(d: Delta) -> str:
    return "beyond noise" if d.beyond_noise else "within noise"


def signed(d: Delta) -> str:
    return "n/a" if d.delta is None else f"{d.delta:+.2f}"


def why_missing(ev: Evidence, group: str, metric: str) -> str:
    """Why a change has no value: a group one run lacks, a metric with no score (every Claude grading
    of the group failed), or no question both runs scored."""
    for run in (ev.a, ev.b):
        rows = in_group(run.tables[run.task_epoch], group)
        if rows.empty:
            return f"{run.name} has no {group} question"
        if rows[metric].isna().all():
            return f"{run.name} has no {metric} score in {group} (every grading failed)"
    return f"no {group} question has a {metric} score in both runs"


def _direction(d: Delta) -> int:
    """+1/−1 for a change beyond noise, 0 within it: what two Deltas must share to tell the same story."""
    return 0 if not d.beyond_noise or d.delta is None else (1 if d.delta > 0 else -1)


def rulers_agree(ev: Evidence, group: str) -> bool:
    return _direction(ev.at_picks[group, "tool_call"]) == _direction(ev.at_picks[group, "tool_call_strict"])


def flagged_picks(ev: Evidence) -> list[Run]:
    """Runs whose eval-loss pick differs from their task pick."""
    return [r for r in (ev.a, ev.b) if r.task_epoch != r.loss_epoch]


def _ruler_cause(ev: Evidence, group: str, metric: str) -> tuple[str, bool]:
    keys = {k: v for k, v in ev.ruler_diff.items() if metric in RULER_PREFIX and is_ruler_key(k, metric)}
    if ev.same_predictions:
        how = (f"the ruler changed ({fmt_changes(ev.ruler_diff)})" if ev.ruler_diff
               else "no ruler setting differs, so the scorer's code changed")
        return f"identical predictions at every epoch, so the whole change is the scorer's: {how} (ruler)", True
    if keys:
        return f"the ruler changed ({fmt_changes(keys)}) (ruler)", True
    if metric != "tool_call":
        return "same ruler", False
    strict = ev.at_picks[group, "tool_call_strict"]
    la, lb = ev.lenient_only[group]
    if strict.delta is None:
        return f"no exact-ruler change: {why_missing(ev, group, 'tool_call_strict')}", False
    if rulers_agree(ev, group):
        return f"rulers agree (exact {signed(strict)})", False
    return (f"the exact ruler moves {signed(strict)} ({noise(strict)}): lenient-only passes {la} → {lb} "
            f"(ruler)", True)


def _checkpoint_cause(ev: Evidence, group: str, metric: str) -> tuple[str, bool]:
    ma, mb = ev.a.selection.get("metric"), ev.b.selection.get("metric")
    if ma != mb:
        return f"the runs pick checkpoints by different metrics ({ma} vs {mb}) (checkpoint)", True
    flagged = flagged_picks(ev)
    if not flagged:
        return "same checkpoint rule, eval loss agrees with both picks", False
    by_loss = ev.at_loss_picks[group, metric]
    who = " and ".join(f"{r.name} (task {r.task_epoch}, eval loss {r.loss_epoch})" for r in flagged)
    if by_loss.delta is None or _direction(by_loss) != _direction(ev.at_picks[group, metric]):
        moved = f"n/a ({why_missing(ev, group, metric)})" if by_loss.delta is None else \
            f"{signed(by_loss)} ({noise(by_loss)})"
        return f"picks disagree in {who}; picked by eval loss the change would be {moved} (checkpoint)", True
    return f"same checkpoint rule; picked by eval loss the change is {signed(by_loss)} too", False


def train_counts(ev: Evidence) -> dict[str, tuple[int, int, int]]:
    """(added, removed, changed) training rows per category with any, from the DuckDB diff."""
    return {r["category"]: (int(r["n_added"]), int(r["n_removed"]), int(r["n_changed"]))
            for _, r in ev.train_by_category.iterrows() if r["n_added"] or r["n_removed"] or r["n_changed"]}


def _data_cause(ev: Evidence, group: str) -> tuple[str, bool]:
    counts = train_counts(ev)
    mine = [c for c in counts if group in (c, OVERALL)]
    parts = []
    if mine:
        added, removed, changed = (sum(counts[c][i] for c in mine) for i in range(3))
        where = group if group != OVERALL else ", ".join(mine)
        parts.append(f"the training answers of {where} changed in {changed} row(s)"
                     + (f", {added} added, {removed} removed" if added or removed else ""))
    if gold := ev.gold_changes.get(group, 0):
        parts.append(f"the held-out gold answer differs for {gold} question(s)")
    if parts:
        return "; ".join(parts) + " (gold data)", True
    elsewhere = f" (changed in {', '.join(counts)})" if counts else ""
    return f"same training data{elsewhere}", False


def _config_cause(ev: Evidence) -> str:
    if ev.config_diff is None:
        unknown = [r.name for r in (ev.a, ev.b) if r.config is None]
        return f"config unknown for {', '.join(unknown)}"
    other = {k: v for k, v in ev.config_diff.items() if not is_ruler_key(k)}
    if other:
        return f"config: {fmt_changes(other)}"
    return "same config apart from the ruler" if ev.config_diff else "same config"


def causes(ev: Evidence) -> tuple[list[str], dict[str, list[str]]]:
    """One sentence per (group, metric) that moved beyond noise or by at least report.notable_change
    (six questions a category make wide intervals: a large move is explained too, and says it is within
    noise), one per change that has no value (n/a, with why), and per classic failure the changes it is
    implicated in."""
    lines, classic = [], {c: [] for c in CLASSIC}
    for group in dict.fromkeys(g for g, _ in ev.at_picks):  # categories, then OVERALL
        for metric in HEADLINE:
            d = ev.at_picks[group, metric]
            if d.delta is None:
                lines.append(f"**{group} {metric} n/a**: {why_missing(ev, group, metric)}.")
                continue
            if not d.beyond_noise and abs(d.delta) < ev.notable_change:
                continue
            label = f"{metric} ({'all' if group == OVERALL else group})"
            found = [("ruler", *_ruler_cause(ev, group, metric)),
                     ("checkpoint", *_checkpoint_cause(ev, group, metric)), ("gold data", *_data_cause(ev, group))]
            for kind, _, hit in found:
                if hit:
                    classic[kind].append(label)
            lines.append(f"**{group} {metric} {d.delta:+.2f}** ({noise(d)}): "
                         + "; ".join([s for _, s, _ in found] + [_config_cause(ev)]) + ".")
    return lines, classic
