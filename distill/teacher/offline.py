"""The offline teacher SIMULATOR: a deterministic, seeded stand-in for Claude (no API key needed).

It plays the assistant the way the real teacher does: it makes the gold tool calls, executes them
against the real workbench tools, and writes a short answer in the house style that cites the tool
numbers. It also injects the real teacher's known faults, each at the rate set in
`teacher.faults`, so that every downstream safeguard has something real to catch:

- ungrounded_number: the answer cites a number no tool returned (grounding must reject it);
- split_boilerplate: the ML model's "80/20 train/test split" sentence pasted onto a methodology
  answer about a rule-based model (grounding cannot see it: it cites no number; the gold
  corrections must fix it);
- query_paraphrase: the search_docs query is phrased differently from the gold query (the overlap
  ruler of the scorer must tolerate it, the strict ruler does not).

Which faults were injected is recorded per trace for tests and diagnostics only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random

from distill.teacher.base import SYSTEM_PROMPT, Trace
from distill.workbench import tools
from distill.workbench.registry import get_model

log = logging.getLogger(__name__)

# Rephrasings of methodology searches, as Claude varies them from one conversation to the next.
PARAPHRASES: dict[str, tuple[str, ...]] = {
    "method_validation": ("how is {name} evaluated out of sample", "{name} train test split validation method",
                          "validation of {name} backtest results"),
    "method_lookahead": ("how {name} avoids look-ahead bias", "{name} next bar execution to prevent lookahead",
                         "look-ahead bias signal timing {name} backtest"),
    "method_costs": ("how fees and slippage change {name} returns", "{name} transaction cost model",
                     "trading costs basis points {name}"),
    "method_period": ("{name} out-of-sample or full period results", "which dates {name} metrics cover",
                      "{name} reporting window"),
    "method_fit": ("what does {name} fit", "{name} machine learned or rule-based", "{name} estimated parameters"),
    "method_options": ("Black-Scholes option pricing realised volatility", "how covered call premium is priced",
                       "option premium pricing volatility model"),
}

SPLIT_BOILERPLATE = ("As with every workbench model, results use the default 80/20 train/test split "
                     "and are reported out-of-sample.")


class OfflineTeacher:
    """Deterministic teacher simulator; the same seed and scenario always give the same trace."""

    backend = "offline-simulator"
    batch_api = False
    max_missing_share = 0.0  # the simulator never fails a request

    def __init__(self, cfg: dict, seed: int) -> None:
        self.model = cfg["model"]
        self.faults = cfg["faults"]
        self.seed = seed

    def play_all(self, scenarios: list[dict]) -> list[Trace]:
        traces = []
        for i, scenario in enumerate(scenarios):
            traces.append(self.play(scenario))
            if (i + 1) % 50 == 0:
                log.info("teacher simulator: %d/%d scenarios", i + 1, len(scenarios))
        return traces

    def play(self, scenario: dict) -> Trace:
        rng = random.Random(int(hashlib.sha256(f"{self.seed}|{scenario['scenario_id']}".encode()).hexdigest(), 16))
        injected: list[str] = []
        calls = json.loads(scenario["gold_calls"])
        para = PARAPHRASES.get(scenario["template_id"])
        if para and rng.random() < self.faults["query_paraphrase"]:
            name = get_model(scenario["model_id"]).name.lower()
            calls = [{"name": c["name"], "arguments": {"query": rng.choice(para).format(name=name)}} for c in calls]
            injected.append("query_paraphrase")

        outputs = [tools.execute(c["name"], c["arguments"]) for c in calls]
        answer = self._answer(scenario, [json.loads(o) for o in outputs])

        model = get_model(scenario["model_id"])
        if (scenario["category"] == "methodology" and model.kind == "rule"
                and rng.random() < self.faults["split_boilerplate"]):
            answer = f"{answer} {SPLIT_BOILERPLATE}"
            injected.append("split_boilerplate")
        if rng.random() < self.faults["ungrounded_number"]:
            answer = f"{answer} {self._invented_figure(scenario['category'], rng)}"
            injected.append("ungrounded_number")

        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": scenario["question"]},
            {"role": "assistant", "content": "", "tool_calls": calls},
            *({"role": "tool", "name": c["name"], "content": o} for c, o in zip(calls, outputs)),
            {"role": "assistant", "content": answer},
        ]
        return Trace(messages=messages, final_answer=answer, tool_outputs=outputs, injected_faults=injected)

    # -- house-style answers, one per category ------------------------------------------------------

    def _answer(self, sc: dict, results: list) -> str:
        model = get_model(sc["model_id"])
        errors = [r["error"] for r in results if isinstance(r, dict) and "error" in r]
        if errors:
            return f"I could not get that from the workbench: {errors[0]}"
        if sc["category"] == "data_source":
            info = results[0]
            params = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in info["parameters"].items())
            options = " It is an options strategy." if info["options_strategy"] else ""
            return (f"{info['name']} uses {info['data_source']}. It is a {info['kind']}-based model with "
                    f"parameters {params}.{options}")
        # The tool shows figures as an answer states them (tools._backtest): they are cited as shown.
        if sc["category"] == "performance":
            r = results[0]
            return (f"On {r['ticker']} from {r['start']} to {r['end']} ({r['period']}), {model.name} returned "
                    f"{r['total_return']} in total ({r['cagr']} a year) with a Sharpe ratio of {r['sharpe']} and "
                    f"a maximum drawdown of {r['max_drawdown']}. It made {r['n_trades']} trades with a win rate "
                    f"of {r['win_rate']} and paid {r['fees_paid']} in fees and slippage.")
        if sc["category"] == "what_if":
            base, alt = results
            knob = "fee" if alt["fee_bps"] != base["fee_bps"] else "slippage"
            b0, b1 = base[f"{knob}_bps"], alt[f"{knob}_bps"]
            return (f"With the default {knob} of {b0} bps, {model.name} on {base['ticker']} returned "
                    f"{base['total_return']} with a Sharpe ratio of {base['sharpe']}; with a {knob} of {b1} bps "
                    f"it would return {alt['total_return']} with a Sharpe ratio of {alt['sharpe']}, and costs "
                    f"paid would go from {base['fees_paid']} to {alt['fees_paid']}.")
        return self._methodology(sc, model, results[0])

    @staticmethod
    def _methodology(sc: dict, model, result) -> str:
        if sc["template_id"] == "method_options":
            core = (f"{model.name} prices each call it sells with Black-Scholes, using realised volatility "
                    f"of the stock as the volatility input.")
        elif sc["template_id"] == "method_costs":
            core = (f"{model.name} pays fees and slippage in basis points of traded notional on every entry and "
                    f"exit, so higher costs always lower its total return.")
        elif sc["template_id"] == "method_lookahead":
            core = (f"{model.name} trades on the bar after each signal, so a position never uses the close "
                    f"that produced it.")
        elif sc["template_id"] == "method_period" and model.kind == "ml":
            core = f"{model.name} reports every metric out-of-sample, on the last 20% of the window only."
        elif sc["template_id"] == "method_period":
            core = (f"{model.name} has nothing to fit, so its results are measured over the full period of the "
                    f"requested window.")
        elif sc["template_id"] == "method_fit" and model.kind == "ml":
            core = (f"{model.name} is machine-learned: it fits a ridge regression that forecasts daily returns "
                    f"from the last 5 daily returns and a 20-day volume z-score, on the training part of a chronological "
                    f"train/test split.")
        elif sc["template_id"] == "method_fit":
            core = (f"{model.name} is rule-based: its parameters are fixed settings and nothing is fitted, so it "
                    f"needs no train/test split.")
        elif model.kind == "ml":
            core = (f"{model.name} is fitted on a chronological 80/20 train/test split and reports its results "
                    f"out-of-sample on the held-out end of the window.")
        else:
            core = (f"{model.name} is rule-based with nothing to fit, so it is backtested over the full period "
                    f"with no train/test split.")
        hits = result.get("results", result) if isinstance(result, dict) else result
        if hits:
            core += f" Source: {hits[0]['doc']}."
        return core

    @staticmethod
    def _invented_figure(category: str, rng: random.Random) -> str:
        """A plausible figure no tool returned: the fault grounding exists to catch."""
        x = rng.uniform(11.0, 39.0)
        if category in ("performance", "what_if"):
            return f"Its annualised volatility was {x:.1f}%."
        if category == "data_source":
            return f"The data set holds about {x:.1f} thousand bars per ticker."
        return f"This keeps turnover about {x:.1f}% lower than a naive version."
