"""The model gateway against a real OpenAI-compatible HTTP server on 127.0.0.1.

LiteLLM is not mocked: every call goes through a real `litellm.Router` to the fake
server of `conftest.py`, whose path prefix (`/ok`, `/fail`, `/tool`) picks its answer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict, cast

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel

from flowloom.backends.gateway import (
    MODEL_URL_ENV,
    MODELS_ENV,
    Gateway,
    GatewayChatModel,
    GatewayConfigError,
    GatewayModels,
    ModelCallError,
    UnknownModelError,
    load_gateway,
    load_gateway_config,
    parse_gateway_config,
    shipped_models_config,
)
from flowloom.flows.context import ModelProvider
from tests.backends.conftest import REPLY, FakeOpenAI

USER = [{"role": "user", "content": "Hi"}]


def make_gateway(server: FakeOpenAI, text: str, **kwargs: Any) -> Gateway:
    """A Gateway from YAML where `$OK`, `$FAIL` and `$TOOL` stand for the fake server's bases."""
    for prefix in ("ok", "fail", "tool"):
        text = text.replace(f"${prefix.upper()}", server.base(prefix))
    kwargs.setdefault("ensure_service", _no_service)
    return Gateway(parse_gateway_config(text), **kwargs)


def _no_service(home: Path) -> str:
    raise AssertionError("the embedded model service must not be started here")


SIMPLE = """
model_list:
  - model_name: chat
    litellm_params: {model: openai/fake-chat, api_base: $OK, api_key: sk-test}
  - model_name: embed
    litellm_params: {model: openai/fake-embed, api_base: $OK, api_key: sk-test}
    model_info: {mode: embedding}
  - model_name: tools
    litellm_params: {model: openai/fake-tools, api_base: $TOOL, api_key: sk-test}
router_settings: {num_retries: 0}
"""

FALLBACKS = """
model_list:
  - model_name: flaky
    litellm_params: {model: openai/flaky, api_base: $FAIL, api_key: sk-test}
  - model_name: steady
    litellm_params: {model: openai/steady, api_base: $OK, api_key: sk-test}
  - model_name: pair
    litellm_params: {model: openai/pair-down, api_base: $FAIL, api_key: sk-test}
  - model_name: pair
    litellm_params: {model: openai/pair-up, api_base: $OK, api_key: sk-test}
  - model_name: broken
    litellm_params: {model: openai/broken, api_base: $FAIL, api_key: sk-test}
router_settings:
  num_retries: 1
  retry_after: 0
  retry_policy: {InternalServerErrorRetries: 0, TimeoutErrorRetries: 0}
  enable_weighted_failover: true
  fallbacks: [{flaky: [steady]}]
"""


@pytest.fixture(scope="module")
def gateway(fake_openai: FakeOpenAI) -> Gateway:
    return make_gateway(fake_openai, SIMPLE)


# -- config ---------------------------------------------------------------------------------


def test_shipped_config_has_the_local_models() -> None:
    config = shipped_models_config()
    assert config.aliases() == ["local", "local-embed", "local-embed-multilingual"]
    local, embed, multilingual = config.model_list
    assert multilingual.model_info.mode == "embedding" and multilingual.model_info.input_type
    assert not embed.model_info.input_type
    assert local.litellm_params.model == "openai/local"
    assert local.litellm_params.api_base == f"os.environ/{MODEL_URL_ENV}"
    assert local.model_info.embedded and local.model_info.mode == "chat"
    assert embed.model_info.embedded and embed.model_info.mode == "embedding"
    assert config.router_settings.retry_policy is not None
    shipped = Path(__file__).parents[2] / "backends" / "models.yaml"
    assert load_gateway_config(shipped).aliases() == config.aliases()


def test_validation_errors_name_their_paths() -> None:
    text = """
model_list:
  - model_name: a
    litellm_params: {model: openai/a}
  - model_name: b
    litellm_params: {model: openai/b, rpm: -1}
  - model_name: c
    litellm_params: {api_base: http://x}
router_settings:
  num_retries: many
  retry_policy: {ServerErrorRetries: 0}
  fallbacks: [{a: [gpt-5]}]
model_lst: []
"""
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(text, source="models.yaml")
    message = str(caught.value)
    assert message.startswith("models.yaml: invalid model config")
    paths = {p.path for p in caught.value.problems}
    assert "model_list[2].litellm_params.model: field required" in message
    assert {"model_list[1].litellm_params.rpm", "router_settings.num_retries",
            "router_settings.retry_policy.ServerErrorRetries", "model_lst"} <= paths
    unknown_key = next(p for p in caught.value.problems if p.path == "model_lst")
    assert "model_list" in unknown_key.choices


