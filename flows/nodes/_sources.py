"""Numbered sources for `llm.chat`'s `context` param: how retrieved documents are shown to
the model, and the list of cited sources appended to its answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["cited_numbers", "source_label", "sources_list", "sources_prompt"]

_CITE = re.compile(r"\[(\d{1,3})\]")
MAX_SOURCE_CHARS = 1500


def source_label(doc: dict[str, Any]) -> str:
    """`handbook.md § Resetting a password, p. 3` (what is known of where a chunk is)."""
    name = str(doc.get("filename") or doc.get("source") or "source")
    if doc.get("section"):
        name += f" § {doc['section']}"
    if doc.get("page") not in (None, ""):
        name += f", p. {doc['page']}"
    return name


def _docs(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [d for d in value if isinstance(d, dict) and d.get("text")]


def sources_prompt(value: Any) -> str:
    """The system-prompt part that gives the model the numbered sources."""
    docs = _docs(value)
    if not docs:
        return ("No sources were found for this question. Say that the knowledge base has "
                "nothing on it; do not make an answer up.")
    parts = ["Answer from these sources only. Cite each claim with its source number in "
             "square brackets, like [1] or [2]. If the sources do not answer the question, "
             "say so.", ""]
    for i, doc in enumerate(docs, start=1):
        n = doc.get("n", i)
        text = str(doc["text"])[:MAX_SOURCE_CHARS]
        parts.append(f"[{n}] {source_label(doc)}\n{text}\n")
    return "\n".join(parts).rstrip()


def cited_numbers(answer: str, value: Any) -> list[int]:
    """Source numbers the answer cites that exist, in order of first citation."""
    known = {int(d.get("n", i)) for i, d in enumerate(_docs(value), start=1)}
    seen: list[int] = []
    for match in _CITE.finditer(answer):
        n = int(match.group(1))
        if n in known and n not in seen:
            seen.append(n)
    return seen


def sources_list(answer: str, value: Any) -> str:
    """`Sources:` lines for the sources the answer cites (all of them when it cites none:
    the answer was still made from them). Empty when there were no sources."""
    docs = _docs(value)
    if not docs:
        return ""
    by_n = {int(d.get("n", i)): d for i, d in enumerate(docs, start=1)}
    numbers: Sequence[int] = cited_numbers(answer, value) or sorted(by_n)
    lines = [f"[{n}] {source_label(by_n[n])}" for n in numbers]
    return "Sources:\n" + "\n".join(lines)
