"""report.md and its plots, from real score files, a real selection and real diagnostics on small fixtures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from distill.config import defaults
from distill.dataset import diagnostics
from distill.ruler.judge import JudgeResult
from distill.report import DISAGREE_FLAG, build_report, load_baseline
from distill.report.verdict import regression_lines
from distill.ruler.scoring import score_frame
from distill.ruler.selection import select_epoch
from distill.ruler.summary import summarise
from distill.workbench.registry import MODELS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A good answer states a number and a methodology fact, so it is an answer in either category.
GOOD = "Total return was 12.5%, trading at the next bar."
INFO = {"name": "get_model_info", "arguments": {"model_id": "sma_crossover"}}
QUERY = "train test split rule models"
GOLD = {"p": [INFO], "m": [{"name": "search_docs", "arguments": {"query": QUERY}}]}
WRONG_QUERY = {"name": "search_docs", "arguments": {"query": "fees slippage"}}
PARAPHRASE = {"name": "search_docs", "arguments": {"query": "rule models train/test split?"}}
# Which traces call the right tool per epoch: epoch 2 is best (7/8, m1 only under the lenient ruler),
# epoch 3 regresses (5/8) but gets m3 right, which epoch 2 misses. The untrained base (epoch 0) calls
# nothing but always writes something; at epoch 2, m2's final turn imitates a tool response.
RIGHT = {0: set(), 1: {"p0", "p1", "m0"}, 2: {"p0", "p1", "p2", "p3", "m0", "m1", "m2"},
         3: {"p0", "p1", "p2", "m0", "m3"}}
CFG = {"seed": 7, "scoring": {**defaults("scoring"), "bootstrap_samples": 200}, "report": defaults("report"),
       "teacher": {"backend": "offline", "model": "offline-simulator-v1"},
       "student": {"base": "embedded", "quantization": "none", "lora": {"r": 16}, "train": {"epochs": 3}},
       "pricing": {"models": {"claude-sonnet-4-5": {"input": 3.0, "output": 15.0}},
                   "cache_write": 1.25, "cache_read": 0.1, "batch": 0.5}}


class FixedJudge:
    """1.0 unless the answer is empty or says 'bad', so the tests pin the report, not the rubric."""

    name = "fixed"

    def grade(self, row: dict) -> JudgeResult:
        answer = row["pred_answer"]
        return JudgeResult(0.0 if not answer or "bad" in answer else 1.0, [])


MARKUP = '<tool_response>{"total_return": 0.125}</tool_response>'


def pred_calls(trace_id: str, epoch: int) -> list[dict]:
    if epoch == 0:
        return []
    if trace_id in RIGHT[epoch]:
        return [PARAPHRASE] if trace_id == "m1" else GOLD[trace_id[0]]
    return [{"name": "list_models", "arguments": {}}] if trace_id[0] == "p" else [WRONG_QUERY]


def pred_answer(trace_id: str, epoch: int, called: bool) -> str:
    if epoch == 0:
        return "A bad guess about the model: 99% at the next bar."
    if (trace_id, epoch) == ("m2", 2):
        return MARKUP
    return GOOD if trace_id in RIGHT[epoch] else ("bad: 99% at the next bar." if called else "")


def predictions(epoch: int) -> pd.DataFrame:
    rows = []
    for trace_id in ("p0", "p1", "p2", "p3", "m0", "m1", "m2", "m3"):
        calls = pred_calls(trace_id, epoch)
        right = trace_id in RIGHT[epoch]
        rows.append({
            "trace_id": trace_id, "category": "performance" if trace_id[0] == "p" else "methodology",
            "model_id": "sma_crossover", "model_kind": "rule", "ticker": "ACME",
            "question": f"Question {trace_id}?", "gold_calls": json.dumps(GOLD[trace_id[0]]),
            "gold_answer": GOOD, "pred_calls": json.dumps(calls),
            "pred_answer": pred_answer(trace_id, epoch, bool(calls)),
            "tool_outputs": json.dumps([json.dumps({"total_return": 0.125})] if calls else []),
            "failure": None, "n_turns": 2, "raw_turns": "[]",
        })
    return pd.DataFrame(rows)


def dataset_row(trace_id: str, category: str, answer: str) -> dict:
    """A grounded.parquet row (CONTRACTS.md columns)."""
    m = MODELS["sma_crossover"]
    return {"scenario_id": trace_id, "model_id": m.id, "model_kind": m.kind, "options": m.options,
            "ticker": m.tickers[0], "category": category, "template_id": f"{category}_0",
            "question": f"How does {m.name} work?" if category == "methodology" else f"Q {trace_id}",
            "gold_calls": "[]", "trace_id": trace_id, "messages": "[]", "final_answer": answer,
            "tool_outputs": "[]", "backend": "offline-simulator", "teacher_model": "offline-simulator-v1",
            "injected_faults": "[]", "input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "requests": 0, "batch_api": False, "teacher_error": None, "ungrounded": "[]"}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Score files for epochs 0..3, predictions, and a diagnostics dir built by the real build_all."""
    tmp = tmp_path_factory.mktemp("artifacts")
    tables = {e: score_frame(predictions(e), FixedJudge(), CFG["scoring"]) for e in RIGHT}
    scores = {e: summarise(t, CFG["scoring"], "fixed", seed=1) for e, t in tables.items()}
    split = "SMA Crossover uses an 80/20 train/test split with out-of-sample results."
    fixed = "SMA Crossover runs a full-period backtest with no train/test split."
    grounded = [dataset_row("a", "methodology", split), dataset_row("b", "methodology", fixed),
                dataset_row("c", "methodology", fixed), dataset_row("d", "performance", "Return 3%.")]
    frames = {
        "grounded": pd.DataFrame(grounded),
        "corrected": pd.DataFrame([dict(grounded[0], final_answer=fixed), *grounded[1:]])
        .assign(corrected=False, correction_ids="[]"),
        "rejected": pd.DataFrame([dataset_row("z", "what_if", "Fees cost 9%.")]).assign(reason="ungrounded_number"),
        "log": pd.DataFrame([{"trace_id": "a", "correction_id": "drop-split", "category": "methodology",
                              "model_id": "sma_crossover", "old_answer": split, "new_answer": fixed}]),
    }
    paths = {}
    for name, df in frames.items():
        paths[name] = tmp / f"{name}.parquet"
        df.to_parquet(paths[name], index=False)
    diagnostics.build_all(paths["grounded"], paths["rejected"], paths["corrected"], paths["log"],
                          paths["corrected"], paths["corrected"], tmp / "results" / "diagnostics")
    traces = pd.DataFrame({"trace_id": ["a", "b"], "backend": "offline-simulator",
                           "teacher_model": "offline-simulator-v1", "input_tokens": 0, "output_tokens": 0,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "requests": 0,
                           "batch_api": False, "teacher_error": None,
                           "injected_faults": ['["query_paraphrase"]', "[]"]})
    return {"scores": scores, "tables": tables, "traces": traces, "diag": tmp / "results" / "diagnostics"}


