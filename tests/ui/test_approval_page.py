"""Human approval in the UI: the Chat page shows what a paused thread waits on (a
`human.approve@1` request, or an `agent.tools@1` call of an approval-gated tool with its
arguments editable as JSON) and resumes it with Approve / Reject. AppTest against a real
API server on 127.0.0.1 (scripted models, see conftest), and the pure helpers of
`_approval`. (The Builder's run panel is tested in the browser: test_canvas_browser.py.)"""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from flowloom.ui.app._approval import (
    Pending,
    describe,
    pending_from_event,
    pending_from_state,
    resume_command,
    resume_value,
)
from flowloom.ui.app._view_chat import RunReader, message_text, turn_updates
from flowloom.ui.app._view_panels import router_fields, turn_data
from flowloom.ui.client import StreamEvent
from tests.ui.test_pages import chat_app, chat_with, no_errors, started, texts

# START → ask (human.approve) → approved: yes / rejected: no → END; no model involved.
APPROVAL_FLOW = {
    "id": "ap_chat",
    "name": "Approval",
    "state": {"messages": {"type": "messages"}, "approval": {"type": "string"},
              "note": {"type": "string"}, "why": {"type": "string"}},
    "nodes": [
        {"id": "ask", "type": "human.approve@1", "params": {
            "message": "Send a reply to: {{ last_message }}?", "show": ["messages"],
            "comment": "why"}},
        {"id": "yes", "type": "state.set@1", "params": {"values": {
            "note": "done",
            "messages": [{"role": "assistant", "content": "Approved: done."}]}}},
        {"id": "no", "type": "state.set@1", "params": {"values": {
            "note": "stopped", "messages": [{"role": "assistant", "content": "Stopped."}]}}},
    ],
    "edges": [{"source": "START", "target": "ask"},
              {"source": "ask", "target": "yes", "condition": "approved"},
              {"source": "ask", "target": "no", "condition": "rejected"},
              {"source": "yes", "target": "END"}, {"source": "no", "target": "END"}],
}

# An agent whose SQL tool waits for approval. The scripted model echoes the user's text,
# so a message that is a tool call's JSON makes the agent call it.
TOOL_FLOW = {
    "id": "ap_tool",
    "name": "Tool approval",
    "state": {"messages": {"type": "messages"}, "agent_steps": {"type": "array"}},
    "nodes": [{"id": "agent", "type": "agent.tools@1", "params": {
        "tools": [{"name": "sql_query", "config": {"database": "demo"}}],
        "mode": "react", "approve_tools": ["sql_query"]}}],
    "edges": [{"source": "START", "target": "agent"}, {"source": "agent", "target": "END"}],
}
TOOL_CALL = json.dumps({"name": "sql_query", "arguments": {"question": "How many customers?"}})


def waiting_on(ui_api, thread_id: str) -> dict:
    """The thread's one pending interrupt (as the API shows it)."""
    [pending] = ui_api.thread_state(thread_id)["interrupts"]
    return pending


def paused_thread(ui_api, flow: dict, text: str) -> tuple[AppTest, str, str]:
    """The chat page on a new thread of `flow`, after `text` made the run pause; the
    thread's id and the widget key of its request."""
    ui_api.save_flow(flow)
    at = chat_with(started(chat_app), flow["id"])
    at.button(key="chat_new").click().run()
    no_errors(at)
    thread_id = at.session_state["chat_thread"]
    at.chat_input[0].set_value(text).run()
    no_errors(at)
    assert [t["status"] for t in ui_api.threads(flow_id=flow["id"], limit=200)
            if t["thread_id"] == thread_id] == ["interrupted"]
    return at, thread_id, Pending(None, waiting_on(ui_api, thread_id)["id"]).key


def assert_waits(at: AppTest, key: str) -> None:
    """The request's form is shown and the chat input says the thread waits."""
    assert at.button(key=f"chat_approve_{key}").label == "Approve"
    assert at.button(key=f"chat_reject_{key}").label == "Reject"
    assert at.chat_input[0].disabled
    assert "waiting for approval" in at.chat_input[0].placeholder
    assert any("waiting for approval" in c.value for c in at.caption)


