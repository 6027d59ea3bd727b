"""The student end to end on the embedded SmolLM2: conversion, LoRA/QLoRA training, resume, agent loop.

Slow (about two minutes on 2 cores): one GGUF conversion per session, tiny runs that train only the
top layers at max_seq_len 256.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distill.student.chat import IM_END, LOOP_FAILURES
from distill.student.predict import load_student, predict
from distill.student import base_model
from distill.student.base_model import for_inference, load_base, native_autocast
from distill.student.chat import encode
from distill.student.batches import loss_sum, shared_prefix_len
from distill.student.train import _setup_model, check_config, train

TOOLS = [
    {"name": "list_models", "description": "All models.", "input_schema": {"type": "object", "properties": {}}},
    {
        "name": "run_backtest",
        "description": "Backtest a model on a ticker.",
        "input_schema": {
            "type": "object",
            "properties": {"model_id": {"type": "string"}, "ticker": {"type": "string"}},
            "required": ["model_id", "ticker"],
        },
    },
]
MODELS = ["sma_cross", "momentum", "mean_revert", "covered_call"]
TICKERS = ["SPY", "QQQ", "AAPL"]


def conversation(i: int) -> list[dict]:
    model_id, ticker, total = MODELS[i % 4], TICKERS[i % 3], 10 + i
    return [
        {"role": "system", "content": "teacher prompt"},
        {"role": "user", "content": f"How did {model_id} do on {ticker}?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"name": "run_backtest", "arguments": {"model_id": model_id, "ticker": ticker}}],
        },
        {"role": "tool", "name": "run_backtest", "content": json.dumps({"total_return": total / 100})},
        {"role": "assistant", "content": f"{model_id} returned {total}% on {ticker}."},
    ]


TRAIN_ROWS = [conversation(i) for i in range(8)]
EVAL_ROWS = [conversation(i) for i in range(8, 10)]
CFG = {
    "seed": 7,
    "max_seq_len": 256,
    "quantization": "none",
    "dtype": "float32",
    "autocast": None,
    "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": "all-linear", "layers_to_transform": [28, 29]},
    "epochs": 2,
    "learning_rate": 3e-3,
    "batch_size": 4,
    "grad_accum": 1,
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    "packing": False,
    "gradient_checkpointing": False,
    "liger": False,
}


@pytest.fixture(scope="module")
def trained(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("adapter")
    return out, train(CFG, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS, out)


def test_check_config_names_the_bad_key() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        check_config({k: v for k, v in CFG.items() if k != "learning_rate"})
    with pytest.raises(ValueError, match="train.lora: unknown keys"):
        check_config({**CFG, "lora": {**CFG["lora"], "rank": 8}})
    with pytest.raises(ValueError, match="quantization"):
        check_config({**CFG, "quantization": "int8"})


@pytest.mark.parametrize("native", [True, False])
def test_autocast_auto_casts_only_where_bf16_is_native(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(base_model, "native_bf16", lambda device: native)
    cpu = torch.device("cpu")
    assert native_autocast("auto", cpu) == ("bfloat16" if native else None)
    assert native_autocast("bfloat16", cpu) == "bfloat16" and native_autocast(None, cpu) is None  # as configured
    model = torch.nn.Linear(2, 2)
    model.device = cpu
    assert for_inference(model, "auto", "none").weight.dtype == (torch.bfloat16 if native else torch.float32)
    assert for_inference(model.float(), None, "none").weight.dtype == torch.float32
    with pytest.raises(ValueError, match="autocast must be one of .*'auto' or null, got 'float16'"):
        native_autocast("float16", cpu)


_HEAP_PROBE = """
import ctypes, sys
from distill.student.base_model import cap_heap_growth
capped = cap_heap_growth(int(sys.argv[1]))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    return next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
libc.free(libc.malloc(16 << 20))   # glibc's own threshold rises to 16 MiB on this free
blocks = [libc.malloc(4 << 20) for _ in range(24)]
for b in blocks:
    ctypes.memset(b, 1, 4 << 20)
before = rss_mb()
for b in blocks[:-1]:              # the last block stays, so the heap cannot shrink from its top
    libc.free(b)
print(capped, before - rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
                    reason="glibc on Linux")
def test_a_capped_heap_gives_freed_blocks_back() -> None:
    """With glibc's own threshold 4 MiB blocks come from the heap and stay resident after free; capped at
    1 MiB they are mmapped and leave with it: what halves the train rule's peak RSS."""
    freed = {}
    for mb in (0, 1):
        out = subprocess.run([sys.executable, "-c", _HEAP_PROBE, str(mb)], check=True, capture_output=True,
                             text=True).stdout.split()
        freed[mb] = (out[0], int(out[1]))
    assert freed[0][0] == "False" and freed[1][0] == "True"
    assert freed[0][1] < 16, freed   # 92 MB freed, almost none of it returned
    assert freed[1][1] > 80, freed   # all of it returned


