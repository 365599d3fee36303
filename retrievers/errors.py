"""Errors of knowledge bases: what is wrong, with which knowledge base or file, and what
would be valid. The CLI prints them as one line; the API server maps them to 4xx."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EmbedderMismatch", "KnowledgeBaseExists", "KnowledgeError", "UnknownDocument",
    "UnknownKnowledgeBase",
]


class KnowledgeError(Exception):
    """Base of every knowledge-base error a user can fix (bad name, unknown KB, ...)."""


class UnknownKnowledgeBase(KnowledgeError):
    def __init__(self, name: str, choices: Sequence[str]) -> None:
        valid = ", ".join(choices) if choices else "none yet (flowloom kb create NAME)"
        super().__init__(f"knowledge base {name!r} does not exist; knowledge bases: {valid}")
        self.name = name
        self.choices = tuple(choices)


class KnowledgeBaseExists(KnowledgeError):
    def __init__(self, name: str) -> None:
        super().__init__(f"knowledge base {name!r} already exists")
        self.name = name


class UnknownDocument(KnowledgeError):
    def __init__(self, kb: str, doc_id: str) -> None:
        super().__init__(f"knowledge base {kb!r} has no document {doc_id!r} "
                         f"(flowloom kb docs {kb} lists them)")
        self.kb = kb
        self.doc_id = doc_id


class EmbedderMismatch(KnowledgeError):
    """The KB's vectors came from another embedding model than its alias stands for now:
    comparing a query vector of one model with passages of another finds nothing."""

    def __init__(self, kb: str, indexed_with: str, configured: str) -> None:
        super().__init__(
            f"knowledge base {kb!r} was indexed with {indexed_with!r} but its embedder is "
            f"now {configured!r}; re-embed it with: flowloom kb reindex {kb}")
        self.kb = kb
        self.indexed_with = indexed_with
        self.configured = configured
