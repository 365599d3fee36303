"""The knowledge page's data shaping, free of Streamlit: knowledge bases, documents,
chunks, ingestion-job progress, search filters and hits as the `/kbs` API has them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "JobProgress",
    "chunk_text",
    "doc_id",
    "doc_rows",
    "hit_heading",
    "job_progress",
    "kb_rows",
    "parse_filters",
]

_FILTER_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

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


def _scalar(text: str) -> Any:
    """A filter value as the metadata holds it: `3` an int, `true` a bool, else text."""
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*", text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_filters(text: str) -> dict[str, Any]:
    """`filetype=pdf, page=3` (commas or new lines) as the search API's `filters`; a key
    given twice matches either value. ValueError, naming the part, when one is not
    `KEY=VALUE` with an identifier key.

    >>> parse_filters("filetype=md, filetype=txt\npage=2")
    {'filetype': ['md', 'txt'], 'page': 2}
    """
    out: dict[str, list[Any]] = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if not part:
            continue
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or not _FILTER_KEY.fullmatch(key) or not value:
            raise ValueError(f"Filter “{part}”: write KEY=VALUE, e.g. filetype=pdf or "
                             "page=3 (keys: letters, digits and _).")
        out.setdefault(key, []).append(_scalar(value.strip("\"'")))
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()}


def hit_heading(hit: dict[str, Any]) -> str:
    """One line over a search hit: rank, file, section, page and score."""
    parts = [f"**{hit.get('n', '?')}.**",
             f"`{hit.get('filename') or hit.get('source') or hit.get('doc_id') or '?'}`"]
    if hit.get("section"):
        parts.append(f"§ {hit['section']}")
    if hit.get("page") not in (None, ""):
        parts.append(f"p. {hit['page']}")
    score = hit.get("score")
    if isinstance(score, int | float):
        parts.append(f"score {score:.4g}")
    return " · ".join(parts)
