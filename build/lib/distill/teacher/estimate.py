"""What the Claude teacher will cost, before any call: results/teacher/estimate.md.

An offline approximation, stated in the file it writes: tokens are characters / CHARS_PER_TOKEN;
each scenario is played as its gold plan, one tool call per assistant turn and then the answer, with
the real tool outputs (the tools run here, as the teacher's would); every request re-sends the system
prompt, the tool definitions and the conversation so far. Dollars come from the `pricing` config
section through distill.claude.pricing, for direct requests and Message Batches, with and without
prompt caching of the system prompt and tools (a prefix below the model's minimum is never cached).
"""

from __future__ import annotations

import json
import math

import pandas as pd

from distill.claude.loop import system_text
from distill.claude.pricing import cost_usd, model_prices
from distill.workbench import tools

CHARS_PER_TOKEN = 4.0  # English prose and JSON run ~3.5–4.5 characters per Claude token
TURN_OVERHEAD = 12  # role and block framing per message, tokens
CALL_OVERHEAD = 20  # a tool_use block's id and framing beyond its name and input, tokens
ANSWER_TOKENS = 120  # a final answer: the system prompt asks for two or three sentences citing the figures


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix a model caches (approximate: 2048 tokens for Haiku, 1024 for Sonnet and Opus)."""
    return 2048 if "haiku" in model else 1024


def prefix_tokens(params: dict) -> int:
    """Tokens of what every request repeats: the tool definitions and the system prompt."""
    tool_defs = [{k: v for k, v in t.items() if k != "cache_control"} for t in params["tools"]]
    return approx_tokens(json.dumps(tool_defs)) + approx_tokens(system_text(params["system"]))


def cached_prefix_note(params: dict) -> str | None:
    """A warning when prompt caching cannot take: the prefix is shorter than the model's minimum."""
    prefix, minimum = prefix_tokens(params), min_cacheable_tokens(params["model"])
    if prefix >= minimum:
        return None
    return (f"the cached prefix (system prompt + tool definitions, ~{prefix} tokens) is below the minimum "
            f"of ~{minimum} tokens for {params['model']}: nothing will be cached, silently")


def grid_usage(scenarios: pd.DataFrame, params: dict) -> dict[str, int]:
    """Expected scenarios, requests and input/output tokens for the grid (no prompt caching)."""
    prefix = prefix_tokens(params)
    outputs: dict[str, int] = {}  # a call's output tokens, by the call (many scenarios repeat calls)
    totals = {"scenarios": len(scenarios), "requests": 0, "input_tokens": 0, "output_tokens": 0}
    for question, gold in zip(scenarios["question"], scenarios["gold_calls"]):
        history = approx_tokens(question) + TURN_OVERHEAD
        for call in json.loads(gold):
            key = json.dumps(call, sort_keys=True)
            if key not in outputs:
                outputs[key] = approx_tokens(tools.execute(call["name"], call["arguments"]))
            call_tokens = approx_tokens(json.dumps(call["arguments"])) + approx_tokens(call["name"]) + CALL_OVERHEAD
            totals["requests"] += 1
            totals["input_tokens"] += prefix + history
            totals["output_tokens"] += call_tokens
            history += call_tokens + outputs[key] + 2 * TURN_OVERHEAD
        totals["requests"] += 1  # the answer
        totals["input_tokens"] += prefix + history
        totals["output_tokens"] += ANSWER_TOKENS
    return totals


def priced_modes(totals: dict[str, int], params: dict, pricing: dict, model: str) -> list[tuple[str, float | None]]:
    """(mode, dollars) for direct and batch requests, without and with prompt caching."""
    plain = {"input_tokens": totals["input_tokens"], "output_tokens": totals["output_tokens"]}
    prefix, reads = prefix_tokens(params), max(totals["requests"] - 1, 0)
    if prefix >= min_cacheable_tokens(model) and totals["requests"]:
        # One write, then every later request reads the prefix (a run keeps the 5-minute cache warm).
        caching = {**plain, "input_tokens": plain["input_tokens"] - prefix * totals["requests"],
                   "cache_creation_input_tokens": prefix, "cache_read_input_tokens": prefix * reads}
    else:
        caching = plain
    return [("direct", cost_usd(plain, pricing, model)),
            ("direct + prompt caching", cost_usd(caching, pricing, model)),
            ("batch", cost_usd(plain, pricing, model, batch=True)),
            ("batch + prompt caching", cost_usd(caching, pricing, model, batch=True))]


def estimate_markdown(scenarios: pd.DataFrame, tcfg: dict, pricing: dict, params: dict) -> str:
    """The estimate file: counts, tokens, dollars per mode, the caching minimum, and how it was estimated."""
    totals = grid_usage(scenarios, params)
    model = tcfg["model"]
    priced = [model] if model_prices(pricing, model) else sorted(pricing["models"])
    acfg = tcfg["anthropic"]
    configured = f"{acfg['mode']}{' + prompt caching' if acfg['prompt_caching'] else ''}"
    lines = [
        "# Teacher cost estimate (before any call)",
        "",
        (f"Backend `{tcfg['backend']}`, model `{model}`, configured mode: {configured}."
         + (" The offline simulator costs nothing; the figures below are what Claude would cost."
            if tcfg["backend"] == "offline" else "")),
        "",
        f"- scenarios: {totals['scenarios']}",
        f"- requests: {totals['requests']} (one per tool call of the gold plan, plus the answer)",
        f"- input tokens: ~{totals['input_tokens']:,} (the repeated prefix: ~{prefix_tokens(params):,} a request)",
        f"- output tokens: ~{totals['output_tokens']:,}",
        "",
        "| model | " + " | ".join(mode for mode, _ in priced_modes(totals, params, pricing, priced[0])) + " |",
        "|---|" + "---|" * 4,
    ]
    for name in priced:
        cells = [f"${d:,.2f}" if d is not None else "no price" for _, d in priced_modes(totals, params, pricing, name)]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    notes = [cached_prefix_note({**params, "model": name}) for name in priced]
    lines += ["", *(f"Prompt caching: {n}." for n in dict.fromkeys(filter(None, notes)))]
    lines += [
        "",
        f"How this was estimated: tokens = characters / {CHARS_PER_TOKEN:g}; each scenario plays its gold plan "
        "with one tool call per assistant turn, the real tool outputs (run here) and a "
        f"~{ANSWER_TOKENS}-token answer; every request re-sends the prefix and the conversation so far. "
        "Prompt caching assumes one cache write and a read on every later request; batches take the "
        "`pricing.batch` discount (cache hits inside batches are best effort). Responses already in "
        "results/cache/ cost nothing again, so a rebuild costs less than this.",
    ]
    return "\n".join(lines) + "\n"