def metrics(losses: list[float]) -> dict:
    """metrics.json as train.train writes it: epoch 0 has eval loss only."""
    rows = [{"epoch": 0, "eval_loss": losses[0]}]
    rows += [{"epoch": e, "eval_loss": v, "train_loss": v + 0.1, "tokens_per_second": 100.0}
             for e, v in enumerate(losses[1:], start=1)]
    return {"config": {}, "epochs": rows}


def render(artifacts: dict, out: Path, losses: list[float], traces: pd.DataFrame | None = None,
           cfg: dict | None = None, baseline: dict | None = None) -> str:
    shutil.copytree(artifacts["diag"], out / "results" / "diagnostics")  # beside report.md, as in results/
    train_metrics = metrics(losses)
    selection = select_epoch(artifacts["scores"], {r["epoch"]: r["eval_loss"] for r in train_metrics["epochs"]},
                             ["tool_call", "judge"])
    plots = {k: out / "results" / "plots" / f"{k}.png"
             for k in ("metrics_by_epoch", "eval_loss_by_epoch", "tool_call_by_category")}
    return build_report(artifacts["scores"], artifacts["tables"], selection, train_metrics,
                        out / "results" / "diagnostics", artifacts["traces"] if traces is None else traces,
                        cfg or CFG, plots, out / "results" / "report.md", baseline)


