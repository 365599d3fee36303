"""One run path (issue 21): a flow is validated once when it is saved, its nodes' params
parsed once, and the checked flow handed to the compiler; `/runs` seeds a flow's declared
state defaults as the CLI's `FlowRunner` and `/v1` do (the server runs flows through the
same runner)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows import compiler, loader
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import load_flow
from flowloom.flows.registry import NodeRegistry, NodeType, default_registry
from flowloom.flows.runtime import FlowRunner
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

PARSED: list[str] = []


class CountedParams(BaseModel):
    """Params that count how often they are parsed."""

    model_config = ConfigDict(extra="forbid")

    field: str
    text: str

    def model_post_init(self, _context: Any) -> None:
        PARSED.append(self.text)


def _build(params: CountedParams, ctx: Any) -> Any:
    def write(state: dict[str, Any]) -> dict[str, Any]:
        return {params.field: f"{params.text} {state.get('greeting', '?')}"}
    return write


def _registry() -> NodeRegistry:
    return NodeRegistry([*default_registry().types(),
                         NodeType("t.counted", 1, CountedParams, _build, "state", "test")])


FLOW: dict[str, Any] = {
    "schema_version": 1, "id": "seeded", "name": "Seeded",
    "state": {"greeting": {"type": "string", "default": "hello"},
              "first": {"type": "string"}, "second": {"type": "string"},
              "count": {"type": "integer", "reducer": "add", "default": 40}},
    "nodes": [{"id": "one", "type": "t.counted@1", "params": {"field": "first", "text": "1"}},
              {"id": "two", "type": "t.counted@1", "params": {"field": "second", "text": "2"}},
              {"id": "inc", "type": "state.set@1", "params": {"values": {"count": 2}}}],
    "edges": [{"source": "START", "target": "one"}, {"source": "one", "target": "two"},
              {"source": "two", "target": "inc"}, {"source": "inc", "target": "END"}],
}


def test_put_flow_validates_once_and_parses_each_nodes_params_once(tmp_path, monkeypatch):
    calls: list[str] = []
    real = loader.validate_document

    def counting(doc: Any, registry: Any) -> Any:
        calls.append(doc.get("id"))
        return real(doc, registry)

    monkeypatch.setattr(loader, "validate_document", counting)
    monkeypatch.setattr(compiler, "validate_document", counting)
    app = create_app(ServerSettings(home=tmp_path, flows_dirs=()),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")),
                     registry=_registry())
    for url in run_server(app):
        PARSED.clear()
        saved = httpx.put(f"{url}/flows/seeded", json=FLOW, timeout=30)
        assert saved.status_code == 200, saved.text
        assert calls == ["seeded"], "PUT /flows validated the document more than once"
        assert sorted(PARSED) == ["1", "2"], (
            f"each node's params should be parsed once, got {PARSED}")
        # the compiled flow runs with those params
        done = httpx.post(f"{url}/runs/wait", json={"assistant_id": "seeded", "input": {}},
                          timeout=30)
        assert done.status_code == 200, done.text
        assert done.json()["second"] == "2 hello"


def test_compiling_an_unchecked_flow_still_validates_it(monkeypatch):
    """A Flow built by hand (not through the validator) is checked by the compiler."""
    from flowloom.flows.format import Flow

    calls: list[Any] = []
    real = compiler.validate_document
    monkeypatch.setattr(compiler, "validate_document",
                        lambda doc, reg: calls.append(1) or real(doc, reg))
    registry = _registry()
    flow = Flow.model_validate(FLOW)
    compiler.compile_flow(flow, registry=registry)
    assert calls == [1]
    checked = load_flow(FLOW, registry).flow
    calls.clear()
    compiler.compile_flow(checked, registry=registry)
    assert calls == [], "a checked flow was validated again"
    compiler.compile_flow(checked, registry=_registry())  # checked against other node types
    assert calls == [1]


async def test_runs_seed_declared_state_defaults_as_the_cli_does(tmp_path):
    app = create_app(ServerSettings(home=tmp_path, flows_dirs=()),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")),
                     registry=_registry())
    checked = load_flow(FLOW, _registry()).flow
    cli = await FlowRunner(checked, compiler.compile_flow(checked, registry=_registry())
                           ).with_defaults({}, {}, new_thread=True)
    for url in run_server(app):
        assert httpx.put(f"{url}/flows/seeded", json=FLOW, timeout=30).status_code == 200
        served = httpx.post(f"{url}/runs/wait", json={"assistant_id": "seeded", "input": {}},
                            timeout=30).json()
        assert served["greeting"] == "hello" and served["first"] == "1 hello"
        assert served["count"] == 42, "the add reducer's declared default (40) was not seeded"
        # a given value wins over the default
        given = httpx.post(f"{url}/runs/wait", json={"assistant_id": "seeded",
                                                     "input": {"greeting": "hi"}},
                           timeout=30).json()
        assert given["first"] == "1 hi"
    assert cli == {"greeting": "hello", "count": 40}
