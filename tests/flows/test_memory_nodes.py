"""`memory.put@1` and `memory.search@1` over LangGraph's in-memory store (the API server's
own store is tested in tests/backends/test_server_store.py)."""

from __future__ import annotations

import pytest
from langgraph.store.memory import InMemoryStore

from flowloom.flows.compiler import compile_flow
from flowloom.flows.errors import FlowRunError
from flowloom.flows.format import Flow
from flowloom.flows.registry import default_registry
from flowloom.flows.validate import validate_document

VOCAB = ("tea", "coffee", "dog", "cat", "green")


def _embed(texts: list[str]) -> list[list[float]]:
    """Bag of words over VOCAB: similar texts share words."""
    return [[float(t.lower().count(word)) + 0.01 for word in VOCAB] for t in texts]


def _store() -> InMemoryStore:
    return InMemoryStore(index={"dims": len(VOCAB), "embed": _embed, "fields": ["text"]})


def _memory_flow(**search: object) -> dict:
    return {
        "schema_version": 1, "id": "mem", "name": "Memory",
        "state": {"messages": {"type": "messages"}, "user": {"type": "string"},
                  "memories": {"type": "array"}},
        "nodes": [
            {"id": "recall", "type": "memory.search@1",
             "params": {"namespace": ["memories", "{{ user }}"], **search}},
            {"id": "remember", "type": "memory.put@1",
             "params": {"namespace": ["memories", "{{ user }}"]}},
        ],
        "edges": [{"source": "START", "target": "recall"},
                  {"source": "recall", "target": "remember"},
                  {"source": "remember", "target": "END"}],
    }


def _say(text: str, user: str = "ada") -> dict:
    return {"messages": [{"role": "user", "content": text}], "user": user}


async def test_memories_outlive_the_thread_and_rank_by_meaning():
    store = _store()
    graph = compile_flow(Flow.model_validate(_memory_flow()), store=store)
    first = await graph.ainvoke(_say("I drink green tea"))
    assert first["memories"] == []
    await graph.ainvoke(_say("my cat sleeps all day"))
    await graph.ainvoke(_say("I love my dog", user="bob"))
    found = (await graph.ainvoke(_say("which tea do I like?")))["memories"]
    assert [m["text"] for m in found] == ["I drink green tea", "my cat sleeps all day"]
    assert found[0]["namespace"] == ["memories", "ada"] and found[0]["score"] > \
        found[1]["score"]
    assert found[0]["value"] == {"text": "I drink green tea"}
    stored = await store.asearch(("memories", "bob"))
    assert [i.value["text"] for i in stored] == ["I love my dog"]


async def test_search_without_query_filter_and_limit():
    store = _store()
    await store.aput(("memories", "ada"), "a", {"text": "tea", "kind": "taste"})
    await store.aput(("memories", "ada"), "b", {"text": "dog", "kind": "pet"})
    graph = compile_flow(Flow.model_validate(_memory_flow(
        query="", filter={"kind": "pet"}, limit=1)), store=store)
    found = (await graph.ainvoke(_say("anything")))["memories"]
    assert [(m["key"], m["score"]) for m in found] == [("b", None)]


async def test_put_with_a_key_replaces_that_memory():
    store = _store()
    flow = _memory_flow()
    flow["nodes"][1]["params"].update(key="profile", text="{{ user }} said {{ last_message }}")
    graph = compile_flow(Flow.model_validate(flow), store=store)
    await graph.ainvoke(_say("one"))
    await graph.ainvoke(_say("two"))
    items = await store.asearch(("memories", "ada"))
    assert [(i.key, i.value) for i in items] == [("profile", {"text": "ada said two"})]


async def test_a_run_without_a_store_says_so():
    graph = compile_flow(Flow.model_validate(_memory_flow()))
    with pytest.raises(FlowRunError, match="keeps memory in a store"):
        await graph.ainvoke(_say("hi"))


async def test_a_label_that_renders_empty_or_dotted_fails_the_run():
    graph = compile_flow(Flow.model_validate(_memory_flow()), store=_store())
    with pytest.raises(FlowRunError, match=r"namespace\[1\] rendered 'a.b'"):
        await graph.ainvoke(_say("hi", user="a.b"))
    with pytest.raises(FlowRunError, match=r"namespace\[1\] rendered ''"):
        await graph.ainvoke(_say("hi", user=""))


def test_params_are_validated_with_their_paths():
    flow = _memory_flow()
    flow["nodes"][0]["params"]["namespace"] = ["memo.ries", "{{ user }}"]
    flow["nodes"][1]["params"]["ttl_minutes"] = 0
    _, problems = validate_document(flow, default_registry())
    paths = {p.path for p in problems}
    assert "nodes[0].params.namespace" in paths, problems
    assert "nodes[1].params.ttl_minutes" in paths, problems
    flow = _memory_flow()
    flow["nodes"][1]["params"]["text"] = "{{ unknown_field }}"
    _, problems = validate_document(flow, default_registry())
    assert any(p.path == "nodes[1].params.text" and "unknown_field" in p.message
               for p in problems), problems


def test_search_declares_what_it_writes():
    doc = _memory_flow()
    del doc["state"]["memories"]
    _, problems = validate_document(doc, default_registry())
    assert any(p.path == "nodes[0].params.output" for p in problems), problems