@pytest.mark.slow
def test_converted_checkpoint_is_plain_and_pads_apart_from_eos(base_model_dir: Path) -> None:
    assert (base_model_dir / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((base_model_dir / "config.json").read_text())
    model, tokenizer = load_base(str(base_model_dir))
    assert model.dtype == torch.float32 and type(model).__name__ == "LlamaForCausalLM"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == IM_END and model.config.pad_token_id == tokenizer.pad_token_id
    assert not [p.name for p in base_model_dir.parent.iterdir() if p.name.startswith(".")]  # temp dir renamed


@pytest.mark.slow
def test_every_epoch_saves_a_loadable_adapter_and_its_losses(trained: tuple[Path, dict], base_model_dir: Path) -> None:
    from peft import PeftModel

    out, metrics = trained
    assert [e["epoch"] for e in metrics["epochs"]] == [0, 1, 2]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for epoch in (1, 2):
        stats = json.loads((out / f"epoch_{epoch}" / "eval.json").read_text())
        assert {"epoch", "eval_loss", "train_loss", "tokens", "seconds", "tokens_per_second"} <= set(stats)
        assert stats["epoch"] == epoch and stats["tokens"] > 0
        model = PeftModel.from_pretrained(load_base(str(base_model_dir))[0], str(out / f"epoch_{epoch}"))
        assert any("lora_A" in name for name, _ in model.named_parameters())
    first, second = metrics["epochs"][1], metrics["epochs"][2]
    assert second["train_loss"] < first["train_loss"]
    assert second["eval_loss"] < metrics["epochs"][0]["eval_loss"]


@pytest.mark.slow
def test_resumed_run_equals_uninterrupted(trained: tuple[Path, dict], base_model_dir: Path, tmp_path: Path) -> None:
    out, metrics = trained
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed)
    shutil.rmtree(resumed / "epoch_2")  # as if killed during epoch 2
    (resumed / "metrics.json").unlink()
    epoch_1 = (resumed / "epoch_1" / "adapter_model.safetensors").stat().st_mtime_ns

    again = train(CFG, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS, resumed)

    assert (resumed / "epoch_1" / "adapter_model.safetensors").stat().st_mtime_ns == epoch_1  # not redone
    want = load_file(out / "epoch_2" / "adapter_model.safetensors")
    got = load_file(resumed / "epoch_2" / "adapter_model.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    assert again["epochs"][2]["eval_loss"] == pytest.approx(metrics["epochs"][2]["eval_loss"], rel=1e-5)


@pytest.mark.slow
def test_checkpoints_of_a_different_run_are_not_resumed(trained: tuple[Path, dict], base_model_dir: Path,
                                                        tmp_path: Path) -> None:
    out, metrics = trained
    shutil.copytree(out, tmp_path / "other")
    other = train({**CFG, "epochs": 1, "learning_rate": 1e-4}, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS,
                  tmp_path / "other")
    assert [e["epoch"] for e in other["epochs"]] == [0, 1]
    assert not (tmp_path / "other" / "epoch_2").exists()  # the stale run's later epoch is gone
    assert other["epochs"][1]["train_loss"] != pytest.approx(metrics["epochs"][1]["train_loss"], rel=1e-6)


@pytest.mark.slow
def test_shared_prefix_loss_and_gradients_equal_one_example_at_a_time(base_model_dir: Path) -> None:
    cfg = {**CFG, "lora": {**CFG["lora"], "dropout": 0.0, "layers_to_transform": None}}
    model, tokenizer = _setup_model(cfg, base_model_dir)
    examples = [encode(c, TOOLS, tokenizer, 256) for c in TRAIN_ROWS[:3]]  # different lengths, one system prompt
    assert shared_prefix_len(examples) > 20

    def run(batches: list[list[dict]]) -> tuple[float, int, list[torch.Tensor]]:
        model.zero_grad()
        results = [loss_sum(model, b, tokenizer.pad_token_id) for b in batches]
        sum(loss for loss, _ in results).backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return sum(loss.item() for loss, _ in results), sum(n for _, n in results), grads

    shared_loss, shared_n, shared_grads = run([examples])
    single_loss, single_n, single_grads = run([[e] for e in examples])
    assert shared_n == single_n
    assert shared_loss == pytest.approx(single_loss, rel=1e-5)
    for a, b in zip(shared_grads, single_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)  # fp32 summation order


@pytest.mark.slow
def test_qlora_nf4_trains_on_cpu(base_model_dir: Path, tmp_path: Path) -> None:
    import bitsandbytes as bnb

    cfg = {**CFG, "quantization": "nf4", "epochs": 1}
    metrics = train(cfg, base_model_dir, TRAIN_ROWS, EVAL_ROWS, TOOLS, tmp_path)
    assert metrics["epochs"][1]["eval_loss"] < metrics["epochs"][0]["eval_loss"]
    model, _ = load_student(base_model_dir, tmp_path / "epoch_1", quantization="nf4")
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())


