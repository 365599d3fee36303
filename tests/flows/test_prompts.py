"""Versioned prompts: immutable versions, `name@version` refs, rendered by prompt.template."""

from __future__ import annotations

import pytest

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError, FlowError
from flowloom.flows.loader import load_flow
from flowloom.flows.prompts import PromptNotFound, PromptStore


def test_versions_are_immutable_and_resolved(tmp_path):
    store = PromptStore(tmp_path)
    first = store.save("greet", "Hello {{ text }}", notes="first")
    second = store.save("greet", "Hi {{ text }}!")
    assert (first.ref, second.ref) == ("greet@1", "greet@2")
    assert store.get("greet@1").text == "Hello {{ text }}"
    assert store.get("greet").version == 2 and store.get("greet@latest").version == 2
    assert store.get("greet@1").variables == ["text"]
    with pytest.raises(PromptNotFound, match="versions: 1, 2"):
        store.get("greet@3")
    with pytest.raises(PromptNotFound, match="prompts: greet"):
        store.get("nope@1")
    with pytest.raises(FlowError, match="template syntax error"):
        store.save("bad", "{{ oops")


def _flow(make_flow, ref):
    return load_flow(make_flow(
        nodes=[{"id": "p", "type": "prompt.template@1",
                "params": {"prompt": ref, "output": "text"}}],
        edges=[{"source": "START", "target": "p"}, {"source": "p", "target": "END"}],
    )).flow


async def test_prompt_template_node_renders_stored_version(tmp_path, make_flow):
    store = PromptStore(tmp_path)
    store.save("greet", "Hello {{ route }}")
    store.save("greet", "Bye {{ route }}")
    ctx = BuildContext(prompts=store)
    graph = compile_flow(_flow(make_flow, "greet@1"), ctx=ctx)
    assert (await graph.ainvoke({"route": "Ada"}))["text"] == "Hello Ada"
    graph = compile_flow(_flow(make_flow, "greet@latest"), ctx=ctx)
    assert (await graph.ainvoke({"route": "Ada"}))["text"] == "Bye Ada"


def test_prompt_template_build_errors(tmp_path, make_flow):
    store = PromptStore(tmp_path)
    store.save("q", "Q: {{ question }}")
    with pytest.raises(FlowBuildError, match="does not declare: question"):
        compile_flow(_flow(make_flow, "q@1"), ctx=BuildContext(prompts=store))
    with pytest.raises(FlowBuildError, match="no version 9"):
        compile_flow(_flow(make_flow, "q@9"), ctx=BuildContext(prompts=store))


def test_prompt_template_params_need_one_source(make_flow):
    from flowloom.flows.loader import check_flow

    doc = make_flow(
        nodes=[{"id": "p", "type": "prompt.template@1", "params": {"output": "text"}}],
        edges=[{"source": "START", "target": "p"}, {"source": "p", "target": "END"}],
    )
    _, problems = check_flow(doc)
    assert [str(p) for p in problems] == [
        "nodes[0].params: give exactly one of 'prompt' (name@version) or 'template'"]
