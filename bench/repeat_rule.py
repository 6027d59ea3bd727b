"""Benchmark: which repeat rule (`predict.constrain.repeats`) the held-out judge prefers.

The chosen epoch's adapter answers the default's held-out questions (the predict rule's selection) with the
number and tool-call rules on, once per mode: `block` (a token that would repeat a six-word run or a
sentence is refused, the next best taken), `stop` (the turn ends there, cut back to its last complete
sentence) and `off`. Each run is scored by the project's own scorer and judge (config `judge`, rubric by
default). Writes bench/results/repeat_rule.json: per mode the headline rates, the judge per category, the
answers that still repeat a sentence, and seconds; the mode with the highest judge is the config's choice.

    python bench/repeat_rule.py [--results results] [--epoch N]   # after `snakemake --cores 1 results/report.md`
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from distill import config  # noqa: E402
from distill.io import read_parquet, write_json  # noqa: E402
from distill.ruler.judge import make_judge  # noqa: E402
from distill.ruler.scoring import score_frame  # noqa: E402
from distill.ruler.summary import summarise  # noqa: E402
from distill.student.base_model import for_inference, use_available_cores  # noqa: E402
from distill.student.constrain import REPEAT_MODES, ConstrainConfig, _repeats  # noqa: E402
from distill.student.predict import held_out_questions, load_student, predict, prediction_frame  # noqa: E402
from distill.workbench import tools  # noqa: E402

OUT = Path(__file__).with_name("results") / "repeat_rule.json"
HEADLINE = ("tool_call", "answered", "grounded", "judge")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--epoch", type=int, help="adapter epoch (default: the one results/selection.json picked)")
    args = parser.parse_args()
    use_available_cores()
    cfg = config.load(str(ROOT / "config.yaml"))
    epoch = args.epoch or json.loads((args.results / "selection.json").read_text())["task_epoch"]
    questions = held_out_questions(read_parquet(args.results / "split" / "eval.parquet"),
                                   cfg["predict"]["max_examples"], cfg["seed"])
    st, pcfg = cfg["student"], cfg["predict"]
    model, tokenizer = load_student(str(args.results / "base_model"), str(args.results / "adapter" / f"epoch_{epoch}"),
                                    st["quantization"], st["dtype"])
    model = for_inference(model, st["autocast"], st["quantization"])
    judge = make_judge({**cfg["judge"], "backend": "rubric"}, None, cfg["claims"])
    base_rules = ConstrainConfig.from_cfg(pcfg["constrain"])
    modes = {}
    for mode in REPEAT_MODES:
        start = time.perf_counter()
        records = predict(model, tokenizer, questions[["trace_id", "question"]].to_dict("records"), tools.TOOLS,
                          tools.execute, max_turns=pcfg["max_turns"], max_new_tokens=pcfg["max_new_tokens"],
                          batch_size=pcfg["batch_size"], constrain=replace(base_rules, repeats=mode))
        seconds = time.perf_counter() - start
        frame = score_frame(prediction_frame(questions, records), judge, cfg["scoring"], claims=cfg["claims"])
        summary = summarise(frame, cfg["scoring"], judge.name, cfg["seed"])
        modes[mode] = {
            "seconds": round(seconds, 1),
            **{m: round(summary["overall"][m]["value"], 3) for m in HEADLINE},
            "judge_ci95": [round(x, 3) for x in summary["overall"]["judge"]["ci95"]],
            "judge_per_category": {c: round(v["judge"]["value"], 3) for c, v in summary["per_category"].items()},
            "answers_repeating": int(sum(_repeats(a, closed=True) for a in frame["pred_answer"])),
            "answers": list(frame["pred_answer"]),
        }
    chosen = max(REPEAT_MODES, key=lambda m: modes[m]["judge"])
    figures = {
        "epoch": epoch,
        "questions": len(questions),
        "judge": judge.name,
        "chosen_by_judge": chosen,
        "config": pcfg["constrain"]["repeats"],
        "answers_differing_from_block": {m: sum(a != b for a, b in zip(modes[m]["answers"], modes["block"]["answers"]))
                                         for m in REPEAT_MODES},
        "modes": modes,
    }
    write_json(figures, OUT)
    print(json.dumps({**figures, "modes": {m: {k: v for k, v in f.items() if k != "answers"}
                                           for m, f in modes.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
