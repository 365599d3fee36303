"""The knowledge page: knowledge bases, their documents and chunks, uploads whose
ingestion is followed with a progress bar, and a search box with scored results (the
server's `/kbs` API; a server without it answers 404, which the page says plainly).

An ingestion job is polled by a fragment that reruns alone every `POLL_S` seconds (the
rest of the page stays as it is); when the job ends, the whole page is drawn once more so
the documents list shows what it ingested. A file the server refused (an unsupported
type) is listed with its reason; the rest of the upload is ingested."""

from __future__ import annotations

from typing import Any

import streamlit as st

from flowloom.ui.app._view_knowledge import (
    chunk_text,
    doc_rows,
    hit_heading,
    job_progress,
    kb_rows,
    parse_filters,
)
from flowloom.ui.app.common import api, call
from flowloom.ui.client import ApiError, FlowloomClient

__all__ = ["NOT_AVAILABLE", "page"]

NOT_AVAILABLE = "Knowledge bases are not available on this server."
JOB_KEY, CONFIRM_KEY, KB_KEY = "kb_job", "kb_confirm_delete", "kb_selected"
JOB_RESULT_KEY = "kb_job_result"  # {kb, text, failed, errors}: how the last job ended
HITS_KEY = "kb_hits"  # {kb, query, mode, hits}: the last search's results
MODES = ["hybrid", "dense", "lexical"]
POLL_S = 1.0
HIT_CHARS = 1500


@st.fragment(run_every=POLL_S)
def _follow_job(job_id: str) -> None:
    """The job's progress, redrawn alone every POLL_S seconds; the page once it ends."""
    try:
        job = api().kb_job(job_id)
    except ApiError as exc:
        st.session_state.pop(JOB_KEY, None)
        st.session_state[JOB_RESULT_KEY] = {
            "text": f"Could not follow ingestion job {job_id}: {exc.message}",
            "failed": True, "errors": []}
        st.rerun()
    progress = job_progress(job)
    st.progress(progress.fraction, text=progress.text)
    for error in progress.errors:
        st.warning(error, icon=":material/warning:")
    if progress.finished:
        st.session_state.pop(JOB_KEY, None)
        st.session_state[JOB_RESULT_KEY] = {"text": progress.text, "failed": progress.failed,
                                            "errors": progress.errors}
        st.rerun()  # the whole page: the documents list shows what the job ingested


def _job_result() -> None:
    result = st.session_state.get(JOB_RESULT_KEY)
    if not isinstance(result, dict):
        return
    for error in result.get("errors") or []:
        st.warning(error, icon=":material/warning:")
    (st.error if result.get("failed") else st.success)(str(result.get("text")))


def _create(client: FlowloomClient) -> None:
    with st.form("kb_create", clear_on_submit=True):
        name = st.text_input("New knowledge base", placeholder="docs")
        if st.form_submit_button("Create", icon=":material/add:") and name.strip():
            try:
                client.create_kb(name.strip())
            except ApiError as exc:
                st.error(f"Could not create it: {exc.message}", icon=":material/error:")
            else:
                st.session_state[KB_KEY] = name.strip()
                st.rerun()


def _documents(client: FlowloomClient, kb: str) -> None:
    docs = call(client.kb_documents, kb, what="Could not list documents")
    if docs is None:
        return
    rows = doc_rows(docs)
    if not rows:
        st.caption("No documents yet: upload some below.")
        return
    st.dataframe(rows, hide_index=True)
    by_id = {r["doc_id"]: r for r in rows}
    chosen = st.selectbox("Document", list(by_id), key="kb_doc",
                          format_func=lambda i: str(by_id[i]["name"]))
    if chosen is None:
        return
    with st.expander("Chunks"):
        chunks = call(client.kb_chunks, kb, chosen, what="Could not read chunks")
        for i, chunk in enumerate(chunks or [], 1):
            st.markdown(f"**{i}.**")
            st.text(chunk_text(chunk)[:2000])
    if st.button("Delete document", icon=":material/delete:", key="kb_doc_delete"):
        try:
            client.delete_kb_document(kb, chosen)
        except ApiError as exc:
            st.error(f"Could not delete it: {exc.message}", icon=":material/error:")
        else:
            st.rerun()


