"""Provider faults: the gateway retries as configured, alike for every server fault, honours
Retry-After, falls back, and fails saying which model and why; a stream that breaks before
its first token is recovered, one that breaks after says so.

Every call goes through a real `litellm.Router` to the fake server of `conftest.py`, whose
path prefix picks the fault (`status503`, `ratelimit1x1`, `hang`, `drop3`, ...) and which
counts each request: the counts prove that nothing was lost and nothing repeated beyond the
configured retries. The same faults are then driven end to end through a real server
(`/runs/wait`, `/runs/stream`, `/v1/chat/completions`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowloom.backends.gateway import (
    CUT_OFF_NOTE,
    Gateway,
    GatewayChatModel,
    GatewayConfigError,
    ModelCallError,
    PartialAnswerError,
    parse_gateway_config,
)
from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.loader import examples_dir
from tests.backends.conftest import REPLY, FakeOpenAI
from tests.backends.test_server_protocol import run_server

USER = [{"role": "user", "content": "Hi"}]
EARLY = "Hello from the"  # what `drop3` and `badjson3` send before they break


@dataclass
class Faulty:
    """A gateway whose alias `m` is served by a misbehaving prefix and (with a fallback)
    falls back to `steady`, served by a fresh `ok` prefix."""

    gateway: Gateway
    fake: FakeOpenAI
    broken: str
    steady: str

    def hits(self) -> tuple[int, int]:
        """Model requests so far: (to the broken prefix, to the fallback)."""
        return self.fake.hits(self.broken, "chat"), self.fake.hits(self.steady, "chat")


def faulty(fake: FakeOpenAI, behaviour: str, settings: str, *, fallback: bool = True,
           timeout: float | None = None) -> Faulty:
    broken, steady = fake.fresh(behaviour), fake.fresh("ok")
    extra = f", timeout: {timeout}" if timeout else ""
    text = f"""
model_list:
  - model_name: m
    litellm_params: {{model: openai/m, api_base: "{fake.base(broken)}", api_key: sk{extra}}}
  - model_name: steady
    litellm_params: {{model: openai/steady, api_base: "{fake.base(steady)}", api_key: sk}}
router_settings:
  retry_after: 0
  {settings}
  {"fallbacks: [{m: [steady]}]" if fallback else ""}
"""
    gateway = Gateway(parse_gateway_config(text), ensure_service=_no_service)
    return Faulty(gateway, fake, broken, steady)


def _no_service(home: Path) -> str:
    raise AssertionError("the embedded model service must not be started here")


async def call(gateway: Gateway, kind: str, model: str = "m") -> str:
    """The answer's text, by a completion or a stream."""
    if kind == "completion":
        response = await gateway.acompletion(model, USER)
        return str(response.choices[0].message.content)
    chunks = [c async for c in gateway.astream(model, USER)]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


KINDS = ["completion", "stream"]


# -- configuration ---------------------------------------------------------------------------


def test_the_router_gets_an_explicit_policy_with_server_faults_alike() -> None:
    config = parse_gateway_config("""
model_list:
  - {model_name: m, litellm_params: {model: openai/m}}
router_settings:
  num_retries: 3
  retry_policy: {InternalServerErrorRetries: 1, RateLimitErrorRetries: 4}
""")
    policy = config.router_settings.router_kwargs()["retry_policy"]
    # a 502 and a dropped connection read DefaultRetries: it must say what a 500 gets
    assert (policy["InternalServerErrorRetries"], policy["ServiceUnavailableErrorRetries"],
            policy["DefaultRetries"]) == (1, 1, 1)
    assert (policy["RateLimitErrorRetries"], policy["TimeoutErrorRetries"]) == (4, 3)
    assert policy["BadRequestErrorRetries"] == 3  # what LiteLLM reads for it without us
    assert None not in policy.values()


