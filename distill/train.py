"""LoRA / QLoRA fine-tuning of the student, as a torchtune-style recipe: setup, train, save.

A plain PyTorch loop over a PEFT model rather than `Trainer`: the pipeline needs an adapter per epoch
written atomically, eval loss before training (epoch 0) and after every epoch, loss only on assistant
tokens normalised by token count across gradient accumulation, and an exact resume at an epoch
boundary. Each `out_dir/epoch_<n>/` holds everything to continue from it:

    adapter_config.json, adapter_model.safetensors   PeftModel.from_pretrained(base, epoch_dir)
    eval.json                                         {epoch, eval_loss, train_loss, tokens, seconds, tokens_per_second}
    train_config.json                                 the effective training config
    trainer_state.pt                                  optimizer, scheduler, RNG, history, run fingerprint

`out_dir/metrics.json` = {"config": cfg, "epochs": [epoch 0 eval loss, then one flat dict per epoch]}.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import DynamicCache, get_linear_schedule_with_warmup

from distill.chat import IGNORE, encode, first_turn
from distill.io import atomic_dir, write_json
from distill.student import QUANTIZATIONS, autocast, load_base

log = logging.getLogger(__name__)

CONFIG_KEYS = {
    "seed", "max_seq_len", "quantization", "dtype", "autocast", "lora", "epochs", "learning_rate",
    "batch_size", "grad_accum", "warmup_ratio", "weight_decay",
}  # fmt: skip
LORA_KEYS = {"r", "alpha", "dropout", "target_modules", "layers_to_transform"}
DATA_KEYS = ("max_examples", "max_eval_examples", "first_turn_share")  # which rows, not how to train
MAX_GRAD_NORM = 1.0  # clip: small batches at LoRA learning rates (1e-4..1e-3) spike otherwise
LENGTH_BUCKET = 32  # tokens: examples this close in length count as equally long when batching
STATE_FILE = "trainer_state.pt"
SCALED_LOGITS = ("final_logit_softcapping", "logit_scale")  # heads that are more than lm_head(hidden)


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
    if cfg["quantization"] == "nf4":
        # Freezes the 4-bit weights and upcasts norms to fp32. Gradient checkpointing stays off: it
        # trades compute for memory, and compute is what a CPU run is short of.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
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
    return get_peft_model(model, peft_config), tokenizer


def _setup_data(rows: list[list[dict]], tools: list[dict], tokenizer: Any, max_len: int, name: str) -> list[dict]:
    """Encoded examples; rows whose assistant turns were all truncated away carry no loss and are dropped."""
    examples = [encode(messages, tools, tokenizer, max_len) for messages in rows]
    kept = [e for e in examples if any(label != IGNORE for label in e["labels"][1:])]
    if len(kept) < len(examples):
        log.warning("%s: dropped %d rows with no assistant token within max_seq_len", name, len(examples) - len(kept))
    if not kept:
        raise ValueError(f"{name}: no example has an assistant token within max_seq_len={max_len}")
    return kept


def _setup_optimizer(cfg: dict, model: Any, steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW on the adapter weights with linear warmup then linear decay over all optimizer steps."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    scheduler = get_linear_schedule_with_warmup(optimizer, round(cfg["warmup_ratio"] * steps), steps)
    return optimizer, scheduler


def _fingerprint(cfg: dict, train_data: list[dict], eval_data: list[dict]) -> str:
    """Hash of the config and the encoded examples, so a resume never mixes two different runs.

    Hashing token ids rather than raw rows also catches a change of tools, renderer or tokenizer.
    """
    blob = json.dumps([cfg, train_data, eval_data], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ---- loop --------------------------------------------------------------------------------------


def _collate(examples: list[dict], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch: ids with pad_id, labels with IGNORE, attention mask with 0."""
    width = max(len(e["input_ids"]) for e in examples)
    fill = {"input_ids": pad_id, "labels": IGNORE, "attention_mask": 0}
    return {
        key: torch.tensor([e[key] + [value] * (width - len(e[key])) for e in examples], device=device)
        for key, value in fill.items()
    }  # each [batch, width]


def shared_prefix_len(examples: list[dict]) -> int:
    """Leading tokens all `examples` share and that carry no loss: in practice the system prompt.

    Stops one token before the first labelled position (the hidden state there predicts that label),
    which also leaves every example at least two tokens after the prefix.
    """
    limit = min(_first_label(e) for e in examples) - 1
    first = examples[0]["input_ids"]
    n = 0
    while n < limit and all(e["input_ids"][n] == first[n] for e in examples):
        n += 1
    return n


