"""Versioned prompts: immutable versions, `name@version` refs in prompt.template and
llm.chat, pinned on export and carried so that an import is reproducible."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError, FlowError
from flowloom.flows.format import Flow, dump_flow
from flowloom.flows.loader import load_flow
from flowloom.flows.prompts import (
    PROMPT_REF_KEY,
    PromptConflict,
    PromptNotFound,
    PromptStore,
    import_prompts,
    pin_prompts,
    prompt_ref_slots,
)
from flowloom.flows.registry import default_registry
from tests.fakes import ScriptedModels


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


# -- llm.chat with stored prompts -----------------------------------------------------------


def _chat_flow(make_flow, **params):
    return make_flow(
        nodes=[{"id": "a", "type": "llm.chat@1",
                "params": {"history": False, "output": "text", **params}}],
        edges=[{"source": "START", "target": "a"}, {"source": "a", "target": "END"}],
    )


async def test_llm_chat_uses_stored_system_and_user_prompts(tmp_path, make_flow):
    store = PromptStore(tmp_path)
    store.save("persona", "You answer about {{ route }}.")
    store.save("persona", "You answer briefly about {{ route }}.")
    store.save("ask", "Question: {{ text }}")
    models = ScriptedModels(lambda msgs: "fine")
    doc = _chat_flow(make_flow, system_prompt="persona@1", prompt_ref="ask@latest")
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models, prompts=store))
    assert (await graph.ainvoke({"route": "billing", "text": "why?"}))["text"] == "fine"
    sent = models.calls[0]
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage]
    assert [m.content for m in sent] == ["You answer about billing.", "Question: why?"]
    # the inline params work as before, and `latest` follows the store
    doc = _chat_flow(make_flow, system_prompt="persona", prompt="Say {{ text }}")
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models, prompts=store))
    await graph.ainvoke({"route": "x", "text": "hi"})
    assert [m.content for m in models.calls[1]] == ["You answer briefly about x.", "Say hi"]


def test_llm_chat_prompt_ref_problems(tmp_path, make_flow):
    from flowloom.flows.loader import check_flow

    _, problems = check_flow(_chat_flow(make_flow, system="Hi", system_prompt="persona@1",
                                        prompt_ref="ask@one"))
    assert [str(p) for p in problems] == [
        "nodes[0].params.system_prompt: give 'system' (inline text) or 'system_prompt' "
        "(a stored prompt), not both",
        "nodes[0].params.prompt_ref: 'ask@one': version must be a number or 'latest'",
    ]
    store = PromptStore(tmp_path)
    store.save("persona", "You are {{ mood }}.")
    models = ScriptedModels(["x"])
    flow = load_flow(_chat_flow(make_flow, system_prompt="persona@1")).flow
    with pytest.raises(FlowBuildError, match=r"node 'a': system_prompt: prompt persona@1 reads "
                       r"state fields the flow does not declare: mood; declared: messages"):
        compile_flow(flow, ctx=BuildContext(models=models, prompts=store))
    flow = load_flow(_chat_flow(make_flow, system_prompt="persona@3")).flow
    with pytest.raises(FlowBuildError, match=r"node 'a': system_prompt: prompt 'persona' has "
                       r"no version 3; versions: 1"):
        compile_flow(flow, ctx=BuildContext(models=models, prompts=store))
    with pytest.raises(FlowBuildError, match="system_prompt: 'persona@3' names a stored prompt, "
                       "but no prompt store is configured"):
        compile_flow(flow, ctx=BuildContext(models=models))


# -- where params hold prompt refs ------------------------------------------------------------


class _Step(BaseModel):
    prompt: str | None = Field(None, json_schema_extra={PROMPT_REF_KEY: True})
    text: str = ""


class _Nested(BaseModel):
    system: str | None = Field(None, json_schema_extra={PROMPT_REF_KEY: True})
    steps: list[_Step] = []
    by_name: dict[str, _Step] = {}
    fallbacks: list[str] = Field([], json_schema_extra={PROMPT_REF_KEY: True})
    note: str = ""


def test_prompt_ref_slots_follow_the_schema_markers():
    params = {"system": "a", "note": "not@1", "fallbacks": ["b", "c@2"],
              "steps": [{"prompt": "d@latest", "text": "e"}, {"text": "f"}],
              "by_name": {"x": {"prompt": "g"}}}
    slots = list(prompt_ref_slots(_Nested.model_json_schema(), params))
    assert [(path, container[key]) for container, key, path in slots] == [
        ("system", "a"), ("fallbacks[0]", "b"), ("fallbacks[1]", "c@2"),
        ("steps[0].prompt", "d@latest"), ("by_name.x.prompt", "g")]


def test_every_registered_prompt_ref_param_is_found():
    """The marker each node type puts on its ref params is what pinning finds: set every
    marked top-level param of every type and every one is reported."""
    for node_type in default_registry().types():
        schema = node_type.params_schema()
        marked = [name for name, prop in schema.get("properties", {}).items()
                  if prop.get(PROMPT_REF_KEY)]
        params = {name: f"p-{i}@latest" for i, name in enumerate(marked)}
        found = [path for _, _, path in prompt_ref_slots(schema, params)]
        assert found == marked, node_type.key


# -- export (pin) and import ------------------------------------------------------------------


def _two_prompt_flow(make_flow):
    return make_flow(
        nodes=[{"id": "p", "type": "prompt.template@1",
                "params": {"prompt": "greet", "output": "text"}},
               {"id": "a", "type": "llm.chat@1",
                "params": {"system_prompt": "persona@latest", "prompt_ref": "greet@1",
                           "history": False, "output": "route"}}],
        edges=[{"source": "START", "target": "p"}, {"source": "p", "target": "a"},
               {"source": "a", "target": "END"}],
        prompts={"old@1": {"text": "unused"}},
    )


def _source_store(root):
    store = PromptStore(root)
    store.save("greet", "Hello {{ route }}")
    store.save("greet", "Hi {{ route }}!", notes="shorter")
    store.save("persona", "Be kind.")
    return store


def test_pin_rewrites_refs_and_carries_exactly_the_versions_used(tmp_path, make_flow):
    store = _source_store(tmp_path)
    pinned = pin_prompts(_two_prompt_flow(make_flow), store)
    params = [n["params"] for n in pinned["nodes"]]
    assert params[0]["prompt"] == "greet@2"
    assert (params[1]["system_prompt"], params[1]["prompt_ref"]) == ("persona@1", "greet@1")
    assert pinned["prompts"] == {
        "greet@1": {"text": "Hello {{ route }}", "notes": ""},
        "greet@2": {"text": "Hi {{ route }}!", "notes": "shorter"},
        "persona@1": {"text": "Be kind.", "notes": ""},
    }
    text = dump_flow(load_flow(pinned).flow)
    assert list(json.loads(text))[-2:] == ["layout", "prompts"]
    assert pin_prompts(json.loads(text), store) == json.loads(text)  # pinning is idempotent
    # a flow without refs is left as it was, with no `prompts` section
    plain = make_flow(nodes=[{"id": "s", "type": "state.set@1",
                              "params": {"values": {"text": "x"}}}],
                      edges=[{"source": "START", "target": "s"}, {"source": "s", "target": "END"}])
    assert "prompts" not in json.loads(dump_flow(load_flow(pin_prompts(plain, None)).flow))
    with pytest.raises(PromptNotFound, match=r"node 'p' \(nodes\[0\]\.params\.prompt\): no "
                       "prompt named 'greet'"):
        pin_prompts(_two_prompt_flow(make_flow), PromptStore(tmp_path / "empty"))


def test_dump_orders_carried_prompts_by_name_then_version():
    flow = Flow.model_validate({"id": "x", "name": "X", "prompts": {
        "b@1": {"text": "b"}, "a@10": {"text": "a10"}, "a@2": {"text": "a2"}}})
    assert list(json.loads(dump_flow(flow))["prompts"]) == ["a@2", "a@10", "b@1"]


async def test_import_into_an_empty_store_is_reproducible(tmp_path, make_flow):
    models = ScriptedModels(lambda msgs: " | ".join(str(m.content) for m in msgs))
    source = _source_store(tmp_path / "a")
    flow = load_flow(pin_prompts(_two_prompt_flow(make_flow), source)).flow
    target = PromptStore(tmp_path / "b")
    assert import_prompts(flow, target, dry_run=True) == ["greet@1", "greet@2", "persona@1"]
    assert target.names() == []
    assert import_prompts(flow, target) == ["greet@1", "greet@2", "persona@1"]
    assert import_prompts(flow, target) == []  # again: nothing to add
    for ref in ("greet@1", "greet@2", "persona@1"):
        assert (target.get(ref).text, target.get(ref).notes) == (
            source.get(ref).text, source.get(ref).notes)
    results = []
    for store in (source, target, None):  # None: the carried versions alone
        graph = compile_flow(flow, ctx=BuildContext(models=models, prompts=store))
        results.append((await graph.ainvoke({"route": "Ada"}))["route"])
    assert results == ["Be kind. | Hello Ada"] * 3


def test_import_refuses_a_store_with_another_history(tmp_path, make_flow):
    flow = load_flow(pin_prompts(_two_prompt_flow(make_flow), _source_store(tmp_path / "a"))).flow
    other = PromptStore(tmp_path / "b")
    other.save("greet", "Something else entirely")
    with pytest.raises(PromptConflict, match=r"prompt greet@1: the flow carries other text "
                       r"than this store's .*history of 'greet' differs"):
        import_prompts(flow, other)
    assert other.versions("greet") == [1] and other.versions("persona") == []  # nothing added
    assert other.get("greet@1").text == "Something else entirely"
    with pytest.raises(FlowBuildError, match="node 'a': prompt_ref: prompt greet@1: the flow "
                       "carries"):
        compile_flow(flow, ctx=BuildContext(models=ScriptedModels(["x"]), prompts=other))
    with pytest.raises(PromptConflict, match="exists already"):
        other.add("greet", 1, "x")
    with pytest.raises(FlowError, match="no prompt store"):
        import_prompts(flow, None)


def test_carried_prompts_are_validated(make_flow):
    from flowloom.flows.loader import check_flow

    doc = make_flow(nodes=[{"id": "s", "type": "state.set@1", "params": {}}],
                    edges=[{"source": "START", "target": "s"}, {"source": "s", "target": "END"}],
                    prompts={"Greet@x": {"text": "hi"}, "ok@1": {"text": "{{ oops"},
                             "typo@1": {"txt": "hi"}})
    _, problems = check_flow(doc)
    assert sorted(p.path for p in problems) == ["prompts.typo@1.text", "prompts.typo@1.txt"]
    del doc["prompts"]["typo@1"]
    _, problems = check_flow(doc)
    assert [str(p) for p in problems] == [
        "prompts.Greet@x: 'Greet@x' is not a prompt version: carried prompts are keyed name@N "
        "(lower-case name, a version number)",
        "prompts.ok@1.text: template syntax error at line 1: unexpected end of template, "
        "expected 'end of print statement'.",
    ]
