"""Choosing among labelled options by embedding similarity (semantic routing).

Each option is described by texts — what it is for, and example requests; a request goes
to the option with the most similar text (cosine over the embedding model's vectors).
With the bundled models this picks the right tool or route far more often than asking the
0.5B chat model (benchmarks/RESULTS.md, "Agents"), in ~10 ms instead of a model call.
The options' vectors are computed once, on first use.

Example:
    >>> chooser = SemanticChoice(models, "local-embed", {                 # doctest: +SKIP
    ...     "data": ["the shop's orders and customers", "How many orders?"],
    ...     "docs": ["how to use flowloom", "How do I install it?"]})
    >>> (await chooser.choose("How many customers are there?")).label    # doctest: +SKIP
    'data'
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NO_TOOL_EXAMPLES", "Choice", "SemanticChoice"]

# Requests that need no tool: the "none" option of an agent's tool choice.
NO_TOOL_EXAMPLES = (
    "small talk, greetings, thanks, general knowledge, writing, arithmetic or translation "
    "that needs no data",
    "Hi there!", "Thank you!", "Good morning", "What is the capital of Spain?",
    "Write a short poem about the sea.", "What is 5 plus 9?", "Translate 'thank you' into "
    "German.", "Can you explain that more simply?",
)


@dataclass(frozen=True)
class Choice:
    label: str
    scores: dict[str, float]  # best similarity per option, rounded

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "scores": self.scores}


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    return dot / norm if norm else 0.0


class SemanticChoice:
    def __init__(self, models: Any, alias: str, options: Mapping[str, Sequence[str]]) -> None:
        self.models = models
        self.alias = alias
        self.options = {label: [t for t in texts if t.strip()]
                        for label, texts in options.items()}
        self._vectors: dict[str, list[list[float]]] | None = None
        self._lock = asyncio.Lock()

    async def _option_vectors(self) -> dict[str, list[list[float]]]:
        async with self._lock:
            if self._vectors is None:
                labels = [label for label, texts in self.options.items() for _ in texts]
                texts = [t for texts in self.options.values() for t in texts]
                vectors = await self.models.aembed(self.alias, texts)
                found: dict[str, list[list[float]]] = {label: [] for label in self.options}
                for label, vector in zip(labels, vectors, strict=True):
                    found[label].append(vector)
                self._vectors = found
        return self._vectors

    async def choose(self, text: str) -> Choice:
        options = await self._option_vectors()
        [query] = await self.models.aembed(self.alias, [text])
        scores = {label: round(max((_cosine(query, v) for v in vectors), default=-1.0), 4)
                  for label, vectors in options.items()}
        return Choice(max(scores, key=lambda label: scores[label]), scores)