def test_disagreement_flagged_with_flips_and_plots(artifacts: dict, tmp_path: Path) -> None:
    text = render(artifacts, tmp_path, [2.5, 1.2, 0.9, 0.7])  # eval loss picks 3, tool-call picks 2
    assert (tmp_path / "results" / "report.md").read_text() == text
    assert DISAGREE_FLAG in text and "Lowest eval loss is epoch 3" in text
    assert "**Chosen checkpoint: epoch 2**" in text and "**Ship bar: FAIL** (tool_call 0.88 < 0.90;" in text
    assert "Training past the pick: by epoch 3 only drops within noise (tool_call 0.88 → 0.62 [" in text
    assert "the offline SIMULATOR, not Claude" in text
    lines = text.splitlines()
    for epoch in range(4):
        assert any(line.startswith(f"| {epoch} | ") for line in lines), f"no row for epoch {epoch}"
    assert any(line.startswith("| 2 | 0.88 [") and line.endswith("| task pick |") for line in lines)
    assert any(line.startswith("| 3 | ") and line.endswith("| eval-loss pick |") for line in lines)
    # flips between the picks, with questions, both ways
    assert "3 question(s) right only at epoch 2, 1 right only at epoch 3" in text
    for trace_id in ("p3", "m1", "m2", "m3"):
        assert any(line.startswith(f"| {trace_id} | ") and f"Question {trace_id}?" in line for line in lines)
    assert "Epoch 0 → epoch 2: 7 question(s) gained a correct tool call, 0 lost one." in text
    assert "Epoch 0 → epoch 2: 0 question(s) gained an answer, 1 lost one." in text
    # ruler sensitivity: m1's paraphrased search_docs query passes overlap, fails exact match, and the
    # report says what BM25 actually retrieves for it
    assert "accepts 1 question(s) that exact match rejects. The leniencies they needed: `query_paraphrase` ×1" in text
    assert "BM25 returns the gold query's passages for" in text
    assert "| methodology | 4 | 0.50 | 0.75 | 0.25 |" in text
    assert "| not an answer | markup_in_answer | 0 | 0 | 1 | 0 |" in text
    # dataset diagnostics
    assert "| split_claim_on_rule_model | 1 | 0 |" in text
    assert "| drop-split |" in text and "0 added, 0 removed, 1 changed answers." in text
    for name in ("metrics_by_epoch", "eval_loss_by_epoch", "tool_call_by_category"):
        assert f"](plots/{name}.png)" in text
        assert (tmp_path / "results" / "plots" / f"{name}.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "](diagnostics/summary.md)" in text


def test_a_drop_within_noise_is_not_a_regression(artifacts: dict, tmp_path: Path) -> None:
    """One question of eight loses its answer from epoch 0 to the pick: the old verdict said
    "Regression: yes" on any drop; by the one rule (paired 95% interval excludes zero) it is noise."""
    text = render(artifacts, tmp_path, [2.5, 1.2, 0.9, 0.7])
    verdict = next(line for line in text.splitlines() if line.startswith("**Regression:"))
    assert verdict.startswith("**Regression: none**: no drop of epoch 2 against the untrained base (epoch 0) is "
                              "beyond noise")
    noisy = next(line for line in text.splitlines() if line.startswith("Drops within noise"))
    assert "against the untrained base (epoch 0): answered 1.00 → 0.88 [" in noisy
    assert "answered (methodology) 1.00 → 0.75 [" in noisy and "tool_call" not in noisy  # tool-call rose
    assert "1 of 8 held-out questions get no answer at epoch 2 (`markup_in_answer` ×1)" in text


