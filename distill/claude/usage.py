"""The usage fields a Messages API response reports, and how they add up over a conversation.

A leaf module (no project imports): the scorer, the judge, the teacher and the report share these
names, and none of them should be re-run because the tool loop changed.
"""

from __future__ import annotations

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def add_usage(total: dict[str, int], usage: dict | None) -> None:
    """Add one response's usage (missing or null fields count 0) into `total`, in place."""
    for key in USAGE_FIELDS:
        total[key] += int((usage or {}).get(key) or 0)
