"""The report's header and verdict: who taught, what was trained, did it regress, and the likely causes.

Every sentence is computed from an artifact; none states a cause the data does not show.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from distill.report.figures import HEADLINE, fmt, group, top_counts, value
from distill.ruler.stats import OVERALL, Delta, deltas, regressions

DISAGREE_FLAG = "Eval loss would pick a different epoch."


def fault_counts(traces: pd.DataFrame) -> Counter:
    """Injected-fault names across traces (simulator only; a Claude run has none)."""
    if "injected_faults" not in traces:
        return Counter()
    return Counter(f for cell in traces["injected_faults"].dropna() for f in json.loads(cell))


def teacher_line(traces: pd.DataFrame, cfg: dict) -> str:
    """Who wrote the training data; the offline simulator is named as such, never passed off as Claude."""
    tcfg = cfg.get("teacher", {})
    backends = sorted(traces["backend"].dropna().unique()) if "backend" in traces else [tcfg.get("backend")]
    models = sorted(traces["teacher_model"].dropna().unique()) if "teacher_model" in traces else [tcfg.get("model")]
    names = f"backend `{', '.join(map(str, backends))}`, model `{', '.join(map(str, models))}`, {len(traces)} traces"
    if tcfg.get("backend") == "offline" or any("simulator" in str(b) for b in backends):
        injected = ", ".join(f"{k} ×{v}" for k, v in sorted(fault_counts(traces).items())) or "none"
        return (f"**Teacher: the offline SIMULATOR, not Claude** ({names}). It injects the real teacher's "
                f"known faults on purpose ({injected}); these figures show the pipeline at work, not Claude.")
    return f"**Teacher: Claude** ({names}; cost: see Teacher cost)."


def student_line(cfg: dict, score: dict | None) -> str:
    """What was trained and how much it was tested on, so the figures below can be sized."""
    scfg = cfg.get("student", {})
    lora, train = scfg.get("lora", {}), scfg.get("train", {})
    return (f"Student: `{scfg.get('base', '?')}` + LoRA r={lora.get('r', '?')} (quantization "
            f"{scfg.get('quantization', '?')}), {train.get('epochs', '?')} epochs; {(score or {}).get('n', '?')} "
            f"held-out questions per epoch, judge `{(score or {}).get('judge_name', '?')}`.")


def _drops(found: dict[tuple[str, str], Delta]) -> str:
    """'metric (category) a → b [lo, hi]' per drop, overall first, the interval being that of the change."""
    def ci(d: Delta) -> str:
        return "no interval" if d.ci is None else f"{d.ci[0]:+.2f}, {d.ci[1]:+.2f}"
    order = sorted(found, key=lambda k: (k[0] != OVERALL, k[0], HEADLINE.index(k[1])))
    return "; ".join(f"{m}{'' if g == OVERALL else f' ({g})'} {fmt(found[g, m].a)} → {fmt(found[g, m].b)} "
                     f"[{ci(found[g, m])}]" for g, m in order)


def regression_lines(tables: dict[int, pd.DataFrame], chosen: int, baseline: dict | None, samples: int,
                     seed: int) -> list[str]:
    """The verdict on regression against the untrained base (epoch 0) and a previous build's pick, by the
    one rule of distill.ruler.stats: a drop on a headline metric, overall or in a category, whose paired
    95% interval excludes zero. Drops within noise are stated beside it, never called a regression.
    Then whether training past the pick lost ground, by the same rule."""
    refs = [("the untrained base (epoch 0)", tables.get(0))]
    if baseline:
        refs.append((f"the previous pick (epoch {baseline['epoch']} of {baseline['name']})", baseline["table"]))
    worse, noisy = [], []
    for name, ref in refs:
        if ref is None:
            continue
        regressed, within = regressions(deltas(ref, tables[chosen], samples, seed))
        if regressed:
            worse.append(f"epoch {chosen} is below {name} on {_drops(regressed)}")
        if within:
            noisy.append(f"against {name}: {_drops(within)}")
    names = " or ".join(name for name, ref in refs if ref is not None)
    head = "; ".join(worse) if worse else f"no drop of epoch {chosen} against {names} is beyond noise"
    lines = [f"**Regression: {'yes' if worse else 'none'}**: {head} (a regression is a drop whose paired 95% "
             f"interval, shown, excludes zero)."]
    if noisy:
        lines.append(f"Drops within noise (interval reaches zero): {'; '.join(noisy)}.")
    last = max(tables)
    if last > chosen:
        regressed, within = regressions(deltas(tables[chosen], tables[last], samples, seed))
        if regressed:
            lines.append(f"Training past the pick lost ground by epoch {last}: {_drops(regressed)}.")
        elif within:
            lines.append(f"Training past the pick: by epoch {last} only drops within noise ({_drops(within)}).")
    return lines


def disagreement(selection: dict) -> str:
    """A blockquote flag with both epochs' figures when eval loss and the task metric pick differently."""
    task, loss = selection["task_epoch"], selection["eval_loss_epoch"]
    figures = selection.get("figures", {})

    def figs(key: str) -> str:
        return ", ".join(f"{k} {fmt(v)}" for k, v in figures.get(key, {}).items())

    if not selection.get("disagree", task != loss):
        return f"Eval loss agrees: it also picks epoch {task} ({figs('task_epoch')})."
    return (f"> **⚠ {DISAGREE_FLAG}** Lowest eval loss is epoch {loss} ({figs('eval_loss_epoch')}); "
            f"the task metric picks epoch {task} ({figs('task_epoch')}). Lower loss means closer imitation "
            f"of the teacher's tokens, not better tool use; this report follows the task pick.")


