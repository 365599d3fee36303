"""The chat page: talk to a flow on a thread, answers streamed token by token, with panels
for what the run produced (sources, SQL, numbers, router decisions) under each answer."""

from __future__ import annotations

import streamlit as st

from flowloom.ui.app._view_chat import (
    RunReader,
    is_ai,
    message_text,
    sort_threads,
    thread_label,
    turn_updates,
)
from flowloom.ui.app._view_panels import collect_panels, render_panels, router_fields, turn_data
from flowloom.ui.app.common import api, call
from flowloom.ui.client import ApiError, FlowloomClient

__all__ = ["STREAM_MODES", "page"]

STREAM_MODES = ["messages-tuple", "values", "updates"]
FLOW_KEY, THREAD_KEY, CONFIRM_KEY = "chat_flow", "chat_thread", "chat_confirm_delete"
NEXT_THREAD_KEY = "chat_next_thread"  # a selection to apply before the widget is drawn


def _routers(client: FlowloomClient, flow_id: str) -> dict[str, str]:
    try:
        return router_fields(client.flow(flow_id))
    except ApiError:
        return {}


def _pick_flow(client: FlowloomClient) -> str | None:
    flows = call(client.flows, what="Could not list flows")
    if flows is None:
        return None
    if not flows:
        st.info("No flows on the server yet: build one on the Builder page.")
        return None
    names = {f["id"]: f.get("name") or f["id"] for f in flows}
    ids = list(names)
    if st.session_state.get(FLOW_KEY) not in ids:
        st.session_state[FLOW_KEY] = ids[0]
    return st.selectbox("Flow", ids, key=FLOW_KEY,
                        format_func=lambda i: f"{names[i]} ({i})" if names[i] != i else i)


def _thread_controls(client: FlowloomClient, flow_id: str) -> str | None:
    if NEXT_THREAD_KEY in st.session_state:
        wanted = st.session_state.pop(NEXT_THREAD_KEY)
        if wanted is None:
            st.session_state.pop(THREAD_KEY, None)
        else:
            st.session_state[THREAD_KEY] = wanted
    threads = call(client.threads, flow_id=flow_id, limit=100, what="Could not list threads")
    threads = sort_threads(threads or [])
    by_id = {t["thread_id"]: t for t in threads}
    if st.button("New thread", icon=":material/add:", key="chat_new"):
        made = call(client.create_thread, flow_id=flow_id, name="New chat",
                    what="Could not create a thread")
        if made is not None:
            by_id = {made["thread_id"]: made, **by_id}
            st.session_state[THREAD_KEY] = made["thread_id"]
    ids = list(by_id)
    if not ids:
        st.caption("No threads for this flow yet: send a message to start one.")
        st.session_state.pop(THREAD_KEY, None)
        return None
    if st.session_state.get(THREAD_KEY) not in ids:
        st.session_state[THREAD_KEY] = ids[0]
    thread_id = st.selectbox("Thread", ids, key=THREAD_KEY,
                             format_func=lambda i: thread_label(by_id[i]))
    current = (by_id[thread_id].get("metadata") or {}).get("name") or ""
    with st.popover("Rename", icon=":material/edit:"):
        name = st.text_input("Name", value=current, key=f"chat_name_{thread_id}")
        if (st.button("Save name", key="chat_rename") and name.strip()
                and call(client.rename_thread, thread_id, name.strip(),
                         what="Could not rename") is not None):
            st.rerun()
    if st.session_state.get(CONFIRM_KEY) == thread_id:
        st.warning(f"Delete thread “{thread_label(by_id[thread_id])}” and its history?")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", type="primary", key="chat_delete_yes"):
            st.session_state.pop(CONFIRM_KEY, None)
            try:
                client.delete_thread(thread_id)
            except ApiError as exc:
                st.error(f"Could not delete: {exc.message}", icon=":material/error:")
            else:
                st.session_state[NEXT_THREAD_KEY] = None
                st.rerun()
        if no.button("Cancel", key="chat_delete_no"):
            st.session_state.pop(CONFIRM_KEY, None)
            st.rerun()
    elif st.button("Delete thread", icon=":material/delete:", key="chat_delete"):
        st.session_state[CONFIRM_KEY] = thread_id
        st.rerun()
    return thread_id


def _show_history(client: FlowloomClient, thread_id: str, routers: dict[str, str]) -> None:
    state = call(client.thread_state, thread_id, what="Could not load the thread")
    messages = ((state or {}).get("values") or {}).get("messages") or []
    try:
        per_turn = turn_updates(client.thread_history(thread_id, limit=200))
    except ApiError:
        per_turn = {}  # history is a nicety: the messages alone still make the chat
    for message in messages:
        kind = message.get("type")
        if kind not in ("human", "ai") or not (text := message_text(message)):
            continue
        with st.chat_message("user" if kind == "human" else "assistant"):
            st.markdown(text)
            if is_ai(message) and (updates := per_turn.get(str(message.get("id")))):
                render_panels(collect_panels(turn_data(updates, routers)))


def _ask(client: FlowloomClient, flow_id: str, thread_id: str, text: str,
         routers: dict[str, str]) -> None:
    with st.chat_message("user"):
        st.markdown(text)
    with st.chat_message("assistant"):
        reader = RunReader(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id,
            input={"messages": [{"role": "user", "content": text}]},
            stream_mode=STREAM_MODES))
        answer_box = st.empty()
        try:
            for segment in reader.segments():  # each streaming node replaces the last
                with answer_box.container():
                    st.write_stream(segment)
            reader.drain()
        except ApiError as exc:
            st.error(exc.message, icon=":material/error:")
            return
        if reader.answer and reader.answer != reader.streamed:
            answer_box.markdown(reader.answer)
        if reader.error is not None:
            error = reader.error
            st.error(f"The run failed: {error.get('error') or 'error'}: "
                     f"{error.get('message') or ''}".rstrip(": "), icon=":material/error:")
        elif not reader.answer:
            st.caption("The flow answered with no message.")
        render_panels(collect_panels(turn_data(reader.updates, routers)))


def page() -> None:
    st.title("Chat")
    client = api()
    with st.sidebar:
        flow_id = _pick_flow(client)
        thread_id = _thread_controls(client, flow_id) if flow_id else None
    if flow_id is None:
        return
    routers = _routers(client, flow_id)
    if thread_id is not None:
        _show_history(client, thread_id, routers)
    prompt = st.chat_input("Ask the flow")
    if prompt:
        if thread_id is None:
            made = call(client.create_thread, flow_id=flow_id, name=prompt[:40],
                        what="Could not create a thread")
            if made is None:
                return
            thread_id = made["thread_id"]
            st.session_state[NEXT_THREAD_KEY] = thread_id
            _ask(client, flow_id, thread_id, prompt, routers)
            st.rerun()  # the new thread joins the sidebar's list; its history reloads
        _ask(client, flow_id, thread_id, prompt, routers)
