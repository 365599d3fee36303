"""Milvus plumbing for knowledge indexes: shared clients, schema, filters, a dense mirror.

Facts about pymilvus 3.0.2 + milvus-lite 3.2.2 that shape this module (measured here):

* A ``.db`` URI starts an in-process gRPC server over a pure-Python engine. The data
  directory is guarded by an ``fcntl`` lock: a second *process* opening the same file
  gets pymilvus's bare ``ConnectionConfigException("Open local milvus failed")``;
  :func:`acquire_client` turns that into a message naming the busy file.
* Every Milvus Lite search walks all rows in Python to drop superseded and deleted
  versions (``executor_indexed._build_local_mask``): ~35 ms per query at 100k rows
  whatever the index type or consistency level. Unflushed rows cost more still (the
  memtable is re-materialized per search). So indexes flush after writes, and dense
  searches without filters go to :class:`DenseMirror`, a process-local FAISS HNSW copy
  of the vectors. A Milvus Lite file can only be open in one process, so the mirror
  sees every write as long as writes go through :class:`KnowledgeIndex`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DenseMirror",
    "FilterError",
    "LiteBusyError",
    "acquire_client",
    "build_filter",
    "is_lite_uri",
    "mirror_for",
    "release_client",
    "set_mirror",
    "truncate_utf8",
]

VARCHAR_MAX = 65535
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TOP_LEVEL = {"doc_id": str, "generation": int}


class FilterError(ValueError):
    """A filter key or value that cannot be turned into a Milvus expression."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"filter {key!r}: {problem}")
        self.key = key


class LiteBusyError(RuntimeError):
    """Another process holds the Milvus Lite data directory."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"Milvus Lite file {path!r} is busy: another process has it open (Milvus Lite "
            "allows one process per file). Stop that process, go through it (e.g. the "
            "API server's /kbs endpoints), or run a Milvus server and use its "
            "http://host:19530 URI so several processes can share the data."
        )
        self.path = path


def is_lite_uri(uri: str) -> bool:
    return uri.endswith(".db") and "://" not in uri


def truncate_utf8(text: str, limit: int = VARCHAR_MAX) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


# ---------------------------------------------------------------- clients


@dataclass
class _Shared:
    client: Any
    users: int = 0


_clients: dict[str, _Shared] = {}
_clients_lock = threading.Lock()


def _key(uri: str) -> str:
    return os.path.abspath(uri) if is_lite_uri(uri) else uri


def _lock_held_elsewhere(path: str) -> bool:
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def acquire_client(uri: str) -> Any:
    """The process's one ``MilvusClient`` for ``uri`` (reference counted)."""
    from pymilvus import MilvusClient

    key = _key(uri)
    with _clients_lock:
        shared = _clients.get(key)
        if shared is None:
            try:
                client = MilvusClient(key)
            except Exception:
                if is_lite_uri(uri) and _lock_held_elsewhere(key):
                    raise LiteBusyError(key) from None
                raise
            shared = _clients[key] = _Shared(client)
        shared.users += 1
        return shared.client


def release_client(uri: str) -> None:
    """Drop one reference; the last one closes the client and frees the Lite file lock."""
    key = _key(uri)
    with _clients_lock:
        shared = _clients.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _clients[key]
        with contextlib.suppress(Exception):
            shared.client.close()
        if is_lite_uri(uri):
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(key)
        for mkey in [k for k in _mirrors if k[0] == key]:
            del _mirrors[mkey]


# ---------------------------------------------------------------- filters


