"""The knowledge bases' catalog: which KBs exist, which documents each holds (with the
content hash that makes re-ingestion idempotent), and which writes are in flight.

One SQLite file, `<home>/kb/catalog.sqlite`. The index (Milvus) holds the chunks; the
catalog is the truth about which of them count: a document's chunks are tagged with a
`generation`, and only the generation the catalog has committed is ever answered. A write
is announced in `pending` before its chunks go to the index, and stays there until the
previous version's chunks are gone too, so after a crash at any step the leftovers are
known and removed (`KnowledgeBases` repairs on first use).

A KB also records the embedder its vectors came from (`embedder`, see
`KnowledgeBases.embedder_id`) and the Milvus collection that holds them (`collection`;
None is the first one, `kb_<name>`). A re-index writes a new collection and then swaps
both in one transaction (`swap_index`), so readers see the old index or the new one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Catalog", "DocumentRow", "KBRow"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS kbs (
        name TEXT PRIMARY KEY, uri TEXT, embed_model TEXT NOT NULL, dim INTEGER,
        max_chars INTEGER NOT NULL, overlap_chars INTEGER NOT NULL,
        description TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
        embedder TEXT, collection TEXT)""",
    """CREATE TABLE IF NOT EXISTS documents (
        kb TEXT NOT NULL, doc_id TEXT NOT NULL, source TEXT NOT NULL, filename TEXT NOT NULL,
        filetype TEXT NOT NULL, sha256 TEXT NOT NULL, generation INTEGER NOT NULL,
        chunks INTEGER NOT NULL, bytes INTEGER NOT NULL, ingested_at REAL NOT NULL,
        PRIMARY KEY (kb, doc_id))""",
    """CREATE TABLE IF NOT EXISTS pending (
        kb TEXT NOT NULL, doc_id TEXT NOT NULL, generation INTEGER NOT NULL,
        PRIMARY KEY (kb, doc_id, generation))""",
]


# Added after the first release: catalogs written before get them by ALTER TABLE.
_ADDED_COLUMNS = {"kbs": (("embedder", "TEXT"), ("collection", "TEXT"))}
_KB_COLUMNS = ("name, uri, embed_model, dim, max_chars, overlap_chars, description, "
               "created_at, embedder, collection")


@dataclass(frozen=True)
class KBRow:
    name: str
    uri: str | None
    embed_model: str
    dim: int | None
    max_chars: int
    overlap_chars: int
    description: str
    created_at: float
    embedder: str | None = None
    """What made the indexed vectors (None: nothing indexed yet, or a KB from before
    embedders were recorded)."""
    collection: str | None = None
    """The Milvus collection holding the chunks; None: `kb_<name>`."""

    @property
    def collection_name(self) -> str:
        return self.collection or f"kb_{self.name}"


@dataclass(frozen=True)
class DocumentRow:
    kb: str
    doc_id: str
    source: str
    filename: str
    filetype: str
    sha256: str
    generation: int
    chunks: int
    bytes: int
    ingested_at: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class Catalog:
    """Thread-safe access to the catalog file (callers run it off the event loop)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        for statement in _SCHEMA:
            self._conn.execute(statement)
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    # -- knowledge bases ----------------------------------------------------------------

    def kbs(self) -> list[KBRow]:
        return [KBRow(*r) for r in self._rows(f"SELECT {_KB_COLUMNS} FROM kbs ORDER BY name")]

    def kb(self, name: str) -> KBRow | None:
        rows = self._rows(f"SELECT {_KB_COLUMNS} FROM kbs WHERE name = ?", (name,))
        return KBRow(*rows[0]) if rows else None

    def add_kb(self, row: KBRow) -> bool:
        """Insert `row`; False if a KB of that name exists."""
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM kbs WHERE name = ?", (row.name,)).fetchone():
                return False
            conn.execute(f"INSERT INTO kbs ({_KB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (row.name, row.uri, row.embed_model, row.dim, row.max_chars,
                          row.overlap_chars, row.description, row.created_at, row.embedder,
                          row.collection))
        return True

    def set_dim(self, name: str, dim: int, embedder: str | None = None) -> None:
        """Fix the KB's vector size (and record their embedder) at its first write."""
        with self._tx() as conn:
            conn.execute("UPDATE kbs SET dim = ?, embedder = ? WHERE name = ?",
                         (dim, embedder, name))

    def set_embedder(self, name: str, embedder: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE kbs SET embedder = ? WHERE name = ?", (embedder, name))

    def swap_index(self, name: str, *, embed_model: str, embedder: str | None,
                   dim: int | None, collection: str | None) -> None:
        """Point the KB at a re-built index, all fields at once."""
        with self._tx() as conn:
            conn.execute("UPDATE kbs SET embed_model = ?, embedder = ?, dim = ?, collection = ? "
                         "WHERE name = ?", (embed_model, embedder, dim, collection, name))

    def remove_kb(self, name: str) -> None:
        with self._tx() as conn:
            for table in ("documents", "pending"):
                conn.execute(f"DELETE FROM {table} WHERE kb = ?", (name,))
            conn.execute("DELETE FROM kbs WHERE name = ?", (name,))

    def totals(self) -> dict[str, tuple[int, int]]:
        """`{kb: (documents, chunks)}`."""
        return {kb: (docs, chunks or 0) for kb, docs, chunks in self._rows(
            "SELECT kb, COUNT(*), SUM(chunks) FROM documents GROUP BY kb")}

    # -- documents ----------------------------------------------------------------------

    def documents(self, kb: str) -> list[DocumentRow]:
        return [DocumentRow(*r) for r in self._rows(
            "SELECT * FROM documents WHERE kb = ? ORDER BY source", (kb,))]

    def document(self, kb: str, doc_id: str) -> DocumentRow | None:
        rows = self._rows("SELECT * FROM documents WHERE kb = ? AND doc_id = ?", (kb, doc_id))
        return DocumentRow(*rows[0]) if rows else None

    def generations(self, kb: str) -> dict[str, int]:
        """`{doc_id: committed generation}` of the KB's documents."""
        return dict(self._rows("SELECT doc_id, generation FROM documents WHERE kb = ?", (kb,)))

    def announce(self, kb: str, doc_id: str, generation: int) -> None:
        """Record that `generation` of a document is about to be written to the index."""
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO pending VALUES (?, ?, ?)",
                         (kb, doc_id, generation))

    def commit_document(self, row: DocumentRow) -> None:
        """Make `row` (its generation) the document's current version. Its write stays
        announced until `clear_pending`, once the older versions' chunks are deleted."""
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         tuple(row.to_dict().values()))

    def remove_document(self, kb: str, doc_id: str) -> bool:
        with self._tx() as conn:
            gone = conn.execute("DELETE FROM documents WHERE kb = ? AND doc_id = ?",
                                (kb, doc_id)).rowcount
        return bool(gone)

    def pending(self, kb: str) -> list[tuple[str, int]]:
        return [(d, g) for d, g in self._rows(
            "SELECT doc_id, generation FROM pending WHERE kb = ?", (kb,))]

    def clear_pending(self, kb: str, doc_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM pending WHERE kb = ? AND doc_id = ?", (kb, doc_id))


def now() -> float:
    return time.time()