def test_server_fault_retries_that_disagree_are_a_config_error() -> None:
    text = """
model_list:
  - {model_name: m, litellm_params: {model: openai/m}}
router_settings:
  retry_policy: {InternalServerErrorRetries: 0, ServiceUnavailableErrorRetries: 2}
  model_group_retry_policy: {n: {DefaultRetries: 1}}
"""
    with pytest.raises(GatewayConfigError) as caught:
        parse_gateway_config(text)
    problems = {p.path: p for p in caught.value.problems}
    conflict = problems["router_settings.retry_policy"]
    assert conflict.code == "retry_policy_conflict"
    assert "InternalServerErrorRetries: 0, ServiceUnavailableErrorRetries: 2 disagree" in (
        conflict.message)
    assert problems["router_settings.model_group_retry_policy.n"].choices == ("m",)


# -- statuses, retries and fallbacks ----------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize(("settings", "tries"), [
    ("num_retries: 1", 2),
    # the shipped models.yaml's shape: before, a 502 was retried here and 500/503 not
    ("num_retries: 1\n  retry_policy: {InternalServerErrorRetries: 0, "
     "ServiceUnavailableErrorRetries: 0}", 1),
])
async def test_every_server_status_is_retried_alike_then_falls_back(
    fake_openai: FakeOpenAI, kind: str, status: int, settings: str, tries: int
) -> None:
    setup = faulty(fake_openai, f"status{status}", settings)
    assert await call(setup.gateway, kind) == REPLY
    assert setup.hits() == (tries, 1)
    record = setup.gateway.recent_calls(1)[0]
    assert (record.model, record.deployment, record.ok) == ("m", "steady#0", True)


