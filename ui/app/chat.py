"""The chat page: talk to a flow on a thread, answers streamed token by token, with panels
for what the run produced (sources, SQL, numbers, router decisions) under each answer.

From the moment a run starts, an indicator names the node running (`Retrieve… running ·
4 s`, from the `tasks` stream mode) and a Stop button (`chat_stop_ask`, `chat_stop_resume`
or `chat_stop_rejoin`) cancels the run: what its finished nodes wrote stays, the thread is
idle again, and the turn says it was stopped. Its click stops the script that streams (the
page reads session state at least every `ticking` tick, which lets Streamlit stop it
even while no token comes); the next script cancels the run and waits for its end.
The flow and thread are kept in the URL (`?flow=…&thread=…`), so a reload restores them;
a page drawn while its thread's run is still going (a reload, another tab) follows that
run from its start.

A thread whose run paused for a person's approval shows the request under the
conversation (the message and shown values, or the tool call with its arguments editable
as JSON), a comment box and Approve / Reject; a decision resumes the thread and the rest
of the run streams in like an answer. While it waits, the chat input is disabled.
Widget keys, per request (`<key>` is `Pending.key`, the interrupt id): container
`chat_approval_<key>`, text area "Arguments (JSON)" `chat_args_<key>` (tool calls),
text input "Comment" `chat_comment_<key>`, buttons `chat_approve_<key>` /
`chat_reject_<key>`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from flowloom.ui.app._approval import (
    Pending,
    pending_from_state,
    resume_command,
    resume_value,
)
from flowloom.ui.app._view_chat import (
    RunReader,
    activity,
    is_ai,
    message_text,
    node_labels,
    sort_threads,
    thread_label,
    thread_labels,
    ticking,
    turn_updates,
)
from flowloom.ui.app._view_panels import collect_panels, render_panels, router_fields, turn_data
from flowloom.ui.app.common import api, call
from flowloom.ui.client import ApiError, FlowloomClient, StreamEvent

__all__ = ["STREAM_MODES", "page"]

STREAM_MODES = ["messages-tuple", "values", "updates", "tasks"]
FLOW_KEY, THREAD_KEY, CONFIRM_KEY = "chat_flow", "chat_thread", "chat_confirm_delete"
URL_READ_KEY = "chat_url_read"  # the session took its first selection from the URL
RUN_KEY = "chat_run"  # {thread_id, run_id} of the run this session is showing live
STOP_KEY = "chat_stop_requested"  # set by the Stop button's click, before the rerun
NOTE_KEY = "chat_turn_note"  # {thread_id, text, icon}: how the last turn ended, if oddly
RENAME_PROBLEM_KEY = "chat_rename_problem"
LABEL_KEY = "chat_thread_label"  # the thread picker's label as the browser last got it
STOPPED_NOTE = "Stopped: the run was cancelled before it finished."
NO_ANSWER_NOTE = "No answer to this message."
UNFINISHED_NOTE = ("The last run did not finish (it was stopped, or it failed): "
                   "this message has no answer.")
NEXT_THREAD_KEY = "chat_next_thread"  # a selection to apply before the widget is drawn
RESUME_KEY = "chat_resume"  # a decision to send, queued by an Approve / Reject click
PROMPT_KEY = "chat_prompt"  # keyed: its identity survives the placeholder changing
INPUT_OPEN_KEY = "chat_input_open"  # the thread the chat input was last drawn enabled for
WAITING_NOTE = "This thread is waiting for approval: approve or reject the request above"


@dataclass(frozen=True)
class _FlowView:
    """What the page reads from a flow's document: its routers and its nodes' names."""

    routers: dict[str, str]
    labels: dict[str, str]


def _flow_view(client: FlowloomClient, flow_id: str) -> _FlowView:
    try:
        document = client.flow(flow_id)
    except ApiError:
        return _FlowView({}, {})
    return _FlowView(router_fields(document), node_labels(document))


def _url_choice(param: str, key: str, choices: list[str]) -> None:
    """On the session's first draw, take the URL's choice (a reload keeps the page's)."""
    if not st.session_state.get(URL_READ_KEY) and st.query_params.get(param) in choices:
        st.session_state[key] = st.query_params[param]


def _keep_in_url(param: str, value: str | None) -> None:
    if value is None:
        if param in st.query_params:
            del st.query_params[param]
    elif st.query_params.get(param) != value:
        st.query_params[param] = value


def _pick_flow(client: FlowloomClient) -> dict | None:
    """The chosen flow's listing (`{id, name, description}`), or None."""
    flows = call(client.flows, what="Could not list flows")
    if flows is None:
        return None
    if not flows:
        st.info("No flows on the server yet: build one on the Builder page.")
        return None
    by_id = {f["id"]: f for f in flows}
    names = {i: f.get("name") or i for i, f in by_id.items()}
    ids = list(names)
    _url_choice("flow", FLOW_KEY, ids)
    if st.session_state.get(FLOW_KEY) not in ids:
        st.session_state[FLOW_KEY] = ids[0]
    flow_id = st.selectbox("Flow", ids, key=FLOW_KEY,
                           format_func=lambda i: f"{names[i]} ({i})" if names[i] != i else i)
    _keep_in_url("flow", flow_id)
    return by_id.get(flow_id)


def _rename(client: FlowloomClient, thread_id: str) -> None:
    """Save name clicked: rename before the page is drawn again, so the list shows it."""
    name = (st.session_state.get(f"chat_name_{thread_id}") or "").strip()
    if not name:
        st.session_state[RENAME_PROBLEM_KEY] = "A thread's name cannot be empty."
        return
    try:
        client.rename_thread(thread_id, name)
    except ApiError as exc:
        st.session_state[RENAME_PROBLEM_KEY] = f"Could not rename: {exc.message}"


def _thread_controls(client: FlowloomClient, flow_id: str) -> dict | None:
    """The thread picker and its buttons; the chosen thread (as the API lists it)."""
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
    _url_choice("thread", THREAD_KEY, ids)
    if st.session_state.get(THREAD_KEY) not in ids:
        st.session_state[THREAD_KEY] = ids[0]
    labels = thread_labels(by_id.values())
    chosen = st.session_state[THREAD_KEY]
    if st.session_state.get(LABEL_KEY) != labels[chosen]:
        # The browser shows the label it was last sent; setting the value again sends
        # the new one (a renamed thread is shown at once, not after another click).
        st.session_state[THREAD_KEY] = chosen
        st.session_state[LABEL_KEY] = labels[chosen]
    thread_id = st.selectbox("Thread", ids, key=THREAD_KEY, format_func=labels.__getitem__)
    st.session_state[LABEL_KEY] = labels[thread_id]
    current = (by_id[thread_id].get("metadata") or {}).get("name") or ""
    with st.popover("Rename", icon=":material/edit:"):
        st.text_input("Name", value=current, key=f"chat_name_{thread_id}")
        st.button("Save name", key="chat_rename", on_click=_rename, args=(client, thread_id))
        if problem := st.session_state.pop(RENAME_PROBLEM_KEY, None):
            st.error(problem, icon=":material/error:")
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
    return by_id[thread_id]


def _show_history(client: FlowloomClient, thread_id: str, view: _FlowView,
                  busy: bool) -> dict | None:
    """Draw the thread's conversation; its state (None when it could not be loaded). A
    last run that did not finish (stopped, or failed) is said under its message."""
    state = call(client.thread_state, thread_id, what="Could not load the thread")
    messages = ((state or {}).get("values") or {}).get("messages") or []
    try:
        per_turn = turn_updates(client.thread_history(thread_id, limit=200))
    except ApiError:
        per_turn = {}  # history is a nicety: the messages alone still make the chat
    previous = None
    for message in messages:
        kind = message.get("type")
        if kind not in ("human", "ai") or not (text := message_text(message)):
            continue
        if kind == previous == "human":  # a turn whose run was stopped or failed
            with st.chat_message("assistant"):
                st.caption(f":material/block: {NO_ANSWER_NOTE}")
        previous = kind
        with st.chat_message("user" if kind == "human" else "assistant"):
            st.markdown(text)
            if is_ai(message) and (updates := per_turn.get(str(message.get("id")))):
                render_panels(collect_panels(turn_data(updates, view.routers)))
    note = st.session_state.get(NOTE_KEY) or {}
    if note.get("thread_id") == thread_id:
        with st.chat_message("assistant"):
            if note.get("icon") == "error":
                st.error(str(note.get("text")), icon=":material/error:")
            else:
                st.caption(f":material/{note.get('icon') or 'info'}: {note.get('text')}")
    elif (state and state.get("next") and not busy and not pending_from_state(state)
          and messages and messages[-1].get("type") == "human"):
        with st.chat_message("assistant"):
            st.caption(f":material/warning: {UNFINISHED_NOTE}")
    return state


def _request_stop() -> None:
    st.session_state[STOP_KEY] = True


def _stop(client: FlowloomClient) -> None:
    """Stop clicked (the click stopped the script that was streaming): cancel the run,
    waiting until it has ended, so the conversation drawn next is the one stored."""
    requested = st.session_state.pop(STOP_KEY, False)
    active = st.session_state.pop(RUN_KEY, None)
    if not requested or not isinstance(active, dict):
        return
    thread_id, run_id = active.get("thread_id"), active.get("run_id")
    if not thread_id or not run_id:
        return
    try:
        client.cancel_run(thread_id, run_id, wait=True)
    except ApiError as exc:
        text = ("The run had already finished." if exc.status == 404
                else f"Could not stop the run: {exc.message}")
    else:
        text = STOPPED_NOTE
    st.session_state[NOTE_KEY] = {"thread_id": thread_id, "text": text,
                                  "icon": "stop_circle"}


def _failure(error: dict) -> str:
    return (f"The run failed: {error.get('error') or 'error'}: "
            f"{error.get('message') or ''}").rstrip(": ")


def _follow(events: Iterator[StreamEvent], thread_id: str, view: _FlowView, *,
            where: str, running_for_s: float = 0.0) -> RunReader | None:
    """Show a run in the current chat message as it streams: which node runs (from the
    first moment), a Stop button (`chat_stop_<where>`), the answer token by token, then
    its panels. None when the stream broke."""
    indicator, stop_box, answer_box = st.empty(), st.empty(), st.empty()
    status = indicator.status("Starting the run…", state="running")
    stop_box.button("Stop", key=f"chat_stop_{where}", icon=":material/stop_circle:",
                    on_click=_request_stop, help="Cancel this run")
    shown = [""]

    def on_event(reader: RunReader) -> None:
        if reader.run_id and not st.session_state.get(RUN_KEY):
            st.session_state[RUN_KEY] = {"thread_id": thread_id, "run_id": reader.run_id}
        text = activity(reader.running.values(), reader.finished, view.labels,
                        reader.elapsed_s)
        if text != shown[0]:
            shown[0] = text
            status.update(label=text)
        else:  # reading session state lets Streamlit stop the script here (a click)
            st.session_state.get(STOP_KEY)

    reader = RunReader(ticking(events), on_event=on_event)
    reader.started_at -= running_for_s
    # A click while this streams stops the script (Streamlit raises at the next redraw):
    # the run's id stays in RUN_KEY for the next script, which stops or follows it.
    try:
        for segment in reader.segments():  # each streaming node replaces the last
            with answer_box.container():
                st.write_stream(segment)
        reader.drain()
    except ApiError as exc:
        broke: str | None = exc.message
    else:
        broke = None
    indicator.empty()
    stop_box.empty()
    st.session_state.pop(RUN_KEY, None)
    if broke is not None:
        st.error(broke, icon=":material/error:")
        return None
    if reader.answer and reader.answer != reader.streamed:
        answer_box.markdown(reader.answer)
    if reader.error is not None:
        st.error(_failure(reader.error), icon=":material/error:")
    elif reader.paused:
        st.caption("The run is waiting for approval.")
    elif not reader.answer:
        st.caption("The flow answered with no message.")
    render_panels(collect_panels(turn_data(reader.updates, view.routers)))
    return reader


def _ask(client: FlowloomClient, flow_id: str, thread_id: str, text: str,
         view: _FlowView) -> RunReader | None:
    st.session_state.pop(NOTE_KEY, None)
    with st.chat_message("user"):
        st.markdown(text)
    with st.chat_message("assistant"):
        return _follow(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id,
            input={"messages": [{"role": "user", "content": text}]},
            stream_mode=STREAM_MODES), thread_id, view, where="ask")


