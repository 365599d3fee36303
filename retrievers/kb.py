"""Knowledge bases: create, ingest files into, search, and remove.

A knowledge base (KB) is a named set of documents parsed into chunks (`parse.py`),
embedded through the model gateway (the `ModelProvider` of the flow engine, batched; by
default `local-embed-multilingual`, which reads about 100 languages, else `local-embed`),
and indexed for dense and lexical search (`index.py`: Milvus Lite in
`<home>/kb/milvus.db`, or a Milvus server when the KB is created with an `http://` URI).
Passages are embedded as passages and questions as queries (e5's two prefixes).

A KB records the embedder its vectors came from. Vectors of two embedders are not
comparable, so when the KB's alias now stands for another model, searching and ingesting
raise `EmbedderMismatch` until `areindex` (`flowloom kb reindex NAME`) has re-embedded
every chunk into a new collection and swapped it in.
The catalog (`_catalog.py`) records each document's content hash, so ingesting an
unchanged file again does nothing, a changed file replaces its chunks, and a crash in the
middle of a write leaves nothing that is ever answered (and is cleaned up on next use).

Example:
    >>> kbs = knowledge_bases(home, models)                      # doctest: +SKIP
    >>> kbs.create("docs")                                       # doctest: +SKIP
    >>> report = await kbs.aingest("docs", [Path("handbook/")])  # doctest: +SKIP
    >>> hits = await kbs.asearch("docs", "how do I reset my password?", top_k=5)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flowloom.retrievers._catalog import Catalog, DocumentRow, KBRow
from flowloom.retrievers.errors import (
    EmbedderMismatch,
    KnowledgeBaseExists,
    KnowledgeError,
    UnknownDocument,
    UnknownKnowledgeBase,
)

if TYPE_CHECKING:
    from flowloom.flows.context import EmbedInput, ModelProvider
    from flowloom.retrievers.index import Hit, KnowledgeIndex

__all__ = [
    "DEFAULT_EMBED_MODEL",
    "EMBED_MODEL_PREFERENCE",
    "MODES",
    "IngestProgress",
    "IngestReport",
    "ReindexReport",
    "KnowledgeBases",
    "close_knowledge_bases",
    "kb_dir",
    "knowledge_bases",
]

DEFAULT_EMBED_MODEL = "local-embed-multilingual"
EMBED_MODEL_PREFERENCE = (DEFAULT_EMBED_MODEL, "local-embed")
"""A new KB's embedder when none is named: the first of these the gateway has (a models
file written before the multilingual alias existed still has `local-embed`)."""
MODES = ("dense", "lexical", "hybrid")
Mode = Literal["dense", "lexical", "hybrid"]
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def kb_dir(home: Path) -> Path:
    return home / "kb"


def _doc_id(path: Path) -> str:
    """A document is its file: the id is stable for a path, whatever its content."""
    return hashlib.sha1(str(path).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Todo:
    """A file whose content is new or changed: to parse, embed and write."""

    path: Path
    doc_id: str
    sha: str
    old: DocumentRow | None


_Parsed = tuple[_Todo, "list[Any] | None", "list[list[float]] | None", "str | None"]


class IngestProgress(Protocol):
    """What an ingestion reports as it goes (a progress bar, a server job)."""

    def started(self, files: int) -> None: ...
    def file_done(self, path: Path, status: str, chunks: int) -> None: ...
    def embedded(self, chunks: int, seconds: float) -> None: ...


@dataclass
class IngestReport:
    """What an ingestion did: files added / updated / unchanged / failed (with reasons),
    chunks written, and where the time went."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    parse_seconds: float = 0.0
    embed_seconds: float = 0.0
    index_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "failed": [{"path": p, "reason": r} for p, r in self.failed],
                "chunks": self.chunks, "seconds": round(self.seconds, 3),
                "parse_seconds": round(self.parse_seconds, 3),
                "embed_seconds": round(self.embed_seconds, 3),
                "index_seconds": round(self.index_seconds, 3)}


