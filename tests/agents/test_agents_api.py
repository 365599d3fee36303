"""Agents over the real server with the real langgraph-sdk: a run pauses for approval
(`human.approve`, and an agent's `approve_tools` before a SQL call on the demo database),
the pending request is visible in the thread's state, a `command.resume` run finishes it;
a supervisor composes flows from the server's catalogue and follows a sub-flow saved over
the API. Models are scripted (graph logic); the bundled model's runs are in the e2e tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from langgraph_sdk import get_client

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.agents.test_approval import approve_flow
from tests.agents.test_supervisor import sub_flow, supervisor_flow
from tests.agents.test_tools_agent import agent_flow, call
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels


def _reply(messages) -> str:
    first = str(messages[0].content)
    if "analyst" in first and "SELECT" in first:  # the SQL tool's writer
        return "```sql\nSELECT COUNT(*) FROM customers\n```"
    if "You can call these tools" in first:
        last = str(messages[-1].content)
        if last.startswith("Result of sql_query"):
            return "Counted: " + last.split("rows", 1)[1][:20]
        if "declined" in last:
            return "I did not ask the database."
        return call("sql_query", question="How many customers?")
    if "the " in first and " desk" in first:
        return first.split("the ")[1].split(" desk")[0] + " here"
    return "ok"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("agents-home")
    flows = home / "flows"
    flows.mkdir()
    agent = agent_flow(approve_tools=["sql_query"])
    agent["id"] = "guarded"
    docs = [approve_flow(), agent, sub_flow("orders_desk", "orders"),
            sub_flow("general_desk", "general"), supervisor_flow()]
    for doc in docs:
        (flows / f"{doc['id']}.json").write_text(json.dumps(doc))
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home,
                              flows_dirs=(flows,))
    yield from run_server(create_app(settings, ctx=BuildContext(
        models=ScriptedModels(_reply), data_dir=home)))


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_human_approve_over_the_api(server):
    client = get_client(url=server, api_key=None)
    tid = (await client.threads.create())["thread_id"]
    paused = await client.runs.wait(tid, "approve_test", input=user("Refund order 7"))
    [pending] = paused["__interrupt__"]
    assert pending["value"]["kind"] == "approval"
    assert pending["value"]["values"] == {"messages": "Refund order 7"}
    assert (await client.threads.get(tid))["status"] == "interrupted"
    state = await client.threads.get_state(tid)
    assert state["next"] == ["ask"] and state["interrupts"][0]["value"]["node"] == "ask"

    again = await client.runs.wait(tid, "approve_test", command={"resume": {"ok": 1}})
    assert "approved" in again["__interrupt__"][0]["value"]["error"]  # paused, not failed
    done = await client.runs.wait(tid, "approve_test",
                                  command={"resume": {"approved": False, "comment": "later"}})
    assert done["note"] == "held" and done["why"] == "later"
    assert (await client.threads.get(tid))["status"] == "idle"


async def test_agent_tool_approval_shows_the_call_and_runs_the_edited_one(server):
    client = get_client(url=server, api_key=None)
    tid = (await client.threads.create())["thread_id"]
    events = [e async for e in client.runs.stream(tid, "guarded", input=user("Customers?"),
                                                  stream_mode="updates")]
    interrupts = [e.data["__interrupt__"] for e in events
                  if e.event == "updates" and "__interrupt__" in e.data]
    [[pending]] = interrupts
    assert pending["value"] == {**pending["value"], "kind": "tool_approval",
                                "tool": "sql_query",
                                "args": {"question": "How many customers?"}}
    state = await client.threads.get_state(tid)
    assert state["tasks"][0]["interrupts"][0]["value"]["tool"] == "sql_query"

    edited = {"question": "How many customers are there?"}
    done = await client.runs.wait(tid, "guarded",
                                  command={"resume": {"approved": True, "args": edited}})
    [step] = done["agent_steps"]
    assert step["args"] == edited and step["result"]["rows"][0][0] > 0
    assert done["messages"][-1]["content"].startswith("Counted")


async def test_supervisor_runs_catalogue_flows_and_follows_a_saved_sub_flow(server):
    client = get_client(url=server, api_key=None)
    out = await client.runs.wait(None, "front", input=user("where is my order"))
    assert out["route"] == "orders" and out["messages"][-1]["content"] == "orders here"

    changed = sub_flow("orders_desk", "parcel")  # saved over the API: the supervisor
    put = httpx.put(f"{server}/flows/orders_desk", json=changed)  # is rebuilt with it
    assert put.status_code == 200, put.text
    out = await client.runs.wait(None, "front", input=user("where is my order"))
    assert out["messages"][-1]["content"] == "parcel here" and out["desk"] == "parcel"


async def test_a_saved_supervisor_and_its_saved_sub_flow_come_back_after_a_restart(
        tmp_path):
    settings = ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path,
                              flows_dirs=())
    front = supervisor_flow(routes=[{"label": "orders", "flow": "zz_desk", "value": "o"}],
                            default="orders")
    front["id"] = "aa_front"  # sorts (and is loaded) before the flow it runs

    def start():
        return run_server(create_app(settings, ctx=BuildContext(
            models=ScriptedModels(_reply), data_dir=tmp_path)))

    first = start()
    url = next(first)
    assert httpx.put(f"{url}/flows/zz_desk", json=sub_flow("zz_desk", "saved")).is_success
    assert httpx.put(f"{url}/flows/aa_front", json=front).is_success
    next(first, None)  # stop it
    second = start()
    url = next(second)
    try:
        out = await get_client(url=url, api_key=None).runs.wait(
            None, "aa_front", input=user("any order"))
        assert out["messages"][-1]["content"] == "saved here"
    finally:
        next(second, None)