def _unless_ended(events: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    """A joined run's events; none when it ended before the join (404)."""
    try:
        yield from events
    except ApiError as exc:
        if exc.status != 404:
            raise


def _age_s(created_at: object) -> float:
    """Seconds since an API timestamp (ISO 8601, UTC); 0 when it is not one."""
    try:
        when = datetime.fromisoformat(str(created_at).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - when).total_seconds())


def _rejoin(client: FlowloomClient, thread_id: str, view: _FlowView) -> RunReader | None:
    """Follow the thread's run that is still going (the page was reloaded, or a click cut
    off the script that was streaming it), from its start; None when there is none."""
    try:
        running = client.thread_runs(thread_id, status="running", limit=1)
    except ApiError:
        running = []
    if not running:
        st.session_state.pop(RUN_KEY, None)
        return None
    run = running[0]
    with st.chat_message("assistant"):
        return _follow(_unless_ended(client.join_stream(thread_id, run["run_id"])),
                       thread_id, view, where="rejoin",
                       running_for_s=_age_s(run.get("created_at")))


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
            view: _FlowView) -> None:
    """Send a queued decision: the rest of the run streams in as the answer."""
    with st.chat_message("assistant"):
        verdict = "Approved" if queued.get("approved") else "Rejected"
        comment = queued.get("comment") or ""
        st.caption(f"{verdict}" + (f": {comment}" if comment else ""))
        _follow(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id, input=None,
            command=queued["command"], stream_mode=STREAM_MODES), thread_id, view,
                where="resume")


