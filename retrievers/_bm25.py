"""Text analysis for the lexical (BM25) side of a knowledge index.

Milvus's BM25 function tokenizes with its "standard" analyzer (``\\w+`` + lowercase)
but Milvus Lite 3.2.2 has no stemming filter, so flowloom analyzes text itself before
it reaches Milvus: lowercase, drop stopwords, Snowball-stem each English word. The
analyzed text is stored in its own field that the BM25 function reads, and queries go
through the same function, so "indexes" finds "indexing".

``\\w+`` alone would make a whole Chinese sentence one token, so each word is split into
runs by script: Han runs are segmented into words by jieba (search mode, which also
emits the shorter words inside a long one: 软件包 gives 软件 and 软件包), kana and
Hangul runs become overlapping character bigrams (no segmenter for them ships here),
and everything else is treated as before.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache

__all__ = ["analyze"]

_WORD = re.compile(r"\w+", re.UNICODE)
# Runs of one script inside a word: Han ideographs (with the CJK extensions and
# compatibility block), Japanese kana (with the prolonged-sound mark), Hangul, the rest.
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_KANA = "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_RUNS = re.compile(f"([{_HAN}]+)|([{_KANA}{_HANGUL}]+)|([^{_HAN}{_KANA}{_HANGUL}]+)")
_CJK = re.compile(f"[{_HAN}{_KANA}{_HANGUL}]")

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

# Chinese function words and question words: frequent in questions, absent from answers.
_ZH_STOPWORD_TEXT = (
    "的 了 是 在 吗 呢 吧 啊 和 与 及 或 我 我们 你 你们 他 她 它 这 那 这个 那个 一个 有 "
    "什么 怎么 怎样 怎么样 如何 为什么 哪 哪个 哪些 哪里 么 可以 能 能否 会 要 把 被 对 "
    "也 都 就 还 又 并 而 但 如果 是否 请问 之 其 该 等"
)
_ZH_STOPWORDS = frozenset(_ZH_STOPWORD_TEXT.split())


@lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    """Snowball English from NLTK (pure Python, no data download); identity if absent."""
    try:
        from nltk.stem.snowball import EnglishStemmer
    except ImportError:  # pragma: no cover - nltk comes with unstructured
        return lambda word: word
    stem = EnglishStemmer().stem
    return lru_cache(maxsize=65536)(stem)


_jieba_lock = threading.Lock()


@lru_cache(maxsize=1)
def _jieba() -> Callable[[str], list[str]]:
    """jieba's search-mode segmenter; its dictionary loads on first use (~1 s)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)  # else it logs "Building prefix dict" to stderr
    tokenizer = jieba.Tokenizer()
    with _jieba_lock:
        tokenizer.initialize()
    return tokenizer.lcut_for_search


def _bigrams(run: str) -> Iterator[str]:
    if len(run) == 1:
        yield run
    for i in range(len(run) - 1):
        yield run[i:i + 2]


def _words(text: str) -> Iterator[str]:
    """The lowercase words of ``text``, CJK runs segmented (see the module's docstring)."""
    for word in _WORD.findall(text.lower()):
        if not _CJK.search(word):
            yield word
            continue
        for han, kana_hangul, other in _RUNS.findall(word):
            if han:
                yield from (w for w in _jieba()(han) if w.strip() and w not in _ZH_STOPWORDS)
            elif kana_hangul:
                yield from _bigrams(kana_hangul)
            else:
                yield other


def analyze(text: str) -> str:
    """Return ``text`` as space-joined lowercase stems without stopwords; Chinese is
    segmented into words, Japanese kana and Korean into character bigrams.

    >>> analyze("The indexes are Running")
    'index run'
    >>> analyze("如何升级软件包")
    '升级 软件 软件包'
    """
    stem = _stemmer()
    return " ".join(stem(w) for w in _words(text) if w not in _STOPWORDS)