def test_fallbacks_must_name_configured_models() -> None:
    text = """
model_list:
  - {model_name: a, litellm_params: {model: openai/a}}
router_settings: {fallbacks: [{a: [b]}]}
"""
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(text)
    (problem,) = caught.value.problems
    assert problem.path == "router_settings.fallbacks[0].a[0]"
    assert problem.choices == ("a",)


def test_yaml_and_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError, match="line 3"):
        parse_gateway_config("model_list:\n  - model_name: a\n  litellm_params: [\n")
    with pytest.raises(GatewayConfigError, match="expected a mapping"):
        parse_gateway_config("")
    with pytest.raises(GatewayConfigError, match="cannot read"):
        load_gateway_config(tmp_path / "missing.yaml")


async def test_unknown_router_setting_is_a_config_error(fake_openai: FakeOpenAI) -> None:
    bad = make_gateway(fake_openai, SIMPLE.replace("{num_retries: 0}", "{no_such_knob: 1}"))
    with pytest.raises(GatewayConfigError, match="no_such_knob"):
        await bad.acompletion("chat", USER)


# -- calls ----------------------------------------------------------------------------------


async def test_unknown_alias_lists_valid_ones_without_calling_litellm(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_URL_ENV, raising=False)
    started: list[Path] = []

    def ensure(home: Path) -> str:
        started.append(home)
        return ""

    gw = Gateway(shipped_models_config(), home=Path("/nonexistent"), ensure_service=ensure)
    before = len(fake_openai.requests)
    with pytest.raises(UnknownModelError) as caught:
        await gw.acompletion("gpt-5", USER)
    assert caught.value.choices == ("local", "local-embed", "local-embed-multilingual")
    assert "models are: local, local-embed, local-embed-multilingual" in str(caught.value)
    with pytest.raises(UnknownModelError):
        await gw.aembed("nope", ["x"])
    assert started == [] and len(fake_openai.requests) == before


async def test_completion_goes_through_the_deployment(
    gateway: Gateway, fake_openai: FakeOpenAI
) -> None:
    response = await gateway.acompletion("chat", USER, temperature=0.2, max_tokens=16)
    assert response.choices[0].message.content == REPLY
    _, path, body = fake_openai.requests[-1]
    assert (path, body["model"], body["temperature"], body["max_tokens"]) == (
        "chat", "fake-chat", 0.2, 16)
    record = gateway.recent_calls(1)[0]
    assert (record.model, record.deployment, record.kind, record.ok) == (
        "chat", "chat#0", "completion", True)
    assert (record.prompt_tokens, record.completion_tokens) == (7, len(REPLY.split()))
    assert record.latency_ms > 0 and record.ttft_ms is None


