"""The SDK client: the key from ANTHROPIC_API_KEY only, retries and timeouts from config.

The SDK's own retries (backoff with jitter, `retry-after`, 408/409/429/5xx/529) are used rather than a
hand-written loop. `ANTHROPIC_BASE_URL` points the client elsewhere (the tests' local server, or the
student served by `python -m distill serve`): that is also how the workbench toggles backends.
"""

from __future__ import annotations

import os
from typing import Any

KEY_VAR = "ANTHROPIC_API_KEY"


class MissingKeyError(RuntimeError):
    """An anthropic backend was configured but the key variable is unset."""


def api_key() -> str:
    """The key, from the environment only (never from config, never written anywhere)."""
    key = os.environ.get(KEY_VAR, "").strip()
    if not key:
        raise MissingKeyError(f"an anthropic backend is configured but {KEY_VAR} is not set: "
                              f"export {KEY_VAR}=... (the key is read from the environment only)")
    return key


def make_client(max_retries: int = 4, timeout_s: float = 120.0, base_url: str | None = None) -> Any:
    """An `anthropic.Anthropic` client; `base_url` None means ANTHROPIC_BASE_URL or the real API."""
    import anthropic

    return anthropic.Anthropic(api_key=api_key(), base_url=base_url, max_retries=max_retries, timeout=timeout_s)


def describe_error(exc: Exception) -> str:
    """One line for a recorded failure: the error class, HTTP status and API message (never the key)."""
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {getattr(exc, 'message', None) or exc}"


def uses_anthropic(cfg: dict) -> list[str]:
    """The config sections (of a full config) whose backend is Claude: they need the key."""
    return [section for section in ("teacher", "judge") if cfg.get(section, {}).get("backend") == "anthropic"]
