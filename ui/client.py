"""The UI's client of the flowloom API server (plain HTTP; the same API as langgraph-sdk).

Every call raises `ApiError` with the server's message on a non-2xx answer or when the
server can't be reached, so pages show one clear line instead of a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["API_URL_ENV", "ApiError", "FlowloomClient", "StreamEvent", "default_api_url"]

API_URL_ENV = "FLOWLOOM_API_URL"
API_KEY_ENV = "FLOWLOOM_API_KEY"


def default_api_url() -> str:
    return os.environ.get(API_URL_ENV, "http://127.0.0.1:8123").rstrip("/")


class ApiError(Exception):
    """A refused or failed API call: `status` (0 when unreachable) and the server's words."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


@dataclass
class StreamEvent:
    """One server-sent event of a run stream: `event` name and decoded `data`."""

    event: str
    data: Any
    id: str | None = None


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:300]}
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                           for d in detail)
    problems = body.get("problems") if isinstance(body, dict) else None
    raise ApiError(response.status_code, str(detail or response.reason_phrase), problems)


class FlowloomClient:
    """Synchronous client; one `httpx.Client` (keep-alive) per instance."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = (base_url or default_api_url()).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    # -- plumbing -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the API server at {self.base_url} did not answer "
                              f"({type(exc).__name__}: {exc})") from None
        _raise_for(response)
        if response.status_code == 204 or not response.content.strip():
            return None
        return response.json()

    def ok(self) -> bool:
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """`GET /ok` (with the embedded model service's state when the server runs one), or
        None when the server does not answer."""
        try:
            answer = self._call("GET", "/ok")
        except ApiError:
            return None
        return answer if isinstance(answer, dict) else {"ok": bool(answer)}

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    # -- flows and node types -------------------------------------------------------------

    def node_types(self) -> list[dict[str, Any]]:
        return self._call("GET", "/node-types")

    def flows(self) -> list[dict[str, Any]]:
        return self._call("GET", "/flows")

    def flow(self, flow_id: str) -> dict[str, Any]:
        return self._call("GET", f"/flows/{flow_id}")

    def save_flow(self, document: dict[str, Any]) -> dict[str, Any]:
        """PUT the document under its id; refused with `ApiError.problems` when invalid."""
        return self._call("PUT", f"/flows/{document.get('id', '')}", json=document)

    def delete_flow(self, flow_id: str) -> None:
        self._call("DELETE", f"/flows/{flow_id}")

    def validate_flow(self, document: Any) -> dict[str, Any]:
        """`{"ok", "problems": [{path, message, choices, code}], "notes", "document"}`."""
        return self._call("POST", "/flows/validate", json=document)

    def export_flow(self, flow_id: str) -> str:
        """The saved flow as a file to share (`GET /flows/{id}/export`): prompt refs pinned
        to versions and those versions carried in `prompts`. The server's exact text."""
        try:
            response = self._http.get(f"/flows/{quote(flow_id, safe='')}/export")
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the API server at {self.base_url} did not answer "
                              f"({type(exc).__name__}: {exc})") from None
        _raise_for(response)
        return response.text

    # -- prompts --------------------------------------------------------------------------

    def prompts(self) -> list[dict[str, Any]]:
        """`[{name, latest: {ref, version, variables, notes, created_at}, versions}]`."""
        return self._call("GET", "/prompts")

    def prompt_versions(self, name: str) -> list[dict[str, Any]]:
        """A prompt's versions, oldest first (without their text)."""
        return self._call("GET", f"/prompts/{quote(name, safe='')}")["versions"]

    def prompt(self, name: str, version: int | str = "latest") -> dict[str, Any]:
        """One version with its text: `{ref, name, version, text, variables, notes, ...}`."""
        return self._call("GET", f"/prompts/{quote(name, safe='')}/{quote(str(version), safe='')}")

    def push_prompt(self, name: str, text: str, notes: str = "") -> dict[str, Any]:
        """Store `text` as the next version of `name` (needs role admin); the new version."""
        return self._call("POST", f"/prompts/{quote(name, safe='')}",
                          json={"text": text, "notes": notes})

    # -- threads --------------------------------------------------------------------------

    def threads(self, *, flow_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"limit": limit, "sort_by": "updated_at", "sort_order": "desc"}
        if flow_id:
            body["metadata"] = {"graph_id": flow_id}
        return self._call("POST", "/threads/search", json=body)

    def create_thread(self, *, flow_id: str, name: str) -> dict[str, Any]:
        return self._call("POST", "/threads", json={
            "metadata": {"graph_id": flow_id, "name": name}})

    def rename_thread(self, thread_id: str, name: str) -> dict[str, Any]:
        thread = self._call("GET", f"/threads/{thread_id}")
        metadata = {**(thread.get("metadata") or {}), "name": name}
        return self._call("PATCH", f"/threads/{thread_id}", json={"metadata": metadata})

    def delete_thread(self, thread_id: str) -> None:
        self._call("DELETE", f"/threads/{thread_id}")

    def thread_state(self, thread_id: str) -> dict[str, Any]:
        return self._call("GET", f"/threads/{thread_id}/state")

    def thread_history(self, thread_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The thread's checkpoints, newest first (each with its tasks and their writes)."""
        return self._call("POST", f"/threads/{thread_id}/history", json={"limit": limit})

    # -- runs -----------------------------------------------------------------------------

    def stream_run(self, *, assistant_id: str, input: Any, thread_id: str | None = None,
                   stream_mode: list[str] | None = None, command: dict[str, Any] | None = None,
                   timeout: float = 300.0) -> Iterator[StreamEvent]:
        """The run's server-sent events as they arrive (`metadata` first, `error` on a
        failed run). Network failures raise `ApiError`."""
        body: dict[str, Any] = {"assistant_id": assistant_id, "input": input,
                                "stream_mode": stream_mode or ["values"]}
        if command is not None:
            body["command"] = command
            body["input"] = None
        path = f"/threads/{thread_id}/runs/stream" if thread_id else "/runs/stream"
        try:
            with self._http.stream("POST", path, json=body, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the run stream from {self.base_url} broke off "
                              f"({type(exc).__name__}: {exc})") from None

    def join_stream(self, thread_id: str, run_id: str, *,
                    timeout: float = 300.0) -> Iterator[StreamEvent]:
        """A running run's events from its start (`GET .../runs/{id}/stream`): what a page
        reloaded mid-run shows. `ApiError(404)` once the run has ended."""
        path = f"/threads/{quote(thread_id, safe='')}/runs/{quote(run_id, safe='')}/stream"
        try:
            with self._http.stream("GET", path, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    _raise_for(response)
                yield from _parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise ApiError(0, f"the run stream from {self.base_url} broke off "
                              f"({type(exc).__name__}: {exc})") from None

    def thread_runs(self, thread_id: str, *, status: str | None = None,
                    limit: int = 10) -> list[dict[str, Any]]:
        """The thread's runs, newest first (`status`: only those, e.g. running)."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return self._call("GET", f"/threads/{quote(thread_id, safe='')}/runs", params=params)

    def cancel_run(self, thread_id: str, run_id: str, *, wait: bool = True,
                   action: str = "interrupt") -> None:
        """Cancel a run (`interrupt`: what it wrote so far stays; `rollback`: undone).
        `ApiError(404)` when it had already ended."""
        self._call("POST", f"/threads/{quote(thread_id, safe='')}/runs/"
                           f"{quote(run_id, safe='')}/cancel",
                   params={"wait": int(wait), "action": action}, timeout=60.0)

    def wait_run(self, *, assistant_id: str, input: Any,
                 thread_id: str | None = None) -> Any:
        path = f"/threads/{thread_id}/runs/wait" if thread_id else "/runs/wait"
        return self._call("POST", path, json={"assistant_id": assistant_id, "input": input},
                          timeout=300.0)

    # -- models and observability (observe_api) -------------------------------------------

    def models(self) -> dict[str, Any]:
        return self._call("GET", "/models")

    def models_health(self) -> Any:
        return self._call("GET", "/models/health", timeout=30.0)

    def model_calls(self, *, limit: int = 200) -> Any:
        return self._call("GET", "/models/calls", params={"limit": limit})

    def recent_runs(self, *, limit: int = 50, flow_id: str | None = None) -> Any:
        params: dict[str, Any] = {"limit": limit}
        if flow_id:
            params["flow_id"] = flow_id
        return self._call("GET", "/observe/runs", params=params)

    def run_nodes(self, run_id: str) -> Any:
        return self._call("GET", f"/observe/runs/{run_id}/nodes")

    def route_decisions(self, *, flow_id: str | None = None, bucket_s: int = 60) -> Any:
        params: dict[str, Any] = {"bucket_s": bucket_s}
        if flow_id:
            params["flow_id"] = flow_id
        return self._call("GET", "/observe/routes", params=params)


    # -- knowledge bases (planned API) ----------------------------------------------------

    def kbs(self) -> list[dict[str, Any]]:
        """Knowledge bases: `[{name, documents, chunks}]`; `ApiError(404)` where the server
        has none."""
        body = self._call("GET", "/kbs")
        return body.get("kbs", []) if isinstance(body, dict) else body

    def create_kb(self, name: str) -> dict[str, Any]:
        return self._call("POST", "/kbs", json={"name": name})

    def delete_kb(self, name: str) -> None:
        self._call("DELETE", f"/kbs/{quote(name, safe='')}")

    def kb_documents(self, name: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/kbs/{quote(name, safe='')}/documents")
        return body.get("documents", []) if isinstance(body, dict) else body

    def kb_chunks(self, name: str, doc_id: str) -> list[dict[str, Any]]:
        body = self._call("GET", f"/kbs/{quote(name, safe='')}/documents/"
                                 f"{quote(doc_id, safe='')}/chunks")
        return body.get("chunks", []) if isinstance(body, dict) else body

    def delete_kb_document(self, name: str, doc_id: str) -> None:
        self._call("DELETE", f"/kbs/{quote(name, safe='')}/documents/{quote(doc_id, safe='')}")

    def upload_kb_documents(self, name: str,
                            files: list[tuple[str, bytes, str | None]]) -> dict[str, Any]:
        """Upload `(filename, content, mime type)` files for ingestion: `{job_id, files,
        rejected: [{file, reason}]}` (files refused alone; the rest are ingested)."""
        parts = [("files", (fname, content, mime or "application/octet-stream"))
                 for fname, content, mime in files]
        return self._call("POST", f"/kbs/{quote(name, safe='')}/documents", files=parts,
                          timeout=300.0)

    def kb_search(self, name: str, query: str, *, top_k: int = 5, mode: str = "hybrid",
                  filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Search a knowledge base: hits `{n, text, score, filename, section, page, ...}`."""
        body = self._call("POST", f"/kbs/{quote(name, safe='')}/search", json={
            "query": query, "top_k": top_k, "mode": mode, "filters": filters or {}})
        return body.get("hits", []) if isinstance(body, dict) else body

    def kb_job(self, job_id: str) -> dict[str, Any]:
        """An ingestion job: `{state, files_done, files_total, chunks, errors}`."""
        return self._call("GET", f"/kbs/jobs/{quote(job_id, safe='')}")


def _parse_sse(lines: Iterator[str]) -> Iterator[StreamEvent]:
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                raw = "\n".join(data)
                try:
                    decoded = json.loads(raw)
                except ValueError:
                    decoded = raw
                yield StreamEvent(event, decoded, event_id)
            event, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue  # heartbeat / comment
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
    if data:
        yield StreamEvent(event, json.loads("\n".join(data)), event_id)
