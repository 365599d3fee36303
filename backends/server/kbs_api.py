"""Knowledge bases over HTTP: what the UI's Knowledge page and `flowloom kb` (when a server
owns the data dir) use.

- `GET /kbs`, `POST /kbs` `{name, description?, uri?, embed_model?, max_chars?,
  overlap_chars?}`, `GET /kbs/{name}`, `DELETE /kbs/{name}`
- `GET /kbs/{name}/documents`, `DELETE /kbs/{name}/documents/{doc_id}`,
  `GET /kbs/{name}/documents/{doc_id}/chunks`
- `POST /kbs/{name}/documents` (multipart `files`): saved under the data dir and ingested
  in the background; answers 202 `{job_id, files, rejected: [{file, reason}]}` (a file of
  an unsupported type is refused alone, the rest go on; 422 when none can be taken);
  `GET /kbs/jobs/{job_id}` follows it (`state` queued|running|done|error, files done of
  total, chunks, per-file errors, the refused files first).
- `POST /kbs/{name}/search` `{query, top_k?, mode?, filters?}` → `{hits: [...]}`; 409
  when the KB's vectors came from another embedder than its alias stands for now.
- `POST /kbs/{name}/reindex` `{embed_model?}`: re-embed every chunk into a new index and
  swap it in (what `flowloom kb reindex` does); answers the report when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from flowloom.backends.netguard import url_problem
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.tenancy import Principal, access, caller
from flowloom.retrievers.errors import (
    EmbedderMismatch,
    KnowledgeBaseExists,
    KnowledgeError,
    UnknownDocument,
    UnknownKnowledgeBase,
)
from flowloom.retrievers.kb import KnowledgeBases, close_knowledge_bases, knowledge_bases
from flowloom.retrievers.search_node import documents_from_hits, public_source

__all__ = ["DEMO_KB", "attach", "demo_corpus", "router"]

logger = logging.getLogger("flowloom.server")
# Knowledge bases are shared: every key reads and searches them, admins change them.
router = APIRouter(tags=["knowledge"])
SHARED = access("shared")
Caller = Annotated[Principal, Depends(caller)]
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
KEEP_JOBS = 200
DEMO_KB = "demo"


class KBCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="1-63 lower-case letters, digits and _.")
    description: str = ""
    uri: str | None = Field(None, description="A Milvus server (http://host:port); "
                                              "default: embedded Milvus Lite.")
    embed_model: str | None = Field(None, description="Embedding alias; default "
                                                      "local-embed-multilingual.")
    max_chars: int = 1200
    overlap_chars: int = 150


class ReindexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embed_model: str | None = Field(None, description="Switch to this embedding alias; "
                                                      "default: keep the KB's.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1)
    top_k: int = Field(5, ge=1, le=100)
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    filters: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Job:
    """One upload's ingestion, as `GET /kbs/jobs/{id}` shows it."""

    job_id: str
    kb: str
    files_total: int
    state: str = "queued"
    files_done: int = 0
    chunks: int = 0
    current: str | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    report: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    # IngestProgress
    def started(self, files: int) -> None:
        self.state = "running"
        self.files_total = files

    def file_done(self, path: Path, status: str, chunks: int) -> None:
        self.files_done += 1
        self.chunks += chunks
        self.current = path.name

    def embedded(self, chunks: int, seconds: float) -> None:
        """Embedding progress is not shown per job (files and chunks are)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class KnowledgeService:
    kbs: KnowledgeBases
    uploads: Path
    jobs: dict[str, Job] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _service(request: Request) -> KnowledgeService:
    service = getattr(request.app.state, "knowledge", None)
    if service is None:
        raise NotFound("this server has no knowledge bases configured")
    return service  # type: ignore[no-any-return]


@contextmanager
def _mapped() -> Iterator[None]:
    """Knowledge errors as the API's: unknown → 404, exists or indexed with another
    embedder → 409, invalid → 422."""
    try:
        yield
    except (UnknownKnowledgeBase, UnknownDocument) as exc:
        raise NotFound(str(exc)) from None
    except (KnowledgeBaseExists, EmbedderMismatch) as exc:
        raise Conflict(str(exc)) from None
    except KnowledgeError as exc:
        raise BadRequest(str(exc)) from None


def demo_corpus() -> Path:
    """flowloom's own docs, shipped in the package: the `demo` knowledge base."""
    from importlib import resources

    return Path(str(resources.files("flowloom.retrievers") / "demo"))


