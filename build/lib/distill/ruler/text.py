"""Word-level text helpers shared by the scorer, the answer checks and the judge.

Kept apart so that those modules share one tokeniser without importing each other. Only the scoring
side imports it: a change here re-runs scoring, never the split or training.
"""

from __future__ import annotations

import re

STOP_WORDS = frozenset("""
a about an and any are as at be by can could do does for from how i if in is it its me my of on or our
please show so tell than that the their them then there these this those to us was we what when where
which who why will with would you your
""".split())

_TOKEN = re.compile(r"[a-z0-9]+")


def content_tokens(text: str) -> set[str]:
    """Lower-cased alphanumeric tokens minus STOP_WORDS: the words that carry a text's meaning."""
    return set(_TOKEN.findall(text.lower())) - STOP_WORDS
