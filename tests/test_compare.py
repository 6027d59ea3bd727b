"""Run-to-run triage (distill.compare) on small results trees built with the project's own scorer,
summary and selection, so each attribution is checked against artifacts shaped like the real ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distill.contracts import CORRECTED
from tests.test_contracts import complete
from distill.config import defaults
from distill.compare import Run, compare, load_tree
from distill.ruler.stats import OVERALL, deltas, paired_key
from distill.ruler.judge import JudgeResult
from distill.ruler.scoring import score_frame
from distill.ruler.selection import select_epoch
from distill.ruler.summary import summarise

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A good answer states a number and a methodology fact, so it is an answer in either category.
GOOD = "Total return was 12.5%, trading at the next bar."
INFO = {"name": "get_model_info", "arguments": {"model_id": "sma_crossover"}}
QUERY = "train test split rule models"
GOLD = {"p": [INFO], "m": [{"name": "search_docs", "arguments": {"query": QUERY}}]}
WRONG = {"p": [{"name": "list_models", "arguments": {}}],
         "m": [{"name": "search_docs", "arguments": {"query": "fees slippage"}}]}
PARAPHRASE = [{"name": "search_docs", "arguments": {"query": "split rule models fees"}}]  # overlap 0.75
MARKUP = '<tool_response>{"total_return": 0.125}</tool_response>'
TRACES = [f"p{i}" for i in range(8)] + [f"m{i}" for i in range(8)]
P, M = set(TRACES[:8]), set(TRACES[8:])
SCORING = {**defaults("scoring"), "bootstrap_samples": 200}
CONFIG = {"scoring": SCORING, "judge": {"backend": "fixed"},
          "student": {"train": {"epochs": 2, "learning_rate": 0.001}}}
TRAIN = {f"t{i}": ("methodology" if i < 4 else "performance", f"Answer {i}: a full-period backtest.") for i in range(8)}


class FixedJudge:
    """1.0 unless the answer is empty or says 'bad', so the tests pin the comparison, not the rubric."""

    name = "fixed"

    def grade(self, row: dict) -> JudgeResult:
        answer = row["pred_answer"]
        return JudgeResult(0.0 if not answer or "bad" in answer else 1.0, ["missing_fact"] if "bad" in answer else [])


@dataclass(frozen=True)
class Epoch:
    """What the student does at one epoch: gold calls, paraphrased queries, good answers, markup answers."""

    right: set[str] = field(default_factory=set)
    para: set[str] = field(default_factory=set)
    good: set[str] = field(default_factory=set)
    markup: set[str] = field(default_factory=set)


def predictions(spec: Epoch, gold: dict[str, str]) -> pd.DataFrame:
    rows = []
    for t in TRACES:
        calls = PARAPHRASE if t in spec.para else GOLD[t[0]] if t in spec.right else WRONG[t[0]]
        answer = MARKUP if t in spec.markup else GOOD if t in spec.good else f"bad: 99% for {t} at the next bar."
        rows.append({"trace_id": t, "category": "performance" if t[0] == "p" else "methodology",
                     "model_id": "sma_crossover", "model_kind": "rule", "ticker": "ACME", "question": f"Question {t}?",
                     "gold_calls": json.dumps(GOLD[t[0]]), "gold_answer": gold.get(t, GOOD),
                     "pred_calls": json.dumps(calls), "pred_answer": answer,
                     "tool_outputs": json.dumps([json.dumps({"total_return": 0.125})]), "failure": None,
                     "n_turns": 2, "raw_turns": "[]"})
    return pd.DataFrame(rows)


def build(root: Path, epochs: dict[int, Epoch], losses: list[float], train: dict[str, tuple[str, str]] = TRAIN,
          config: dict | None = CONFIG, scoring: dict = SCORING, gold: dict[str, str] | None = None) -> Path:
    """A results tree as the workflow lays it out, from the real scorer, summary and selection."""
    (root / "scores").mkdir(parents=True)
    (root / "adapter").mkdir()
    (root / "split").mkdir()
    scores = {}
    for e, spec in {0: Epoch(), **epochs}.items():
        table = score_frame(predictions(spec, gold or {}), FixedJudge(), scoring)
        table.to_parquet(root / "scores" / f"epoch_{e}.parquet", index=False)
        scores[e] = summarise(table, scoring, "fixed", seed=1)
        (root / "scores" / f"epoch_{e}.json").write_text(json.dumps(scores[e]))
    metrics = {"config": {}, "epochs": [{"epoch": e, "eval_loss": v} for e, v in enumerate(losses)]}
    (root / "adapter" / "metrics.json").write_text(json.dumps(metrics))
    selection = select_epoch(scores, {e: v for e, v in enumerate(losses)}, ["tool_call", "judge"])
    (root / "selection.json").write_text(json.dumps(selection))
    rows = pd.DataFrame([{"trace_id": t, "category": c, "final_answer": a, "question": f"Q {t}", "gold_calls": "[]"}
                         for t, (c, a) in train.items()])
    complete(rows, (*CORRECTED, "split")).to_parquet(root / "split" / "train.parquet", index=False)
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
    return root


OLD = {1: Epoch(right={"p0", "p1", "m0", "m1"}, good={"p0", "p1", "m0"}),
       2: Epoch(right={"p0", "p1", "p2", "m0", "m1", "m2", "m3"}, good={"p0", "p1", "p2", "m0", "m1"},
                markup={"m7"})}
BETTER = {1: OLD[1], 2: Epoch(right=P | {"m0", "m1", "m2", "m3"}, good=P | M)}


def run(tmp: Path, name: str, **kwargs) -> Run:
    return load_tree(name, build(tmp / name, **kwargs))


def section(text: str, title: str) -> str:
    return text.split(f"{title}\n", 1)[1].split("\n#", 1)[0]


@pytest.fixture(scope="module")
def data_change(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """`corrected` rewrote three methodology training answers and answers better everywhere; same config."""
    tmp = tmp_path_factory.mktemp("data")
    new_train = {t: (c, "Fixed: no train/test split." if t in {"t0", "t1", "t2"} else a) for t, (c, a) in TRAIN.items()}
    a = run(tmp, "old", epochs=OLD, losses=[2.0, 1.0, 0.8])
    b = run(tmp, "corrected", epochs=BETTER, losses=[2.0, 1.0, 0.8], train=new_train)
    return compare(a, b, tmp / "compare" / "old_vs_corrected.md", tmp / "compare" / "old_vs_corrected.png",
                   cfg={"scoring": {"bootstrap_samples": 300}}), tmp


def cause(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"- **{start}"))


def test_data_change_attributed_to_data_in_that_category_only(data_change: tuple[str, Path]) -> None:
    text, tmp = data_change
    assert (tmp / "compare" / "old_vs_corrected.md").read_text() == text
    methodology = cause(text, "methodology judge +0.75")
    assert "the training answers of methodology changed in 3 row(s) (gold data)" in methodology
    assert "same ruler" in methodology and "same checkpoint rule" in methodology and "same config" in methodology
    for line in (cause(text, "performance tool_call +0.62"), cause(text, "performance judge +0.62")):
        assert "(gold data)" not in line and "same training data (changed in methodology)" in line
    assert "rulers agree (exact +0.62)" in cause(text, "performance tool_call")
    classic = next(line for line in text.splitlines() if line.startswith("Classic failures shown: "))
    assert classic.startswith("Classic failures shown: **gold data** in grounded (methodology), judge (methodology), ")
    assert "performance" not in classic and "**ruler**" not in classic and "**checkpoint**" not in classic
    data = section(text, "### Data")
    assert "0 added, 0 removed, 3 changed answers." in data
    assert "| methodology | 4 | 4 | 0 | 0 | 3 |" in data
    assert "- `t0` (methodology): `Answer 0: a full-period backtest.` → `Fixed: no train/test split.`" in data


def test_held_out_gold_change_attributed_to_gold(tmp_path: Path) -> None:
    """Same training set, but two methodology held-out gold answers differ (and the answers with them)."""
    gold = {"m2": "No split.", "m3": "No split."}
    a = run(tmp_path, "old", epochs=OLD, losses=[2.0, 1.0, 0.8])
    b = run(tmp_path, "regold", epochs={1: OLD[1], 2: Epoch(right=OLD[2].right, good=OLD[2].good | M)},
            losses=[2.0, 1.0, 0.8], gold=gold)
    text = compare(a, b, tmp_path / "c.md", tmp_path / "c.png", cfg={"scoring": {"bootstrap_samples": 300}})
    line = cause(text, "methodology judge +0.75")
    assert "the held-out gold answer differs for 2 question(s) (gold data)" in line
    assert "Held-out gold answers differ for 2 methodology question(s)." in section(text, "### Data")


def test_summary_table_one_row_per_run(data_change: tuple[str, Path]) -> None:
    text, _ = data_change
    table = section(text, "## Summary").strip().splitlines()
    assert table[0] == ("| run | epoch | tool_call methodology | tool_call performance | judge methodology | "
                        "judge performance | tool_call (all) | what changed |")
    assert table[2] == "| old | 2 | 0.50 | 0.38 | 0.25 | 0.38 | 0.44 | reference |"
    assert table[3] == "| corrected | 2 | 0.50 | 1.00 | 1.00 | 1.00 | 0.75 | nothing in config |"
    assert len([line for line in table if line.startswith("| ") and "|---" not in line]) == 3  # header + 2 runs
    assert "![tool-call and judge by category](old_vs_corrected.png)" in text


def test_changes_paired_with_noise_verdicts(data_change: tuple[str, Path]) -> None:
    changes = section(data_change[0], "## Changes")
    assert "Paired bootstrap over the 16 held-out questions both runs were scored on (joined on `question`;" in changes
    assert "| methodology | tool_call | 0.50 | 0.50 | +0.00 [+0.00, +0.00] | within noise |" in changes
    assert "| methodology | judge | 0.25 | 1.00 | +0.75 [" in changes  # printed with the CI, then:
    assert any(r.startswith("| methodology | judge |") and r.endswith("| beyond noise |") for r in changes.splitlines())
    assert any(r.startswith("| methodology | answered | 0.88 | 1.00 | +0.12 [") and r.endswith("| within noise |")
               for r in changes.splitlines())  # one question of eight: within noise


def test_flips_list_questions_with_reasons(data_change: tuple[str, Path]) -> None:
    flips = data_change[0].split("## Per-question flips\n", 1)[1]
    assert "11 question(s) flip between old (epoch 2) and corrected (epoch 2)" in flips
    methodology = flips.split("### methodology (6)", 1)[1].split("###", 1)[0]
    performance = flips.split("### performance (5)", 1)[1]
    assert "_1 more in methodology._" in methodology and methodology.count("\n- ") == 5
    assert all(f"`Question p{i}?`" in performance for i in range(3, 8))
    assert "`Question p0?`" not in flips and "`Question m0?`" not in flips
    m2 = methodology.split("- `Question m2?`: ", 1)[1].split("\n- ", 1)[0]
    assert m2.startswith("judge 0.00→1.00\n")
    assert "  - old: `bad: 99% for m2 at the next bar.` (`missing_fact`)" in m2
    assert f"  - corrected: `{GOOD}` (no reason recorded)" in m2
    p3 = performance.split("- `Question p3?`: ", 1)[1].split("\n- ", 1)[0]
    assert p3.startswith("tool_call wrong→ok, judge 0.00→1.00\n")
    assert "call_error `wrong_name`; `missing_fact`" in p3


def test_ruler_only_change_with_identical_predictions(tmp_path: Path) -> None:
    epochs = {1: Epoch(right={"p0", "p1"}, para=M - {"m6", "m7"}, good=P | M),
              2: Epoch(right={"p0", "p1", "p2", "p3"}, para=M - {"m6", "m7"}, good=P | M)}
    strict = {**SCORING, "query_jaccard": 0.9}
    a = run(tmp_path, "default", epochs=epochs, losses=[2.0, 1.0, 0.8])
    b = run(tmp_path, "strict_ruler", epochs=epochs, losses=[2.0, 1.0, 0.8], scoring=strict,
            config={**CONFIG, "scoring": strict})
    text = compare(a, b, tmp_path / "c.md", tmp_path / "c.png", cfg={"scoring": {"bootstrap_samples": 300}})
    line = cause(text, "methodology tool_call -0.75")
    assert ("identical predictions at every epoch, so the whole change is the scorer's: the ruler changed "
            "(scoring.query_jaccard: 0.5 → 0.9) (ruler)") in line
    assert "same training data" in line and "same config apart from the ruler" in line
    assert "Classic failures shown: **ruler** in tool_call (methodology), tool_call (all)." in text
    ruler = section(text, "### Ruler")
    assert "| methodology | -0.75 [-1.00, -0.38] | +0.00 [+0.00, +0.00] | 6 | 0 | disagree |" in ruler
    assert "| scoring.query_jaccard | 0.5 | 0.9 | ruler |" in section(text, "### Config")
    assert "scoring.query_jaccard: 0.5 → 0.9" in section(text, "## Summary")


def test_checkpoint_disagreement_flagged_and_attributed(tmp_path: Path) -> None:
    a = run(tmp_path, "default", epochs=OLD, losses=[2.0, 1.0, 0.8])
    epochs6 = {1: OLD[2], 2: Epoch(right=P | {"m0", "m1", "m2", "m3"}, good={"p0", "p1", "p2", "m0", "m1"},
                                   markup={"m7"})}
    config = {**CONFIG, "student": {"train": {"epochs": 6, "learning_rate": 0.001}}}
    b = run(tmp_path, "epochs6", epochs=epochs6, losses=[2.0, 0.7, 0.9], config=config)
    text = compare(a, b, tmp_path / "c.md", tmp_path / "c.png", cfg={"scoring": {"bootstrap_samples": 300}})
    checkpoint = section(text, "### Checkpoint choice")
    assert "> **⚠ epochs6: the picks disagree.** Eval loss picks epoch 1, the task metric epoch 2." in checkpoint
    assert "default: the picks disagree" not in checkpoint
    line = cause(text, "performance tool_call +0.62")
    assert ("picks disagree in epochs6 (task 2, eval loss 1); picked by eval loss the change would be +0.00 "
            "(within noise) (checkpoint)") in line
    assert "config: student.train.epochs: 2 → 6" in line
    assert "**checkpoint** in tool_call (performance)" in text


def test_unknown_config_and_png(tmp_path: Path) -> None:
    a = run(tmp_path, "kept", epochs=OLD, losses=[2.0, 1.0, 0.8], config=None)
    b = run(tmp_path, "default", epochs=BETTER, losses=[2.0, 1.0, 0.8])
    assert a.config is None
    text = compare(a, b, tmp_path / "out" / "kept_vs_default.md", tmp_path / "plots" / "k.png", cfg={"scoring": {"bootstrap_samples": 100}})
    assert "Unknown: no config.json for kept" in text and "config unknown for kept" in text
    assert "](../plots/k.png)" in text
    assert (tmp_path / "plots" / "k.png").read_bytes()[:8] == PNG_SIGNATURE


def test_load_tree_names_the_missing_file(tmp_path: Path) -> None:
    root = build(tmp_path / "tree", OLD, [2.0, 1.0, 0.8])
    (root / "adapter" / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError, match=str(root / "adapter" / "metrics.json")):
        load_tree("kept", root)
    with pytest.raises(FileNotFoundError, match="epoch_<n>.json"):
        load_tree("empty", tmp_path / "nowhere")
    (root / "adapter" / "metrics.json").write_text(json.dumps({"epochs": []}))
    kept = load_tree("kept", root)
    with pytest.raises(ValueError, match="both runs are named 'kept'"):
        compare(kept, kept, tmp_path / "c.md", tmp_path / "c.png")


def frame(questions: list[str], judge: list[float], category: str = "methodology") -> pd.DataFrame:
    n = len(questions)
    return pd.DataFrame({"trace_id": questions, "question": questions, "category": category, "judge": judge,
                         "tool_call": [True] * n, "answered": [True] * n, "grounded": [True] * n})


def test_pairing_removes_between_question_spread() -> None:
    """A uniform +0.1 on judge scores that vary widely: beyond noise paired, within noise unpaired."""
    base = list(np.random.default_rng(0).uniform(0, 0.9, 12))
    qs = [f"q{i}" for i in range(12)]
    a, b = frame(qs, base), frame(qs, [x + 0.1 for x in base])
    assert paired_key(a, b) == "question"
    paired = deltas(a, b, 500, 0)[OVERALL, "judge"]
    assert paired.beyond_noise and paired.ci == pytest.approx((0.1, 0.1))
    other = frame([f"r{i}" for i in range(12)], [x + 0.1 for x in base])
    assert paired_key(a, other) is None
    unpaired = deltas(a, other, 500, 0)[OVERALL, "judge"]
    assert unpaired.delta == pytest.approx(0.1) and not unpaired.beyond_noise


def test_one_flip_in_eight_is_noise_six_is_not() -> None:
    qs = [f"q{i}" for i in range(8)]
    a = frame(qs, [0.0] * 8)
    assert not deltas(a, frame(qs, [1.0] + [0.0] * 7), 500, 0)["methodology", "judge"].beyond_noise
    assert deltas(a, frame(qs, [1.0] * 6 + [0.0] * 2), 500, 0)["methodology", "judge"].beyond_noise
    assert not deltas(a, a, 500, 0)["methodology", "judge"].beyond_noise  # no change at all


def test_a_large_move_within_noise_is_still_explained(tmp_path: Path) -> None:
    """Two of eight methodology answers turn good after a gold fix: +0.25, a CI that reaches 0 (six
    questions a category is the default's size), yet the reader is told why, and that it is noise-sized."""
    new_train = {t: (c, "Fixed: no train/test split." if t == "t0" else a) for t, (c, a) in TRAIN.items()}
    a = run(tmp_path, "old", epochs=OLD, losses=[2.0, 1.0, 0.8])
    b = run(tmp_path, "fixed", epochs={1: OLD[1], 2: Epoch(right=OLD[2].right, good=OLD[2].good | {"m2", "m3"})},
            losses=[2.0, 1.0, 0.8], train=new_train)
    text = compare(a, b, tmp_path / "c.md", tmp_path / "c.png", cfg={"scoring": {"bootstrap_samples": 300}})
    line = cause(text, "methodology judge +0.25")
    assert "within noise" in line and "the training answers of methodology changed in 1 row(s) (gold data)" in line
    assert not any(row.startswith("- **performance") for row in text.splitlines())  # nothing moved there


def test_a_failed_claude_grading_counts_in_neither_run():
    """A question whose grading failed (judge NaN) is left out of the means and the CI, not taken as 0."""
    ta = pd.DataFrame({"trace_id": list("abcd"), "question": list("abcd"), "category": ["x"] * 4, "judge": [0.5] * 4})
    tb = ta.assign(judge=[1.0, 1.0, 1.0, np.nan])
    d = deltas(ta, tb, samples=200, seed=0, metrics=("judge",))[OVERALL, "judge"]
    assert d.a == 0.5 and d.b == 1.0 and d.ci == (0.5, 0.5)
    none = deltas(ta, tb.assign(judge=np.nan), samples=50, seed=0, metrics=("judge",))[OVERALL, "judge"]
    assert none.b is None and none.ci is None


def test_paired_means_and_interval_describe_the_same_questions():
    """Reference [1.0, 0.0], new [NaN, 0.0]: only the second question was scored by both, and on it
    nothing changed. The old code took the reference mean over both (0.50) and reported −0.50 beside an
    interval of [0, 0]; the mean and the interval must both use the questions both runs scored."""
    ta = pd.DataFrame({"trace_id": ["a", "b"], "question": ["a", "b"], "category": ["x", "x"], "judge": [1.0, 0.0]})
    tb = ta.assign(judge=[np.nan, 0.0])
    d = deltas(ta, tb, samples=200, seed=0, metrics=("judge",))[OVERALL, "judge"]
    assert (d.a, d.b, d.delta, d.ci) == (0.0, 0.0, 0.0, (0.0, 0.0))
    assert not d.beyond_noise and not d.regressed
    # and with a real change on the shared question the change and its interval agree in sign
    d = deltas(ta, ta.assign(judge=[np.nan, 1.0]), samples=200, seed=0, metrics=("judge",))[OVERALL, "judge"]
    assert d.delta == 1.0 and d.ci == (1.0, 1.0)


def test_a_category_in_one_run_only_renders_n_a_with_the_reason(tmp_path: Path) -> None:
    """A category the new run lacks, and a category whose every Claude grading failed, used to raise
    TypeError (abs(None)); both render n/a with why."""
    a = run(tmp_path, "old", epochs=OLD, losses=[2.0, 1.0, 0.8])
    b = run(tmp_path, "new", epochs=BETTER, losses=[2.0, 1.0, 0.8])
    for epoch, table in b.tables.items():
        kept = table[table["category"] != "methodology"]
        b.tables[epoch] = kept.assign(judge=np.where(kept["category"] == "performance", np.nan, kept["judge"]))
    text = compare(a, b, tmp_path / "c.md", tmp_path / "c.png", cfg={"scoring": {"bootstrap_samples": 100}})
    assert "- **methodology tool_call n/a**: new has no methodology question." in text
    assert "- **performance judge n/a**: new has no judge score in performance (every grading failed)." in text
    changes = section(text, "## Changes")
    assert "| methodology | judge | 0.25 | n/a | n/a | n/a: new has no methodology question |" in changes


def test_flip_size_and_notable_change_come_from_config(tmp_path: Path) -> None:
    """report.judge_flip and report.notable_change decide what is a flip and what gets a sentence."""
    new_train = {t: (c, "Fixed: no train/test split." if t == "t0" else a) for t, (c, a) in TRAIN.items()}
    a = run(tmp_path, "old", epochs=OLD, losses=[2.0, 1.0, 0.8])
    b = run(tmp_path, "fixed", epochs={1: OLD[1], 2: Epoch(right=OLD[2].right, good=OLD[2].good | {"m2", "m3"})},
            losses=[2.0, 1.0, 0.8], train=new_train)
    quiet = compare(a, b, tmp_path / "c.md", tmp_path / "c.png",
                    cfg={"scoring": {"bootstrap_samples": 100}, "report": {"notable_change": 0.5, "judge_flip": 1.0}})
    assert not any(row.startswith("- **methodology judge") for row in quiet.splitlines())
    assert "judge moved by ≥ 1.0." in quiet
