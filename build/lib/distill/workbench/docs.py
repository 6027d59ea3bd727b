"""BM25 search over the workbench's methodology documents (docs/*.md), for the search_docs tool.

Documents are split into paragraphs, each titled by its document and section heading, so a hit is a
short citable snippet rather than a whole page. The index is built once per process.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import bm25s

DOCS_DIR = Path(__file__).parent / "docs"
# Runs of 2+ letters/digits: unlike bm25s's default, this splits "max_drawdown" and "covered_call" so
# that a query in plain words ("max drawdown") matches the field names the docs use.
_TOKEN = r"[^\W_]{2,}"


def _stem(words: list[str]) -> list[str]:
    """Tiny suffix stripper ("splits"/"split", "priced"/"pricing"/"price"), as PyStemmer is no dependency."""
    out = []
    for w in words:
        if len(w) > 4:
            for suffix in ("ing", "ed", "es", "s"):
                if w.endswith(suffix) and not w.endswith("ss"):
                    w = w[: -len(suffix)]
                    break
            w = w.removesuffix("e")
        out.append(w)
    return out


def _chunks(path: Path) -> list[dict]:
    """Paragraphs (and single list items) of one markdown doc, each titled "Doc title / Section"."""
    doc_title, section, chunks = path.stem, "", []
    for block in path.read_text().split("\n\n"):
        lines = block.strip().splitlines()
        while lines and lines[0].startswith("#"):  # headings open a block; text may follow
            heading = lines.pop(0)
            if heading.startswith("# "):
                doc_title = heading[2:].strip()
            else:
                section = heading.lstrip("#").strip()
        # A list item is its own chunk, so "how is sharpe computed" returns just that definition.
        items = re.split(r"\n(?=- )", "\n".join(lines)) if lines else []
        title = f"{doc_title} / {section}" if section else doc_title
        chunks += [{"doc": path.name, "title": title, "snippet": " ".join(item.removeprefix("- ").split())}
                   for item in items]
    return chunks


@functools.lru_cache(maxsize=1)
def _index() -> tuple[bm25s.BM25, list[dict]]:
    """BM25 index over every paragraph of every doc; titles are indexed with their text."""
    chunks = [c for path in sorted(DOCS_DIR.glob("*.md")) for c in _chunks(path)]
    tokens = bm25s.tokenize([f"{c['title']} {c['snippet']}" for c in chunks], stopwords="en",
                            stemmer=_stem, token_pattern=_TOKEN, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(tokens, show_progress=False)
    return retriever, chunks


SNIPPET_CHARS = 220  # tool results are context the student must read (and train on): keep them short


def _shorten(text: str) -> str:
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rsplit(" ", 1)[0] + " ..."


def search_docs(query: str, k: int = 2) -> list[dict]:
    """The k best-matching snippets, best first: {doc, title, snippet, score}; only positive scores."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query: must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    retriever, chunks = _index()
    words = bm25s.tokenize(query, stopwords="en", stemmer=_stem, token_pattern=_TOKEN,
                           return_ids=False, show_progress=False)[0]
    if not words:
        return []
    ids, scores = retriever.retrieve([words], k=min(k, len(chunks)), show_progress=False)
    return [{**chunks[i], "snippet": _shorten(chunks[i]["snippet"]), "score": round(float(s), 3)}
            for i, s in zip(ids[0], scores[0]) if s > 0]