@dataclass
class ReindexReport:
    """What a re-index did: the embedder before and after, chunks re-embedded, seconds."""

    name: str
    old_embed_model: str
    embed_model: str
    old_embedder: str | None
    embedder: str | None
    documents: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old_embed_model": self.old_embed_model,
                "embed_model": self.embed_model, "old_embedder": self.old_embedder,
                "embedder": self.embedder, "documents": self.documents, "chunks": self.chunks,
                "seconds": round(self.seconds, 3)}


def _files(paths: Iterable[Path], suffixes: frozenset[str]) -> tuple[list[Path], list[
        tuple[str, str]]]:
    """The files to ingest (folders walked for supported types), and paths refused."""
    found: list[Path] = []
    refused: list[tuple[str, str]] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*")
                                if p.is_file() and p.suffix.lower() in suffixes
                                and not any(part.startswith(".") for part in
                                            p.relative_to(path).parts)))
        elif path.is_file():
            found.append(path)
        else:
            refused.append((str(raw), "no such file or folder"))
    return list(dict.fromkeys(found)), refused


class KnowledgeBases:
    """All knowledge bases of one flowloom home. Blocking work (parsing, the index, the
    catalog) runs in threads; the async methods are safe to call from the event loop.

    Milvus Lite lets one process open its file at a time: the process that serves flows
    (the API server) owns `<home>/kb/milvus.db`; other processes reach it through the API.
    """

    # parse in a worker process with a memory limit (`_parse_pool.py`); False: in a thread
    isolate_parsing = True

    def __init__(self, home: Path, models: ModelProvider | None) -> None:
        self.home = home
        self.models = models
        self._parse_pool: Any = None
        self.dir = kb_dir(home)
        self.catalog = Catalog(self.dir / "catalog.sqlite")
        self._indexes: dict[str, KnowledgeIndex] = {}
        self._lock = threading.Lock()
        self._write_locks: dict[str, asyncio.Lock] = {}

    # -- catalog ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [kb.name for kb in self.catalog.kbs()]

    def get(self, name: str) -> KBRow:
        row = self.catalog.kb(name)
        if row is None:
            raise UnknownKnowledgeBase(name, self.names())
        return row

    def list(self) -> list[dict[str, Any]]:
        """Every KB with its document and chunk counts."""
        totals = self.catalog.totals()
        return [{"name": kb.name, "description": kb.description, "uri": kb.uri or "embedded",
                 "embed_model": kb.embed_model, "embedder": kb.embedder, "dim": kb.dim,
                 "documents": totals.get(kb.name, (0, 0))[0],
                 "chunks": totals.get(kb.name, (0, 0))[1],
                 "max_chars": kb.max_chars, "overlap_chars": kb.overlap_chars,
                 "created_at": kb.created_at} for kb in self.catalog.kbs()]

    def default_embed_model(self) -> str:
        """The embedder a new KB gets: see `EMBED_MODEL_PREFERENCE`."""
        aliases = self.models.aliases() if self.models is not None else []
        return next((a for a in EMBED_MODEL_PREFERENCE if a in aliases), DEFAULT_EMBED_MODEL)

    def embedder_id(self, alias: str) -> str | None:
        """What `alias` stands for now (the gateway's `embedder_id`: alias and model), the
        alias alone when the model provider cannot say, None when it has no such alias."""
        ask = getattr(self.models, "embedder_id", None)
        if not callable(ask):
            return alias
        try:
            return str(ask(alias))
        except Exception:  # noqa: BLE001 - an unknown alias: embedding will say so
            return None

    def create(self, name: str, *, uri: str | None = None,
               embed_model: str | None = None, max_chars: int = 1200,
               overlap_chars: int = 150, description: str = "",
               exist_ok: bool = False) -> KBRow:
        """Create a KB (nothing is embedded yet). `uri`: a Milvus server (`http://...`);
        default: Milvus Lite under the home. `embed_model`: an embedding alias; default
        `default_embed_model()` (multilingual when configured)."""
        embed_model = embed_model or self.default_embed_model()
        if not _NAME.match(name or ""):
            raise KnowledgeError(
                f"knowledge base name {name!r} is not valid: use 1-63 lower-case letters, "
                "digits and _, starting with a letter (e.g. product_docs)")
        if uri is not None and not uri.startswith(("http://", "https://")):
            raise KnowledgeError(f"uri {uri!r}: a Milvus server is given as http://host:port "
                                 "(leave it out for the embedded Milvus Lite)")
        if not 100 <= max_chars <= 20_000:
            raise KnowledgeError(f"max_chars {max_chars}: must be between 100 and 20000")
        if not 0 <= overlap_chars < max_chars // 2:
            raise KnowledgeError(f"overlap_chars {overlap_chars}: must be between 0 and "
                                 f"{max_chars // 2 - 1} (under half of max_chars)")
        if self.models is not None and embed_model not in self.models.aliases():
            raise KnowledgeError(f"embed_model {embed_model!r} is not a model alias; "
                                 f"aliases: {', '.join(self.models.aliases())}")
        row = KBRow(name, uri, embed_model, None, max_chars, overlap_chars, description,
                    time.time())
        if not self.catalog.add_kb(row):
            if exist_ok:
                return self.get(name)
            raise KnowledgeBaseExists(name)
        return row

    def documents(self, name: str) -> builtins.list[DocumentRow]:
        self.get(name)
        return self.catalog.documents(name)

    # -- the index ------------------------------------------------------------------------

    def _index(self, kb: KBRow) -> KnowledgeIndex | None:
        """The KB's index (opened and repaired on first use), None before its first ingest."""
        if kb.dim is None:
            return None
        with self._lock:
            index = self._indexes.get(kb.name)
            if index is None:
                from flowloom.retrievers.index import KnowledgeIndex

                index = KnowledgeIndex(self._uri(kb), kb.collection_name, kb.dim,
                                       lexical_dir=self.dir / "lexical" / kb.name)
                self._repair(kb.name, index)
                self._indexes[kb.name] = index
            return index

    def _uri(self, kb: KBRow) -> str:
        return kb.uri or str(self.dir / "milvus.db")

    def _check_embedder(self, kb: KBRow) -> KBRow:
        """Raise `EmbedderMismatch` if the KB's vectors came from another model than its
        alias stands for now. A KB from before embedders were recorded adopts the current
        one (what it was built with cannot be known)."""
        current = self.embedder_id(kb.embed_model)
        if kb.dim is None or current is None:
            return kb
        if "=" not in current and (kb.embedder or "").partition("=")[0] == current:
            return kb  # this model provider names no model: the alias is all it can check
        if kb.embedder is None:
            self.catalog.set_embedder(kb.name, current)
            return self.get(kb.name)
        if kb.embedder != current:
            raise EmbedderMismatch(kb.name, kb.embedder, current)
        return kb

    def _repair(self, name: str, index: KnowledgeIndex) -> None:
        """Remove what a crashed write left: chunks of every generation but the committed
        one of each document with a write announced (the new version's, when the crash
        came before its commit; the old version's, when after), and of documents the
        catalog no longer has."""
        committed = self.catalog.generations(name)
        for doc_id, _generation in self.catalog.pending(name):
            index.delete(doc_id=doc_id, keep_generation=committed.get(doc_id))
            self.catalog.clear_pending(name, doc_id)
        for doc_id in index.doc_ids() - set(committed):
            index.delete(doc_id=doc_id)

    def close(self) -> None:
        with self._lock:
            for index in self._indexes.values():
                index.close()
            self._indexes.clear()
            self._parse_pool = None  # the process's shared pool: it stays for others
        self.catalog.close()

    # -- writes ---------------------------------------------------------------------------

    def _write_lock(self, name: str) -> asyncio.Lock:
        return self._write_locks.setdefault(name, asyncio.Lock())

    async def aembed(self, kb: KBRow, texts: Sequence[str], *,
                     input_type: EmbedInput = "passage") -> builtins.list[builtins.list[float]]:
        if self.models is None:
            raise KnowledgeError("no model gateway is configured, so nothing can be embedded")
        return await self.models.aembed(kb.embed_model, texts, input_type=input_type)

    async def aingest(self, name: str, paths: Sequence[Path], *,
                      progress: IngestProgress | None = None, ray: bool = False,
                      models_config: Path | None = None) -> IngestReport:
        """Parse, embed and index `paths` (files, or folders walked for supported types).
        A file that fails is reported with its reason; the others go on. `ray`: parse and
        embed as a Ray Data pipeline (`_ray_ingest.py`; `models_config` for its workers'
        gateway); writing is the same either way."""
        from flowloom.retrievers.parse import SUPPORTED_SUFFIXES, ChunkSettings

        kb = self._check_embedder(self.get(name))
        started = time.perf_counter()
        report = IngestReport()
        files, report.failed = _files(paths, SUPPORTED_SUFFIXES)
        if progress is not None:
            progress.started(len(files) + len(report.failed))
        settings = ChunkSettings(max_chars=kb.max_chars, overlap_chars=kb.overlap_chars)
        async with self._write_lock(name):
            todo: builtins.list[_Todo] = []
            for path in files:
                todo_item = await self._prepare(kb, path, report)
                if todo_item is not None:
                    todo.append(todo_item)
                elif progress is not None:
                    progress.file_done(path, "unchanged" if str(path) in report.unchanged
                                       else "failed", 0)
            docs = (self._ray_docs(kb, todo, settings, models_config) if ray
                    else self._local_docs(kb, todo, settings, report))
            async for item, nodes, vectors, error in docs:
                if error is not None:
                    report.failed.append((str(item.path), error))
                    status, chunks = "failed", 0
                else:
                    assert nodes is not None and vectors is not None
                    kb = await self._write(kb, item, nodes, vectors, report)
                    status, chunks = ("updated" if item.old else "added"), len(nodes)
                if progress is not None:
                    progress.file_done(item.path, status, chunks)
        report.seconds = time.perf_counter() - started
        return report

    async def _prepare(self, kb: KBRow, path: Path, report: IngestReport) -> _Todo | None:
        """The file's hash against the catalog: None when there is nothing to do."""
        from flowloom.retrievers.parse import file_sha256

        doc_id = _doc_id(path)
        try:
            sha = await asyncio.to_thread(file_sha256, path)
        except OSError as exc:
            report.failed.append((str(path), f"cannot read: {exc.strerror or exc}"))
            return None
        old = self.catalog.document(kb.name, doc_id)
        if old is not None and old.sha256 == sha:
            report.unchanged.append(str(path))
            return None
        return _Todo(path, doc_id, sha, old)

    async def _local_docs(self, kb: KBRow, todo: builtins.list[_Todo], settings: Any,
                          report: IngestReport) -> AsyncIterator[_Parsed]:
        """Parse and embed file by file, the next file parsed (in a thread) while this
        one's chunks are embedded (by the model service): the two overlap."""
        from flowloom.retrievers.parse import ParseError, parse_file

        if self.isolate_parsing and self._parse_pool is None:
            from flowloom.retrievers._parse_pool import shared_pool

            self._parse_pool = shared_pool()

        async def parse(item: _Todo) -> tuple[builtins.list[Any] | None, str | None, float]:
            t0 = time.perf_counter()
            try:
                if self._parse_pool is not None:
                    nodes = await self._parse_pool.parse(item.path, settings)
                else:
                    nodes = await asyncio.to_thread(parse_file, item.path, settings)
                return nodes, None, time.perf_counter() - t0
            except ParseError as exc:
                return None, exc.reason, time.perf_counter() - t0

        ahead = asyncio.ensure_future(parse(todo[0])) if todo else None
        try:
            for i, item in enumerate(todo):
                assert ahead is not None
                nodes, error, seconds = await ahead
                ahead = (asyncio.ensure_future(parse(todo[i + 1]))
                         if i + 1 < len(todo) else None)
                report.parse_seconds += seconds
                if nodes is None:
                    yield item, None, None, error
                    continue
                t0 = time.perf_counter()
                vectors = await self._embed_for(kb, item.path, [n.get_content() for n in nodes])
                report.embed_seconds += time.perf_counter() - t0
                yield item, nodes, vectors, None
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()

    async def _ray_docs(self, kb: KBRow, todo: builtins.list[_Todo], settings: Any,
                        models_config: Path | None) -> AsyncIterator[_Parsed]:
        from flowloom.retrievers._ray_ingest import ray_parse_and_embed

        by_path = {str(item.path): item for item in todo}
        docs = ray_parse_and_embed([item.path for item in todo], settings=settings,
                                   embed_model=kb.embed_model, models_config=models_config,
                                   home=self.home)
        while (got := await asyncio.to_thread(next, docs, None)) is not None:
            path, nodes, vectors, error = got
            yield by_path[str(path)], nodes, vectors, error

    async def _embed_for(self, kb: KBRow, path: Path, texts: builtins.list[str]
                         ) -> builtins.list[builtins.list[float]]:
        try:
            return await self.aembed(kb, texts)
        except KnowledgeError:
            raise
        except Exception as exc:  # the model gateway's errors say which model and why
            raise KnowledgeError(f"embedding {path.name} with {kb.embed_model!r} failed: "
                                 f"{exc}") from None

    async def _write(self, kb: KBRow, item: _Todo, nodes: builtins.list[Any],
                     vectors: builtins.list[builtins.list[float]], report: IngestReport) -> KBRow:
        """Write one document's new version: announced, indexed, committed, old one gone.
        Returns the KB (its dimension is fixed by the first document)."""
        if kb.dim is None:
            self.catalog.set_dim(kb.name, len(vectors[0]), self.embedder_id(kb.embed_model))
            kb = self.get(kb.name)
        elif vectors and len(vectors[0]) != kb.dim:
            raise KnowledgeError(f"knowledge base {kb.name!r} holds {kb.dim}-dimensional "
                                 f"vectors but {kb.embed_model!r} returned {len(vectors[0])}")
        generation = (item.old.generation + 1) if item.old is not None else 1
        for i, (node, vector) in enumerate(zip(nodes, vectors, strict=True)):
            # unique per document and version: identical files at two paths, or a new
            # version written beside the old one, never overwrite each other's chunks
            node.id_ = f"{item.doc_id}-{generation}-{i}"
            node.embedding = vector
            node.metadata["doc_id"] = item.doc_id
            node.metadata["generation"] = generation
            for keys in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
                keys.extend(k for k in ("doc_id", "generation") if k not in keys)
        index = await asyncio.to_thread(self._index, kb)
        assert index is not None
        t0 = time.perf_counter()
        path = item.path
        self.catalog.announce(kb.name, item.doc_id, generation)
        await asyncio.to_thread(index.add, nodes, doc_id=item.doc_id, generation=generation)
        self.catalog.commit_document(DocumentRow(
            kb.name, item.doc_id, str(path), path.name, path.suffix.lower().lstrip("."),
            item.sha, generation, len(nodes), path.stat().st_size, time.time()))
        await asyncio.to_thread(index.delete, doc_id=item.doc_id, keep_generation=generation)
        self.catalog.clear_pending(kb.name, item.doc_id)  # only now: see `_repair`
        report.index_seconds += time.perf_counter() - t0
        report.chunks += len(nodes)
        (report.updated if item.old is not None else report.added).append(str(path))
        return kb

    async def areindex(self, name: str, *, embed_model: str | None = None) -> ReindexReport:
        """Re-embed every chunk of KB `name` with `embed_model` (default: the KB's own
        alias, for when that alias now stands for another model) into a new collection,
        then swap it in: searches use the old index until the catalog points at the new
        one in a single transaction, so a crash leaves the old index answering. Chunks
        are not re-parsed: their text comes from the index. Ingests wait meanwhile.

        >>> await kbs.areindex("docs", embed_model="local-embed")  # doctest: +SKIP
        """
        from llama_index.core.schema import TextNode

        started = time.perf_counter()
        async with self._write_lock(name):
            kb = self.get(name)
            alias = embed_model or kb.embed_model
            if self.models is not None and alias not in self.models.aliases():
                raise KnowledgeError(f"embed_model {alias!r} is not a model alias; "
                                     f"aliases: {', '.join(self.models.aliases())}")
            embedder = self.embedder_id(alias)
            report = ReindexReport(name, kb.embed_model, alias, kb.embedder, embedder)
            old = await asyncio.to_thread(self._index, kb)
            if old is None:  # nothing indexed yet: only the alias changes
                self.catalog.swap_index(name, embed_model=alias, embedder=None, dim=None,
                                        collection=kb.collection)
                report.seconds = time.perf_counter() - started
                return report
            target = _next_collection(kb)
            new: KnowledgeIndex | None = None
            try:
                for doc in self.catalog.documents(name):
                    hits = self._current(name, await asyncio.to_thread(old.chunks, doc.doc_id))
                    if not hits:
                        continue
                    vectors = await self._embed_for(
                        replace(kb, embed_model=alias), Path(doc.source),
                        [hit.text for hit in hits])
                    if new is None:
                        new = await asyncio.to_thread(self._fresh_index, kb, target,
                                                      len(vectors[0]))
                    target_index: KnowledgeIndex = new
                    nodes = [TextNode(id_=hit.chunk_id, text=hit.text, embedding=vector,
                                      metadata={k: v for k, v in hit.metadata.items()
                                                if not k.startswith("_")})
                             for hit, vector in zip(hits, vectors, strict=True)]
                    await asyncio.to_thread(target_index.add, nodes, doc_id=doc.doc_id,
                                            generation=doc.generation)
                    report.documents += 1
                    report.chunks += len(nodes)
            except BaseException:
                if new is not None:  # never swapped in: drop the half-written collection
                    await asyncio.to_thread(_drop_quietly, new)
                raise
            if new is None:  # documents without chunks: nothing to embed
                self.catalog.swap_index(name, embed_model=alias, embedder=None, dim=None,
                                        collection=kb.collection)
            else:
                self.catalog.swap_index(name, embed_model=alias, embedder=embedder,
                                        dim=new.dim, collection=target)
            with self._lock:
                if new is None:
                    self._indexes.pop(name, None)
                else:
                    self._indexes[name] = new
            await asyncio.to_thread(_drop_quietly, old)
            report.seconds = time.perf_counter() - started
            return report

    def _fresh_index(self, kb: KBRow, collection: str, dim: int) -> KnowledgeIndex:
        """An empty index `collection` (one left by a crashed re-index is dropped first)."""
        from flowloom.retrievers.index import KnowledgeIndex

        index = KnowledgeIndex(self._uri(kb), collection, dim)
        if index.count():
            index.drop()
            index.close()
            index = KnowledgeIndex(self._uri(kb), collection, dim)
        return index

    async def aremove_document(self, name: str, doc_id: str) -> None:
        kb = self.get(name)
        async with self._write_lock(name):
            if not self.catalog.remove_document(name, doc_id):
                raise UnknownDocument(name, doc_id)
            index = await asyncio.to_thread(self._index, kb)
            if index is not None:
                await asyncio.to_thread(index.delete, doc_id=doc_id)

    async def adelete(self, name: str) -> None:
        """Delete a KB: its chunks, lexical index, uploads and catalog entries."""
        kb = self.get(name)
        async with self._write_lock(name):
            index = await asyncio.to_thread(self._index, kb)
            if index is not None:
                await asyncio.to_thread(index.drop)
                with self._lock:
                    self._indexes.pop(name, None)
            self.catalog.remove_kb(name)
            for folder in (self.dir / "lexical" / name, self.dir / "uploads" / name):
                shutil.rmtree(folder, ignore_errors=True)

    # -- reads ----------------------------------------------------------------------------

    async def asearch(self, name: str, query: str, *, top_k: int = 5, mode: Mode = "hybrid",
                      filters: Mapping[str, Any] | None = None) -> builtins.list[Hit]:
        """The `top_k` chunks of KB `name` best matching `query`."""
        if mode not in MODES:
            raise KnowledgeError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if not 1 <= top_k <= 100:
            raise KnowledgeError(f"top_k {top_k}: must be between 1 and 100")
        kb = self._check_embedder(self.get(name))
        index = await asyncio.to_thread(self._index, kb)
        if index is None or not query.strip():
            return []
        vector = ((await self.aembed(kb, [query], input_type="query"))[0]
                  if mode != "lexical" else None)
        hits = await asyncio.to_thread(index.search, text=query, vector=vector,
                                       top_k=top_k + 5, mode=mode, filters=filters)
        return self._current(name, hits)[:top_k]

    async def asearch_many(self, name: str, queries: Sequence[str], *, top_k: int = 5,
                           mode: Mode = "hybrid", filters: Mapping[str, Any] | None = None,
                           ) -> builtins.list[builtins.list[Hit]]:
        """`asearch` for many queries, their embeddings computed in batches."""
        kb = self._check_embedder(self.get(name))
        index = await asyncio.to_thread(self._index, kb)
        if index is None:
            return [[] for _ in queries]
        vectors: builtins.list[builtins.list[float] | None] = (
            list(await self.aembed(kb, list(queries), input_type="query"))
            if mode != "lexical" else [None] * len(queries))
        out = []
        for query, vector in zip(queries, vectors, strict=True):
            hits = await asyncio.to_thread(index.search, text=query, vector=vector,
                                           top_k=top_k + 5, mode=mode, filters=filters)
            out.append(self._current(name, hits)[:top_k])
        return out

    def _current(self, name: str, hits: builtins.list[Hit]) -> builtins.list[Hit]:
        """Only chunks of committed document versions (a write in flight is invisible)."""
        committed = self.catalog.generations(name)
        return [h for h in hits if committed.get(h.doc_id) == h.metadata.get("generation")]

    async def achunks(self, name: str, doc_id: str) -> builtins.list[Hit]:
        kb = self.get(name)
        if self.catalog.document(name, doc_id) is None:
            raise UnknownDocument(name, doc_id)
        index = await asyncio.to_thread(self._index, kb)
        if index is None:
            return []
        return self._current(name, await asyncio.to_thread(index.chunks, doc_id))