def _loss_tokens(example: dict) -> int:
    return sum(label != IGNORE for label in example["labels"][1:])


def _first_label(example: dict) -> int:
    return next(t for t, label in enumerate(example["labels"]) if label != IGNORE)


def _loss_sum(model: Any, examples: list[dict], pad_id: int) -> tuple[torch.Tensor, int]:
    """Summed next-token cross entropy over the assistant tokens of a micro-batch, and their count.

    Two savings, both exact (a test compares losses and gradients with the plain computation):
    - the shared prefix (the system prompt, ~60% of a first-turn example) runs once per batch and
      its key/value cache is repeated for every example, instead of once per example;
    - the output head runs only where a label is kept, so the [batch, seq, vocab] logits of the
      prompt tokens are never built. This assumes logits = lm_head(hidden), true for the
      Llama/Qwen/Mistral families (checked in _setup_model).
    """
    base = model.get_base_model()
    decoder = base.get_decoder()
    n_prefix = shared_prefix_len(examples) if len(examples) > 1 else 0
    batch = _collate([{k: v[n_prefix:] for k, v in e.items()} for e in examples], pad_id, model.device)
    if n_prefix:
        cache = DynamicCache(config=base.config)
        decoder(input_ids=torch.tensor([examples[0]["input_ids"][:n_prefix]], device=model.device), cache=cache)
        cache.batch_repeat_interleave(len(examples))
        prefix_mask = torch.ones(len(examples), n_prefix, dtype=batch["attention_mask"].dtype, device=model.device)
        positions = torch.arange(n_prefix, n_prefix + batch["input_ids"].shape[1], device=model.device)
        hidden = decoder(
            input_ids=batch["input_ids"],
            attention_mask=torch.cat([prefix_mask, batch["attention_mask"]], dim=1),  # [B, prefix + width]
            position_ids=positions.expand(len(examples), -1),
            cache=cache,
        ).last_hidden_state
    else:
        hidden = decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    labels = batch["labels"][:, 1:]  # token t is predicted from position t-1
    keep = labels != IGNORE  # [B, T-1]
    logits = base.get_output_embeddings()(hidden[:, :-1][keep])  # [kept, V]
    return F.cross_entropy(logits.float(), labels[keep], reduction="sum"), int(keep.sum())