def causes(scores: dict[int, dict], chosen: int, diag: dict[str, pd.DataFrame | None]) -> list[str]:
    """The likeliest reasons behind the verdict, each one figure from the sections below."""
    pick, out = scores[chosen], []
    overall = group(pick)
    n = overall.get("n") or 0
    unanswered = {r: c for r, c in overall.get("answer_reasons", {}).items() if c}
    if unanswered:
        out.append(f"{sum(unanswered.values())} of {n} held-out questions get no answer at epoch {chosen} "
                   f"({top_counts(unanswered)}): they score judge 0 and are not grounded")
    by_cat = {c: value(pick, "tool_call", c) for c in pick.get("per_category", {})}
    by_cat = {c: v for c, v in by_cat.items() if v is not None}
    if by_cat:
        worst = min(by_cat, key=by_cat.get)
        out.append(f"weakest category: {worst} (tool-call {fmt(by_cat[worst])}, "
                   f"n={pick['per_category'][worst].get('n')})")
    for key, label in (("call_errors", "tool-call misses"), ("failures", "agent-loop failures"),
                       ("judge_reasons", "judge findings")):
        counts = {k: v for k, v in overall.get(key, {}).items() if v}
        if counts:
            out.append(f"{label}: {top_counts(counts)}")
    strict, lenient = value(pick, "tool_call_strict"), value(pick, "tool_call")
    if None not in (strict, lenient) and lenient > strict:
        out.append(f"the exact-match ruler would report {fmt(strict)} instead of {fmt(lenient)} "
                   f"(see Ruler sensitivity for why)")
    sat = diag.get("saturation")
    if sat is not None and not sat.empty and (saturated := sat[sat["rows_per_plan"] > 1]).size:
        out.append("saturated: " + "; ".join(
            f"{r['category']} has {int(r['n_unique_plans'])} distinct gold plan(s) in {int(r['n_rows'])} rows "
            f"({int(r['n_unique_questions'])} distinct question(s))"
            for _, r in saturated.sort_values("rows_per_plan", ascending=False).iterrows()))
    overlap = diag.get("overlap")
    if overlap is not None and not overlap.empty:
        total = overlap[overlap["category"] == "(all)"].iloc[0]
        if total["same_gold_plan"] or total["same_question"]:
            out.append(f"the held-out set is not held out: {int(total['same_gold_plan'])} held-out row(s) share "
                       f"their gold plan and {int(total['same_question'])} their question with training")
    after = diag.get("suspect_gold_after")
    if after is not None and not after.empty:
        out.append(f"{after['trace_id'].nunique()} gold answer(s) still contradict the registry after corrections")
    return out


def verdict(scores: dict[int, dict], tables: dict[int, pd.DataFrame], selection: dict,
            diag: dict[str, pd.DataFrame | None], cfg: dict, baseline: dict | None = None) -> str:
    """The header's verdict; `cfg` is the config (its seed and scoring.bootstrap_samples size the
    intervals of the regression rule)."""
    chosen = selection["task_epoch"]
    pick, base = scores[chosen], scores.get(0)
    vs = ", ".join(f"{m} {fmt(value(pick, m))} (epoch 0: {fmt(value(base, m))})" for m in HEADLINE)
    metric = " then ".join(selection.get("metric", []))
    bar = pick.get("ship_bar", {})
    failing = [f"{m} {fmt(s.get('value'))} < {fmt(s.get('threshold'))}"
               for m, s in bar.items() if isinstance(s, dict) and not s.get("passed")]
    ship = "**Ship bar: PASS.**" if bar.get("passed") else f"**Ship bar: FAIL** ({'; '.join(failing)})."
    lines = [f"**Chosen checkpoint: epoch {chosen}** (by {metric}): {vs}.", ship,
             *regression_lines(tables, chosen, baseline, cfg["scoring"]["bootstrap_samples"], cfg["seed"]),
             disagreement(selection)]
    if why := causes(scores, chosen, diag):
        lines.append("Why, in brief:\n" + "\n".join(f"- {w}" for w in why))
    return "\n\n".join(lines)
