"""Numbered sources for `llm.chat`'s `context` param: how retrieved documents are shown to
the model, and the list of cited sources appended to its answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "cited_numbers", "language_instruction", "source_label", "sources_list", "sources_prompt",
]

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


# Scripts whose language a question's characters give away, and what to tell the model.
_SCRIPTS = (
    (re.compile("[\u3040-\u30ff]"), "Japanese (日本語)"),
    (re.compile("[\uac00-\ud7af]"), "Korean (한국어)"),
    (re.compile("[\u4e00-\u9fff]"), "Chinese (中文)"),
    (re.compile("[\u0400-\u04ff]"), "Russian or the Cyrillic language it is written in"),
    (re.compile("[\u0600-\u06ff]"), "Arabic or the Arabic-script language it is written in"),
)


def language_instruction(question: str | None) -> str:
    """Tell the model to answer in the question's language, by name when its script shows
    it: sources in another language (English docs, a Chinese question) pull small models
    into answering in the sources' language.

    >>> language_instruction("如何升级软件包？")[:55]
    'The question is in Chinese (中文): answer in Chinese (中文)'
    """
    for pattern, language in _SCRIPTS:
        if question and pattern.search(question):
            return (f"The question is in {language}: answer in {language}, even where the "
                    "sources are in another language.")
    return "Answer in the language of the question, even where the sources are in another one."


def sources_prompt(value: Any, question: str | None = None) -> str:
    """The system-prompt part that gives the model the numbered sources (and tells it to
    answer in `question`'s language)."""
    docs = _docs(value)
    if not docs:
        return ("No sources were found for this question. Say that the knowledge base has "
                "nothing on it; do not make an answer up. " + language_instruction(question))
    parts = ["Answer from these sources only. Cite each claim with its source number in "
             "square brackets, like [1] or [2]. If the sources do not answer the question, "
             "say so. " + language_instruction(question), ""]
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
