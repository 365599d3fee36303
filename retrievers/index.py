"""One searchable index per knowledge base: dense vectors and BM25 in one Milvus collection.

A chunk is one row: ``id`` (the node id), ``doc_id``, ``generation``, ``text``,
``metadata`` (JSON), ``vector`` (COSINE), plus ``lexical`` (the analyzed text, see
:mod:`flowloom.retrievers._bm25`) from which Milvus's own BM25 function fills the
``sparse`` field. Milvus Lite 3.2.2 supports that full-text search, so nothing lexical
lives outside Milvus and adds/deletes/reopens need no extra bookkeeping.

For a ``.db`` URI (Milvus Lite, embedded) unfiltered dense searches are answered by a
process-local FAISS mirror of the vectors, because Milvus Lite spends ~35 ms per query
at 100k rows walking rows in Python (see :mod:`flowloom.retrievers._milvus`). Filtered
searches, lexical searches and everything on a Milvus server go to Milvus.

All methods block (gRPC and disk); call them from async code with
``asyncio.to_thread``.

>>> from llama_index.core.schema import TextNode
>>> index = KnowledgeIndex("/tmp/kb.db", "handbook", dim=3)          # doctest: +SKIP
>>> node = TextNode(id_="c1", text="Milvus stores vectors", embedding=[1.0, 0.0, 0.0])
>>> index.add([node], doc_id="doc-1", generation=1)                  # doctest: +SKIP
>>> index.search(text="vectors", vector=[1.0, 0.0, 0.0], top_k=1)[0].chunk_id  # doctest: +SKIP
'c1'
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from flowloom.retrievers._bm25 import analyze
from flowloom.retrievers._milvus import (
    VARCHAR_MAX,
    DenseMirror,
    FilterError,
    LiteBusyError,
    acquire_client,
    build_filter,
    is_lite_uri,
    mirror_for,
    release_client,
    set_mirror,
    truncate_utf8,
)

if TYPE_CHECKING:
    from llama_index.core.schema import TextNode

__all__ = ["LEXICAL_WEIGHT", "RRF_K", "Hit", "KnowledgeIndex", "KnowledgeIndexError", "SearchMode"]

SearchMode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[str, ...] = ("dense", "lexical", "hybrid")
# Fusion chosen on half of the Debian FAQ questions (even positions) and checked on the
# other half (benchmarks/RESULTS.md): a small k trusts the top of each list, and BM25 counts
# for 0.7 of the embeddings (it is the weaker ranker on paraphrased questions).
RRF_K = 10
LEXICAL_WEIGHT = 0.7
_OUTPUT = ["doc_id", "generation", "text", "metadata"]
_COLLECTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
# Milvus HNSW build params for the collection's own index (used for filtered searches
# and on a Milvus server). efConstruction 64 instead of AUTOINDEX's 200: Milvus Lite
# builds it in a background thread, and at 200 a 90k-row segment took ~2 min here.
_HNSW = {"M": 16, "efConstruction": 64}
_EF_MIN = 64
# Writes and mirror builds are serialized per process: Milvus Lite's engine is
# single-writer per collection, and the mirror must not miss a write while it fills.
_write_lock = threading.RLock()
_building: set[tuple[str, str]] = set()  # collections whose dense mirror is being built
_building_lock = threading.Lock()


class KnowledgeIndexError(Exception):
    """A knowledge index cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True)
class Hit:
    """One chunk found by a search (``score`` is 0 for :meth:`KnowledgeIndex.chunks`)."""

    chunk_id: str
    doc_id: str
    text: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