def assert_done(at: AppTest, key: str) -> None:
    """The request is gone and the chat input takes messages again."""
    assert not [b for b in at.button if b.key in (f"chat_approve_{key}",
                                                   f"chat_reject_{key}")]
    assert not at.chat_input[0].disabled
    assert at.chat_input[0].placeholder == "Ask the flow"


# -- chat: human.approve ------------------------------------------------------------------


def test_chat_shows_the_request_when_the_run_pauses_and_approve_finishes_it(ui_api):
    at, thread_id, key = paused_thread(ui_api, APPROVAL_FLOW, "refund order 7")
    # right after the stream: the question, the shown value, the buttons; no reload
    assert "refund order 7" in texts(at)  # the user's message
    assert any("Approval needed at `ask`" in t for t in texts(at))
    assert "Send a reply to: refund order 7?" in texts(at)
    assert "**messages**" in texts(at) and at.code[0].value == "refund order 7"
    assert_waits(at, key)
    assert "note" not in ui_api.thread_state(thread_id)["values"]

    # a fresh session on the thread shows the same request
    again = chat_with(started(chat_app), "ap_chat")
    again.selectbox(key="chat_thread").select(thread_id).run()
    no_errors(again)
    assert "Send a reply to: refund order 7?" in texts(again)
    assert_waits(again, key)

    at.text_input(key=f"chat_comment_{key}").input("looks right")
    at.button(key=f"chat_approve_{key}").click().run()
    no_errors(at)
    assert "Approved: done." in texts(at)  # the approved branch's answer, streamed in
    assert any(c.value == "Approved: looks right" for c in at.caption)
    assert any("`ask` chose **approved**" in t for t in texts(at))  # decision panel
    assert_done(at, key)
    state = ui_api.thread_state(thread_id)
    assert state["interrupts"] == [] and state["next"] == []
    assert (state["values"]["note"], state["values"]["approval"],
            state["values"]["why"]) == ("done", "approved", "looks right")
    assert [message_text(m) for m in state["values"]["messages"]] == [
        "refund order 7", "Approved: done."]

    # reloaded: the answer is in the history, the thread takes messages again
    again = chat_with(started(chat_app), "ap_chat")
    again.selectbox(key="chat_thread").select(thread_id).run()
    no_errors(again)
    assert texts(again).index("refund order 7") < texts(again).index("Approved: done.")
    assert_done(again, key)


def test_chat_reject_takes_the_rejected_branch(ui_api):
    at, thread_id, key = paused_thread(ui_api, APPROVAL_FLOW, "delete my account")
    assert_waits(at, key)
    at.text_input(key=f"chat_comment_{key}").input("not without a ticket")
    at.button(key=f"chat_reject_{key}").click().run()
    no_errors(at)
    assert "Stopped." in texts(at)
    assert "Approved: done." not in texts(at)
    assert any(c.value == "Rejected: not without a ticket" for c in at.caption)
    assert_done(at, key)
    values = ui_api.thread_state(thread_id)["values"]
    assert (values["note"], values["approval"], values["why"]) == (
        "stopped", "rejected", "not without a ticket")

    # the thread takes new messages again: the next one pauses again, a new request
    at.chat_input[0].set_value("and another").run()
    no_errors(at)
    second = Pending(None, waiting_on(ui_api, thread_id)["id"]).key
    assert second != key
    assert_waits(at, second)
    assert "Send a reply to: and another?" in texts(at)


