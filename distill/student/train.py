"""LoRA / QLoRA fine-tuning of the student, as a torchtune-style recipe: setup, train, save.

A plain PyTorch loop over a PEFT model rather than `Trainer`: the pipeline needs an adapter per epoch
written atomically, eval loss before training (epoch 0) and after every epoch, loss only on assistant
tokens normalised by token count across gradient accumulation, and an exact resume at an epoch
boundary. What one step computes lives in distill.student.batches; what an epoch leaves on disk (everything
to continue from it) in distill.student.checkpoints.

`out_dir/metrics.json` = {"config": cfg, "epochs": [epoch 0 eval loss, then one flat dict per epoch]}.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import get_linear_schedule_with_warmup

from distill.student.batches import HeadLoss, loss_sum, loss_tokens, micro_batches, packed_loss_sum
from distill.student.chat import IGNORE, encode, first_turn
from distill.student.checkpoints import fingerprint, resume, save_epoch
from distill.io import write_json
from distill.student.base_model import QUANTIZATIONS, autocast, load_base, native_autocast

log = logging.getLogger(__name__)

CONFIG_KEYS = {
    "seed", "max_seq_len", "quantization", "dtype", "autocast", "lora", "epochs", "learning_rate",
    "batch_size", "grad_accum", "warmup_ratio", "weight_decay", "packing", "gradient_checkpointing", "liger",
}  # fmt: skip
LORA_KEYS = {"r", "alpha", "dropout", "target_modules", "layers_to_transform"}
DATA_KEYS = ("max_examples", "max_eval_examples", "category_weights", "first_turn_share")  # which rows, not how to train
MAX_GRAD_NORM = 1.0  # clip: small batches at LoRA learning rates (1e-4..1e-3) spike otherwise
SCALED_LOGITS = ("final_logit_softcapping", "logit_scale")  # heads that are more than lm_head(hidden)
StepLoss = Callable[[Any, list[dict]], tuple[torch.Tensor, int]]  # (model, examples) -> (summed loss, tokens)


def check_config(cfg: dict) -> None:
    """Fail at start, naming the key, on a config that cannot work."""
    for keys, section, name in ((CONFIG_KEYS, cfg, "train"), (LORA_KEYS, cfg.get("lora") or {}, "train.lora")):
        if missing := sorted(keys - set(section)):
            raise ValueError(f"{name}: missing keys {missing}")
        if unknown := sorted(set(section) - keys):
            raise ValueError(f"{name}: unknown keys {unknown}")
    if cfg["quantization"] not in QUANTIZATIONS:
        raise ValueError(f"train.quantization must be one of {QUANTIZATIONS}, got {cfg['quantization']!r}")
    for key in ("epochs", "batch_size", "grad_accum", "max_seq_len"):
        if not (isinstance(cfg[key], int) and cfg[key] >= 1):
            raise ValueError(f"train.{key} must be a positive integer, got {cfg[key]!r}")
    targets = cfg["lora"]["target_modules"]
    if targets != "all-linear" and not (isinstance(targets, list) and targets):
        raise ValueError(f"train.lora.target_modules must be 'all-linear' or a non-empty list, got {targets!r}")
    if cfg["liger"] and not cfg["packing"]:  # the padded path has no place for a fused head
        raise ValueError("train.liger: true needs train.packing: true")


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Leaf names of the linear layers (q_proj, ..., down_proj), without the output head.

    peft's `layers_to_transform` only works with an explicit list, so "all-linear" is expanded here.
    bitsandbytes' Linear4bit subclasses nn.Linear, so NF4 models expand the same way.
    """
    head = model.get_output_embeddings()
    linear = (name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head)
    return sorted({name.rsplit(".", 1)[-1] for name in linear})


# ---- setup -------------------------------------------------------------------------------------


