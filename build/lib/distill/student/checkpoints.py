"""Training checkpoints: one directory per finished epoch, enough to resume exactly, and their publication.

`<run_dir>/epoch_<n>/` holds the adapter (PeftModel.from_pretrained loads it), eval.json, the effective
training config and trainer_state.pt (optimizer, scheduler, RNG, history, run fingerprint). Writes are
atomic, so a present directory is a complete one; checkpoints of a different run are discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from distill.io import atomic_dir

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"


def fingerprint(cfg: dict, train_data: list[dict], eval_data: list[dict]) -> str:
    """Hash of the config and the encoded examples, so a resume never mixes two different runs.

    Hashing token ids rather than raw rows also catches a change of tools, renderer or tokenizer.
    """
    blob = json.dumps([cfg, train_data, eval_data], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def save_epoch(
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


def resume(out_dir: Path, model: Any, optimizer: Any, scheduler: Any, fingerprint: str) -> list[dict] | None:
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
