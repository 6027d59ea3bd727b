"""Benchmark: QLoRA training steps on a Qwen2.5-7B-shaped model, the project's path vs a plain baseline.

Both paths train the same NF4 (double quant, bf16 compute) base with LoRA r=16 on every linear layer,
on the same examples: the pipeline's own rendered traces (token ids and assistant-only labels from
results/split/train.parquet when a build exists, else from the offline teacher simulator's traces
rendered with distill.student.chat), capped at --max-len tokens.
- project: distill.student.train's setup (SDPA, non-reentrant gradient checkpointing) and step loss: packed
  padding-free micro-batches (student.train.packing), optionally liger's fused head loss (--liger);
- baseline: what a QLoRA tutorial does: peft's prepare_model_for_kbit_training + get_peft_model and
  the Hugging Face Trainer at its defaults, padded batches in random order (DataCollatorForSeq2Seq).
Measured after --warmup steps: tokens/s (real tokens; padding is not counted), peak GPU memory
(torch.cuda.max_memory_allocated), MFU = 6 × parameters × tokens/s / the device's peak dense bf16 FLOP/s
(the table below; --peak-tflops for another card). The weights are random (the published config,
written inline; nothing can be downloaded on a GPU machine): throughput and memory do not depend on them.

    python bench/gpu_qlora.py                  # on a CUDA machine -> bench/results/gpu_qlora.json
    python bench/gpu_qlora.py --cpu-smoke      # automatic without CUDA: 2 layers, small hidden size,
                                               # -> bench/results/gpu_qlora_cpu.json (GPU figures owed)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distill.student.batches import micro_batches, packed_loss_sum  # noqa: E402
from distill.student.chat import encode  # noqa: E402
from distill.io import write_json  # noqa: E402
from distill.student.base_model import embedded_gguf_path, ensure_pad_token, quantization_config  # noqa: E402
from distill.student.train import _liger_head_loss, _setup_model  # noqa: E402
from distill.workbench.tools import TOOLS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
# Qwen/Qwen2.5-7B-Instruct config.json as published (architecture fields only).
QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
    "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 131072, "max_window_layers": 28,
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
}  # fmt: skip
CPU_SMOKE = {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2}  # fmt: skip
# Peak dense bf16 tensor FLOP/s (vendor data sheets, no sparsity), matched against the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
               "A10G": 70.0, "RTX 4090": 165.2, "RTX 4080": 97.5, "A6000": 154.8}  # fmt: skip
LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear", "layers_to_transform": None}
TARGETS = {"peak_memory_gb_below": 12.0, "speedup_at_least": 1.5}
PRODUCTION = yaml.safe_load((ROOT / "profiles" / "slurm" / "qwen7b.yaml").read_text())["student"]


def rendered_examples(tokenizer, max_len: int) -> tuple[list[dict], str]:
    """The pipeline's training conversations encoded by its renderer, and where they came from."""
    train = ROOT / "results" / "split" / "train.parquet"
    if train.is_file():
        messages, source = [json.loads(m) for m in pd.read_parquet(train)["messages"]], str(train.relative_to(ROOT))
    else:
        from distill.dataset.scenarios import build_grid
        from distill.teacher import make_teacher, run_grid

        cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
        traces = run_grid(build_grid(cfg), make_teacher({"seed": cfg["seed"], "teacher": {**cfg["teacher"], "backend": "offline"}}))
        messages, source = [json.loads(m) for m in traces["messages"]], "offline teacher simulator traces (no build found)"
    return [encode(m, TOOLS, tokenizer, max_len) for m in messages], source


def random_base(shape: dict, out_dir: Path, device: str) -> int:
    """A float checkpoint of the shape with random weights, saved for load_base; returns its parameter count."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**shape)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out_dir)
    del model
    return n_params


def project_path(base: Path, tokenizer, examples: list[dict], args, device: str) -> dict:
    """distill.student.train's model setup and packed step loss, AdamW, length-bucketed micro-batches."""
    cfg = {"seed": 0, "quantization": "nf4", "dtype": "bfloat16", "lora": LORA, "gradient_checkpointing": True}
    model, _ = _setup_model(cfg, base)
    model.train()
    head_loss = _liger_head_loss() if args.liger else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    order = torch.Generator().manual_seed(0)
    batches = micro_batches(examples, args.batch_size, order)

    def step(i: int) -> int:
        batch = [examples[j] for j in batches[i % len(batches)]]
        loss, n = packed_loss_sum(model, batch, head_loss)
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return sum(len(e["input_ids"]) for e in batch)

    out = _timed(step, args, device)
    del model, optimizer
    return out