def _setup_model(cfg: dict, base_dir: Path) -> tuple[Any, Any]:
    """Base model (float or NF4) with fresh LoRA adapters; seeded so adapter init is reproducible."""
    torch.manual_seed(cfg["seed"])
    model, tokenizer = load_base(str(base_dir), cfg["quantization"], cfg["dtype"])
    if any(getattr(model.config, key, None) for key in SCALED_LOGITS):
        raise ValueError(f"{base_dir}: models with {SCALED_LOGITS} are not supported by the assistant-only loss")
    if cfg["quantization"] == "nf4":  # freezes the 4-bit weights and upcasts norms to fp32
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if cfg["gradient_checkpointing"]:
        # Recomputes each layer in the backward pass instead of keeping its activations: memory for
        # compute (on in the GPU configuration). Non-reentrant, so it works with frozen inputs (LoRA)
        # without an enable_input_require_grads hook. (transformers 5 renamed gradient_checkpointing_enable.)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    lora = cfg["lora"]
    targets = linear_module_names(model) if lora["target_modules"] == "all-linear" else lora["target_modules"]
    peft_config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=targets,
        layers_to_transform=lora["layers_to_transform"],
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, peft_config)
    # peft keeps target_modules as a set, so adapter_config.json would list them in the process's string-hash
    # order: two runs of the same training would write different files. Sorted, every run writes the same.
    model.peft_config["default"].target_modules = sorted(model.peft_config["default"].target_modules)
    return model, tokenizer


def _setup_data(rows: list[list[dict]], tools: list[dict], tokenizer: Any, max_len: int, name: str) -> list[dict]:
    """Encoded examples; rows whose assistant turns were all truncated away carry no loss and are dropped."""
    examples = [encode(messages, tools, tokenizer, max_len) for messages in rows]
    kept = [e for e in examples if any(label != IGNORE for label in e["labels"][1:])]
    if len(kept) < len(examples):
        log.warning("%s: dropped %d rows with no assistant token within max_seq_len", name, len(examples) - len(kept))
    if not kept:
        raise ValueError(f"{name}: no example has an assistant token within max_seq_len={max_len}")
    return kept


def _setup_loss(cfg: dict, pad_id: int) -> StepLoss:
    """The step's loss: padded with the shared prefix run once, or packed (optionally with liger's fused
    lm_head + cross entropy, which never builds the [tokens, vocab] logits)."""
    if not cfg["packing"]:
        return lambda model, batch: loss_sum(model, batch, pad_id)
    head_loss = _liger_head_loss() if cfg["liger"] else None
    return lambda model, batch: packed_loss_sum(model, batch, head_loss)


def _liger_head_loss() -> HeadLoss:
    """liger-kernel's fused linear cross entropy (summed); its Triton kernels run on CUDA only."""
    if not torch.cuda.is_available():
        raise ValueError("train.liger: true needs a CUDA GPU (liger-kernel's Triton kernels); none is visible")
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError as exc:
        raise ValueError("train.liger: true needs liger-kernel: pip install -e '.[gpu]'") from exc
    return LigerFusedLinearCrossEntropyLoss(reduction="sum")  # called as (head weight, hidden, targets)


def _setup_optimizer(cfg: dict, model: Any, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW on the adapter weights with linear warmup then linear decay over all optimizer steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg["warmup_ratio"] * steps), steps)
    return optimizer, scheduler


