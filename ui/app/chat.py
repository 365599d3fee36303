"""The chat page: talk to a flow on a thread, answers streamed token by token, with panels
for what the run produced (sources, SQL, numbers, router decisions) under each answer.

A thread whose run paused for a person's approval shows the request under the
conversation (the message and shown values, or the tool call with its arguments editable
as JSON), a comment box and Approve / Reject; a decision resumes the thread and the rest
of the run streams in like an answer. While it waits, the chat input is disabled.
Widget keys, per request (`<key>` is `Pending.key`, the interrupt id): container
`chat_approval_<key>`, text area "Arguments (JSON)" `chat_args_<key>` (tool calls),
text input "Comment" `chat_comment_<key>`, buttons `chat_approve_<key>` /
`chat_reject_<key>`."""

from __future__ import annotations

import streamlit as st

from flowloom.ui.app._approval import (
    Pending,
    pending_from_state,
    resume_command,
    resume_value,
)
from flowloom.ui.app._view_chat import (
    RunReader,
    is_ai,
    message_text,
    sort_threads,
    thread_label,
    thread_labels,
    turn_updates,
)
from flowloom.ui.app._view_panels import collect_panels, render_panels, router_fields, turn_data
from flowloom.ui.app.common import api, call
from flowloom.ui.client import ApiError, FlowloomClient

__all__ = ["STREAM_MODES", "page"]

STREAM_MODES = ["messages-tuple", "values", "updates"]
FLOW_KEY, THREAD_KEY, CONFIRM_KEY = "chat_flow", "chat_thread", "chat_confirm_delete"
NEXT_THREAD_KEY = "chat_next_thread"  # a selection to apply before the widget is drawn
RESUME_KEY = "chat_resume"  # a decision to send, queued by an Approve / Reject click
PROMPT_KEY = "chat_prompt"  # keyed: its identity survives the placeholder changing
INPUT_OPEN_KEY = "chat_input_open"  # the thread the chat input was last drawn enabled for
WAITING_NOTE = "This thread is waiting for approval: approve or reject the request above"


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
    labels = thread_labels(by_id.values())
    thread_id = st.selectbox("Thread", ids, key=THREAD_KEY, format_func=labels.__getitem__)
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


def _show_history(client: FlowloomClient, thread_id: str,
                  routers: dict[str, str]) -> dict | None:
    """Draw the thread's conversation; its state (None when it could not be loaded)."""
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
    return state


def _stream_answer(reader: RunReader, routers: dict[str, str]) -> RunReader | None:
    """Stream a run's answer into the current chat message; None when the stream broke."""
    answer_box = st.empty()
    try:
        for segment in reader.segments():  # each streaming node replaces the last
            with answer_box.container():
                st.write_stream(segment)
        reader.drain()
    except ApiError as exc:
        st.error(exc.message, icon=":material/error:")
        return None
    if reader.answer and reader.answer != reader.streamed:
        answer_box.markdown(reader.answer)
    if reader.error is not None:
        error = reader.error
        st.error(f"The run failed: {error.get('error') or 'error'}: "
                 f"{error.get('message') or ''}".rstrip(": "), icon=":material/error:")
    elif reader.paused:
        st.caption("The run is waiting for approval.")
    elif not reader.answer:
        st.caption("The flow answered with no message.")
    render_panels(collect_panels(turn_data(reader.updates, routers)))
    return reader


def _ask(client: FlowloomClient, flow_id: str, thread_id: str, text: str,
         routers: dict[str, str]) -> RunReader | None:
    with st.chat_message("user"):
        st.markdown(text)
    with st.chat_message("assistant"):
        return _stream_answer(RunReader(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id,
            input={"messages": [{"role": "user", "content": text}]},
            stream_mode=STREAM_MODES)), routers)


# -- approval ---------------------------------------------------------------------------


def _decide(thread_id: str, pending: Pending, approved: bool, several: bool) -> None:
    """Approve / Reject clicked: queue the resume command, or keep the form's problem."""
    key = pending.key
    comment = st.session_state.get(f"chat_comment_{key}") or ""
    try:
        value = resume_value(pending, approved=approved, comment=comment,
                             args_text=st.session_state.get(f"chat_args_{key}"))
    except ValueError as exc:
        st.session_state[f"chat_problem_{key}"] = str(exc)
        return
    st.session_state.pop(f"chat_problem_{key}", None)
    st.session_state[RESUME_KEY] = {
        "thread_id": thread_id, "command": resume_command(pending, value, several=several),
        "approved": approved, "comment": value["comment"]}


