"""Shared fixtures. The embedded student is converted once per test session (~25 s on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded SmolLM2 GGUF converted to a plain float checkpoint in a session temp dir."""
    from distill.student.base_model import convert_gguf, embedded_gguf_path

    out = tmp_path_factory.mktemp("student") / "base"
    convert_gguf(embedded_gguf_path(), out)
    return out


@pytest.fixture(scope="session")
def tokenizer():
    """The student's real tokenizer, read straight from the embedded GGUF (~7 s; no model load)."""
    from transformers import AutoTokenizer

    from distill.student.base_model import embedded_gguf_path, ensure_pad_token

    path = embedded_gguf_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    ensure_pad_token(tok)
    return tok