def test_chat_shows_why_the_last_answer_was_not_understood(ui_api):
    at, thread_id, key = paused_thread(ui_api, APPROVAL_FLOW, "ship it")
    # another client resumed with something that is not a decision: asked again
    list(ui_api.stream_run(thread_id=thread_id, assistant_id="ap_chat", input=None,
                           command={"resume": "perhaps"}))
    retry = waiting_on(ui_api, thread_id)
    assert "'perhaps' is not a decision" in retry["value"]["error"]
    at.run()
    no_errors(at)
    new_key = Pending(None, retry["id"]).key
    assert_waits(at, new_key)
    assert any("did not understand the last answer" in w.value
               and "'perhaps' is not a decision" in w.value for w in at.warning)
    at.button(key=f"chat_approve_{new_key}").click().run()
    no_errors(at)
    assert "Approved: done." in texts(at)
    assert ui_api.thread_state(thread_id)["values"]["note"] == "done"


def test_chat_input_is_disabled_while_waiting_and_a_late_message_says_not_sent(ui_api):
    at, thread_id, key = paused_thread(ui_api, APPROVAL_FLOW, "first")
    assert at.chat_input[0].disabled  # AppTest, like a browser, cannot type into it

    # typed while the thread was idle, sent just after another client's run paused it
    at.button(key="chat_new").click().run()
    other = at.session_state["chat_thread"]
    assert not at.chat_input[0].disabled
    at.chat_input[0].set_value("typed here")
    list(ui_api.stream_run(thread_id=other, assistant_id="ap_chat",
                           input={"messages": [{"role": "user", "content": "from elsewhere"}]}))
    at.run()
    no_errors(at)
    assert any("Not sent: this thread is waiting for approval" in w.value for w in at.warning)
    assert "typed here" not in texts(at) and "Send a reply to: from elsewhere?" in texts(at)
    at.run()  # from the next rerun on, the input is disabled as usual
    assert_waits(at, Pending(None, waiting_on(ui_api, other)["id"]).key)
    assert [message_text(m) for m in ui_api.thread_state(other)["values"]["messages"]] == [
        "from elsewhere"]


# -- chat: tool approval -------------------------------------------------------------------


def test_chat_tool_call_is_approved_with_edited_arguments(ui_api):
    at, thread_id, key = paused_thread(ui_api, TOOL_FLOW, TOOL_CALL)
    assert_waits(at, key)
    assert any("Approve the call of `sql_query`?" in t for t in texts(at))
    assert any("The agent wants to call sql_query" in t for t in texts(at))
    area = at.text_area(key=f"chat_args_{key}")
    assert area.label == "Arguments (JSON)"
    assert json.loads(area.value) == {"question": "How many customers?"}
    pending_id = waiting_on(ui_api, thread_id)["id"]

    # bad JSON, then JSON that is not an object: an error by the form, nothing sent
    for bad, says in (('{"question": "How many', "not valid JSON"),
                      ('["How many orders?"]', "must be a JSON object")):
        at.text_area(key=f"chat_args_{key}").input(bad)
        at.button(key=f"chat_approve_{key}").click().run()
        assert not at.exception, at.exception
        assert [e.value for e in at.error if says in e.value], [e.value for e in at.error]
        assert_waits(at, key)
        assert at.text_area(key=f"chat_args_{key}").value == bad  # kept for fixing
        assert waiting_on(ui_api, thread_id)["id"] == pending_id
        assert "agent_steps" not in ui_api.thread_state(thread_id)["values"]

    at.text_area(key=f"chat_args_{key}").input('{"question": "How many orders?"}')
    at.button(key=f"chat_approve_{key}").click().run()
    no_errors(at)
    assert_done(at, key)
    state = ui_api.thread_state(thread_id)
    assert state["interrupts"] == []
    [step] = state["values"]["agent_steps"]
    assert step["tool"] == "sql_query" and step["args"] == {"question": "How many orders?"}
    answer = message_text(state["values"]["messages"][-1])
    assert answer.startswith("echo: Result of sql_query")
    assert answer in texts(at)  # streamed in as the answer


def test_chat_tool_call_rejected_with_a_comment(ui_api):
    at, thread_id, key = paused_thread(ui_api, TOOL_FLOW, TOOL_CALL)
    at.text_area(key=f"chat_args_{key}").input("{not json")  # ignored: not approving
    at.text_input(key=f"chat_comment_{key}").input("not now")
    at.button(key=f"chat_reject_{key}").click().run()
    no_errors(at)
    assert_done(at, key)
    [step] = ui_api.thread_state(thread_id)["values"]["agent_steps"]
    assert step == {"tool": "sql_query", "args": {"question": "How many customers?"},
                    "declined": "not now"}
    assert any("the user declined this call: not now" in t for t in texts(at))