def _micro_batches(examples: list[dict], batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """Batches of examples of similar length, in a seeded random order (by length without a generator).

    Mixing 250-token first turns with 600-token whole traces in one batch would pad the short ones
    to the long one, and padding costs as much compute as real tokens. Lengths are bucketed to LENGTH_BUCKET tokens
    and shuffled within a bucket, so batch membership still changes from epoch to epoch.
    """
    n = len(examples)
    noise = torch.rand(n, generator=generator).tolist() if generator is not None else [0.0] * n
    order = sorted(range(n), key=lambda i: (len(examples[i]["input_ids"]) // LENGTH_BUCKET, noise[i], i))
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if generator is None:
        return batches
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


@torch.no_grad()
def evaluate(model: Any, examples: list[dict], batch_size: int, pad_id: int, mixed: str | None = None) -> float:
    """Mean token loss over the assistant tokens of `examples` (dropout off; `mixed`: autocast dtype)."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in _micro_batches(examples, batch_size, None):
        with autocast(model.device, mixed):
            loss, n = _loss_sum(model, [examples[i] for i in indices], pad_id)
        total, tokens = total + loss.item(), tokens + n
    return total / tokens


def _train_epoch(
    cfg: dict, epoch: int, model: Any, examples: list[dict], optimizer: Any, scheduler: Any, pad_id: int
) -> dict:
    """One pass in a seeded order; the loss of each optimizer step is normalised by its assistant tokens."""
    model.train()
    start = time.perf_counter()
    order = torch.Generator().manual_seed(cfg["seed"] + epoch)  # data position = epoch, for resume
    batches = _micro_batches(examples, cfg["batch_size"], order)
    params = [p for p in model.parameters() if p.requires_grad]
    loss_total, loss_tokens, tokens = 0.0, 0, 0
    for step_start in range(0, len(batches), cfg["grad_accum"]):
        step_batches = batches[step_start : step_start + cfg["grad_accum"]]
        group = [[examples[i] for i in b] for b in step_batches]
        group_tokens = sum(_loss_tokens(e) for batch in group for e in batch)
        for batch in group:
            with autocast(model.device, cfg["autocast"]):
                loss, _ = _loss_sum(model, batch, pad_id)
            (loss / group_tokens).backward()
            loss_total += loss.item()
            tokens += sum(len(e["input_ids"]) for e in batch)
        loss_tokens += group_tokens
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    return {
        "epoch": epoch,
        "train_loss": loss_total / loss_tokens,
        "tokens": tokens,  # example tokens, prompt included (a shared prefix counts once per example)
        "seconds": round(seconds, 3),
        "tokens_per_second": round(tokens / seconds, 1),
        "lr": scheduler.get_last_lr()[0],
    }


# ---- save / resume -----------------------------------------------------------------------------


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _save_epoch(
    out_dir: Path, cfg: dict, model: Any, optimizer: Any, scheduler: Any, history: list[dict], fingerprint: str
) -> None:
    epoch = history[-1]["epoch"]
    with atomic_dir(out_dir / f"epoch_{epoch}") as tmp:
        model.save_pretrained(tmp)
        (tmp / "eval.json").write_text(json.dumps(history[-1], indent=2))
        (tmp / "train_config.json").write_text(json.dumps(cfg, indent=2))
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()}
        torch.save({**state, "history": history, "fingerprint": fingerprint}, tmp / STATE_FILE)


def completed_epochs(out_dir: Path) -> list[int]:
    """Epochs whose directory was written completely (atomic writes: present means complete)."""
    found = (p.name.removeprefix("epoch_") for p in Path(out_dir).glob("epoch_*") if (p / STATE_FILE).is_file())
    return sorted(int(n) for n in found if n.isdigit())


def _resume(out_dir: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> list[dict] | None:
    """Restore adapter, optimizer, scheduler and RNG from the last completed epoch; None if there is none.

    Checkpoints of a different run (config, data or tools changed, e.g. after a gold correction) are
    stale, not resumable: they are deleted and training starts over.
    """
    done = completed_epochs(out_dir)
    if not done:
        return None
    epoch_dir = out_dir / f"epoch_{done[-1]}"
    state = torch.load(epoch_dir / STATE_FILE, weights_only=True)
    if state["fingerprint"] != fingerprint:
        log.info("%s holds checkpoints of a different run (config, data or tools changed): starting over", out_dir)
        for n in done:
            shutil.rmtree(out_dir / f"epoch_{n}")
        return None
    set_peft_model_state_dict(model, load_file(epoch_dir / "adapter_model.safetensors", device=str(model.device)))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    log.info("resuming after epoch %d from %s", done[-1], epoch_dir)
    return state["history"]


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

    # setup, in order: seed + model + adapters, data, optimizer + schedule, then state from a resume
    model, tokenizer = _setup_model(cfg, Path(base_dir))
    pad_id = tokenizer.pad_token_id
    train_data = _setup_data(train_rows, tools, tokenizer, cfg["max_seq_len"], "train")
    eval_data = _setup_data(eval_rows, tools, tokenizer, cfg["max_seq_len"], "eval")
    fingerprint = _fingerprint(cfg, train_data, eval_data)
    steps_per_epoch = math.ceil(math.ceil(len(train_data) / cfg["batch_size"]) / cfg["grad_accum"])
    optimizer, scheduler = _setup_optimizer(cfg, model, steps_per_epoch * cfg["epochs"])
    history = _resume(out_dir, model, optimizer, scheduler, fingerprint)
    if history is None:
        history = [{"epoch": 0, "eval_loss": evaluate(model, eval_data, cfg["batch_size"], pad_id, cfg["autocast"])}]
        log.info(json.dumps(history[0]))

    # train: one pass, one eval and one atomic save per epoch
    for epoch in range(history[-1]["epoch"] + 1, cfg["epochs"] + 1):
        stats = _train_epoch(cfg, epoch, model, train_data, optimizer, scheduler, pad_id)
        stats["eval_loss"] = evaluate(model, eval_data, cfg["batch_size"], pad_id, cfg["autocast"])
        history.append(stats)
        log.info(json.dumps(stats))
        _save_epoch(out_dir, cfg, model, optimizer, scheduler, history, fingerprint)

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


def publish_adapters(run_dir: str | Path, out_dir: str | Path) -> None:
    """Copy every epoch's adapter and eval.json (not the optimizer state) plus metrics.json to out_dir,
    the rule's declared output, in one atomic step.

    Checkpoints stay in run_dir, which is not a rule output, so an interrupted job resumes from them.
    """
    run_dir = Path(run_dir)
    with atomic_dir(Path(out_dir)) as tmp:
        for n in completed_epochs(run_dir):
            (tmp / f"epoch_{n}").mkdir()
            for f in (run_dir / f"epoch_{n}").iterdir():
                if f.name != STATE_FILE:
                    shutil.copy2(f, tmp / f"epoch_{n}" / f.name)
        shutil.copyfile(run_dir / "metrics.json", tmp / "metrics.json")