def _next_collection(kb: KBRow) -> str:
    """The collection a re-index writes: `kb_<name>_R<n>`. The capital R cannot occur in a
    KB name, so no two KBs' collections can collide."""
    current = kb.collection_name
    number = int(current.rsplit("_R", 1)[1]) + 1 if "_R" in current else 2
    return f"kb_{kb.name}_R{number}"


def _drop_quietly(index: KnowledgeIndex) -> None:
    """Drop and close `index`; a failure leaves an unused collection, never a wrong answer."""
    try:
        index.drop()
    except Exception:  # noqa: BLE001 - best effort: it is no longer read
        pass
    finally:
        index.close()


_instances: dict[Path, KnowledgeBases] = {}
_instances_lock = threading.Lock()


def knowledge_bases(home: Path, models: ModelProvider | None) -> KnowledgeBases:
    """The process's `KnowledgeBases` for `home` (one per home: Milvus Lite files are
    opened once per process)."""
    key = Path(home).expanduser().resolve()
    with _instances_lock:
        kbs = _instances.get(key)
        if kbs is None:
            kbs = _instances[key] = KnowledgeBases(key, models)
        elif kbs.models is None and models is not None:
            kbs.models = models
        return kbs


def close_knowledge_bases(home: Path | None = None) -> None:
    """Close the cached instance for `home` (all when None)."""
    with _instances_lock:
        keys = [Path(home).expanduser().resolve()] if home is not None else list(_instances)
        for key in keys:
            kbs = _instances.pop(key, None)
            if kbs is not None:
                kbs.close()