def _waiting_requests(client: FlowloomClient, flow_id: str, thread_id: str,
                      state: dict | None, view: _FlowView) -> list[Pending]:
    """Send a queued decision, if any; then what the thread still waits on, as forms."""
    queued = st.session_state.pop(RESUME_KEY, None)
    if isinstance(queued, dict) and queued.get("thread_id") == thread_id:
        _resume(client, flow_id, thread_id, queued, view)
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
    _stop(client)
    with st.sidebar:
        flow = _pick_flow(client)
        flow_id = flow["id"] if flow else None
        thread = _thread_controls(client, flow_id) if flow_id else None
    thread_id = thread["thread_id"] if thread else None
    st.session_state[URL_READ_KEY] = True
    _keep_in_url("thread", thread_id)
    if flow is None or flow_id is None:
        return
    if description := str(flow.get("description") or "").strip():
        st.caption(description)
    view = _flow_view(client, flow_id)
    waiting: list[Pending] = []
    rejoined: RunReader | None = None
    if thread is not None and thread_id is not None:
        busy = thread.get("status") == "busy"  # a run goes on (this session's, cut off?)
        state = _show_history(client, thread_id, view, busy)
        if busy:
            rejoined = _rejoin(client, thread_id, view)
        waiting = _waiting_requests(client, flow_id, thread_id, state, view)
    # Disabled while the thread waits, except in the one run after the input was drawn
    # enabled for this thread: a message typed then (as another client's run paused the
    # thread) is read and refused aloud, never dropped silently as a disabled input would.
    late = thread_id is not None and st.session_state.get(INPUT_OPEN_KEY) == thread_id
    prompt = st.chat_input(f"{WAITING_NOTE}." if waiting else "Ask the flow",
                           key=PROMPT_KEY, disabled=bool(waiting) and not late)
    st.session_state[INPUT_OPEN_KEY] = None if waiting else thread_id
    if rejoined is not None and not prompt:
        st.rerun()  # the run it followed has ended: draw the thread as stored
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
            first = _ask(client, flow_id, thread_id, prompt, view)
            if first is not None and first.error is not None:  # said again after the rerun
                st.session_state[NOTE_KEY] = {"thread_id": thread_id, "icon": "error",
                                              "text": _failure(first.error)}
            st.rerun()  # the new thread joins the sidebar's list; its history reloads
        reader = _ask(client, flow_id, thread_id, prompt, view)
        if reader is not None and reader.paused:
            st.session_state[INPUT_OPEN_KEY] = None
            st.rerun()  # the request shows under the conversation; the input waits
