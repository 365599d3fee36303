"""Value-aware schema linking: the stored values a question names, spelled as the data
spells them.

A small model writes `WHERE name = 'acdc'` for "albums by acdc" when the row says
'AC/DC'. `ValueIndex` holds the distinct values of every text column (read once per
database); `match` compares the question's word runs with them after folding case,
accents and punctuation ('acdc', 'ac dc' and 'AC/DC' are all `acdc`), then fuzzily
(trigram prefilter, then `difflib` ratio), and the prompt gets lines such as
`artist.name = 'AC/DC'`. Columns with few distinct values (a type, a status, a sex code)
show all of them in the schema text instead of three samples.

>>> idx = ValueIndex({("artist", "name"): ("AC/DC", "Accept", "Aerosmith")})
>>> [m.hint for m in idx.match("How many albums does ac dc have?")]
["artist.name = 'AC/DC'"]
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from .schema import Column, Schema

__all__ = ["CATEGORICAL", "ValueIndex", "ValueMatch", "fold", "with_all_values"]

CATEGORICAL = 12  # a column with at most this many distinct values lists them all
MAX_VALUES = 5_000  # distinct values read per column
MAX_VALUE_CHARS = 80
_FUZZY = 0.84  # difflib ratio a near-spelling needs
_WINDOW = 5  # longest run of question words compared with a value
_STOP_WORDS = (
    "a an the of in on at to for by with and or is are was were be how many much what which "
    "who whom whose when where list show give find all each every their its his her there "
    "than more less most least name names number count does did do have has from")
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[^\W_\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


def fold(text: str) -> str:
    """Lower case, accents dropped, punctuation and spaces removed: 'AC/DC' -> 'acdc'."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def _trigrams(text: str) -> set[str]:
    return {text[i:i + 3] for i in range(len(text) - 2)}


@dataclass(frozen=True)
class ValueMatch:
    """A stored value the question names: where it is, and how close (1.0 = same
    letters after folding)."""

    table: str
    column: str
    value: str
    score: float

    @property
    def hint(self) -> str:
        return f"{self.table}.{self.column} = '{self.value.replace(chr(39), chr(39) * 2)}'"


class ValueIndex:
    """Distinct values of text columns, `{(table, column): values}`, searchable by
    folded spelling."""

    def __init__(self, values: Mapping[tuple[str, str], Sequence[str]]) -> None:
        self.values = {k: tuple(v) for k, v in values.items()}
        self._exact: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        self._folded: list[tuple[str, str, str, str]] = []
        self._grams: dict[str, list[int]] = defaultdict(list)
        for (table, column), items in self.values.items():
            for value in items:
                key = fold(value)
                cjk = _CJK.search(key) is not None
                # numbers (a year, a postal code) are left to the model: "in 2010" is a
                # filter the question spells out, not a stored value to look up
                if len(key) < (2 if cjk else 3) or key.isdigit():
                    continue
                self._exact[key].append((table, column, value))
                if len(key) >= 4:
                    n = len(self._folded)
                    self._folded.append((key, table, column, value))
                    for gram in _trigrams(key):
                        self._grams[gram].append(n)

    def match(self, question: str, *, limit: int = 8) -> list[ValueMatch]:
        """Stored values named by runs of the question's words (exact after folding,
        a plural 's' dropped, or a close spelling), best first; CJK values are found
        as substrings of the question."""
        words = _WORD.findall(question)
        found: dict[tuple[str, str, str], float] = {}
        for size in range(min(_WINDOW, len(words)), 0, -1):
            for start in range(len(words) - size + 1):
                run = words[start:start + size]
                if all(w.casefold() in _STOP for w in run):
                    continue
                key = fold("".join(run))
                if len(key) < 3:
                    continue
                for form in dict.fromkeys((key, key[:-1] if key.endswith("s") else key,
                                           key[:-2] if key.endswith("es") else key)):
                    for hit in self._exact.get(form, ()):
                        found[hit] = max(found.get(hit, 0.0), 1.0)
                if len(key) >= 5:
                    for hit, score in self._fuzzy(key):
                        found[hit] = max(found.get(hit, 0.0), score)
        folded_q = fold(question)
        if _CJK.search(question):
            for key, hits in self._exact.items():
                if _CJK.search(key) and key in folded_q:
                    for hit in hits:
                        found[hit] = 1.0
        ranked = sorted(found.items(), key=lambda kv: (-kv[1], -len(kv[0][2]), kv[0]))
        return [ValueMatch(t, c, v, round(s, 3)) for (t, c, v), s in ranked[:limit]]

    def _fuzzy(self, key: str) -> Iterable[tuple[tuple[str, str, str], float]]:
        grams = _trigrams(key)
        shared: dict[int, int] = defaultdict(int)
        for gram in grams:
            for n in self._grams.get(gram, ()):
                shared[n] += 1
        for n, count in shared.items():
            other, table, column, value = self._folded[n]
            if 2 * count / (len(grams) + max(len(other) - 2, 1)) < 0.5:
                continue
            score = difflib.SequenceMatcher(None, key, other).ratio()
            if score >= _FUZZY:
                yield (table, column, value), score


def with_all_values(schema: Schema, index: ValueIndex, *, most: int = CATEGORICAL) -> Schema:
    """`schema` with every distinct value as the samples of text columns that have at
    most `most` of them (describe it with `samples=most`)."""
    tables = {}
    for name, table in schema.tables.items():
        cols: list[Column] = []
        for col in table.columns:
            values = index.values.get((name, col.name))
            if values is not None and 0 < len(values) <= most:
                col = replace(col, samples=tuple(values))
            cols.append(col)
        tables[name] = replace(table, columns=tuple(cols))
    return Schema(schema.dialect, tables)