def _literal(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not np.isfinite(value):
            raise FilterError(key, f"{value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        # json.dumps escapes quotes, backslashes and control characters the way the
        # Milvus expression grammar reads them, so a value can never end the literal.
        return json.dumps(value, ensure_ascii=False)
    raise FilterError(
        key, f"value {value!r} ({type(value).__name__}) is not a str, int, float or bool"
    )


def build_filter(filters: Mapping[str, Any] | None) -> str:
    """Milvus boolean expression for equality (scalar) / membership (list) filters.

    Keys ``doc_id`` and ``generation`` are columns; any other identifier-like key is
    looked up in the chunk metadata. Milvus Lite cannot apply ``in`` to a JSON path,
    so lists on metadata keys become an ``or`` of equalities.

    >>> build_filter({"filetype": ["md", "txt"], "doc_id": "a"})
    '(metadata["filetype"] == "md" or metadata["filetype"] == "txt") and doc_id == "a"'
    """
    if not filters:
        return ""
    if not isinstance(filters, Mapping):
        raise FilterError(
            "<filters>", f"must be a mapping of key to value, not {type(filters).__name__}"
        )
    parts: list[str] = []
    for key, value in filters.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise FilterError(
                str(key),
                "keys must be identifiers (letters, digits, _; not starting with a digit), "
                "e.g. doc_id, generation, source, filetype, section, page",
            )
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if not values:
            raise FilterError(key, "an empty list matches nothing; leave the key out instead")
        if key in _TOP_LEVEL:
            want = _TOP_LEVEL[key]
            for v in values:
                if not isinstance(v, want) or isinstance(v, bool):
                    raise FilterError(key, f"value {v!r} must be {want.__name__}")
            literals = [_literal(key, v) for v in values]
            parts.append(
                f"{key} == {literals[0]}"
                if len(literals) == 1
                else f"{key} in [{', '.join(literals)}]"
            )
        else:
            ref = f'metadata["{key}"]'
            equalities = [f"{ref} == {_literal(key, v)}" for v in values]
            parts.append(equalities[0] if len(equalities) == 1 else f"({' or '.join(equalities)})")
    return " and ".join(parts)


# ---------------------------------------------------------------- dense mirror


@dataclass
class DenseMirror:
    """Process-local FAISS HNSW over a collection's unit vectors, with soft deletes.

    Positions are FAISS ids; ``alive`` masks deleted or replaced rows; the graph is
    rebuilt from its own stored vectors when more than a third of it is dead.
    """

    dim: int
    m: int = 32
    ef_construction: int = 40
    ef_search: int = 64
    ids: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._alive = np.zeros(0, dtype=bool)
        self._dead = 0
        self._selector: Any = None
        self._index = self._new_index()

    def _new_index(self) -> Any:
        import faiss

        index = faiss.IndexHNSWFlat(self.dim, self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def __len__(self) -> int:
        return len(self.positions)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert or replace rows (vectors are normalized here)."""
        if not len(ids):
            return
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = (vecs / np.where(norms == 0, 1, norms)).astype(np.float32)
        with self.lock:
            self.remove(ids)
            start = len(self.ids)
            self._index.add(vecs)
            self.ids.extend(ids)
            for offset, chunk_id in enumerate(ids):
                self.positions[chunk_id] = start + offset
            self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
            self._selector = None

    def remove(self, ids: Iterable[str]) -> None:
        with self.lock:
            for chunk_id in ids:
                pos = self.positions.pop(chunk_id, None)
                if pos is not None:
                    self._alive[pos] = False
                    self._dead += 1
                    self._selector = None
            if self._dead and self._dead * 3 > len(self.ids):
                self._compact()

    def _compact(self) -> None:
        keep = np.flatnonzero(self._alive)
        vectors = self._index.reconstruct_n(0, len(self.ids))[keep] if len(keep) else None
        ids = [self.ids[i] for i in keep]
        self._index = self._new_index()
        self.ids, self.positions = [], {}
        self._alive = np.zeros(0, dtype=bool)
        self._dead = 0
        self._selector = None
        if vectors is not None:
            self.add(ids, vectors)

    def search(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Top ``k`` (chunk id, cosine similarity), best first."""
        import faiss

        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        norm = float(np.linalg.norm(query))
        if norm:
            query = query / norm
        with self.lock:
            if not self.positions:
                return []
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(self.ef_search, k)
            if self._dead:
                if self._selector is None:
                    bits = np.packbits(self._alive, bitorder="little")
                    self._selector = (
                        faiss.IDSelectorBitmap(len(self._alive), faiss.swig_ptr(bits)),
                        bits,
                    )
                params.sel = self._selector[0]
            scores, found = self._index.search(query, min(k, len(self.positions)), params=params)
            return [
                (self.ids[int(pos)], float(score))
                for pos, score in zip(found[0], scores[0], strict=True)
                if pos >= 0
            ]


_mirrors: dict[tuple[str, str], DenseMirror] = {}


def mirror_for(uri: str, collection: str) -> DenseMirror | None:
    """The mirror for (uri, collection) if one is built in this process."""
    return _mirrors.get((_key(uri), collection))


def set_mirror(uri: str, collection: str, mirror: DenseMirror | None) -> None:
    if mirror is None:
        _mirrors.pop((_key(uri), collection), None)
    else:
        _mirrors[(_key(uri), collection)] = mirror