def test_a_drop_beyond_noise_is_a_regression() -> None:
    """Eight of eight tool calls lost: the paired interval excludes zero, so it is a regression, overall
    and in the category; the same rule decides whether training past the pick lost ground."""
    def table(tool_call: bool) -> pd.DataFrame:
        qs = [f"q{i}" for i in range(8)]
        return pd.DataFrame({"trace_id": qs, "question": qs, "category": "performance", "tool_call": tool_call,
                             "answered": True, "grounded": True, "judge": 1.0})
    lines = regression_lines({0: table(True), 1: table(False), 2: table(False)}, 1, None, 200, 7)
    assert lines[0].startswith("**Regression: yes**: epoch 1 is below the untrained base (epoch 0) on "
                               "tool_call 1.00 → 0.00 [-1.00, -1.00]; tool_call (performance) 1.00 → 0.00")
    assert len(lines) == 1  # nothing within noise, and epoch 2 is no worse than the pick
    lines = regression_lines({0: table(True), 1: table(True), 2: table(False)}, 1, None, 200, 7)
    assert lines[0].startswith("**Regression: none**")
    assert lines[1].startswith("Training past the pick lost ground by epoch 2: tool_call 1.00 → 0.00")


def test_regression_against_a_previous_pick(artifacts: dict, tmp_path: Path) -> None:
    """The previous build's pick is compared question by question (its per-question table)."""
    previous = tmp_path / "previous"
    (previous / "scores").mkdir(parents=True)
    (previous / "selection.json").write_text(json.dumps({"task_epoch": 1}))
    (previous / "scores" / "epoch_1.json").write_text(json.dumps(artifacts["scores"][2]))
    with pytest.raises(FileNotFoundError, match="epoch_1.parquet"):
        load_baseline(previous)
    table = artifacts["tables"][2]
    table.assign(tool_call=True).to_parquet(previous / "scores" / "epoch_1.parquet")
    text = render(artifacts, tmp_path / "out", [2.5, 1.2, 0.9, 0.7], baseline=load_baseline(previous))
    noisy = next(line for line in text.splitlines() if line.startswith("Drops within noise"))
    assert f"against the previous pick (epoch 1 of {previous}): tool_call 1.00 → 0.88 [" in noisy
    assert "tool_call (methodology) 1.00 → 0.75 [" in noisy
    with pytest.raises(FileNotFoundError, match="report.baseline"):
        load_baseline(tmp_path / "nowhere")


def test_examples_show_real_questions_answers_and_verdicts(artifacts: dict, tmp_path: Path) -> None:
    text = render(artifacts, tmp_path, [2.5, 1.2, 0.9, 0.7])
    section = text.split("## Held-out examples (epoch 2)", 1)[1].split("\n## ", 1)[0]
    assert section.count("**methodology**") == 2 and section.count("**performance**") == 2
    assert "- Question: `Question m2?`" in section
    assert f"- Student (epoch 2): `{MARKUP}`" in section
    assert "**not an answer** (`markup_in_answer`); not grounded; judge 0.00 (`markup_in_answer`" in section
    assert f"- Gold answer: `{GOOD}`" in section


def test_agreement_not_flagged(artifacts: dict, tmp_path: Path) -> None:
    text = render(artifacts, tmp_path, [2.5, 1.2, 0.7, 0.9])  # both pick epoch 2
    assert DISAGREE_FLAG not in text and "Eval loss agrees: it also picks epoch 2" in text
    assert "Both picks are epoch 2, so nothing flips between them." in text
    assert any(line.endswith("| task pick, eval-loss pick |") for line in text.splitlines())


