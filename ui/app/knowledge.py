"""The knowledge page: knowledge bases, their documents and chunks, and uploads whose
ingestion is followed with a progress bar (the server's `/kbs` API; a server without it
answers 404, which the page says plainly)."""

from __future__ import annotations

import time

import streamlit as st

from flowloom.ui.app._view_knowledge import chunk_text, doc_rows, job_progress, kb_rows
from flowloom.ui.app.common import api, call
from flowloom.ui.client import ApiError, FlowloomClient

__all__ = ["NOT_AVAILABLE", "page"]

NOT_AVAILABLE = "Knowledge bases are not available on this server."
JOB_KEY, CONFIRM_KEY, KB_KEY = "kb_job", "kb_confirm_delete", "kb_selected"
POLL_S, POLL_LIMIT_S = 0.5, 600.0


def _follow_job(client: FlowloomClient, job_id: str) -> None:
    """Poll the ingestion job, drawing its progress, until it ends (or the limit)."""
    bar = st.progress(0.0, text="Ingesting…")
    deadline = time.monotonic() + POLL_LIMIT_S
    while True:
        try:
            job = client.kb_job(job_id)
        except ApiError as exc:
            bar.empty()
            st.error(f"Could not follow ingestion job {job_id}: {exc.message}",
                     icon=":material/error:")
            break
        progress = job_progress(job)
        bar.progress(progress.fraction, text=progress.text)
        if progress.finished:
            for error in progress.errors:
                st.warning(error, icon=":material/warning:")
            (st.error if progress.failed else st.success)(progress.text)
            break
        if time.monotonic() > deadline:
            st.info(f"Job {job_id} is still running; come back to this page to see it end.")
            return  # keep following it on the next visit
        time.sleep(POLL_S)
    st.session_state.pop(JOB_KEY, None)


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
    if job_id := st.session_state.get(JOB_KEY):
        _follow_job(client, job_id)


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