def _upload(client: FlowloomClient, kb: str) -> None:
    files = st.file_uploader("Add documents", accept_multiple_files=True, key="kb_files")
    if st.button("Ingest", icon=":material/upload:", key="kb_ingest", disabled=not files):
        payload = [(f.name, f.getvalue(), f.type) for f in files or []]
        job = call(client.upload_kb_documents, kb, payload, what="Upload failed")
        if job is not None and job.get("job_id"):
            st.session_state[JOB_KEY] = str(job["job_id"])
            st.session_state.pop(JOB_RESULT_KEY, None)
    if job_id := st.session_state.get(JOB_KEY):
        _follow_job(job_id)
    else:
        _job_result()


def _search_request(kb: str) -> dict[str, Any] | None:
    """The search form; the request to send when it was submitted and is sound."""
    with st.form("kb_search"):
        query = st.text_input("Query", placeholder="How do I reset my password?",
                              key="kb_query")
        mode_col, k_col, filter_col = st.columns([1, 1, 2])
        mode = mode_col.selectbox("Mode", MODES, key="kb_mode",
                                  help="dense: by meaning (embeddings); lexical: by words "
                                       "(BM25); hybrid: both, fused by rank.")
        top_k = k_col.number_input("Results", min_value=1, max_value=50, value=5, step=1,
                                   key="kb_top_k")
        filters_text = filter_col.text_input(
            "Filters", key="kb_filters", placeholder="filetype=pdf, page=3",
            help="KEY=VALUE metadata filters, by commas; keys: filename, filetype, "
                 "section, page, source, doc_id. A key twice matches either value.")
        if not st.form_submit_button("Search", icon=":material/search:"):
            return None
    if not query.strip():
        st.error("Type a query to search for.", icon=":material/error:")
        return None
    try:
        filters = parse_filters(filters_text)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    return {"kb": kb, "query": query.strip(), "mode": mode, "top_k": int(top_k),
            "filters": filters}


def _search(client: FlowloomClient, kb: str) -> None:
    if (request := _search_request(kb)) is not None:
        hits = call(client.kb_search, kb, request["query"], top_k=request["top_k"],
                    mode=request["mode"], filters=request["filters"], what="Search failed")
        if hits is not None:
            st.session_state[HITS_KEY] = {**request, "hits": hits}
    found = st.session_state.get(HITS_KEY)
    if not isinstance(found, dict) or found.get("kb") != kb:
        return
    hits = found.get("hits") or []
    count = f"{len(hits)} result" + ("" if len(hits) == 1 else "s")
    st.caption(f"{count} for “{found.get('query')}” ({found.get('mode')}"
               + (f", filters {found['filters']}" if found.get("filters") else "") + ")")
    if not hits:
        st.info("Nothing matched: try other words, the hybrid mode, or fewer filters.",
                icon=":material/search_off:")
    for hit in hits:
        with st.container(border=True):
            st.markdown(hit_heading(hit))
            text = str(hit.get("text") or "")
            st.text(text if len(text) <= HIT_CHARS else text[:HIT_CHARS] + " …")


def _delete_kb(client: FlowloomClient, kb: str) -> None:
    if st.session_state.get(CONFIRM_KEY) != kb:
        if st.button("Delete knowledge base", icon=":material/delete:", key="kb_delete"):
            st.session_state[CONFIRM_KEY] = kb
            st.rerun()
        return
    st.warning(f"Delete knowledge base “{kb}” with all its documents?")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary", key="kb_delete_yes"):
        st.session_state.pop(CONFIRM_KEY, None)
        try:
            client.delete_kb(kb)
        except ApiError as exc:
            st.error(f"Could not delete: {exc.message}", icon=":material/error:")
            return
        st.rerun()  # the selection falls back to the first one left
    if no.button("Cancel", key="kb_delete_no"):
        st.session_state.pop(CONFIRM_KEY, None)
        st.rerun()


def page() -> None:
    st.title("Knowledge")
    client = api()
    try:
        kbs = kb_rows(client.kbs())
    except ApiError as exc:
        if exc.status == 404:
            st.info(f"{NOT_AVAILABLE} It has no `/kbs` API (an older flowloom server, or "
                    "another LangGraph server).", icon=":material/library_books:")
        else:
            st.error(f"Could not list knowledge bases: {exc.message}", icon=":material/error:")
        return
    _create(client)
    if not kbs:
        st.caption("No knowledge bases yet.")
        return
    st.dataframe(kbs, hide_index=True)
    names = [str(kb["name"]) for kb in kbs]
    if st.session_state.get(KB_KEY) not in names:
        st.session_state[KB_KEY] = names[0]
    kb = st.selectbox("Knowledge base", names, key=KB_KEY)
    _delete_kb(client, kb)
    st.subheader("Documents")
    _documents(client, kb)
    _upload(client, kb)
    st.subheader("Search")
    _search(client, kb)