def _show_value(name: str, value: object) -> None:
    st.markdown(f"**{name}**")
    if isinstance(value, str):
        st.code(value, language=None, wrap_lines=True)
    else:
        st.json(value, expanded=True)


def _approval_form(thread_id: str, pending: Pending, several: bool) -> None:
    key = pending.key
    with st.container(border=True, key=f"chat_approval_{key}"):
        st.markdown(f":material/pending_actions: **{pending.title}**")
        if pending.message:
            st.markdown(pending.message)
        if pending.is_tool:
            st.text_area("Arguments (JSON)", value=pending.args_text, key=f"chat_args_{key}",
                         height=68 + 24 * min(8, pending.args_text.count("\n")),
                         help="Edit the arguments before approving, if need be.")
        elif pending.values:
            for name, value in pending.values.items():
                _show_value(name, value)
        elif pending.kind is None and not isinstance(pending.value, str):
            st.json(pending.value, expanded=True)
        if pending.error:
            st.warning(f"The flow did not understand the last answer: {pending.error}",
                       icon=":material/warning:")
        st.text_input("Comment", key=f"chat_comment_{key}", placeholder="Optional")
        if problem := st.session_state.pop(f"chat_problem_{key}", None):
            st.error(problem, icon=":material/error:")
        yes, no = st.columns(2)
        yes.button("Approve", key=f"chat_approve_{key}", type="primary",
                   icon=":material/check:", on_click=_decide,
                   args=(thread_id, pending, True, several), width="stretch")
        no.button("Reject", key=f"chat_reject_{key}", icon=":material/close:",
                  on_click=_decide, args=(thread_id, pending, False, several),
                  width="stretch")


def _resume(client: FlowloomClient, flow_id: str, thread_id: str, queued: dict,
            routers: dict[str, str]) -> None:
    """Send a queued decision: the rest of the run streams in as the answer."""
    with st.chat_message("assistant"):
        verdict = "Approved" if queued.get("approved") else "Rejected"
        comment = queued.get("comment") or ""
        st.caption(f"{verdict}" + (f": {comment}" if comment else ""))
        _stream_answer(RunReader(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id, input=None,
            command=queued["command"], stream_mode=STREAM_MODES)), routers)


def _waiting_requests(client: FlowloomClient, flow_id: str, thread_id: str,
                      state: dict | None, routers: dict[str, str]) -> list[Pending]:
    """Send a queued decision, if any; then what the thread still waits on, as forms."""
    queued = st.session_state.pop(RESUME_KEY, None)
    if isinstance(queued, dict) and queued.get("thread_id") == thread_id:
        _resume(client, flow_id, thread_id, queued, routers)
        try:  # the run may have paused again, or failed before its interrupt was answered
            state = client.thread_state(thread_id)
        except ApiError as exc:
            st.error(f"Could not reload the thread: {exc.message}", icon=":material/error:")
            return []
    pending = pending_from_state(state)
    for request in pending:
        _approval_form(thread_id, request, len(pending) > 1)
    return pending


def page() -> None:
    st.title("Chat")
    client = api()
    with st.sidebar:
        flow_id = _pick_flow(client)
        thread_id = _thread_controls(client, flow_id) if flow_id else None
    if flow_id is None:
        return
    routers = _routers(client, flow_id)
    waiting: list[Pending] = []
    if thread_id is not None:
        state = _show_history(client, thread_id, routers)
        waiting = _waiting_requests(client, flow_id, thread_id, state, routers)
    # Disabled while the thread waits, except in the one run after the input was drawn
    # enabled for this thread: a message typed then (as another client's run paused the
    # thread) is read and refused aloud, never dropped silently as a disabled input would.
    late = thread_id is not None and st.session_state.get(INPUT_OPEN_KEY) == thread_id
    prompt = st.chat_input(f"{WAITING_NOTE}." if waiting else "Ask the flow",
                           key=PROMPT_KEY, disabled=bool(waiting) and not late)
    st.session_state[INPUT_OPEN_KEY] = None if waiting else thread_id
    if waiting:
        st.caption(f"{WAITING_NOTE} before sending a new message, or start a new thread.")
        if prompt:
            st.warning("Not sent: this thread is waiting for approval. Approve or reject "
                       "the request above first.", icon=":material/pending_actions:")
        return
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
        reader = _ask(client, flow_id, thread_id, prompt, routers)
        if reader is not None and reader.paused:
            st.session_state[INPUT_OPEN_KEY] = None
            st.rerun()  # the request shows under the conversation; the input waits