# ---- loop --------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model: Any, examples: list[dict], batch_size: int, step_loss: StepLoss, mixed: str | None = None) -> float:
    """Mean token loss over the assistant tokens of `examples` (dropout off; `mixed`: autocast dtype)."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in micro_batches(examples, batch_size, None):
        with autocast(model.device, mixed):
            loss, n = step_loss(model, [examples[i] for i in indices])
        total, tokens = total + loss.item(), tokens + n
    return total / tokens


def _train_epoch(
    cfg: dict, epoch: int, model: Any, examples: list[dict], optimizer: Any, scheduler: Any, step_loss: StepLoss
) -> dict:
    """One pass in a seeded order; the loss of each optimizer step is normalised by its assistant tokens."""
    model.train()
    start = time.perf_counter()
    order = torch.Generator().manual_seed(cfg["seed"] + epoch)  # data position = epoch, for resume
    batches = micro_batches(examples, cfg["batch_size"], order)
    params = [p for p in model.parameters() if p.requires_grad]
    loss_total, labelled, tokens = 0.0, 0, 0
    for step_start in range(0, len(batches), cfg["grad_accum"]):
        step_batches = batches[step_start : step_start + cfg["grad_accum"]]
        group = [[examples[i] for i in b] for b in step_batches]
        group_tokens = sum(loss_tokens(e) for batch in group for e in batch)
        for batch in group:
            with autocast(model.device, cfg["autocast"]):
                loss, _ = step_loss(model, batch)
            (loss / group_tokens).backward()
            loss_total += loss.item()
            tokens += sum(len(e["input_ids"]) for e in batch)
        labelled += group_tokens
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch,
        "train_loss": loss_total / labelled,
        "tokens": tokens,  # example tokens, prompt included (a shared prefix counts once per example)
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "lr": scheduler.get_last_lr()[0],
    }


def train(
    cfg: dict,
    base_dir: Path,
    train_rows: list[list[dict]],
    eval_rows: list[list[dict]],
    tools: list[dict],
    out_dir: Path,
) -> dict:
    """Fine-tune LoRA adapters on `train_rows`, saving and evaluating every epoch; returns metrics.json."""
    check_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # setup, in order: seed + model + adapters, step loss, data, optimizer + schedule, then state from a resume
    model, tokenizer = _setup_model(cfg, Path(base_dir))
    cfg = {**cfg, "autocast": native_autocast(cfg["autocast"], model.device)}  # recorded as resolved
    log.info("mixed precision: %s", cfg["autocast"] or "off (float32)")
    step_loss = _setup_loss(cfg, tokenizer.pad_token_id)
    train_data = _setup_data(train_rows, tools, tokenizer, cfg["max_seq_len"], "train")
    eval_data = _setup_data(eval_rows, tools, tokenizer, cfg["max_seq_len"], "eval")
    run_id = fingerprint(cfg, train_data, eval_data)
    steps_per_epoch = math.ceil(math.ceil(len(train_data) / cfg["batch_size"]) / cfg["grad_accum"])
    optimizer, scheduler = _setup_optimizer(cfg, model, steps_per_epoch * cfg["epochs"])
    history = resume(out_dir, model, optimizer, scheduler, run_id)
    if history is None:
        history = [{"epoch": 0, "eval_loss": evaluate(model, eval_data, cfg["batch_size"], step_loss, cfg["autocast"])}]
        log.info(json.dumps(history[0]))

    # train: one pass, one eval and one atomic save per epoch
    for epoch in range(history[-1]["epoch"] + 1, cfg["epochs"] + 1):
        stats = _train_epoch(cfg, epoch, model, train_data, optimizer, scheduler, step_loss)
        stats["eval_loss"] = evaluate(model, eval_data, cfg["batch_size"], step_loss, cfg["autocast"])
        history.append(stats)
        log.info(json.dumps(stats))
        save_epoch(out_dir, cfg, model, optimizer, scheduler, history, run_id)

    metrics = {"config": cfg, "epochs": history}
    write_json(metrics, out_dir / "metrics.json")
    return metrics


def training_conversations(df: pd.DataFrame, first_turn_share: float) -> list[list[dict]]:
    """The rows' conversations, the first `first_turn_share` of each category cut after the first turn.

    Why: tool-call accuracy is decided by the first assistant turn, which costs about half the tokens
    of a whole trace (the tool outputs that follow are read, not learnt, but still paid for), so a CPU
    budget buys twice the tool-call examples this way; the whole traces left teach the final answer.
    Rows are taken in their given (seeded) order, so the choice is deterministic.
    """
    position = df.groupby("category").cumcount()
    size = df.groupby("category")["category"].transform("size")
    cut = position < (first_turn_share * size).round()
    conversations = [json.loads(m) for m in df["messages"]]
    return [first_turn(c) if is_cut else c for c, is_cut in zip(conversations, cut)]


def train_config(params: dict) -> dict:
    """The flat training config `train` takes, from the rule's params {"seed", "student": {...}}."""
    st = params["student"]
    return {"seed": params["seed"], "max_seq_len": st["max_seq_len"], "quantization": st["quantization"],
            "dtype": st["dtype"], "autocast": st["autocast"], "lora": st["lora"], **{k: v for k, v in st["train"].items() if k not in DATA_KEYS}}