async def test_streaming_yields_several_chunks(gateway: Gateway) -> None:
    chunks = [chunk async for chunk in gateway.astream("chat", USER)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 4
    record = gateway.recent_calls(1)[0]
    assert record.kind == "stream" and record.ok
    assert record.completion_tokens == len(REPLY.split())
    assert record.ttft_ms is not None and record.ttft_ms <= record.latency_ms


async def test_fallback_to_another_model_is_quick(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, FALLBACKS)
    await gw.acompletion("steady", USER)  # build the router and warm its clients
    failed_before = fake_openai.hits("fail")
    start = time.perf_counter()
    response = await gw.acompletion("flaky", USER)
    elapsed = time.perf_counter() - start
    assert response.choices[0].message.content == REPLY
    assert elapsed < 1.5, f"fallback took {elapsed:.2f}s"
    assert fake_openai.hits("fail") == failed_before + 1  # no retry with backoff first
    record = gw.recent_calls(1)[0]
    assert (record.model, record.deployment, record.ok) == ("flaky", "steady#0", True)

    start = time.perf_counter()
    chunks = [c async for c in gw.astream("flaky", USER)]
    assert time.perf_counter() - start < 1.5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY


async def test_failover_between_deployments_of_one_model(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, FALLBACKS)
    await gw.acompletion("steady", USER)
    for _ in range(6):
        start = time.perf_counter()
        response = await gw.acompletion("pair", USER)
        assert response.choices[0].message.content == REPLY
        assert time.perf_counter() - start < 1.5
    assert {r.deployment for r in gw.recent_calls() if r.model == "pair"} == {"pair#1"}


async def test_failure_without_fallback_is_a_model_call_error(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, FALLBACKS)
    with pytest.raises(ModelCallError) as caught:
        await gw.acompletion("broken", USER)
    assert caught.value.alias == "broken" and caught.value.status_code == 500
    assert "fake server told to fail" in caught.value.reason
    record = gw.recent_calls(1)[0]
    assert not record.ok and record.error == caught.value.reason
    summary = gw.usage_summary()
    assert summary.by_model["broken"].errors == 1 and summary.total.errors == 1


async def test_usage_summary_adds_up(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, SIMPLE)
    await gw.acompletion("chat", USER)
    _ = [c async for c in gw.astream("chat", USER)]
    await gw.aembed("embed", ["one two", "three"])
    summary = gw.usage_summary()
    assert summary.total.calls == 3 and summary.total.errors == 0
    assert summary.by_model["chat"].calls == 2
    assert summary.by_model["chat"].prompt_tokens == 14
    assert summary.by_model["chat"].completion_tokens == 2 * len(REPLY.split())
    assert summary.by_model["embed"].prompt_tokens == 3
    assert summary.total.mean_latency_ms > 0
    assert [r.kind for r in gw.recent_calls()] == ["completion", "stream", "embedding"]


async def test_embeddings_are_batched_and_ordered(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, SIMPLE, embed_batch_size=2)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    before = len(fake_openai.requests)
    vectors = await gw.aembed("embed", texts)
    assert [v[0] for v in vectors] == [1.0, 2.0, 3.0, 4.0, 5.0]
    calls = [r for r in fake_openai.requests[before:] if r[1] == "embeddings"]
    assert [len(body["input"]) for _, _, body in calls] == [2, 2, 1]
    assert await gw.aembed("embed", []) == []


async def test_input_type_reaches_only_models_that_take_it(fake_openai: FakeOpenAI) -> None:
    gw = make_gateway(fake_openai, SIMPLE.replace(
        "router_settings:", "  - model_name: e5\n"
        "    litellm_params: {model: openai/fake-e5, api_base: $OK, api_key: sk-test}\n"
        "    model_info: {mode: embedding, input_type: true}\nrouter_settings:"))
    before = len(fake_openai.requests)
    await gw.aembed("e5", ["退款多久到账？"], input_type="query")
    await gw.aembed("e5", ["passage text"])
    await gw.aembed("embed", ["x"], input_type="query")  # MiniLM-like: nothing to tell it
    bodies = [body for _, path, body in fake_openai.requests[before:] if path == "embeddings"]
    assert [body.get("input_type") for body in bodies] == ["query", None, None]
    assert gw.embedder_id("e5") == "e5=openai/fake-e5"
    assert gw.embedder_id("embed") == "embed=openai/fake-embed"
    with pytest.raises(UnknownModelError):
        gw.embedder_id("nope")


def test_sync_wrappers(gateway: Gateway) -> None:
    assert gateway.completion("chat", USER).choices[0].message.content == REPLY
    chunks = list(gateway.stream("chat", USER))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert len(gateway.embed("embed", ["x", "yy"])) == 2


# -- secrets, embedded service, health -------------------------------------------------------

SECRETS = """
model_list:
  - model_name: env-base
    litellm_params: {model: openai/env, api_base: os.environ/FLOWLOOM_TEST_BASE,
                     api_key: os.environ/FLOWLOOM_TEST_KEY}
  - model_name: keyless
    litellm_params: {model: openai/keyless, api_base: $OK,
                     api_key: os.environ/FLOWLOOM_TEST_MISSING_KEY}
"""


async def test_env_secrets_are_resolved_and_a_missing_one_is_reported(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWLOOM_TEST_BASE", fake_openai.base("ok"))
    monkeypatch.setenv("FLOWLOOM_TEST_KEY", "sk-from-the-environment")
    monkeypatch.delenv("FLOWLOOM_TEST_MISSING_KEY", raising=False)
    gw = make_gateway(fake_openai, SECRETS)
    response = await gw.acompletion("env-base", USER)
    assert response.choices[0].message.content == REPLY

    routes = gw.routes()
    (env_route,) = routes["env-base"]
    assert env_route.api_base == fake_openai.base("ok") and env_route.active
    assert env_route.api_key == "os.environ/FLOWLOOM_TEST_KEY"
    (keyless,) = routes["keyless"]
    assert not keyless.active and keyless.missing_env == ("FLOWLOOM_TEST_MISSING_KEY",)

    with pytest.raises(ModelCallError, match="FLOWLOOM_TEST_MISSING_KEY not set"):
        await gw.acompletion("keyless", USER)
    health = {h.alias: h for h in await gw.ahealth()}
    assert health["env-base"].status == "ok"
    assert health["keyless"].status == "skipped"
    assert "FLOWLOOM_TEST_MISSING_KEY" in (health["keyless"].error or "")


def test_routes_mask_literal_keys(gateway: Gateway) -> None:
    routes = gateway.routes()
    assert list(routes) == ["chat", "embed", "tools"]
    assert all(r.api_key == "***" for rs in routes.values() for r in rs)
    assert "sk-test" not in repr(routes)


EMBEDDED = """
model_list:
  - model_name: local
    litellm_params: {model: openai/local, api_base: os.environ/FLOWLOOM_MODEL_URL, api_key: sk}
    model_info: {embedded: true}
  - model_name: remote
    litellm_params: {model: openai/remote, api_base: $OK, api_key: sk}
"""


async def test_embedded_service_is_started_once_on_first_call(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MODEL_URL_ENV, raising=False)
    started: list[Path] = []

    def ensure(home: Path) -> str:
        started.append(home)
        monkeypatch.setenv(MODEL_URL_ENV, fake_openai.base("ok"))
        return fake_openai.base("ok")

    gw = make_gateway(fake_openai, EMBEDDED, home=tmp_path, ensure_service=ensure)
    assert gw.routes()["local"][0].missing_env == (MODEL_URL_ENV,)  # nothing started yet
    (before, _) = await gw.ahealth()
    assert before.status == "skipped" and "not started" in (before.error or "")
    assert started == []
    await gw.acompletion("local", USER)
    await gw.acompletion("local", USER)
    assert started == [tmp_path]
    assert gw.routes()["local"][0].api_base == fake_openai.base("ok")


async def test_embedded_service_failure_leaves_other_models_working(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(MODEL_URL_ENV, raising=False)

    def ensure(home: Path) -> str:
        raise RuntimeError("no model file in home")

    gw = make_gateway(fake_openai, EMBEDDED, home=tmp_path, ensure_service=ensure)
    assert (await gw.acompletion("remote", USER)).choices[0].message.content == REPLY
    with pytest.raises(ModelCallError, match="no model file in home"):
        await gw.acompletion("local", USER)


async def test_health_reports_up_and_down(fake_openai: FakeOpenAI, closed_port: int) -> None:
    text = f"""
model_list:
  - model_name: chat
    litellm_params: {{model: openai/fake-chat, api_base: $OK, api_key: sk-test}}
  - model_name: gone
    litellm_params: {{model: openai/gone, api_base: "http://127.0.0.1:{closed_port}/v1"}}
  - model_name: claude
    litellm_params: {{model: anthropic/claude-x, api_key: sk}}
"""
    gw = make_gateway(fake_openai, text)
    health = {h.alias: h for h in await gw.ahealth()}
    assert health["chat"].status == "ok" and health["chat"].latency_ms is not None
    assert health["gone"].status == "error" and "Connect" in (health["gone"].error or "")
    assert health["claude"].status == "unchecked"


# -- LangChain and LangGraph -----------------------------------------------------------------


async def test_chat_model_converts_messages_and_usage(
    gateway: Gateway, fake_openai: FakeOpenAI
) -> None:
    model = GatewayModels(gateway).chat_model("chat", temperature=0.0, max_tokens=32)
    history: list[BaseMessage] = [
        SystemMessage("Be brief."),
        HumanMessage("Weather?"),
        AIMessage("", tool_calls=[{"name": "search", "args": {"q": "w"}, "id": "c1"}]),
        ToolMessage("sunny", tool_call_id="c1"),
    ]
    reply = await model.ainvoke(history)
    assert isinstance(reply, AIMessage) and reply.content == REPLY
    assert reply.usage_metadata == {"input_tokens": 7, "output_tokens": 5, "total_tokens": 12}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_alias"] == "chat"
    _, _, body = fake_openai.requests[-1]
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][2]["tool_calls"][0]["function"] == {
        "name": "search", "arguments": '{"q": "w"}'}
    assert body["messages"][3]["tool_call_id"] == "c1"
    assert (body["temperature"], body["max_tokens"]) == (0.0, 32)


class Search(BaseModel):
    """Search the web."""

    query: str


async def test_bind_tools_passes_tools_and_parses_tool_calls(
    gateway: Gateway, fake_openai: FakeOpenAI
) -> None:
    model = GatewayChatModel(gateway=gateway, alias="tools").bind_tools(
        [Search], tool_choice="any")
    reply = await model.ainvoke("What is the weather?")
    assert reply.tool_calls == [
        {"name": "Search", "args": {"query": "weather"}, "id": "call_1", "type": "tool_call"}]
    _, _, body = fake_openai.requests[-1]
    assert body["tools"][0]["function"]["name"] == "Search"
    assert body["tool_choice"] == "required"


async def test_chat_model_streams_chunks_with_usage(gateway: Gateway) -> None:
    model = GatewayChatModel(gateway=gateway, alias="chat")
    chunks = [chunk async for chunk in model.astream("Hi")]
    assert len(chunks) >= 4 and all(isinstance(c, AIMessageChunk) for c in chunks)
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert total.content == REPLY
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 5


def test_chat_model_sync_invoke_and_stream(gateway: Gateway) -> None:
    model = GatewayChatModel(gateway=gateway, alias="chat")
    assert model.invoke("Hi").content == REPLY
    assert "".join(str(c.content) for c in model.stream("Hi")) == REPLY


class State(TypedDict):
    messages: Annotated[list[BaseMessage], add_messages]


async def test_langgraph_messages_mode_sees_tokens(gateway: Gateway) -> None:
    model = GatewayModels(gateway).chat_model("chat")

    async def answer(state: State) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(State)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    graph = builder.compile()
    tokens: list[str] = []
    async for event in graph.astream({"messages": [HumanMessage("Hi")]}, stream_mode="messages"):
        message, metadata = cast(tuple[BaseMessage, dict[str, Any]], event)
        assert metadata["langgraph_node"] == "answer"
        if isinstance(message, AIMessageChunk) and message.content:
            tokens.append(str(message.content))
    assert len(tokens) >= 4 and "".join(tokens) == REPLY
    assert gateway.recent_calls(1)[0].kind == "stream"


async def test_non_streaming_model_is_not_streamed(gateway: Gateway) -> None:
    model = GatewayModels(gateway).chat_model("chat", streaming=False)
    chunks = [c async for c in model.astream("Hi")]
    assert len(chunks) == 1 and chunks[0].content == REPLY
    assert gateway.recent_calls(1)[0].kind == "completion"


async def test_gateway_models_is_a_model_provider(gateway: Gateway) -> None:
    models = GatewayModels(gateway)
    assert isinstance(models, ModelProvider)
    assert models.aliases() == ["chat", "embed", "tools"]
    with pytest.raises(UnknownModelError, match="models are: chat, embed, tools"):
        models.chat_model("gpt-5")
    assert len(await models.aembed("embed", ["a", "b", "c"])) == 3


# -- finding the models file -----------------------------------------------------------------


def test_load_gateway_picks_the_first_config_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write(path: Path, alias: str) -> Path:
        path.write_text(f"model_list:\n  - model_name: {alias}\n"
                        f"    litellm_params: {{model: openai/{alias}}}\n")
        return path

    monkeypatch.delenv(MODELS_ENV, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    assert load_gateway(home=home).aliases() == ["local", "local-embed",
                                                 "local-embed-multilingual"]
    write(home / "models.yaml", "from-home")
    assert load_gateway(home=home).aliases() == ["from-home"]
    monkeypatch.setenv(MODELS_ENV, str(write(tmp_path / "env.yaml", "from-env")))
    assert load_gateway(home=home).aliases() == ["from-env"]
    explicit = write(tmp_path / "explicit.yaml", "explicit")
    gw = load_gateway(explicit, home=home)
    assert gw.aliases() == ["explicit"] and gw.home == home


def test_importing_the_gateway_does_not_import_litellm() -> None:
    import subprocess
    import sys

    code = ("import sys, flowloom.backends.gateway, flowloom.backends.context; "
            "print('litellm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ})
    assert out.stdout.strip() == "False"
