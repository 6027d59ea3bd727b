"""The merged export: a plain checkpoint whose logits are base + adapter, with the renderer as its chat template."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from distill.student.chat import assistant_spans, generation_prompt, render
from distill.student.export import chat_template, merge_adapter
from distill.student.base_model import load_base
from distill.workbench.tools import TOOLS, execute

ARGS = {"model_id": "sma_crossover", "ticker": "ACME", "start": "2020-01-02", "end": "2021-12-31"}
CONVERSATION = [
    {"role": "system", "content": "the teacher's prompt, replaced by the student's"},
    {"role": "user", "content": "How did SMA Crossover do on ACME, and at what fee? (ünïcode)"},
    {"role": "assistant", "content": "  Let me check.  ", "tool_calls": [
        {"name": "run_backtest", "arguments": ARGS},
        {"name": "run_backtest", "arguments": {**ARGS, "fee_bps": 10}}]},
    {"role": "tool", "name": "run_backtest", "content": execute("run_backtest", ARGS)},
    {"role": "tool", "name": "run_backtest", "content": execute("run_backtest", {**ARGS, "fee_bps": 10})},
    {"role": "assistant", "content": "It returned 12.5%."},
    {"role": "user", "content": "And the data source?"},
    {"role": "assistant", "content": None, "tool_calls": [{"name": "get_model_info", "arguments": {"model_id": "sma_crossover"}}]},
    {"role": "tool", "name": "get_model_info", "content": execute("get_model_info", {"model_id": "sma_crossover"})},
]
OTHER_TOOLS = [  # descriptions that exercise every way chat.tool_signature cuts the purpose
    {"name": "a", "description": "Cut at a parenthesis (not here). More.", "input_schema": {"type": "object"}},
    {"name": "b", "description": "Ends with a dot.", "input_schema": {"type": "object", "properties": {
        "x": {"type": "integer"}, "y": {}}, "required": ["x"]}},
    {"name": "c", "description": "", "input_schema": {"type": "object", "properties": {}}},
    {"name": "d", "description": "v1.2 stays. Second.", "input_schema": {"type": "object"}},
]


@pytest.fixture(scope="module")
def templated(tokenizer):
    tokenizer.chat_template = chat_template()
    return tokenizer


@pytest.mark.parametrize("tools", [TOOLS, OTHER_TOOLS, []], ids=["workbench", "other", "none"])
@pytest.mark.parametrize("cut", [2, 3, 6, 9])
def test_the_chat_template_renders_exactly_like_the_renderer(templated, tools, cut) -> None:
    messages = CONVERSATION[:cut]
    assert templated.apply_chat_template(messages, tools=tools, tokenize=False) == render(messages, tools)
    assert (templated.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
            == generation_prompt(messages, tools))


def test_the_templates_assistant_mask_is_trainings(templated) -> None:
    out = templated.apply_chat_template(CONVERSATION[:6], tools=TOOLS, return_dict=True,
                                        return_assistant_tokens_mask=True)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert templated.decode(masked) == "".join(text for text, mine in assistant_spans(CONVERSATION[:6], TOOLS) if mine)


def test_openai_shaped_tools_and_calls_render_the_same(templated) -> None:
    openai_tools = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                      "parameters": t["input_schema"]}} for t in TOOLS]
    openai = [{**m, "tool_calls": [{"type": "function", "function": c} for c in m["tool_calls"]]}
              if m.get("tool_calls") else m for m in CONVERSATION]
    assert templated.apply_chat_template(openai, tools=openai_tools, tokenize=False) == render(CONVERSATION, TOOLS)


@pytest.mark.slow
def test_the_merged_export_loads_plainly_and_equals_base_plus_adapter(base_model_dir, tmp_path) -> None:
    base, tokenizer = load_base(str(base_model_dir))
    torch.manual_seed(0)  # init_lora_weights=False: a random, non-zero update, so merging has something to get wrong
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    merge_adapter(base_model_dir, tmp_path / "adapter", tmp_path / "merged", "float32")

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")  # no peft, no distill
    exported = AutoTokenizer.from_pretrained(tmp_path / "merged")
    assert exported.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False) == render(CONVERSATION, TOOLS)

    ids = torch.tensor([tokenizer(generation_prompt(CONVERSATION[:4], TOOLS), add_special_tokens=False)["input_ids"]])
    plain, _ = load_base(str(base_model_dir))
    reference = PeftModel.from_pretrained(load_base(str(base_model_dir))[0], tmp_path / "adapter").eval()
    with torch.no_grad():
        want, got, before = (m(input_ids=ids).logits for m in (reference, merged.eval(), plain.eval()))
    assert (want - before).abs().max() > 1e-2  # the adapter changes the logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
