"""The knowledge page's data shaping, free of Streamlit: knowledge bases, documents,
chunks and ingestion-job progress as the (planned) `/kbs` API returns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JobProgress", "chunk_text", "doc_id", "doc_rows", "job_progress", "kb_rows"]

FINISHED = ("done", "succeeded", "success", "completed", "failed", "error", "cancelled")
FAILED = ("failed", "error", "cancelled")


def kb_rows(kbs: Any) -> list[dict[str, Any]]:
    items = kbs.get("kbs") if isinstance(kbs, dict) else kbs
    return [{"name": kb.get("name"), "documents": kb.get("documents", 0),
             "chunks": kb.get("chunks", 0)} for kb in items or [] if isinstance(kb, dict)]


def doc_id(doc: dict[str, Any]) -> str:
    return str(doc.get("doc_id") or doc.get("id") or doc.get("name") or "")


def doc_rows(docs: Any) -> list[dict[str, Any]]:
    """One row per document: id, name, chunks, size, added (whatever the server gives)."""
    items = docs.get("documents") if isinstance(docs, dict) else docs
    rows = []
    for doc in items or []:
        if not isinstance(doc, dict):
            continue
        rows.append({"doc_id": doc_id(doc),
                     "name": doc.get("name") or doc.get("filename") or doc.get("source")
                     or doc_id(doc),
                     "chunks": doc.get("chunks"), "bytes": doc.get("bytes") or doc.get("size"),
                     "added": _when(doc.get("ingested_at") or doc.get("created_at"))})
    return rows


def _when(value: Any) -> Any:
    """Epoch seconds as an ISO time (the API's `ingested_at`); anything else as given."""
    if isinstance(value, int | float):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return value


def _error_text(error: Any) -> str:
    """`broken.pdf: not a valid PDF` from the API's `{path, reason}` (or a plain string)."""
    if isinstance(error, dict):
        reason = error.get("reason") or error.get("message") or ""
        return f"{error['path']}: {reason}" if error.get("path") else str(reason or error)
    return str(error)


def chunk_text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, dict):
        return str(chunk.get("text") or chunk.get("page_content") or chunk.get("content") or "")
    return str(chunk)


@dataclass(frozen=True)
class JobProgress:
    fraction: float
    text: str
    finished: bool
    failed: bool
    errors: list[str]


def job_progress(job: dict[str, Any]) -> JobProgress:
    """What `st.progress` shows for an ingestion job `{state, files_done, files_total,
    chunks, errors}`: a fraction in [0, 1], a line of text, and whether it has ended."""
    state = str(job.get("state") or "pending").lower()
    done = int(job.get("files_done") or 0)
    total = int(job.get("files_total") or 0)
    finished = state in FINISHED
    fraction = min(1.0, max(0.0, done / total)) if total > 0 else float(finished)
    if finished and state not in FAILED:
        fraction = 1.0
    errors = [_error_text(e) for e in job.get("errors") or []]
    text = f"{state}: {done}/{total} files, {int(job.get('chunks') or 0)} chunks"
    if errors:
        text += f", {len(errors)} errors"
    return JobProgress(fraction, text, finished, state in FAILED, errors)
