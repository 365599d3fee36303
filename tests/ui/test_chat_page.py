"""The Chat page's run indicator, Stop, URL state, rename and re-joining a run, driven by
Streamlit's AppTest against a real API server on 127.0.0.1 (scripted models: a message
`slow N ...` waits N seconds before its first token, see conftest)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from streamlit.testing.v1 import AppTest

from flowloom.ui.app import chat
from flowloom.ui.app._view_chat import TICK, RunReader, activity, node_labels, ticking
from flowloom.ui.client import ApiError, StreamEvent
from tests.ui.test_pages import chat_app, chat_with, no_errors, started, texts


def _ask_in_background(client, thread_id: str, text: str, flow_id: str = "chat"):
    """Start a run the way another tab would, and wait until it runs."""
    events: list[StreamEvent] = []

    def go() -> None:
        events.extend(client.stream_run(
            thread_id=thread_id, assistant_id=flow_id,
            input={"messages": [{"role": "user", "content": text}]},
            stream_mode=chat.STREAM_MODES))

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    deadline = time.monotonic() + 20
    while not client.thread_runs(thread_id, status="running"):
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    return worker, events


def _messages(client, thread_id: str) -> list[tuple[str, str]]:
    values = client.thread_state(thread_id)["values"]
    return [(m["type"], m["content"]) for m in values.get("messages") or []]


# -- the run indicator (pure) ----------------------------------------------------------


def _task(task_id: str, name: str, done: bool = False) -> StreamEvent:
    ended: dict[str, Any] = {"result": {}, "error": None, "interrupts": []}
    begun: dict[str, Any] = {"input": {}, "triggers": ["x"]}
    return StreamEvent("tasks", {"id": task_id, "name": name, **(ended if done else begun)})


def test_run_reader_tracks_the_running_nodes_and_calls_back_per_event():
    seen: list[tuple[list[str], list[str]]] = []
    reader = RunReader([
        StreamEvent("metadata", {"run_id": "r"}),
        _task("t0", "__start__"),
        _task("t1", "retrieve"), _task("t1", "retrieve", done=True),
        _task("t2", "answer"),
        StreamEvent("messages", [{"type": "AIMessageChunk", "content": "Hi"},
                                 {"langgraph_node": "answer"}]),
        _task("t2", "answer", done=True),
    ], on_event=lambda r: seen.append((list(r.running.values()), list(r.finished))))
    assert [list(s) for s in reader.segments()] == [["Hi"]]
    assert seen == [([], []), ([], []), (["retrieve"], []), ([], ["retrieve"]),
                    (["answer"], ["retrieve"]), (["answer"], ["retrieve"]),
                    ([], ["retrieve", "answer"])]


def test_activity_names_the_running_nodes_by_label():
    labels = node_labels({"nodes": [{"id": "retrieve"}, {"id": "write_up", "label": "Draft"},
                                    {"id": "final_answer"}]})
    assert labels == {"retrieve": "Retrieve", "write_up": "Draft",
                      "final_answer": "Final answer"}
    assert activity([], [], labels, 0.4) == "Starting the run… · 0 s"
    assert activity(["retrieve"], [], labels, 3.6) == "Retrieve… running · 4 s"
    assert activity(["retrieve", "write_up"], [], labels, 1) == \
        "Retrieve, Draft… running · 1 s"
    assert activity([], ["retrieve"], labels, 2) == "Retrieve done; next step… · 2 s"
    assert activity(["unknown"], [], labels, 0) == "unknown… running · 0 s"


def test_ticking_ticks_while_nothing_arrives_and_raises_the_readers_error():
    def slow():
        yield StreamEvent("metadata", {"run_id": "r"})
        time.sleep(0.5)
        yield StreamEvent("values", {})

    names = [e.event for e in ticking(slow(), every=0.05)]
    assert names[0] == "metadata" and names[-1] == "values"
    assert names.count(TICK) >= 4

    def broken():
        yield StreamEvent("metadata", {})
        raise ApiError(0, "the run stream broke off")

    got = []
    try:
        for event in ticking(broken(), every=0.05):
            got.append(event.event)
    except ApiError as exc:
        assert exc.message == "the run stream broke off"
    else:
        raise AssertionError("the reader's error was swallowed")
    assert got[0] == "metadata"


def test_closing_ticking_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield StreamEvent("values", {})
                time.sleep(0.01)
        finally:
            closed.set()

    stream = ticking(endless(), every=0.05)
    next(stream)
    stream.close()
    assert closed.wait(5)


# -- the page --------------------------------------------------------------------------


def test_chat_shows_the_flows_description_and_clears_the_indicator(ui_api):
    at = chat_with(started(chat_app), "rag_chat")
    description = ui_api.flow("rag_chat")["description"]
    assert description and any(c.value == description for c in at.caption)
    at = chat_with(at, "chat")
    assert any(c.value == ui_api.flow("chat")["description"] for c in at.caption)
    at.button(key="chat_new").click().run()
    at.chat_input[0].set_value("hello indicator").run()
    no_errors(at)
    assert "echo: hello indicator" in texts(at)
    # the indicator and the Stop button are gone once the run has ended
    assert not [b for b in at.button if b.label == "Stop"]
    assert not at.get("expandable")  # st.status
    assert chat.RUN_KEY not in at.session_state


def test_a_new_threads_failed_first_run_is_still_said(ui_api):
    ui_api.save_flow({**ui_api.flow("chat"), "id": "fresh_chat"})
    at = chat_with(started(chat_app), "fresh_chat")
    assert not ui_api.threads(flow_id="fresh_chat")
    at.chat_input[0].set_value("boom").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The run failed: ValueError: the model exploded"]


def test_flow_and_thread_come_from_the_url_and_go_back_into_it(ui_api):
    thread = ui_api.create_thread(flow_id="triage", name="from the url")
    tid = thread["thread_id"]
    ui_api.create_thread(flow_id="triage", name="a newer one")
    at = AppTest.from_function(chat_app, default_timeout=60)
    at.query_params["flow"] = "triage"
    at.query_params["thread"] = tid
    at.run()
    no_errors(at)
    assert at.selectbox(key="chat_flow").value == "triage"
    assert at.selectbox(key="chat_thread").value == tid

    at.selectbox(key="chat_flow").select("chat").run()
    no_errors(at)
    assert at.query_params["flow"] == "chat"
    assert at.query_params.get("thread") != tid  # the thread follows the flow
    assert at.selectbox(key="chat_thread").value == at.query_params.get("thread")

    # a URL naming something that is not there falls back quietly
    odd = AppTest.from_function(chat_app, default_timeout=60)
    odd.query_params["flow"] = "no_such_flow"
    odd.query_params["thread"] = str(uuid.uuid4())
    odd.run()
    no_errors(odd)
    assert odd.selectbox(key="chat_flow").value != "no_such_flow"


def test_a_renamed_thread_is_labelled_at_once_and_an_empty_name_is_refused(ui_api):
    tid = ui_api.create_thread(flow_id="chat", name="before")["thread_id"]
    at = chat_with(started(chat_app), "chat")
    at.selectbox(key="chat_thread").select(tid).run()
    at.text_input(key=f"chat_name_{tid}").input("after").run()
    at.button(key="chat_rename").click().run()
    no_errors(at)
    assert at.selectbox(key="chat_thread").format_func(tid).startswith("after · ")
    assert at.session_state["chat_thread_label"].startswith("after · ")

    at.text_input(key=f"chat_name_{tid}").input("   ").run()
    at.button(key="chat_rename").click().run()
    assert [e.value for e in at.error] == ["A thread's name cannot be empty."]
    assert [t for t in ui_api.threads(flow_id="chat", limit=200)
            if t["thread_id"] == tid][0]["metadata"]["name"] == "after"


def _page_for(tid: str, flow_id: str = "chat") -> AppTest:
    at = AppTest.from_function(chat_app, default_timeout=60)
    at.query_params["flow"] = flow_id
    at.query_params["thread"] = tid
    return at


def test_stop_cancels_the_run_and_the_thread_stays_usable(ui_api):
    tid = ui_api.create_thread(flow_id="chat", name="stop me")["thread_id"]
    worker, _events = _ask_in_background(ui_api, tid, "slow 30 take your time")
    [run] = ui_api.thread_runs(tid, status="running")
    at = _page_for(tid)
    # what the Stop button's click leaves for the next script run
    at.session_state[chat.RUN_KEY] = {"thread_id": tid, "run_id": run["run_id"]}
    at.session_state[chat.STOP_KEY] = True
    started_at = time.monotonic()
    at.run()
    no_errors(at)
    assert time.monotonic() - started_at < 20  # not the 30 s the model would take
    assert at.selectbox(key="chat_thread").value == tid
    assert any(chat.STOPPED_NOTE in c.value for c in at.caption)
    worker.join(10)
    assert ui_api.thread_runs(tid)[0]["status"] == "interrupted"
    assert ui_api.threads(flow_id="chat", limit=200) and all(
        t["status"] != "busy" for t in ui_api.threads(flow_id="chat", limit=200)
        if t["thread_id"] == tid)
    assert _messages(ui_api, tid) == [("human", "slow 30 take your time")]

    # the next message gets one answer, as if the stopped turn had been unanswered
    at.chat_input[0].set_value("and now?").run()
    no_errors(at)
    assert "echo: and now?" in texts(at)
    assert _messages(ui_api, tid) == [("human", "slow 30 take your time"),
                                      ("human", "and now?"), ("ai", "echo: and now?")]

    # a fresh session shows the unanswered turn as such
    again = _page_for(tid)
    again.run()
    no_errors(again)
    assert any(chat.NO_ANSWER_NOTE in c.value for c in again.caption)


def test_stop_after_the_run_ended_says_so(ui_api):
    tid = ui_api.create_thread(flow_id="chat", name="too late")["thread_id"]
    worker, _ = _ask_in_background(ui_api, tid, "slow 0.5 quick")
    [run] = ui_api.thread_runs(tid, status="running")
    worker.join(20)
    at = _page_for(tid)
    at.session_state[chat.RUN_KEY] = {"thread_id": tid, "run_id": run["run_id"]}
    at.session_state[chat.STOP_KEY] = True
    at.run()
    no_errors(at)
    assert any("The run had already finished." in c.value for c in at.caption)
    assert "echo: slow 0.5 quick" in texts(at)


def test_an_unfinished_last_run_is_said_under_its_message(ui_api):
    tid = ui_api.create_thread(flow_id="chat", name="cut off")["thread_id"]
    _worker, _ = _ask_in_background(ui_api, tid, "slow 30 never mind")
    [run] = ui_api.thread_runs(tid, status="running")
    ui_api.cancel_run(tid, run["run_id"], wait=True)  # another client stopped it
    at = _page_for(tid)
    at.run()
    no_errors(at)
    assert any(chat.UNFINISHED_NOTE in c.value for c in at.caption)


def test_a_page_drawn_mid_run_follows_the_run_to_its_answer(ui_api):
    tid = ui_api.create_thread(flow_id="chat", name="rejoin")["thread_id"]
    worker, _ = _ask_in_background(ui_api, tid, "slow 2 still there?")
    at = _page_for(tid)
    at.run()
    no_errors(at)
    worker.join(20)
    # it followed the run while it went, then drew the thread as stored
    assert texts(at).count("echo: slow 2 still there?") == 1
    assert not any(chat.UNFINISHED_NOTE in c.value for c in at.caption)
    assert ui_api.thread_runs(tid)[0]["status"] == "success"