def test_claude_teacher_not_called_simulator(artifacts: dict, tmp_path: Path) -> None:
    traces = artifacts["traces"].assign(backend="anthropic", teacher_model="claude-x", injected_faults="[]")
    cfg = {**CFG, "teacher": {"backend": "anthropic", "model": "claude-x"}}
    text = render(artifacts, tmp_path, [2.5, 1.2, 0.9, 0.7], traces, cfg)
    assert "SIMULATOR" not in text and "**Teacher: Claude** (backend `anthropic`, model `claude-x`" in text


def test_teacher_cost_from_usage_and_the_price_table(artifacts: dict, tmp_path: Path) -> None:
    assert "## Teacher cost\n\nOffline simulator: no cost." in render(artifacts, tmp_path / "a", [2.5, 1.2, 0.9, 0.7])
    traces = artifacts["traces"].assign(backend="anthropic", teacher_model="claude-sonnet-4-5-20250929",
                                        input_tokens=[1_000_000, 0], output_tokens=[0, 100_000], requests=2,
                                        cache_read_input_tokens=[0, 1_000_000], batch_api=[False, True],
                                        teacher_error=[None, "InternalServerError 500: boom"], injected_faults="[]")
    cfg = {**CFG, "teacher": {"backend": "anthropic", "model": "claude-sonnet-4-5"}}
    text = render(artifacts, tmp_path / "b", [2.5, 1.2, 0.9, 0.7], traces, cfg)
    section = text.split("## Teacher cost", 1)[1]
    assert "input 1,000,000 · output 100,000 · cache write 0 · cache read 1,000,000" in section
    assert "$3.90" in section  # 3.00 direct + (1.50 + 0.30) × 0.5 through batches
    assert "4 requests for 2 scenarios (1 through Message Batches)" in section
    assert "Scenarios missing (request failed after retries): 1." in section
    other = {**cfg, "pricing": {**CFG["pricing"], "models": {}}}
    assert "no price for `claude-sonnet-4-5-20250929`" in render(artifacts, tmp_path / "c", [2.5, 1.2, 0.9, 0.7], traces, other)


def test_judge_cost_and_agreement_with_a_claude_judge(artifacts: dict, tmp_path: Path) -> None:
    losses = [2.5, 1.2, 0.9, 0.7]  # the task metric picks epoch 2
    assert "needs `judge.backend: anthropic`" in render(artifacts, tmp_path / "a", losses).split("## Judge cost", 1)[1]
    tables = {}
    for epoch, table in artifacts["tables"].items():
        graded = table["answered"]  # a Claude judge is asked about answers only
        tables[epoch] = table.assign(
            judge_rubric=table["judge"], judge_model=graded.map({True: "claude-sonnet-4-5", False: None}),
            judge_input_tokens=graded * 1000, judge_output_tokens=graded * 100,
            judge_rationale=graded.map({True: "States the return.", False: None}))
    answered = tables[2].index[tables[2]["answered"]]
    tables[2].loc[answered[0], ["judge", "judge_error", "judge_rationale"]] = [None, "no_grade_call", "text only"]
    tables[2].loc[answered[1], ["judge", "judge_rationale"]] = [0.4, "Misses the Sharpe ratio."]
    scores = {e: {**s, "judge_name": "anthropic"} for e, s in artifacts["scores"].items()}
    text = render({**artifacts, "scores": scores, "tables": tables}, tmp_path / "b", losses)
    section = text.split("## Judge cost and agreement", 1)[1]
    gradings = sum(int(t["answered"].sum()) for t in tables.values())
    assert f"{gradings} gradings (epochs 0, 1, 2, 3), 1 failed (`no_grade_call` ×1" in section
    assert f"${gradings * (1000 * 3.0 + 100 * 15.0) / 1e6:,.4f}" in section  # CFG's pricing: $3 / $15 per million
    assert "Pearson" in section and "| 2 | Question " in section and "Misses the Sharpe ratio." in section
