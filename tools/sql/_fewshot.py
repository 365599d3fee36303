"""A question-SQL store the user grows, and the pairs closest to a new question.

The store is a JSONL file, one `{"question", "sql"}` per line (a `"db"` key, when
present, keeps pairs of several databases apart in one file). `nearest` ranks pairs by
TF-IDF cosine over words and, for Chinese or Japanese text, character bigrams: it needs
no model call and gives the same pairs on every run.

>>> store = FewShotStore([("How many artists are there?", "SELECT COUNT(*) FROM artist"),
...                       ("List all genres.", "SELECT name FROM genre")])
>>> store.nearest("How many albums are there?", 1)
[('How many artists are there?', 'SELECT COUNT(*) FROM artist')]
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import SqlError

__all__ = ["FewShotStore", "merged"]

_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")


def _features(text: str) -> Counter[str]:
    lowered = text.casefold()
    out = Counter(_WORD.findall(lowered))
    for run in _CJK.findall(lowered):
        out.update(run[i:i + 2] for i in range(max(len(run) - 1, 1)))
    return out


class FewShotStore:
    """Question-SQL pairs, searchable by similarity to a question."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = (), path: Path | None = None) -> None:
        self.pairs: list[tuple[str, str]] = [(q, s) for q, s in pairs]
        self.path = path
        self._index()

    @classmethod
    def load(cls, path: str | Path, *, db: str | None = None) -> FewShotStore:
        """The pairs in the JSONL file at `path` (those whose `db` is `db` or absent
        when `db` is given); a missing file is an empty store that `add` creates."""
        file = Path(path)
        pairs = []
        if file.exists():
            for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    question, sql = str(item["question"]), str(item["sql"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise SqlError(f"{file}:{n}: not a {{\"question\", \"sql\"}} line "
                                   f"({exc})") from None
                if db is None or item.get("db") in (None, db):
                    pairs.append((question, sql))
        return cls(pairs, path=file)

    def add(self, question: str, sql: str) -> None:
        """Keep a pair (appended to the file when the store has one)."""
        self.pairs.append((question, sql))
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"question": question, "sql": sql},
                                     ensure_ascii=False) + "\n")
        self._index()

    def nearest(self, question: str, k: int = 3) -> list[tuple[str, str]]:
        """The `k` stored pairs whose questions are most like `question`, closest first
        (ties in store order); pairs sharing nothing with it are left out."""
        query = self._vector(_features(question))
        scored = [(self._cosine(query, vec), i) for i, vec in enumerate(self._vectors)]
        ranked = sorted((s for s in scored if s[0] > 0), key=lambda si: (-si[0], si[1]))
        return [self.pairs[i] for _, i in ranked[:k]]

    def _index(self) -> None:
        counts = [_features(q) for q, _ in self.pairs]
        docs: Counter[str] = Counter()
        for c in counts:
            docs.update(c.keys())
        n = len(counts)
        self._idf = {t: math.log((1 + n) / (1 + d)) + 1.0 for t, d in docs.items()}
        self._vectors = [self._vector(c) for c in counts]

    def _vector(self, counts: Counter[str]) -> dict[str, float]:
        return {t: c * self._idf.get(t, 0.0) for t, c in counts.items()
                if self._idf.get(t, 0.0)}

    @staticmethod
    def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
        dot = sum(w * b.get(t, 0.0) for t, w in a.items())
        norm = math.sqrt(sum(w * w for w in a.values())) * math.sqrt(
            sum(w * w for w in b.values()))
        return dot / norm if norm else 0.0

    def __len__(self) -> int:
        return len(self.pairs)



def merged(static: Sequence[tuple[str, str]], found: Sequence[tuple[str, str]]
           ) -> list[tuple[str, str]]:
    """The fixed pairs, then the retrieved ones not among them."""
    return [*static, *(p for p in found if p not in static)]
