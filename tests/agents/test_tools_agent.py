"""`agent.tools@1` with a scripted chat model over the real tools (the SQL tool on the
real demo database): tool call → observation → answer, the error paths that go back to
the model, the max-steps stop, and the validator's path-named problems. The content
tool-call parser is checked on replies the bundled model really wrote."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from langchain_core.messages import BaseMessage

from flowloom.agents._toolcalls import ToolCall, parse_tool_calls
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowValidationError
from flowloom.flows.loader import load_flow
from flowloom.tools.catalog import TOOL_TYPES, tool_catalogue
from tests.fakes import ScriptedModels

KNOWN = {"kb_search", "sql_query"}


def agent_flow(**params) -> dict:
    return {
        "schema_version": 1, "id": "agent_test", "name": "Agent test",
        "state": {"messages": {"type": "messages"}, "agent_steps": {"type": "array"}},
        "nodes": [{"id": "agent", "type": "agent.tools@1", "params": {
            "tools": [{"name": "sql_query", "config": {"database": "demo"}}],
            "mode": "react", "select": "model", **params}}],
        "edges": [{"source": "START", "target": "agent"},
                  {"source": "agent", "target": "END"}],
    }


def call(name: str, **args) -> str:
    return json.dumps({"name": name, "arguments": args})


def scripted(agent: Callable[[list[BaseMessage], int], str]) -> ScriptedModels:
    """The agent's turns from `agent(messages, turn)`; the SQL tool's own model call (its
    system prompt is the SQL writer's) gets a fixed query."""
    turns = [0]

    def reply(messages: list[BaseMessage]) -> str:
        first = str(messages[0].content)
        if "analyst" in first and "SELECT" in first:
            return "```sql\nSELECT COUNT(*) FROM customers\n```"
        turns[0] += 1
        return agent(messages, turns[0])

    return ScriptedModels(reply)


async def run(doc: dict, models: ScriptedModels, text: str, tmp_path) -> dict:
    flow = load_flow(doc).flow
    graph = compile_flow(flow, ctx=BuildContext(models=models, data_dir=tmp_path))
    return await graph.ainvoke({"messages": [("user", text)]})


async def test_tool_call_observation_then_answer(tmp_path):
    def agent(messages, turn):
        if turn == 1:
            assert "sql_query" in str(messages[0].content)  # the tools are in the prompt
            return "```json\n" + call("sql_query", question="How many customers?") + "\n```"
        observation = str(messages[-1].content)
        assert observation.startswith("Result of sql_query:")
        rows = json.loads(observation.split(": ", 1)[1].split("\n\n")[0])["rows"]
        return f"There are {rows[0][0]} customers."

    models = scripted(agent)
    out = await run(agent_flow(), models, "How many customers do we have?", tmp_path)
    [step] = out["agent_steps"]
    assert step["tool"] == "sql_query" and step["args"] == {"question": "How many customers?"}
    count = step["result"]["rows"][0][0]
    assert "COUNT(*)" in step["result"]["sql"] and count > 0
    assert out["messages"][-1].content == f"There are {count} customers."


async def test_bad_arguments_go_back_to_the_model(tmp_path):
    def agent(messages, turn):
        if turn == 1:
            return call("sql_query", sql="SELECT 1")  # not the tool's argument
        assert "Error: bad arguments for sql_query" in str(messages[-1].content)
        assert "question: Field required" in str(messages[-1].content)
        return "I could not ask the database."

    out = await run(agent_flow(), scripted(agent), "Count them", tmp_path)
    assert "bad arguments" in out["agent_steps"][0]["error"]
    assert out["messages"][-1].content == "I could not ask the database."


async def test_a_failing_tool_is_an_observation_not_a_crash(tmp_path):
    doc = agent_flow(tools=[{"name": "kb_search", "config": {"kb": "nowhere"}}])

    def agent(messages, turn):
        if turn == 1:
            return call("kb_search", query="tents")
        assert "Error:" in str(messages[-1].content)
        return "The knowledge base is not there."

    out = await run(doc, scripted(agent), "Tell me about tents", tmp_path)
    assert "nowhere" in out["agent_steps"][0]["error"]
    assert out["messages"][-1].content == "The knowledge base is not there."


async def test_max_steps_stops_and_answers_from_the_results(tmp_path):
    def agent(messages, turn):
        if "from these tool results" in str(messages[0].content):
            return "Here is what I found."
        return call("sql_query", question=f"attempt {turn}")  # never answers by itself

    models = scripted(agent)
    out = await run(agent_flow(max_steps=2), models, "Loop forever", tmp_path)
    steps = out["agent_steps"]
    assert [s.get("skipped") for s in steps] == [None, None, "max_steps (2)"]
    assert out["messages"][-1].content == "Here is what I found."


async def test_a_repeated_call_is_not_run_again(tmp_path):
    def agent(messages, turn):
        if "from these tool results" in str(messages[0].content):
            assert "sql_query" in str(messages[0].content)  # the result it already had
            return "Done."
        return call("sql_query", question="same")

    out = await run(agent_flow(), scripted(agent), "Again and again", tmp_path)
    assert [s.get("skipped") for s in out["agent_steps"]] == [None, "repeated"]
    assert out["messages"][-1].content == "Done."


async def test_choose_mode_names_a_tool_fills_its_arguments_then_answers(tmp_path):
    """The mode for small models: pick a tool by name, write its arguments (keys it does
    not take are dropped), run it, pick again ("none": done), answer from the results."""
    doc = agent_flow(mode="choose", tools=[
        {"name": "sql_query", "config": {"database": "demo"}},
        {"name": "kb_search", "config": {"kb": "nowhere"}}])
    picks = iter(["sql_query", "none"])

    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            assert "- kb_search:" in first and "- none:" in first
            return next(picks)
        if "Write the arguments for the tool sql_query" in first:
            return '{"question": "How many customers?", "user": "me"}'
        assert "from these tool results" in first and "sql_query(" in first
        return "We have them counted."

    out = await run(doc, scripted(agent), "How many customers do we have?", tmp_path)
    [step] = out["agent_steps"]
    assert step["tool"] == "sql_query" and step["args"] == {"question": "How many customers?"}
    assert step["result"]["rows"][0][0] > 0
    assert out["messages"][-1].content == "We have them counted."


async def test_choose_mode_without_a_json_reply_passes_the_message_on(tmp_path):
    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            return "sql_query" if "Results so far" not in first else "none"
        if "Write the arguments" in first:
            return "Sure, I will ask the database."  # no JSON object
        return "Counted."

    out = await run(agent_flow(mode="choose"), scripted(agent), "How many customers?",
                    tmp_path)
    assert out["agent_steps"][0]["args"] == {"question": "How many customers?"}


async def test_choose_mode_with_no_tool_answers_directly(tmp_path):
    def agent(messages, turn):
        if "Which tool should be used" in str(messages[0].content):
            return "none"
        assert "tool results" not in str(messages[0].content)
        return "Hello!"

    out = await run(agent_flow(mode="choose"), scripted(agent), "Hi", tmp_path)
    assert out["agent_steps"] == [] and out["messages"][-1].content == "Hello!"


def test_unknown_tools_and_bad_config_are_named_with_their_path():
    doc = agent_flow(tools=[{"name": "sql_qeury"}, {"name": "kb_search",
                                                     "config": {"top_k": 99}}])
    with pytest.raises(FlowValidationError) as info:
        load_flow(doc)
    text = str(info.value)
    assert "nodes[0].params.tools[0].name" in text and "sql_query" in text
    assert "nodes[0].params.tools[1]" in text and "top_k" in text


def test_a_url_in_the_flow_is_refused(tmp_path):
    doc = agent_flow(tools=[{"name": "sql_query", "config": {"database": "sqlite:///x.db"}}])
    with pytest.raises(Exception, match="connection name"):
        compile_flow(load_flow(doc).flow,
                     ctx=BuildContext(models=ScriptedModels(["x"]), data_dir=tmp_path))


def test_the_catalogue_lists_every_tool_with_its_schemas():
    listed = {t["name"]: t for t in tool_catalogue()}
    assert set(listed) == set(TOOL_TYPES) >= KNOWN
    assert listed["sql_query"]["args_schema"]["required"] == ["question"]
    assert "kb" in listed["kb_search"]["config_schema"]["properties"]


# Replies the bundled Qwen2.5-Coder-0.5B wrote to the agent's prompt (recorded here).
RECORDED = [
    ('{"name": "kb_search", "arguments": {"query": "What are the top 50 customers by '
     'country?"}', ToolCall("kb_search", {"query": "What are the top 50 customers by country?"})),
    ('{"name": "sql_query", "arguments": {"question": "SELECT country, COUNT(*) FROM '
     'customers GROUP BY country"}}',
     ToolCall("sql_query", {"question": "SELECT country, COUNT(*) FROM customers GROUP BY "
                                        "country"})),
    ('{"name": "sql_query", "arguments": {"question": "What is the most expensive product?"}}',
     ToolCall("sql_query", {"question": "What is the most expensive product?"})),
]


@pytest.mark.parametrize(("text", "expected"), RECORDED)
def test_parser_on_recorded_replies_of_the_bundled_model(text, expected):
    assert parse_tool_calls(text, KNOWN) == [expected]


@pytest.mark.parametrize(("text", "expected"), [
    ("```json\n" + call("sql_query", question="x") + "\n```",
     [ToolCall("sql_query", {"question": "x"})]),
    ("Let me check.\n<tool_call>\n" + call("kb_search", query="q") + "\n</tool_call>",
     [ToolCall("kb_search", {"query": "q"})]),
    ('{"tool": "sql_query", "args": "{\\"question\\": \\"y\\"}"}',
     [ToolCall("sql_query", {"question": "y"})]),
    ('{"type": "function", "function": {"name": "kb_search", "arguments": {"query": "z"}}}',
     [ToolCall("kb_search", {"query": "z"})]),
    ('[{"name": "kb_search", "query": "a"}]', [ToolCall("kb_search", {"query": "a"})]),
    # not calls: prose, an unknown tool, broken beyond closing
    ("The most expensive product is the tent {ours}.", []),
    (call("drop_tables", table="x"), []),
    ('{"name": "sql_query", "arguments": {"question": "x"]', []),
])
def test_parser_accepts_the_shapes_models_write(text, expected):
    assert parse_tool_calls(text, KNOWN) == expected


async def test_a_stored_system_prompt_is_used_and_both_slots_are_refused(tmp_path):
    from flowloom.flows.prompts import PromptStore

    store = PromptStore(tmp_path / "prompts")
    store.save("analyst", "You are the shop's analyst. Be terse.")
    store.save("analyst", "You are the shop's analyst, version two.")

    def agent(messages, turn):
        assert str(messages[0].content).startswith("You are the shop's analyst. Be terse.")
        return "none" if "Which tool should be used" in str(messages[0].content) else "Hi."

    doc = agent_flow(mode="choose", system_prompt="analyst@1")
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(
        models=scripted(agent), prompts=store, data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "Hello")]})
    assert out["messages"][-1].content == "Hi."
    with pytest.raises(FlowValidationError, match="not both"):
        load_flow(agent_flow(system="Inline.", system_prompt="analyst@1"))
    with pytest.raises(Exception, match="system_prompt: prompt 'analyst' has no version 9"):
        compile_flow(load_flow(agent_flow(system_prompt="analyst@9")).flow, ctx=BuildContext(
            models=scripted(agent), prompts=store, data_dir=tmp_path))


async def test_an_answer_that_only_echoes_the_sql_gives_the_rows_instead(tmp_path):
    def agent(messages, turn):
        first = str(messages[0].content)
        if "Which tool should be used" in first:
            return "sql_query" if turn == 1 else "none"
        if "Write the arguments" in first:
            return '{"question": "How many customers?"}'
        assert "from these tool results" in first and '"sql"' not in first  # rows only
        return 'SELECT COUNT(*) AS "count(*)" FROM customers'

    out = await run(agent_flow(mode="choose"), scripted(agent), "How many customers?",
                    tmp_path)
    count = out["agent_steps"][0]["result"]["rows"][0][0]
    assert out["messages"][-1].content == f"Result: count(*): {count}"