# -- pure helpers ---------------------------------------------------------------------------


REQUEST = {"kind": "approval", "node": "ask", "message": "Send?",
           "values": {"messages": "hi"}, "accepts": "resume with true/false"}
TOOL_REQUEST = {"kind": "tool_approval", "node": "agent", "tool": "sql_query",
                "args": {"question": "How many?"}, "message": "Call it?", "accepts": "x"}
INTERRUPT_ID = "59ff86a57cdb87557da867df91d90bda"


def test_pending_from_a_thread_state_its_tasks_and_a_thread():
    item = {"value": REQUEST, "id": INTERRUPT_ID}
    state = {"values": {}, "next": ["ask"], "interrupts": [item],
             "tasks": [{"id": "t1", "name": "ask", "interrupts": [item]}]}
    [pending] = pending_from_state(state)
    assert (pending.id, pending.kind, pending.node, pending.message) == (
        INTERRUPT_ID, "approval", "ask", "Send?")
    assert pending.values == {"messages": "hi"} and pending.error is None
    assert pending.title == "Approval needed at `ask`" and pending.key == INTERRUPT_ID
    assert not pending.is_tool
    # only the tasks say it (older servers), or a thread's interrupts by task id
    assert pending_from_state({**state, "interrupts": []}) == [pending]
    assert pending_from_state({"interrupts": {"t1": [item]}}) == [pending]
    assert pending_from_state({"values": {"__interrupt__": [item]}}) == [pending]
    # nothing pending, or not a state at all
    assert pending_from_state({"values": {"x": 1}, "interrupts": [], "tasks": []}) == []
    assert pending_from_state(None) == [] and pending_from_state({"interrupts": 3}) == []


def test_pending_from_stream_events():
    item = {"value": TOOL_REQUEST, "id": "abc"}
    [pending] = pending_from_event("updates", {"__interrupt__": [item]})
    assert pending.is_tool and pending.tool == "sql_query"
    assert pending.args == {"question": "How many?"}
    assert json.loads(pending.args_text) == pending.args
    assert pending.title == "Approve the call of `sql_query`?"
    assert pending_from_event("values", {"messages": [], "__interrupt__": [item]}) == [pending]
    assert pending_from_event("values", {"messages": []}) is None
    assert pending_from_event("updates", {"ask": {"approval": "approved"}}) is None
    assert pending_from_event("messages", [{"__interrupt__": 1}, {}]) is None
    assert pending_from_event("updates", {"__interrupt__": [{"no": "value"}]}) == []


def test_pending_shapes_beyond_the_flow_nodes():
    plain = Pending("Continue?", None)  # a custom node's interrupt("Continue?")
    assert plain.message == "Continue?" and plain.kind is None and plain.values == {}
    assert plain.key == "request-interrupt"
    retried = Pending({**REQUEST, "error": "'x' is not a decision"}, "id/with odd:chars")
    assert retried.error == "'x' is not a decision"
    assert retried.key == "id_with_odd_chars"
    assert describe(retried) == "approval at ask: Send?"
    assert describe(Pending(TOOL_REQUEST)) == \
        'approval of the call sql_query({"question": "How many?"})'


def test_resume_value_and_command():
    approval = Pending(REQUEST, INTERRUPT_ID)
    assert resume_value(approval, approved=True) == {"approved": True, "comment": ""}
    assert resume_value(approval, approved=False, comment=" no ") == {
        "approved": False, "comment": "no"}
    value = {"approved": True, "comment": ""}
    assert resume_command(approval, value) == {"resume": value}
    assert resume_command(approval, value, several=True) == {
        "resume": {INTERRUPT_ID: value}}

    tool = Pending(TOOL_REQUEST, "t")
    # unchanged arguments are not sent back; edited ones are
    assert resume_value(tool, approved=True, args_text=tool.args_text) == value
    assert resume_value(tool, approved=True, args_text='{"question": "Fewer?"}') == {
        "approved": True, "comment": "", "args": {"question": "Fewer?"}}
    assert resume_value(tool, approved=True, args_text="  ") == value
    # rejecting never reads the arguments
    assert resume_value(tool, approved=False, args_text="{bad") == {
        "approved": False, "comment": ""}