class KnowledgeIndex:
    """Dense + BM25 index of one knowledge base, stored in a Milvus collection.

    ``uri`` is a path ending in ``.db`` (Milvus Lite, embedded; one process per file)
    or ``http://host:port`` (a Milvus server). ``lexical_dir`` is accepted for callers
    that pass a per-KB folder; it is unused because Milvus does BM25 itself.
    Instances for the same URI share one ``MilvusClient``; :meth:`close` each one.
    """

    def __init__(
        self, uri: str, collection: str, dim: int, *, lexical_dir: Path | None = None
    ) -> None:
        if not _COLLECTION_NAME.match(collection):
            raise KnowledgeIndexError(
                f"collection {collection!r}: use letters, digits and _ (not starting with a digit)"
            )
        if not isinstance(dim, int) or dim <= 0:
            raise KnowledgeIndexError(f"dim must be a positive int, not {dim!r}")
        if is_lite_uri(uri) and not Path(uri).parent.is_dir():
            raise KnowledgeIndexError(
                f"Milvus Lite file {uri!r}: folder {str(Path(uri).parent)!r} does not exist"
            )
        if not is_lite_uri(uri) and not uri.startswith(("http://", "https://", "tcp://")):
            raise KnowledgeIndexError(
                f"uri {uri!r}: use a path ending in .db (Milvus Lite) or http://host:port"
            )
        self.uri, self.collection, self.dim, self.lexical_dir = uri, collection, dim, lexical_dir
        self._mirrored = is_lite_uri(uri)
        try:
            self._client: Any = acquire_client(uri)
        except LiteBusyError as exc:
            raise KnowledgeIndexError(str(exc)) from None
        except Exception as exc:
            raise KnowledgeIndexError(f"cannot open Milvus at {uri!r}: {exc}") from exc
        self._closed = False
        try:
            self._ensure_collection()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ setup

    def _ensure_collection(self) -> None:
        client = self._client
        if client.has_collection(self.collection):
            fields = client.describe_collection(self.collection)["fields"]
            vector = next((f for f in fields if f["name"] == "vector"), None)
            names = {f["name"] for f in fields}
            if vector is None or "sparse" not in names or "lexical" not in names:
                raise KnowledgeIndexError(
                    f"collection {self.collection!r} in {self.uri!r} exists but is not a "
                    f"knowledge index (fields: {sorted(names)}); pick another name or drop it"
                )
            found = int(vector["params"]["dim"])
            if found != self.dim:
                raise KnowledgeIndexError(
                    f"collection {self.collection!r} holds {found}-d vectors, not {self.dim}-d: "
                    "the embedding model changed; re-index into a new collection"
                )
            # A collection another process created comes back released.
            client.load_collection(self.collection)
            return
        from pymilvus import DataType, Function, FunctionType

        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=2048)
        schema.add_field("generation", DataType.INT64)
        schema.add_field("text", DataType.VARCHAR, max_length=VARCHAR_MAX)
        schema.add_field(
            "lexical",
            DataType.VARCHAR,
            max_length=VARCHAR_MAX,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["lexical"],
                output_field_names=["sparse"],
            )
        )
        params = client.prepare_index_params()
        params.add_index("vector", index_type="HNSW", metric_type="COSINE", params=_HNSW)
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        client.create_collection(self.collection, schema=schema, index_params=params)

    def _check_open(self) -> None:
        if self._closed:
            raise KnowledgeIndexError(f"index {self.collection!r} on {self.uri!r} is closed")

    # ------------------------------------------------------------ writes

    def add(self, nodes: Sequence[TextNode], *, doc_id: str, generation: int) -> None:
        """Store ``nodes`` (each with ``embedding`` of ``dim`` floats) under ``doc_id``.

        A node whose id is already stored replaces it. Blocks until the rows are
        flushed to disk and searchable.
        """
        self._check_open()
        if not isinstance(doc_id, str) or not doc_id:
            raise KnowledgeIndexError(f"doc_id must be a non-empty str, not {doc_id!r}")
        if not isinstance(generation, int) or isinstance(generation, bool):
            raise KnowledgeIndexError(f"generation must be an int, not {generation!r}")
        rows = [self._row(i, node, doc_id, generation) for i, node in enumerate(nodes)]
        if not rows:
            return
        with _write_lock:
            self._call("add", self._client.upsert, self.collection, rows)
            self._call("flush", self._client.flush, self.collection)
            mirror = mirror_for(self.uri, self.collection) if self._mirrored else None
            if mirror is not None:
                mirror.add([r["id"] for r in rows], np.asarray([r["vector"] for r in rows]))

    def _row(self, position: int, node: TextNode, doc_id: str, generation: int) -> dict[str, Any]:
        where = f"node {position} ({getattr(node, 'id_', None)!r})"
        embedding = getattr(node, "embedding", None)
        if embedding is None or len(embedding) != self.dim:
            size = "no embedding" if embedding is None else f"{len(embedding)} floats"
            raise KnowledgeIndexError(
                f"{where}: needs an embedding of {self.dim} floats, has {size}"
            )
        vector = [float(x) for x in embedding]
        if not all(math.isfinite(x) for x in vector):
            raise KnowledgeIndexError(f"{where}: embedding has NaN or infinite values")
        if len(node.id_.encode("utf-8")) > 512:
            raise KnowledgeIndexError(f"{where}: node id is longer than 512 bytes")
        try:
            metadata = json.loads(json.dumps(dict(node.metadata), default=str))
        except (TypeError, ValueError) as exc:
            raise KnowledgeIndexError(f"{where}: metadata is not JSON-serializable: {exc}") from exc
        text = node.get_content()
        return {
            "id": node.id_,
            "doc_id": doc_id,
            "generation": generation,
            "text": truncate_utf8(text),
            "lexical": truncate_utf8(analyze(text)),
            "metadata": metadata,
            "vector": vector,
        }

    def delete(self, *, doc_id: str, keep_generation: int | None = None) -> int:
        """Remove ``doc_id``'s chunks (all, or all but ``keep_generation``); return how many."""
        self._check_open()
        expr = _expr({"doc_id": doc_id})
        if keep_generation is not None:
            if not isinstance(keep_generation, int) or isinstance(keep_generation, bool):
                raise KnowledgeIndexError(
                    f"keep_generation must be an int, not {keep_generation!r}"
                )
            expr += f" and generation != {keep_generation}"
        with _write_lock:
            ids = [row["id"] for row in self._scan(expr, ["id"])]
            if not ids:
                return 0
            self._call("delete", self._client.delete, self.collection, ids=ids)
            self._call("flush", self._client.flush, self.collection)
            mirror = mirror_for(self.uri, self.collection) if self._mirrored else None
            if mirror is not None:
                mirror.remove(ids)
        return len(ids)

    # ------------------------------------------------------------ reads

    def search(
        self,
        *,
        text: str | None,
        vector: Sequence[float] | None,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        filters: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """Best ``top_k`` chunks by cosine (dense), BM25 (lexical) or RRF of both (hybrid).

        ``filters`` match ``doc_id``, ``generation`` or metadata keys by equality; a
        list value means "any of". Hybrid hits carry
        ``metadata["_ranks"] = {"dense": r | None, "lexical": r | None}`` (1-based).
        """
        self._check_open()
        if mode not in MODES:
            raise KnowledgeIndexError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if not isinstance(top_k, int) or top_k < 1:
            raise KnowledgeIndexError(f"top_k must be a positive int, not {top_k!r}")
        if mode in ("dense", "hybrid") and vector is None:
            raise KnowledgeIndexError(f"mode {mode!r} needs a query vector")
        if mode in ("lexical", "hybrid") and not text:
            raise KnowledgeIndexError(f"mode {mode!r} needs a query text")
        if vector is not None and len(vector) != self.dim:
            raise KnowledgeIndexError(
                f"query vector has {len(vector)} floats; this index holds {self.dim}"
            )
        expr = _expr(filters)
        if mode == "dense":
            return self._dense(vector or [], top_k, expr)
        if mode == "lexical":
            return self._lexical(text or "", top_k, expr)
        depth = max(top_k * 10, 50)
        return _fuse(
            self._dense(vector or [], depth, expr), self._lexical(text or "", depth, expr), top_k
        )

    def _dense(self, vector: Sequence[float], k: int, expr: str) -> list[Hit]:
        mirror = mirror_for(self.uri, self.collection) if self._mirrored and not expr else None
        if self._mirrored and not expr and mirror is None:
            self._build_mirror_soon()  # this search goes to Milvus; later ones to the mirror
        if mirror is not None:
            found = mirror.search(vector, k)
            if not found:
                return []
            rows = self._call(
                "get",
                self._client.get,
                self.collection,
                ids=[i for i, _ in found],
                output_fields=_OUTPUT,
            )
            by_id = {row["id"]: row for row in rows}
            return [_hit(by_id[i], score) for i, score in found if i in by_id]
        result = self._call(
            "dense search",
            self._client.search,
            self.collection,
            data=[list(map(float, vector))],
            anns_field="vector",
            limit=k,
            filter=expr,
            output_fields=_OUTPUT,
            search_params={"metric_type": "COSINE", "params": {"ef": max(_EF_MIN, k)}},
        )
        return [_hit({"id": r["id"], **r["entity"]}, float(r["distance"])) for r in result[0]]

    def _lexical(self, text: str, k: int, expr: str) -> list[Hit]:
        query = analyze(text)
        if not query:
            return []
        result = self._call(
            "lexical search",
            self._client.search,
            self.collection,
            data=[query],
            anns_field="sparse",
            limit=k,
            filter=expr,
            output_fields=_OUTPUT,
            search_params={"metric_type": "BM25"},
        )
        # Milvus Lite 3.2.2 reports BM25 as a negative distance; a server, as a score.
        return [_hit({"id": r["id"], **r["entity"]}, abs(float(r["distance"]))) for r in result[0]]

    def _mirror(self) -> DenseMirror:
        mirror = mirror_for(self.uri, self.collection)
        if mirror is not None:
            return mirror
        with _write_lock:
            mirror = mirror_for(self.uri, self.collection)
            if mirror is None:
                mirror = DenseMirror(self.dim)
                ids: list[str] = []
                vectors: list[list[float]] = []
                for row in self._scan("", ["id", "vector"], batch=16384):
                    ids.append(row["id"])
                    vectors.append(row["vector"])
                    if len(ids) >= 16384:
                        mirror.add(ids, np.asarray(vectors, dtype=np.float32))
                        ids, vectors = [], []
                mirror.add(ids, np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
                set_mirror(self.uri, self.collection, mirror)
        return mirror

    def _build_mirror_soon(self) -> None:
        """Build the dense mirror in a background thread (once per collection): reading
        100k vectors back takes about a minute, which no search should wait for."""
        key = (self.uri, self.collection)
        with _building_lock:
            if key in _building:
                return
            _building.add(key)

        def build() -> None:
            try:
                self._mirror()
            except Exception:  # closed or dropped meanwhile: the next search tries again
                pass
            finally:
                with _building_lock:
                    _building.discard(key)

        threading.Thread(target=build, name=f"flowloom-mirror-{self.collection}",
                         daemon=True).start()

    def warm(self) -> None:
        """Build the in-process dense mirror now instead of at the first dense search."""
        self._check_open()
        if self._mirrored:
            self._mirror()

    def count(self) -> int:
        """Number of stored chunks."""
        self._check_open()
        rows = self._call(
            "count", self._client.query, self.collection, filter="", output_fields=["count(*)"]
        )
        return int(rows[0]["count(*)"])

    def doc_ids(self) -> set[str]:
        """Distinct document ids present (to repair a knowledge base after a crash)."""
        self._check_open()
        return {row["doc_id"] for row in self._scan("", ["doc_id"])}

    def chunks(self, doc_id: str) -> list[Hit]:
        """``doc_id``'s chunks ordered by ``metadata["chunk_index"]`` (then id), score 0."""
        self._check_open()
        rows = list(self._scan(_expr({"doc_id": doc_id}), ["id", *_OUTPUT]))
        hits = [_hit(row, 0.0) for row in rows]
        return sorted(hits, key=lambda h: (_chunk_order(h.metadata.get("chunk_index")), h.chunk_id))

    def _scan(self, expr: str, fields: list[str], batch: int = 1000) -> list[dict[str, Any]]:
        if self._mirrored:
            # Milvus Lite lacks the AllocTimestamp call query_iterator starts with, but
            # pages by offset; one unbounded query could pass gRPC's 256 MB message cap.
            rows: list[dict[str, Any]] = []
            while True:
                page = self._call(
                    "scan",
                    self._client.query,
                    self.collection,
                    filter=expr,
                    output_fields=fields,
                    limit=batch,
                    offset=len(rows),
                )
                rows.extend(page)
                if len(page) < batch:
                    return rows

        def run() -> list[dict[str, Any]]:
            iterator = self._client.query_iterator(
                self.collection, batch_size=batch, filter=expr, output_fields=fields
            )
            rows: list[dict[str, Any]] = []
            try:
                while page := iterator.next():
                    rows.extend(page)
            finally:
                iterator.close()
            return rows

        return self._call("scan", run)

    # ------------------------------------------------------------ lifetime

    def drop(self) -> None:
        """Delete the collection (vectors, text and BM25 data) for good."""
        self._check_open()
        with _write_lock:
            self._call("drop", self._client.drop_collection, self.collection)
            set_mirror(self.uri, self.collection, None)

    def close(self) -> None:
        """Release this instance's share of the client; the last one frees the Lite file."""
        if not getattr(self, "_closed", True):
            self._closed = True
            release_client(self.uri)

    def __enter__(self) -> KnowledgeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from pymilvus.exceptions import MilvusException

        try:
            return fn(*args, **kwargs)
        except MilvusException as exc:
            raise KnowledgeIndexError(
                f"{what} on collection {self.collection!r} at {self.uri!r} failed: {exc.message}"
            ) from exc


def _expr(filters: Mapping[str, Any] | None) -> str:
    try:
        return build_filter(filters)
    except FilterError as exc:
        raise KnowledgeIndexError(str(exc)) from None


def _chunk_order(value: Any) -> float:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.inf
    )


def _hit(row: Mapping[str, Any], score: float) -> Hit:
    metadata = dict(row.get("metadata") or {})
    metadata["generation"] = row.get("generation")
    return Hit(
        chunk_id=row["id"], doc_id=row["doc_id"], text=row["text"], score=score, metadata=metadata
    )


def _fuse(dense: list[Hit], lexical: list[Hit], top_k: int) -> list[Hit]:
    """Weighted reciprocal rank fusion: score = 1 / (RRF_K + dense rank) +
    LEXICAL_WEIGHT / (RRF_K + lexical rank)."""
    ranks: dict[str, dict[str, int | None]] = {}
    first: dict[str, Hit] = {}
    for name, hits in (("dense", dense), ("lexical", lexical)):
        for rank, hit in enumerate(hits, start=1):
            ranks.setdefault(hit.chunk_id, {"dense": None, "lexical": None})[name] = rank
            first.setdefault(hit.chunk_id, hit)
    scored = [
        (sum((LEXICAL_WEIGHT if name == "lexical" else 1.0) / (RRF_K + r)
             for name, r in rs.items() if r is not None), chunk_id)
        for chunk_id, rs in ranks.items()
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    out = []
    for score, chunk_id in scored[:top_k]:
        hit = first[chunk_id]
        out.append(
            Hit(
                hit.chunk_id,
                hit.doc_id,
                hit.text,
                score,
                {**hit.metadata, "_ranks": ranks[chunk_id]},
            )
        )
    return out
