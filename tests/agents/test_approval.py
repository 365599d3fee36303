"""Human approval: `human.approve@1` and `agent.tools` with `approve_tools` pause the run
(LangGraph interrupt) on a real SQLite checkpointer and resume with `Command(resume=...)`;
a decision that cannot be read pauses again with an error, never fails the run. The agent's
model replies and tool results before the pause are replayed, not asked again."""

from __future__ import annotations

import json
import uuid

import pytest
from langgraph.types import Command

from flowloom.agents.approve import Decision, parse_decision
from flowloom.flows.checkpoint import open_checkpointer
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowValidationError
from flowloom.flows.loader import load_flow
from tests.agents.test_tools_agent import agent_flow, call, scripted


def on_generate(models, hook):
    """Call `hook(kwargs)` before each of the scripted model's replies (it may raise);
    returns the unwrapped `chat_model`."""
    original = models.chat_model

    def chat_model(*args, **kwargs):
        model = original(*args, **kwargs)
        real = model._generate

        def generate(messages, stop=None, run_manager=None, **kw):
            hook(kw)
            return real(messages, stop, run_manager, **kw)
        object.__setattr__(model, "_generate", generate)
        return model

    models.chat_model = chat_model
    return original


def approve_flow() -> dict:
    return {
        "schema_version": 1, "id": "approve_test", "name": "Approve test",
        "state": {"messages": {"type": "messages"}, "approval": {"type": "string"},
                  "note": {"type": "string"}, "why": {"type": "string"}},
        "nodes": [
            {"id": "ask", "type": "human.approve@1", "params": {
                "message": "Send this reply? {{ last_message }}", "show": ["messages"],
                "comment": "why"}},
            {"id": "yes", "type": "state.set@1", "params": {"values": {"note": "sent"}}},
            {"id": "no", "type": "state.set@1", "params": {"values": {"note": "held"}}},
        ],
        "edges": [{"source": "START", "target": "ask"},
                  {"source": "ask", "target": "yes", "condition": "approved"},
                  {"source": "ask", "target": "no", "condition": "rejected"},
                  {"source": "yes", "target": "END"}, {"source": "no", "target": "END"}],
    }


@pytest.fixture
async def saver(tmp_path):
    async with open_checkpointer(f"sqlite:///{tmp_path / 'threads.db'}") as s:
        yield s


def thread() -> dict:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


@pytest.mark.parametrize(("value", "expected"), [
    (True, Decision(True)), ("Reject", Decision(False)),
    ({"approved": True, "comment": "fine"}, Decision(True, "fine")),
    ({"decision": "deny"}, Decision(False)),
])
def test_decisions_are_read_in_the_shapes_clients_send(value, expected):
    assert parse_decision(value) == expected


@pytest.mark.parametrize("value", ["maybe", 3, {"approved": "yes"}, {"comment": "x"},
                                   {"approved": True, "args": {"q": 1}}])
def test_what_is_not_a_decision_says_what_is_accepted(value):
    problem = parse_decision(value)
    assert isinstance(problem, str) and ("approved" in problem or "args" in problem)


@pytest.mark.parametrize(("decision", "note"), [({"approved": True}, "sent"),
                                                ({"approved": False, "comment": "no"},
                                                 "held")])
async def test_human_approve_pauses_then_branches_on_the_decision(saver, decision, note):
    graph = compile_flow(load_flow(approve_flow()).flow, checkpointer=saver)
    config = thread()
    out = await graph.ainvoke({"messages": [("user", "Refund order 7")]}, config)
    [pending] = out["__interrupt__"]
    assert pending.value["kind"] == "approval" and pending.value["node"] == "ask"
    assert pending.value["message"] == "Send this reply? Refund order 7"
    assert pending.value["values"] == {"messages": "Refund order 7"}
    assert "note" not in out  # nothing past the pause ran
    state = await graph.aget_state(config)
    assert state.next == ("ask",)

    out = await graph.ainvoke(Command(resume=decision), config)
    assert out["note"] == note and out["approval"] in ("approved", "rejected")
    assert out["why"] == decision.get("comment", "")
    assert (await graph.aget_state(config)).next == ()


async def test_a_bad_decision_pauses_again_with_the_error(saver):
    graph = compile_flow(load_flow(approve_flow()).flow, checkpointer=saver)
    config = thread()
    await graph.ainvoke({"messages": [("user", "Refund")]}, config)
    out = await graph.ainvoke(Command(resume="perhaps"), config)
    [pending] = out["__interrupt__"]
    assert "'perhaps' is not a decision" in pending.value["error"]
    out = await graph.ainvoke(Command(resume="approve"), config)
    assert out["note"] == "sent"


def test_approve_tools_must_be_tools_the_agent_has():
    with pytest.raises(FlowValidationError, match="kb_search") as info:
        load_flow(agent_flow(approve_tools=["kb_search"]))
    assert "nodes[0].params" in str(info.value)


def _sql_agent(calls_seen: list[str]):
    def agent(messages, turn):
        first = str(messages[0].content)
        calls_seen.append(first[:40])
        if "from these tool results" in first:
            return "Answered from the results."
        if messages[-1].type == "human" and str(messages[-1].content).startswith("Result"):
            return "There are some customers."
        return call("sql_query", question="How many customers?")
    return agent