async def attach(app: FastAPI, stack: AsyncExitStack, *, home: Path, models: Any,
                 demo_kb: bool = False) -> None:
    """Serve the knowledge bases of `home` (called from the server's lifespan). With
    `demo_kb`, the `demo` KB is made from `demo_corpus()` in the background (a job like an
    upload's; unchanged files are skipped, so a restart costs a hash per file)."""
    kbs = knowledge_bases(home, models)
    service = KnowledgeService(kbs, kbs.dir / "uploads")
    app.state.knowledge = service
    if demo_kb and models is not None:
        await asyncio.to_thread(kbs.create, DEMO_KB, exist_ok=True,
                                description="flowloom's own documentation (demo)")
        files = sorted(demo_corpus().glob("*.md"))
        job = Job(str(uuid.uuid4()), DEMO_KB, len(files))
        service.jobs[job.job_id] = job
        task = asyncio.create_task(_ingest(service, job, files), name="ingest-demo")
        service.tasks.add(task)
        task.add_done_callback(service.tasks.discard)

    async def stop() -> None:
        for task in list(service.tasks):
            task.cancel()
        for task in list(service.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(close_knowledge_bases, home)

    stack.push_async_callback(stop)


@router.get("/kbs", openapi_extra=SHARED)
async def list_kbs(request: Request, who: Caller) -> dict[str, Any]:
    svc = _service(request)
    return {"kbs": [_public_kb(kb, who) for kb in await asyncio.to_thread(svc.kbs.list)]}


def _public_kb(kb: dict[str, Any], who: Principal) -> dict[str, Any]:
    """A KB as `who` sees it: a user key is not told a Milvus server's address."""
    if who.admin or kb.get("uri") in (None, "embedded"):
        return kb
    return {**kb, "uri": "server"}


@router.post("/kbs", status_code=201, openapi_extra=SHARED)
async def create_kb(body: KBCreate, request: Request) -> dict[str, Any]:
    svc = _service(request)
    if body.uri and (problem := await asyncio.to_thread(url_problem, body.uri)):
        raise BadRequest(f"uri: {problem}")
    with _mapped():
        await asyncio.to_thread(
            svc.kbs.create, body.name, uri=body.uri, embed_model=body.embed_model,
            max_chars=body.max_chars, overlap_chars=body.overlap_chars,
            description=body.description)
        return await _kb(svc, body.name)


async def _kb(svc: KnowledgeService, name: str) -> dict[str, Any]:
    svc.kbs.get(name)
    return next(kb for kb in await asyncio.to_thread(svc.kbs.list) if kb["name"] == name)


@router.get("/kbs/jobs/{job_id}", openapi_extra=SHARED)
async def get_job(job_id: str, request: Request, who: Caller) -> dict[str, Any]:
    job = _service(request).jobs.get(job_id)
    if job is None:
        raise NotFound(f"ingestion job {job_id} not found (jobs are kept while the server runs)")
    shown = job.to_dict()
    if not who.admin and shown["report"]:
        failed = [{**f, "path": public_source(f["path"])} for f in shown["report"]["failed"]]
        shown["report"] = {**shown["report"], "failed": failed}
    return shown


@router.get("/kbs/{name}", openapi_extra=SHARED)
async def get_kb(name: str, request: Request, who: Caller) -> dict[str, Any]:
    with _mapped():
        return _public_kb(await _kb(_service(request), name), who)


@router.delete("/kbs/{name}", status_code=204, openapi_extra=SHARED)
async def delete_kb(name: str, request: Request) -> None:
    with _mapped():
        await _service(request).kbs.adelete(name)


@router.get("/kbs/{name}/documents", openapi_extra=SHARED)
async def list_documents(name: str, request: Request, who: Caller) -> dict[str, Any]:
    svc = _service(request)
    with _mapped():
        docs = await asyncio.to_thread(svc.kbs.documents, name)
    rows = [d.to_dict() for d in docs]
    if not who.admin:  # the server's folders are for admins to see
        rows = [{**row, "source": public_source(row["source"])} for row in rows]
    return {"documents": rows}


@router.delete("/kbs/{name}/documents/{doc_id}", status_code=204, openapi_extra=SHARED)
async def delete_document(name: str, doc_id: str, request: Request) -> None:
    with _mapped():
        await _service(request).kbs.aremove_document(name, doc_id)


@router.get("/kbs/{name}/documents/{doc_id}/chunks", openapi_extra=SHARED)
async def list_chunks(name: str, doc_id: str, request: Request) -> dict[str, Any]:
    with _mapped():
        hits = await _service(request).kbs.achunks(name, doc_id)
    return {"chunks": [{"chunk_id": h.chunk_id, "text": h.text,
                        "section": h.metadata.get("section", ""),
                        "page": h.metadata.get("page"),
                        "chunk_index": h.metadata.get("chunk_index")} for h in hits]}


@router.post("/kbs/{name}/search", openapi_extra=SHARED)
async def search(name: str, body: SearchRequest, request: Request) -> dict[str, Any]:
    with _mapped():
        hits = await _service(request).kbs.asearch(
            name, body.query, top_k=body.top_k, mode=body.mode, filters=body.filters or None)
    return {"hits": documents_from_hits(hits)}


@router.post("/kbs/{name}/reindex", openapi_extra=SHARED)
async def reindex(name: str, body: ReindexRequest, request: Request) -> dict[str, Any]:
    with _mapped():
        report = await _service(request).kbs.areindex(name, embed_model=body.embed_model)
    return report.to_dict()


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def _safe_name(filename: str | None) -> str:
    """A file name safe to save under the uploads folder; "" when nothing is left of it."""
    return _UNSAFE.sub("_", Path(filename or "").name).strip(" .")[:200]


def _refusal(filename: str, seen: set[str], supported: frozenset[str]) -> str | None:
    """Why an uploaded file's name is refused (None: it may be ingested)."""
    if not filename:
        return "no file name (every upload needs one, e.g. handbook.pdf)"
    suffix = Path(filename).suffix.lower()
    if not suffix:
        return "no type suffix to tell its kind (e.g. .pdf, .md)"
    if suffix not in supported:
        return f"unsupported type {suffix!r}"
    if filename in seen:
        return "another file of this upload has the same name"
    return None


@router.post("/kbs/{name}/documents", status_code=202, openapi_extra=SHARED)
async def upload_documents(name: str, files: list[UploadFile], request: Request,
                           ) -> dict[str, Any]:
    """Save the uploaded files and ingest them in the background; follow the job.

    A file that cannot be taken (unsupported type, no name, too large, a duplicate name)
    is refused alone: the others are saved and ingested, and the 202 answer lists it in
    `rejected` (`[{file, reason}]`), as the job's `errors` do. Only when no file can be
    taken is the upload refused (422), naming each file and the supported types."""
    from flowloom.retrievers.parse import SUPPORTED_SUFFIXES

    svc = _service(request)
    with _mapped():
        svc.kbs.get(name)
    if not files:
        raise BadRequest("files: upload at least one file")
    supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
    folder = svc.uploads / name
    saved: list[Path] = []
    rejected: list[dict[str, str]] = []
    for upload in files:
        filename = _safe_name(upload.filename)
        seen = {p.name for p in saved}
        reason = _refusal(filename, seen, SUPPORTED_SUFFIXES)
        if reason is None:
            data = await upload.read(MAX_UPLOAD_BYTES + 1)
            if len(data) > MAX_UPLOAD_BYTES:
                reason = f"larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
        if reason is not None:
            rejected.append({"file": filename or str(upload.filename or ""), "reason": reason})
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / filename
        partial = target.with_name(f".{filename}.{uuid.uuid4().hex[:8]}.part")
        partial.write_bytes(data)
        partial.replace(target)  # a reader never sees half a file
        saved.append(target)
    if not saved:
        each = "; ".join(f"{r['file'] or '(no name)'}: {r['reason']}" for r in rejected)
        raise BadRequest(f"files: no file can be ingested ({each}); supported: {supported}")
    job = Job(str(uuid.uuid4()), name, len(saved),
              errors=[{"path": r["file"], "reason": r["reason"]} for r in rejected])
    svc.jobs[job.job_id] = job
    while len(svc.jobs) > KEEP_JOBS:
        svc.jobs.pop(next(iter(svc.jobs)))
    task = asyncio.create_task(_ingest(svc, job, saved), name=f"ingest-{job.job_id}")
    svc.tasks.add(task)
    task.add_done_callback(svc.tasks.discard)
    return {"job_id": job.job_id, "kb": name, "files": [p.name for p in saved],
            "rejected": rejected}


async def _ingest(svc: KnowledgeService, job: Job, paths: list[Path]) -> None:
    """Ingest `paths` for `job`; its `errors` keep the files refused at upload first."""
    refused = list(job.errors)
    try:
        report = await svc.kbs.aingest(job.kb, paths, progress=job)
    except KnowledgeError as exc:
        job.state, job.errors = "error", [*refused, {"path": "", "reason": str(exc)}]
    except Exception as exc:
        logger.exception("ingestion job %s failed", job.job_id)
        job.state = "error"
        job.errors = [*refused, {"path": "", "reason": f"{type(exc).__name__}: {exc}"}]
    else:
        job.report = report.to_dict()
        job.errors = [*refused, *({"path": Path(p).name, "reason": r} for p, r in report.failed)]
        job.state = "done"
    job.finished_at = time.time()
    job.current = None