def baseline_path(base: Path, tokenizer, examples: list[dict], args, device: str) -> dict:
    """The Hugging Face Trainer at its defaults over a peft QLoRA model, padded batches."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16, device_map={"": device},
                                                 quantization_config=quantization_config("nf4", "bfloat16"))
    model = prepare_model_for_kbit_training(model)  # its default: (reentrant) gradient checkpointing on
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    times: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *_, **__):
            _sync(device)
            times.append(time.perf_counter())

        def on_step_end(self, *_, **__):
            _sync(device)
            times[-1] = time.perf_counter() - times[-1]

    class Counted(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(examples)

        def __getitem__(self, i: int) -> dict:
            return {k: examples[i][k] for k in ("input_ids", "attention_mask", "labels")}

    collate = DataCollatorForSeq2Seq(tokenizer, padding=True)

    def counting_collate(features: list[dict]) -> dict:
        tokens.append(sum(len(f["input_ids"]) for f in features))
        return collate(features)

    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(out, per_device_train_batch_size=args.batch_size, max_steps=args.warmup + args.steps,
                                  bf16=device == "cuda", use_cpu=device == "cpu", report_to=[], save_strategy="no",
                                  logging_strategy="no", seed=0, dataloader_num_workers=0)
        _reset_memory(device)
        Trainer(model=model, args=targs, train_dataset=Counted(), data_collator=counting_collate,
                callbacks=[Clock()]).train()
    measured = slice(args.warmup, args.warmup + args.steps)
    seconds, counted = sum(times[measured]), sum(tokens[measured])
    del model
    return {"steps": args.steps, "tokens": counted, "seconds": round(seconds, 3),
            "tokens_per_second": round(counted / seconds, 1), **_memory(device)}


def _timed(step, args, device: str) -> dict:
    for i in range(args.warmup):
        step(i)
    _sync(device)
    _reset_memory(device)
    start, tokens = time.perf_counter(), 0
    for i in range(args.warmup, args.warmup + args.steps):
        tokens += step(i)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"steps": args.steps, "tokens": tokens, "seconds": round(seconds, 3),
            "tokens_per_second": round(tokens / seconds, 1), **_memory(device)}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _reset_memory(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _memory(device: str) -> dict:
    if device == "cuda":
        return {"peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    # On a CPU there is no per-run peak; the process's max RSS so far is reported, not comparable.
    return {"process_max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def peak_tflops(name: str, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, "given with --peak-tflops"
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value, f"{key} dense bf16 peak from the vendor data sheet"
    return None, f"no peak known for {name!r}: pass --peak-tflops"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="scaled-down shape on the CPU (default without CUDA)")
    parser.add_argument("--batch-size", type=int, default=PRODUCTION["train"]["batch_size"],
                        help="conversations per step (default: profiles/slurm/qwen7b.yaml's)")
    parser.add_argument("--max-len", type=int, default=PRODUCTION["max_seq_len"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--liger", action="store_true", help="project path with liger's fused head loss (CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the random checkpoint here for reruns")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    smoke = args.cpu_smoke or device == "cpu"
    if smoke:  # seconds, not hours: a short run proves the code paths, the figures are not the GPU's
        device, args.batch_size, args.max_len, args.steps, args.warmup = "cpu", 4, 512, 3, 1

    from transformers import AutoTokenizer

    gguf = embedded_gguf_path()  # the renderer needs a tokenizer; Qwen2.5's is not available offline
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    ensure_pad_token(tokenizer)
    examples, source = rendered_examples(tokenizer, args.max_len)
    random.Random(0).shuffle(examples)
    examples = examples[: args.batch_size * (args.warmup + args.steps)]
    shape = {**QWEN25_7B, **(CPU_SMOKE if smoke else {})}
    shape["vocab_size"] = max(shape["vocab_size"], len(tokenizer))

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="gpu_qlora_"))
    base = work / ("smoke" if smoke else "qwen25_7b_random")
    if (base / "config.json").is_file():
        n_params = json.loads((base / "n_params.json").read_text())
    else:
        n_params = random_base(shape, base, device)
        (base / "n_params.json").write_text(json.dumps(n_params))
    tokenizer.save_pretrained(base)  # load_base reads the tokenizer beside the weights

    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU {platform.processor() or platform.machine()}"
    peak, peak_source = peak_tflops(name, args.peak_tflops) if device == "cuda" else (None, "no MFU on a CPU")
    results = {}
    for label, run in (("project", project_path), ("baseline", baseline_path)):
        results[label] = run(base, tokenizer, examples, args, device)
        results[label]["mfu"] = (round(6 * n_params * results[label]["tokens_per_second"] / (peak * 1e12), 4)
                                 if peak else None)
        print(label, json.dumps(results[label]), flush=True)
        _reset_memory(device)

    lengths = [len(e["input_ids"]) for e in examples]
    speedup = results["project"]["tokens_per_second"] / results["baseline"]["tokens_per_second"]
    report = {
        "device": name,
        "cpu_smoke": smoke,
        "gpu_figures_owed": smoke,
        "shape": {k: shape[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                        "num_key_value_heads", "intermediate_size", "vocab_size")},
        "parameters": n_params,
        "examples": {"source": source, "tokenizer": "SmolLM2 (embedded GGUF; Qwen2.5's is not available offline)",
                     "count": len(examples), "max_len": args.max_len, "mean_tokens": round(sum(lengths) / len(lengths), 1),
                     "max_tokens": max(lengths)},
        "settings": {"batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "liger": args.liger,
                     "quantization": "nf4 double quant, bf16 compute", "lora": LORA},
        "mfu_peak_tflops": peak,
        "mfu_peak_source": peak_source,
        "project": results["project"],
        "baseline": results["baseline"],
        "speedup_tokens_per_second": round(speedup, 2),
        "targets": TARGETS,
    }
    if not smoke:
        report["targets_met"] = {
            "peak_memory": results["project"]["peak_gpu_memory_gb"] < TARGETS["peak_memory_gb_below"],
            "speedup": speedup >= TARGETS["speedup_at_least"],
        }
    out = RESULTS / ("gpu_qlora_cpu.json" if smoke else f"gpu_qlora{'_liger' if args.liger else ''}.json")
    write_json(report, out)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