class ScriptedModel:
    """Stands in for a causal LM in `predict`: replies from a script keyed by question and turn."""

    device = torch.device("cpu")

    def __init__(self, tokenizer, script: dict[str, list[str]]) -> None:
        self.tokenizer, self.script, self.prompts = tokenizer, script, []

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generation_config) -> torch.Tensor:
        tok, replies = self.tokenizer, []
        for ids, mask in zip(input_ids, attention_mask):
            prompt = tok.decode(ids[mask.bool()])
            self.prompts.append(prompt)
            question = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", prompt).group(1)
            turn = prompt.count("<|im_start|>assistant")  # the open header included
            script = self.script[question]
            reply = script[min(turn, len(script)) - 1] + IM_END
            replies.append(tok(reply, add_special_tokens=False)["input_ids"])
        width = max(map(len, replies))
        new = [r + [tok.pad_token_id] * (width - len(r)) for r in replies]
        return torch.cat([input_ids, torch.tensor(new)], dim=1)


def call(name: str, arguments: dict) -> str:
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments}) + "</tool_call>"


@pytest.mark.slow
def test_predict_runs_the_loop_and_records_failures(base_model_dir: Path) -> None:
    _, tokenizer = load_base(str(base_model_dir))
    backtest = call("run_backtest", {"model_id": "sma_cross", "ticker": "SPY"})
    script = {
        "ok": [backtest, "sma_cross returned 12%."],
        "bad json": ["<tool_call>{run_backtest}</tool_call>"],
        "unknown": [call("sell_everything", {})],
        "bad args": ['<tool_call>{"name": "list_models", "arguments": "all"}</tool_call>'],
        "loops": [call("list_models", {})],
        "empty": [""],
    }
    executed: list[tuple[str, dict]] = []

    def execute(name: str, arguments: dict) -> str:
        executed.append((name, arguments))
        return json.dumps({"total_return": 0.12} if name == "run_backtest" else ["sma_cross"])

    model = ScriptedModel(tokenizer, script)
    questions = [{"trace_id": f"t{i}", "question": q} for i, q in enumerate(script)]
    records = predict(model, tokenizer, questions, TOOLS, execute, max_turns=3, max_new_tokens=64, batch_size=4)

    by_question = {r["question"]: r for r in records}
    assert [r["trace_id"] for r in records] == [q["trace_id"] for q in questions]
    ok = by_question["ok"]
    assert ok["failure"] is None and ok["pred_answer"] == "sma_cross returned 12%." and ok["n_turns"] == 2
    assert ok["pred_calls"] == [{"name": "run_backtest", "arguments": {"model_id": "sma_cross", "ticker": "SPY"}}]
    assert ok["tool_outputs"] == ['{"total_return": 0.12}'] and ok["raw_turns"] == [backtest, "sma_cross returned 12%."]
    assert any('<tool_response>{"total_return": 0.12}</tool_response>' in p for p in model.prompts)
    expected = {
        "bad json": "bad_json",
        "unknown": "unknown_tool",
        "bad args": "bad_arguments",
        "loops": "turn_limit",
        "empty": None,  # a final turn, empty: whether it answers is the scorer's question (distill.ruler.answers)
    }
    for question, failure in expected.items():
        assert by_question[question]["failure"] == failure and by_question[question]["pred_answer"] == ""
    assert by_question["loops"]["n_turns"] == 3 and len(by_question["loops"]["pred_calls"]) == 3
    assert sorted({name for name, _ in executed}) == ["list_models", "run_backtest"]  # failed turns run nothing


@pytest.mark.slow
def test_predict_with_the_real_student(trained: tuple[Path, dict], base_model_dir: Path) -> None:
    out, _ = trained
    rows = EVAL_ROWS + TRAIN_ROWS[:1]
    questions = [{"trace_id": f"t{i}", "question": row[1]["content"]} for i, row in enumerate(rows)]
    for adapter in (None, out / "epoch_2"):  # epoch 0 = the untrained base
        model, tokenizer = load_student(base_model_dir, adapter)
        records = predict(
            model, tokenizer, questions, TOOLS, lambda name, args: "{}", max_turns=2, max_new_tokens=24, batch_size=2
        )
        assert len(records) == len(questions)
        for record in records:
            assert record["failure"] in (None, *LOOP_FAILURES)
            assert 1 <= record["n_turns"] <= 2 and len(record["raw_turns"]) == record["n_turns"]