@pytest.mark.parametrize("kind", KINDS)
async def test_failing_twice_then_answering_needs_two_retries(
    fake_openai: FakeOpenAI, kind: str
) -> None:
    setup = faulty(fake_openai, "status502x2", "num_retries: 2")
    assert await call(setup.gateway, kind) == REPLY
    assert setup.hits() == (3, 0)  # two failures, one answer; the fallback never asked
    few = faulty(fake_openai, "status503x2", "num_retries: 1")
    assert await call(few.gateway, kind) == REPLY
    assert few.hits() == (2, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failure_without_fallback_names_the_model_and_the_cause(
    fake_openai: FakeOpenAI, kind: str
) -> None:
    setup = faulty(fake_openai, "status503", "num_retries: 1", fallback=False)
    with pytest.raises(ModelCallError) as caught:
        await call(setup.gateway, kind)
    error = caught.value
    assert error.alias == "m" and error.status_code == 503
    assert str(error).startswith("model 'm': ") and "fake server answers 503" in error.reason
    assert setup.hits() == (2, 0)
    record = setup.gateway.recent_calls(1)[0]
    assert not record.ok and record.error == error.reason


async def test_retry_after_of_a_429_is_honoured(fake_openai: FakeOpenAI) -> None:
    setup = faulty(fake_openai, "ratelimit1x1",
                   "num_retries: 0\n  retry_policy: {RateLimitErrorRetries: 1}")
    assert await call(setup.gateway, "completion") == REPLY
    assert setup.hits() == (2, 0)
    first, second = fake_openai.arrivals[setup.broken]
    assert second - first >= 1.0  # the server asked for a second; never less


async def test_an_unreasonable_retry_after_is_not_waited_out(fake_openai: FakeOpenAI) -> None:
    setup = faulty(fake_openai, "ratelimit3600x1",
                   "num_retries: 0\n  retry_policy: {RateLimitErrorRetries: 1}")
    assert await call(setup.gateway, "stream") == REPLY
    assert setup.hits() == (2, 0)
    first, second = fake_openai.arrivals[setup.broken]
    assert second - first < 60  # LiteLLM obeys Retry-After up to 60 s, then backs off


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limited_to_the_end_falls_back(fake_openai: FakeOpenAI, kind: str) -> None:
    setup = faulty(fake_openai, "ratelimit1",
                   "num_retries: 3\n  retry_policy: {RateLimitErrorRetries: 1}")
    assert await call(setup.gateway, kind) == REPLY
    assert setup.hits() == (2, 1)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_hung_request_times_out_is_retried_and_falls_back(
    fake_openai: FakeOpenAI, kind: str
) -> None:
    setup = faulty(fake_openai, "hang", "num_retries: 0\n  retry_policy: {TimeoutErrorRetries: 1}",
                   timeout=1)
    assert await call(setup.gateway, kind) == REPLY
    assert setup.hits() == (2, 1)

    alone = faulty(fake_openai, "hang", "num_retries: 0", fallback=False, timeout=1)
    with pytest.raises(ModelCallError) as caught:
        await call(alone.gateway, kind)
    assert caught.value.alias == "m" and "Timeout" in caught.value.reason
    assert alone.hits() == (1, 0)


# -- streams that break -----------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["drop0x1", "badjson0x1"])
async def test_a_stream_broken_before_its_first_token_is_retried(
    fake_openai: FakeOpenAI, behaviour: str
) -> None:
    setup = faulty(fake_openai, behaviour, "num_retries: 1", fallback=False)
    chunks = [c async for c in setup.gateway.astream("m", USER)]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY  # nothing of the broken attempt, nothing twice
    roles = [c for c in chunks if c.choices and c.choices[0].delta.role == "assistant"]
    assert len(roles) == 1
    assert setup.hits() == (2, 0)
    record = setup.gateway.recent_calls(1)[0]
    assert record.ok and record.completion_tokens == len(REPLY.split())


@pytest.mark.parametrize("behaviour", ["drop0", "badjson0"])
async def test_a_stream_that_keeps_breaking_early_falls_back(
    fake_openai: FakeOpenAI, behaviour: str
) -> None:
    setup = faulty(fake_openai, behaviour, "num_retries: 1")
    assert await call(setup.gateway, "stream") == REPLY
    assert setup.hits() == (2, 1)  # LiteLLM alone: (1, 1), no retry
    assert setup.gateway.recent_calls(1)[0].deployment == "steady#0"

    alone = faulty(fake_openai, behaviour, "num_retries: 1", fallback=False)
    with pytest.raises(ModelCallError) as caught:
        await call(alone.gateway, "stream")
    assert caught.value.alias == "m" and not isinstance(caught.value, PartialAnswerError)
    assert "APIConnectionError" in caught.value.reason
    assert alone.hits() == (2, 0)


async def test_when_the_fallback_fails_too_both_causes_are_named(
    fake_openai: FakeOpenAI
) -> None:
    broken, also = fake_openai.fresh("drop0"), fake_openai.fresh("status503")
    gateway = Gateway(parse_gateway_config(f"""
model_list:
  - {{model_name: m, litellm_params: {{model: openai/m, api_base: "{fake_openai.base(broken)}",
                                       api_key: sk}}}}
  - {{model_name: n, litellm_params: {{model: openai/n, api_base: "{fake_openai.base(also)}",
                                       api_key: sk}}}}
router_settings: {{num_retries: 0, fallbacks: [{{m: [n]}}]}}
"""), ensure_service=_no_service)
    with pytest.raises(ModelCallError) as caught:
        await call(gateway, "stream")
    reason = caught.value.reason
    assert reason.startswith("APIConnectionError") and "fallback 'n' failed too" in reason
    assert "fake server answers 503" in reason
    assert (fake_openai.hits(broken), fake_openai.hits(also)) == (1, 1)


@pytest.mark.parametrize("behaviour", ["drop3", "badjson3"])
async def test_a_stream_broken_after_tokens_were_sent_says_so(
    fake_openai: FakeOpenAI, behaviour: str
) -> None:
    setup = faulty(fake_openai, behaviour, "num_retries: 2")
    got: list[str] = []
    with pytest.raises(PartialAnswerError) as caught:
        async for chunk in setup.gateway.astream("m", USER):
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert "".join(got) == EARLY
    error = caught.value
    assert error.alias == "m" and error.sent == 3 and "incomplete" in str(error)
    assert "APIConnectionError" in error.cause
    assert setup.hits() == (1, 0)  # not retried, not handed over: the caller has half of it
    record = setup.gateway.recent_calls(1)[0]
    assert not record.ok and record.error == error.reason and record.ttft_ms is not None


async def test_the_chat_model_ends_a_broken_answer_with_a_visible_note(
    fake_openai: FakeOpenAI
) -> None:
    setup = faulty(fake_openai, "drop3", "num_retries: 0", fallback=False)
    model = GatewayChatModel(gateway=setup.gateway, alias="m")
    pieces: list[str] = []
    with pytest.raises(PartialAnswerError):
        async for chunk in model.astream("Hi"):
            pieces.append(str(chunk.content))
    assert "".join(pieces[:-1]) == EARLY
    assert pieces[-1].startswith("\n\n[answer cut off: model 'm' stopped mid-answer (")
    assert CUT_OFF_NOTE.split("{")[0] in pieces[-1]


def test_the_sync_stream_recovers_too(fake_openai: FakeOpenAI) -> None:
    setup = faulty(fake_openai, "drop0x1", "num_retries: 1", fallback=False)
    chunks = list(setup.gateway.stream("m", USER))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert setup.hits() == (2, 0)


# -- end to end through a real server ---------------------------------------------------------

E2E_ALIASES = {
    # alias: (behaviour, falls back to `steady`)
    "unavailable": ("status503", True),
    "badgateway": ("status502", False),
    "hanging": ("hang", True),
    "cutjson": ("badjson3", True),
    "early": ("drop0", True),
    "late": ("drop3", True),
}


@dataclass
class Served:
    url: str
    fake: FakeOpenAI
    prefixes: dict[str, str]  # alias -> prefix

    def hits(self, alias: str) -> int:
        return self.fake.hits(self.prefixes[alias], "chat")


@pytest.fixture(scope="module")
def served(fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    """`flowloom serve` in-process with a models file pointing at the fake: one flow per
    alias above (the chat example, its model swapped), one retry, fallbacks to `steady`."""
    home = tmp_path_factory.mktemp("faults-home")
    flows = home / "flows"
    flows.mkdir()
    chat = json.loads((examples_dir() / "chat.json").read_text())
    prefixes = {alias: fake_openai.fresh(b) for alias, (b, _) in E2E_ALIASES.items()}
    prefixes["steady"] = fake_openai.fresh("ok")
    entries = []
    for alias, prefix in prefixes.items():
        timeout = ", timeout: 1" if alias == "hanging" else ""
        entries.append(f"  - {{model_name: {alias}, litellm_params: {{model: openai/{alias}, "
                       f"api_base: \"{fake_openai.base(prefix)}\", api_key: sk{timeout}}}}}")
        node = {**chat["nodes"][0], "params": {**chat["nodes"][0]["params"], "model": alias}}
        (flows / f"{alias}.json").write_text(json.dumps({**chat, "id": alias, "nodes": [node]}))
    fallbacks = ", ".join(f"{{{a}: [steady]}}" for a, (_, f) in E2E_ALIASES.items() if f)
    models = home / "models.yaml"
    models.write_text("model_list:\n" + "\n".join(entries) + f"""
router_settings:
  num_retries: 1
  retry_after: 0
  retry_policy: {{TimeoutErrorRetries: 0}}
  fallbacks: [{fallbacks}]
""")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home,
                              models=models, flows_dirs=(flows,))
    for url in run_server(create_app(settings)):
        yield Served(url, fake_openai, prefixes)


def _counts(served: Served, alias: str) -> tuple[int, int]:
    return served.hits(alias), served.hits("steady")


def _delta(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int]:
    return after[0] - before[0], after[1] - before[1]


def _events(body: str) -> list[tuple[str, Any]]:
    """(event, data) of an SSE body."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines.get("data", "null"))))
    return out


def _thread(url: str) -> str:
    return str(httpx.post(f"{url}/threads", json={}).json()["thread_id"])


def _run_status(url: str, thread_id: str) -> dict[str, Any]:
    (run,) = httpx.get(f"{url}/threads/{thread_id}/runs").json()
    return dict(run)


@pytest.mark.parametrize(("alias", "counts"), [
    ("unavailable", (2, 1)), ("hanging", (1, 1)), ("cutjson", (2, 1)), ("early", (2, 1))])
def test_runs_wait_falls_back(served: Served, alias: str, counts: tuple[int, int]) -> None:
    before = _counts(served, alias)
    thread = _thread(served.url)
    answer = httpx.post(f"{served.url}/threads/{thread}/runs/wait", timeout=60, json={
        "assistant_id": alias, "input": {"messages": USER}}).json()
    last = answer["messages"][-1]
    assert (last["type"], last["content"]) == ("ai", REPLY)
    assert last["response_metadata"]["deployment"] == "steady#0"
    assert _delta(before, _counts(served, alias)) == counts
    assert _run_status(served.url, thread)["status"] == "success"


def test_runs_wait_without_fallback_fails_naming_the_model(served: Served) -> None:
    before = _counts(served, "badgateway")
    thread = _thread(served.url)
    answer = httpx.post(f"{served.url}/threads/{thread}/runs/wait", timeout=60, json={
        "assistant_id": "badgateway", "input": {"messages": USER}}).json()
    error = answer["__error__"]
    assert error["error"] == "ModelCallError"
    assert error["message"].startswith("model 'badgateway': ") and "502" in error["message"]
    assert _delta(before, _counts(served, "badgateway")) == (2, 0)  # one retry, as configured
    assert _run_status(served.url, thread)["status"] == "error"


def _stream(served: Served, alias: str, thread: str) -> list[tuple[str, Any]]:
    with httpx.stream("POST", f"{served.url}/threads/{thread}/runs/stream", timeout=60, json={
            "assistant_id": alias, "input": {"messages": USER},
            "stream_mode": ["messages-tuple", "values"]}) as response:
        return _events(response.read().decode())


def _tokens(events: list[tuple[str, Any]]) -> str:
    return "".join(data[0]["content"] for event, data in events if event == "messages")


@pytest.mark.parametrize(("alias", "counts"), [
    ("early", (2, 1)), ("unavailable", (2, 1)), ("hanging", (1, 1))])
def test_runs_stream_recovers_a_fault_before_the_first_token(
    served: Served, alias: str, counts: tuple[int, int]
) -> None:
    before = _counts(served, alias)
    thread = _thread(served.url)
    events = _stream(served, alias, thread)
    assert "error" not in [event for event, _ in events]
    assert _tokens(events) == REPLY  # the fallback's answer, once
    final = [data for event, data in events if event == "values"][-1]
    assert final["messages"][-1]["content"] == REPLY
    assert _delta(before, _counts(served, alias)) == counts
    assert _run_status(served.url, thread)["status"] == "success"


def test_runs_stream_broken_after_tokens_says_so_in_the_answer_and_the_run(
    served: Served
) -> None:
    before = _counts(served, "late")
    thread = _thread(served.url)
    events = _stream(served, "late", thread)
    tokens = _tokens(events)
    assert tokens.startswith(EARLY + "\n\n[answer cut off: model 'late' stopped mid-answer (")
    (error,) = [data for event, data in events if event == "error"]
    assert error["error"] == "PartialAnswerError"
    assert error["message"].startswith("model 'late': the answer broke off after 3 ")
    assert "incomplete" in error["message"] and "APIConnectionError" in error["message"]
    assert _delta(before, _counts(served, "late")) == (1, 0)
    assert _run_status(served.url, thread)["status"] == "error"
    state = httpx.get(f"{served.url}/threads/{thread}/state").json()
    assert [m["type"] for m in state["values"]["messages"]] == ["human"]  # no half answer kept


def _openai_stream(served: Served, alias: str) -> tuple[str, list[dict[str, Any]]]:
    with httpx.stream("POST", f"{served.url}/v1/chat/completions", timeout=60, json={
            "model": alias, "messages": USER, "stream": True}) as response:
        body = response.read().decode()
    datas = [json.loads(line[6:]) for line in body.splitlines()
             if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join((d["choices"][0]["delta"].get("content") or "")
                   for d in datas if d.get("choices"))
    return text, [d["error"] for d in datas if "error" in d]


def test_openai_stream_recovers_early_and_reports_late_breaks(served: Served) -> None:
    before = _counts(served, "early")
    text, errors = _openai_stream(served, "early")
    assert (text, errors) == (REPLY, [])
    assert _delta(before, _counts(served, "early")) == (2, 1)

    before = _counts(served, "late")
    text, errors = _openai_stream(served, "late")
    assert text.startswith(EARLY + "\n\n[answer cut off: model 'late'")
    (error,) = errors
    assert "model 'late': the answer broke off" in error["message"]
    assert _delta(before, _counts(served, "late")) == (1, 0)