@pytest.mark.parametrize(("text", "says"), [
    ('{"question": ', "not valid JSON: Expecting value at line 1 column 14"),
    ("[1, 2]", "must be a JSON object"),
    ('"just text"', "must be a JSON object"),
])
def test_resume_value_refuses_bad_arguments(text, says):
    with pytest.raises(ValueError, match=says):
        resume_value(Pending(TOOL_REQUEST), approved=True, args_text=text)


def ev(event: str, data) -> StreamEvent:
    return StreamEvent(event, data)


def test_run_reader_keeps_the_interrupt_and_no_stale_answer():
    earlier = {"type": "ai", "id": "a0", "content": "an earlier answer"}
    item = {"value": REQUEST, "id": INTERRUPT_ID}
    reader = RunReader([
        ev("metadata", {"run_id": "r"}),
        ev("values", {"messages": [earlier, {"type": "human", "id": "h1", "content": "q"}]}),
        ev("updates", {"__interrupt__": [item]}),
        ev("values", {"messages": [earlier, {"type": "human", "id": "h1", "content": "q"}],
                      "__interrupt__": [item]}),
    ])
    reader.drain()
    assert reader.paused and [p.id for p in reader.interrupts] == [INTERRUPT_ID]
    assert reader.updates == []  # `__interrupt__` is not a node's update
    assert reader.answer is None  # the earlier turn's answer is not this run's

    resumed = RunReader([
        ev("values", {"messages": [earlier]}),
        ev("updates", {"no": {"note": "stopped"}}),
        ev("values", {"messages": [earlier], "note": "stopped"}),
    ])
    resumed.drain()
    assert not resumed.paused and resumed.answer is None
    failed = RunReader([ev("updates", {"__interrupt__": [item]}),
                        ev("error", {"error": "E", "message": "m"})])
    failed.drain()
    assert not failed.paused


def test_turn_updates_give_a_resumed_task_to_the_run_that_resumed_it():
    history = [  # newest first, as a thread paused by r1 and approved by r2 has it
        {"metadata": {"run_id": "r2", "step": 2}, "tasks": []},
        {"metadata": {"run_id": "r2", "step": 1}, "tasks": [{"name": "answer", "result": {
            "messages": [{"type": "ai", "id": "a2", "content": "sent"}]}}]},
        {"metadata": {"run_id": "r1", "step": 0}, "tasks": [
            {"name": "ask", "interrupts": [{"value": REQUEST, "id": "i"}],
             "result": {"approval": "approved"}}]},
        {"metadata": {"run_id": "r1", "step": -1}, "tasks": [
            {"name": "__start__", "result": {"messages": [{"type": "human", "id": "h"}]}}]},
    ]
    by_answer = turn_updates(history)
    assert [n for n, _ in by_answer["a2"]] == ["ask", "answer"]
    assert turn_data(by_answer["a2"], {"ask": "approval"}).decisions == [
        ("ask", "approval", "approved")]
    # still waiting (no later run): the paused task stays with its own run
    assert turn_updates(history[2:]) == {}


def test_router_fields_count_approval_nodes():
    assert router_fields({"nodes": [
        {"id": "ask", "type": "human.approve@1", "params": {}},
        {"id": "ask2", "type": "human.approve@1", "params": {"output": "ok"}},
        {"id": "pick", "type": "router.condition@1", "params": {}},
        {"id": "set", "type": "state.set@1", "params": {"output": "x"}}]}) == {
        "ask": "approval", "ask2": "ok", "pick": "route"}
