"""Text analysis for the lexical (BM25) side of a knowledge index.

Milvus's BM25 function tokenizes with its "standard" analyzer (``\\w+`` + lowercase)
but Milvus Lite 3.2.2 has no stemming filter, so flowloom analyzes text itself before
it reaches Milvus: lowercase, drop English stopwords, Snowball-stem each word. The
analyzed text is stored in its own field that the BM25 function reads, and queries go
through the same function, so "indexes" finds "indexing".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

__all__ = ["analyze"]

_WORD = re.compile(r"\w+", re.UNICODE)

# bm25s's English list (33 words, the Lucene set) plus a few frequent function words.
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
        "i",
        "you",
        "he",
        "she",
        "we",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "from",
        "so",
        "than",
    }
)


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    """Snowball English from NLTK (pure Python, no data download); identity if absent."""
    try:
        from nltk.stem.snowball import EnglishStemmer
    except ImportError:  # pragma: no cover - nltk comes with unstructured
        return lambda word: word
    stem = EnglishStemmer().stem
    return lru_cache(maxsize=65536)(stem)


def analyze(text: str) -> str:
    """Return ``text`` as space-joined lowercase stems without stopwords.

    >>> analyze("The indexes are Running")
    'index run'
    """
    stem = _stemmer()
    return " ".join(stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)