async def test_an_approved_tool_call_runs_once_and_the_model_is_not_asked_again(saver,
                                                                               tmp_path):
    seen: list[str] = []
    models = scripted(_sql_agent(seen))
    doc = agent_flow(approve_tools=["sql_query"])
    graph = compile_flow(load_flow(doc).flow, checkpointer=saver,
                         ctx=BuildContext(models=models, data_dir=tmp_path))
    config = thread()
    out = await graph.ainvoke({"messages": [("user", "How many customers?")]}, config)
    [pending] = out["__interrupt__"]
    assert pending.value["kind"] == "tool_approval"
    assert pending.value["tool"] == "sql_query"
    assert pending.value["args"] == {"question": "How many customers?"}
    asked = len(models.calls)
    assert asked == 1  # the agent's first turn, nothing run yet

    edited = {"question": "How many customers are there?"}
    out = await graph.ainvoke(Command(resume={"approved": True, "args": edited}), config)
    [step] = out["agent_steps"]
    assert step["args"] == edited and step["result"]["rows"][0][0] > 0
    assert out["messages"][-1].content == "There are some customers."
    # resumed: the first reply was replayed from the checkpoint; the SQL tool's own
    # model call and the agent's answer are the only new calls
    assert len(models.calls) == asked + 2


async def test_a_declined_tool_call_is_an_observation(saver, tmp_path):
    models = scripted(_sql_agent([]))
    graph = compile_flow(load_flow(agent_flow(approve_tools=["sql_query"])).flow,
                         checkpointer=saver, ctx=BuildContext(models=models, data_dir=tmp_path))
    config = thread()
    await graph.ainvoke({"messages": [("user", "How many customers?")]}, config)
    out = await graph.ainvoke(Command(resume={"approved": False, "comment": "not now"}),
                              config)
    steps = out["agent_steps"]
    assert steps[0] == {"tool": "sql_query", "args": {"question": "How many customers?"},
                        "declined": "not now"}
    observed = [str(m.content) for c in models.calls for m in c if m.type == "human"]
    assert any("declined this call: not now" in text for text in observed)


async def test_structured_output_is_validated_and_retried(tmp_path):
    doc = agent_flow(mode="choose", structured={"fields": {
        "count": {"type": "integer", "description": "how many"},
        "unit": {"type": "string"}}})
    doc["state"]["answer_data"] = {"type": "object"}
    replies = iter(['{"count": "many"}', '{"count": 3, "unit": "customers"}'])
    formats = []

    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            return "none"
        if "Write the answer below as one JSON object" in first:
            return next(replies)
        return "Three customers."

    models = scripted(agent)
    on_generate(models, lambda kw: formats.append(kw.get("response_format")))
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models,
                                                               data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "How many?")]})
    assert out["answer_data"] == {"count": 3, "unit": "customers"}
    assert out["messages"][-1].content == "Three customers."
    schemas = [f["json_schema"]["schema"] for f in formats if f]
    assert schemas and set(schemas[-1]["properties"]) == {"count", "unit"}
    assert json.dumps(schemas[-1]["required"]) == '["count", "unit"]'


def test_the_cli_prints_the_request_and_resumes_the_thread(tmp_path):
    import os
    import subprocess
    import sys

    doc = approve_flow()
    doc["io"] = {"output": "note"}
    path = tmp_path / "approve.json"
    path.write_text(json.dumps(doc))
    env = {**os.environ, "FLOWLOOM_HOME": str(tmp_path / "home")}

    def flowloom(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowloom.ui.cli", "run", str(path),
                               *args], capture_output=True, text=True, env=env, timeout=120)

    paused = flowloom("--input", "Refund order 7")
    assert paused.returncode == 0, paused.stderr
    assert "waiting: Send this reply? Refund order 7" in paused.stdout
    thread_id = paused.stderr.split("thread: ")[1].split()[0]
    assert f"--thread {thread_id} --resume" in paused.stdout

    wrong = flowloom("--thread", thread_id, "--resume", "perhaps")
    assert wrong.returncode == 0 and "is not a decision" in wrong.stdout
    done = flowloom("--thread", thread_id, "--resume", '{"approved": true}')
    assert done.returncode == 0 and done.stdout.strip() == "sent"
    again = flowloom("--thread", thread_id, "--resume", "true")
    assert again.returncode == 2 and "is not waiting" in again.stderr
    assert "Traceback" not in again.stderr


async def test_json_forms_fall_back_to_what_the_engine_takes(tmp_path):
    """llama.cpp's server refuses `json_schema` (400) and takes `json_object` + `schema`:
    the agent moves to the next form once and keeps it; without any, plain text."""
    seen: list[str | None] = []

    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            return "sql_query" if turn == 1 else "none"
        if "Write the arguments" in first:
            return '{"question": "How many customers?"}'
        if "analyst" in first and "SELECT" in first:
            return "```sql\nSELECT COUNT(*) FROM customers\n```"
        return "Counted."

    def picky(kw):
        form = (kw.get("response_format") or {}).get("type")
        seen.append(form)
        if form == "json_schema":
            raise RuntimeError("BadRequestError: response_format.type: Input should be "
                               "'text' or 'json_object'")

    models = scripted(agent)
    original = on_generate(models, picky)
    graph = compile_flow(load_flow(agent_flow(mode="choose")).flow,
                         ctx=BuildContext(models=models, data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "How many customers?")]})
    assert out["agent_steps"][0]["args"] == {"question": "How many customers?"}
    assert seen.count("json_schema") == 1 and "json_object" in seen

    def down(kw):
        raise RuntimeError("the model service is down")

    models.chat_model = original  # type: ignore[method-assign]
    on_generate(models, down)
    graph = compile_flow(load_flow(agent_flow(mode="choose")).flow,
                         ctx=BuildContext(models=models, data_dir=tmp_path))
    with pytest.raises(RuntimeError, match="down"):  # other errors are not swallowed
        await graph.ainvoke({"messages": [("user", "How many customers?")]})
