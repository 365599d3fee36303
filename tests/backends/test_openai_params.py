"""The OpenAI chat endpoint's request contract, driven by the official `openai` client
against a real `flowloom serve` app on 127.0.0.1 whose flows call the fake
OpenAI-compatible model server of `conftest.py` through the real gateway: what the fake
received proves that `max_tokens`, `stop`, `temperature`, `response_format` and `tools`
reached the flow's answering model call (and only it); `finish_reason` says `length` and
`tool_calls`; flows that cannot honour a parameter refuse it naming it; a flow that pauses
for approval answers with the pending request and resumes with the next message."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from flowloom.backends.gateway import Gateway, GatewayModels, parse_gateway_config
from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from tests.agents.test_tools_agent import agent_flow, call
from tests.backends.conftest import REPLY, FakeOpenAI
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

WEATHER: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather somewhere.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                   "required": ["query"]}}}
SCHEMA: Any = {"type": "json_schema", "json_schema": {
    "name": "answer", "strict": True,
    "schema": {"type": "object", "properties": {"text": {"type": "string"}},
               "required": ["text"], "additionalProperties": False}}}


def _chat(flow_id: str, model: str, **params: Any) -> dict[str, Any]:
    return {"schema_version": 1, "id": flow_id, "name": flow_id,
            "state": {"messages": {"type": "messages"}},
            "nodes": [{"id": "answer", "type": "llm.chat@1",
                       "params": {"model": model, "system": "Be brief.", **params}}],
            "edges": [{"source": "START", "target": "answer"},
                      {"source": "answer", "target": "END"}]}


FLOWS: list[dict[str, Any]] = [
    _chat("talk", "answer", max_tokens=100, temperature=0.2),
    _chat("cutter", "cutter"),
    _chat("tools", "toolish"),
    {"schema_version": 1, "id": "twostep", "name": "Two steps",
     "state": {"messages": {"type": "messages"}, "draft": {"type": "string"}},
     "nodes": [{"id": "draft", "type": "llm.chat@1",
                "params": {"model": "answer", "output": "draft", "max_tokens": 300}},
               {"id": "polish", "type": "llm.chat@1",
                "params": {"model": "answer", "history": False,
                           "prompt": "Polish: {{ draft }}"}}],
     "edges": [{"source": "START", "target": "draft"}, {"source": "draft", "target": "polish"},
               {"source": "polish", "target": "END"}]},
    {"schema_version": 1, "id": "textual", "name": "Text answer",
     "state": {"question": {"type": "string"}, "reply": {"type": "string"}},
     "nodes": [{"id": "write", "type": "llm.chat@1",
                "params": {"model": "answer", "prompt": "{{ question }}", "output": "reply"}}],
     "edges": [{"source": "START", "target": "write"}, {"source": "write", "target": "END"}],
     "io": {"input": "question", "output": "reply"}},
    {"schema_version": 1, "id": "quote", "name": "Quote",
     "state": {"question": {"type": "string"}, "answer": {"type": "string"}},
     "nodes": [{"id": "say", "type": "prompt.template@1",
                "params": {"template": "Q: {{ question }}", "output": "answer"}}],
     "edges": [{"source": "START", "target": "say"}, {"source": "say", "target": "END"}],
     "io": {"input": "question", "output": "answer"}},
    {"schema_version": 1, "id": "gate", "name": "Gate",
     "state": {"messages": {"type": "messages"}, "approval": {"type": "string"},
               "why": {"type": "string"}},
     "nodes": [{"id": "ask", "type": "human.approve@1", "params": {
                   "message": "May I answer: {{ last_message }}?", "comment": "why"}},
               {"id": "reply", "type": "llm.chat@1", "params": {"model": "answer"}}],
     "edges": [{"source": "START", "target": "ask"},
               {"source": "ask", "target": "reply", "condition": "approved"},
               {"source": "ask", "target": "END", "condition": "rejected"},
               {"source": "reply", "target": "END"}]},
]

MODELS = """
model_list:
  - model_name: answer
    litellm_params: {model: openai/fake-answer, api_base: $ANSWER, api_key: sk-test}
  - model_name: cutter
    litellm_params: {model: openai/fake-cut, api_base: $CUT, api_key: sk-test}
  - model_name: toolish
    litellm_params: {model: openai/fake-tools, api_base: $TOOLS, api_key: sk-test}
  - model_name: embedder
    litellm_params: {model: openai/fake-embed, api_base: $ANSWER, api_key: sk-test}
    model_info: {mode: embedding}
router_settings: {num_retries: 0}
"""


@dataclass
class Served:
    """A server on the fake model, and the fake's prefix behind each alias."""

    url: str
    fake: FakeOpenAI
    prefixes: dict[str, str]

    def client(self) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key="-", max_retries=0, timeout=30)

    def sent(self, alias: str, path: str = "chat") -> list[dict[str, Any]]:
        """The bodies the fake received for `alias`, oldest first."""
        return [body for prefix, what, body in self.fake.requests
                if prefix == self.prefixes[alias] and what == path]


def _no_service(home: Path) -> str:
    raise AssertionError("the embedded model service must not be started here")


def serve_flows(tmp: Path, fake: FakeOpenAI, flows: list[dict[str, Any]]) -> Iterator[Served]:
    """`flowloom serve`'s app over `flows`, its models on the fake server (fresh prefixes:
    each module's counts start at zero)."""
    prefixes = {"answer": fake.fresh("ok"), "cutter": fake.fresh("cut"),
                "toolish": fake.fresh("tooluse")}
    text = MODELS
    for alias, name in (("answer", "$ANSWER"), ("cutter", "$CUT"), ("toolish", "$TOOLS")):
        text = text.replace(name, fake.base(prefixes[alias]))
    prefixes["embedder"] = prefixes["answer"]
    gateway = Gateway(parse_gateway_config(text), ensure_service=_no_service)
    folder = tmp / "flows"
    folder.mkdir()
    for doc in flows:
        (folder / f"{doc['id']}.json").write_text(json.dumps(doc))
    settings = ServerSettings(database=f"sqlite:///{tmp}/fl.sqlite", home=tmp,
                              flows_dirs=(folder,))
    app = create_app(settings, ctx=BuildContext(models=GatewayModels(gateway), data_dir=tmp))
    for url in run_server(app):
        yield Served(url, fake, prefixes)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI
           ) -> Iterator[Served]:
    yield from serve_flows(tmp_path_factory.mktemp("openai-params"), fake_openai, FLOWS)


def user(text: str) -> Any:
    return {"role": "user", "content": text}


def _error(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = caught.value.body
    assert isinstance(body, dict)
    return body


def test_parameters_reach_the_answering_model_call(served: Served) -> None:
    client = served.client()
    answer = client.chat.completions.create(
        model="talk", messages=[user("hi")], max_tokens=7, stop=["STOP", "END"],
        temperature=0.7, top_p=0.5, seed=3, presence_penalty=0.1, frequency_penalty=0.2,
        response_format=SCHEMA)
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    sent = served.sent("answer")[-1]
    assert {k: sent.get(k) for k in ("max_tokens", "stop", "temperature", "top_p", "seed",
                                     "presence_penalty", "frequency_penalty",
                                     "response_format")} == {
        "max_tokens": 7, "stop": ["STOP", "END"], "temperature": 0.7, "top_p": 0.5,
        "seed": 3, "presence_penalty": 0.1, "frequency_penalty": 0.2,
        "response_format": SCHEMA}
    # streamed alike; max_completion_tokens is max_tokens; json_object; one stop string
    chunks = list(client.chat.completions.create(
        model="talk", messages=[user("hi")], stream=True, max_completion_tokens=11,
        stop="STOP", response_format={"type": "json_object"}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    sent = served.sent("answer")[-1]
    assert sent["stream"] is True
    assert (sent["max_tokens"], sent["stop"], sent["response_format"]) == (
        11, ["STOP"], {"type": "json_object"})
    assert sent["temperature"] == 0.2  # not set by the request: the flow's own
    # a plain request leaves the flow's own settings
    client.chat.completions.create(model="talk", messages=[user("hi")])
    sent = served.sent("answer")[-1]
    assert (sent["max_tokens"], sent["temperature"]) == (100, 0.2)
    assert "stop" not in sent and "response_format" not in sent


def test_only_the_node_that_answers_gets_them(served: Served) -> None:
    before = len(served.sent("answer"))
    served.client().chat.completions.create(model="twostep", messages=[user("hi")],
                                            max_tokens=9, temperature=1.5)
    draft, polish = served.sent("answer")[before:]
    assert (draft["max_tokens"], draft["temperature"]) == (300, 0.2)  # its own
    assert (polish["max_tokens"], polish["temperature"]) == (9, 1.5)
    assert polish["messages"][-1]["content"] == f"Polish: {REPLY}"


def test_finish_reason_is_length_when_the_limit_cut_the_answer(served: Served) -> None:
    client = served.client()
    cut = client.chat.completions.create(model="cutter", messages=[user("hi")], max_tokens=2)
    assert cut.choices[0].message.content == "Hello from"
    assert cut.choices[0].finish_reason == "length"
    chunks = list(client.chat.completions.create(model="cutter", messages=[user("hi")],
                                                 max_tokens=3, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Hello from the"
    assert chunks[-1].choices[0].finish_reason == "length"
    whole = client.chat.completions.create(model="cutter", messages=[user("hi")])
    assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == (REPLY,
                                                                                 "stop")
    stopped = client.chat.completions.create(model="cutter", messages=[user("hi")],
                                             stop=[" fake"])
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == (
        "Hello from the", "stop")
    # a flow's answer written as text: the limit and the finish reason apply as well
    text = client.chat.completions.create(model="textual", messages=[user("hi")],
                                          max_tokens=4)
    assert served.sent("answer")[-1]["max_tokens"] == 4
    assert text.choices[0].message.content == REPLY


@pytest.mark.parametrize(("flow", "kwargs", "param", "words"), [
    ("quote", {"max_tokens": 5}, "max_tokens",
     "node 'say' (prompt.template@1), which takes no model parameters"),
    ("quote", {"max_completion_tokens": 5}, "max_completion_tokens", "cannot honour"),
    ("quote", {"temperature": 0.1}, "temperature", "cannot honour temperature"),
    ("quote", {"stop": ["x"]}, "stop", "cannot honour stop"),
    ("quote", {"response_format": {"type": "json_object"}}, "response_format",
     "cannot honour response_format"),
    ("quote", {"tools": [WEATHER]}, "tools", "cannot honour tools"),
    ("textual", {"tools": [WEATHER]}, "tools", "node 'write' (llm.chat@1), which takes "
     "frequency_penalty, max_tokens"),
    ("talk", {"tool_choice": "auto"}, "tool_choice", "only allowed with `tools`"),
    ("talk", {"tools": [WEATHER], "tool_choice": {"type": "function",
                                                  "function": {"name": "nope"}}},
     "tool_choice", "not among the tools: get_weather"),
    ("talk", {"logprobs": True}, "logprobs", "not supported"),
    ("talk", {"functions": [WEATHER["function"]]}, "functions", "not supported"),
    ("talk", {"response_format": {"type": "json_schema"}}, "response_format",
     "`json_schema` goes with type json_schema"),
    ("talk", {"response_format": {"type": "xml"}}, "response_format.type", "json_object"),
    ("talk", {"temperature": 3}, "temperature", "less than or equal to 2"),
    ("talk", {"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
    ("talk", {"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type",
     "'function'"),
])
def test_what_a_flow_cannot_honour_is_refused_naming_it(
    served: Served, flow: str, kwargs: dict[str, Any], param: str, words: str
) -> None:
    before = len(served.fake.requests)
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model=flow, messages=[user("hi")], **kwargs)
    error = _error(caught)
    assert error["param"] == param, error
    assert words in error["message"], error
    assert error["type"] == "invalid_request_error"
    assert len(served.fake.requests) == before  # refused before any model call


def test_tool_messages_to_a_flow_without_client_tools_are_refused(served: Served) -> None:
    conversation: Any = [
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model="quote", messages=conversation)
    assert _error(caught)["param"] == "messages[1]"
    assert "tool calls and their results" in _error(caught)["message"]
    bad: Any = [user("x"), {"role": "tool", "content": "no id"}]
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model="tools", messages=bad)
    assert _error(caught)["param"] == "messages[1]"
    args: Any = [user("x"), {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        served.client().chat.completions.create(model="tools", messages=args)
    assert _error(caught)["param"] == "messages[1].tool_calls[0].function.arguments"


def test_client_tools_are_called_and_their_results_continue_the_thread(
    served: Served
) -> None:
    client = served.client()
    thread = f"tools-{uuid.uuid4()}"
    first = client.chat.completions.create(model="tools", messages=[user("weather?")],
                                           tools=[WEATHER], tool_choice="auto", user=thread)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("function", "get_weather", {"query": "weather"})]
    sent = served.sent("toolish")[-1]
    assert sent["tools"] == [WEATHER] and sent["tool_choice"] == "auto"
    # the client runs the tool and sends the result back on the thread
    history: Any = [user("weather?"), choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"}]
    second = client.chat.completions.create(model="tools", messages=history, tools=[WEATHER],
                                            user=thread)
    assert second.choices[0].message.content == "Tool said: sunny"
    assert second.choices[0].finish_reason == "stop"
    sent = served.sent("toolish")[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"][0]["id"] == calls[0].id
    assert sent[3] == {"role": "tool", "content": "sunny", "tool_call_id": calls[0].id}


def test_client_tools_stream_and_work_without_a_thread(served: Served) -> None:
    client = served.client()
    chunks = list(client.chat.completions.create(
        model="tools", messages=[user("weather?")], tools=[WEATHER], stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert [(c.index, c.function and c.function.name) for c in calls] == [(0, "get_weather")]
    assert calls[0].function is not None
    assert json.loads(calls[0].function.arguments or "") == {"query": "weather"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # stateless: the whole conversation (with the call and its result) goes to the model
    conversation: Any = [
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c9", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"query": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c9", "content": "rain"}]
    answer = client.chat.completions.create(model="tools", messages=conversation,
                                            tools=[WEATHER])
    assert answer.choices[0].message.content == "Tool said: rain"
    sent = served.sent("toolish")[-1]["messages"]
    assert sent[2]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                   "arguments": '{"query": "Paris"}'}


def _raw(served: Served, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{served.url}/v1/chat/completions", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_paused_flow_asks_and_the_next_message_resumes_it(served: Served) -> None:
    client = served.client()
    before = len(served.sent("answer"))
    thread = f"gate-{uuid.uuid4()}"
    asked = client.chat.completions.create(model="gate", messages=[user("what is 2+2?")],
                                           user=thread)
    choice = asked.choices[0]
    assert choice.finish_reason == "interrupted"
    assert (choice.message.content or "").startswith("May I answer: what is 2+2??")
    assert 'Reply "yes" or "no"' in (choice.message.content or "")
    extension = (asked.model_extra or {})["flowloom"]
    assert extension["status"] == "interrupted" and extension["thread"] == thread
    assert extension["interrupts"][0]["kind"] == "approval"
    assert len(served.sent("answer")) == before  # nothing answered yet
    # not a decision: asked again, saying what it accepts; still nothing answered
    again = client.chat.completions.create(model="gate", messages=[user("maybe")],
                                           user=thread)
    assert again.choices[0].finish_reason == "interrupted"
    assert "not understood: 'maybe' is not a decision" in (again.choices[0].message.content
                                                           or "")
    # a yes (in Chinese) resumes the run where it paused: the answer comes
    done = client.chat.completions.create(model="gate", messages=[user("好的，回答吧")],
                                          user=thread)
    assert (done.choices[0].message.content, done.choices[0].finish_reason) == (REPLY, "stop")
    assert "flowloom" not in (done.model_extra or {})
    assert len(served.sent("answer")) == before + 1
    state = httpx.get(f"{served.url}/threads/{thread}/state", timeout=30).json()
    assert state["values"]["approval"] == "approved"
    # the model saw the question once: the run was resumed, not restarted
    assert [m["content"] for m in served.sent("answer")[-1]["messages"]
            if m["role"] == "user"] == ["what is 2+2?"]


def test_a_pause_streams_and_json_or_no_decides(served: Served) -> None:
    before = len(served.sent("answer"))
    refused = f"gate-{uuid.uuid4()}"
    body = {"model": "gate", "user": refused, "stream": True,
            "messages": [user("delete everything")]}
    chunks = list(served.client().chat.completions.create(**body))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("May I answer: delete everything?")
    assert chunks[-1].choices[0].finish_reason == "interrupted"
    assert (chunks[-1].model_extra or {})["flowloom"]["status"] == "interrupted"
    no = _raw(served, {"model": "gate", "user": refused,
                       "messages": [user("No, thanks.")]})
    assert no["choices"][0]["finish_reason"] == "stop"
    state = httpx.get(f"{served.url}/threads/{refused}/state", timeout=30).json()
    assert state["values"]["approval"] == "rejected"
    approved = f"gate-{uuid.uuid4()}"
    _raw(served, {"model": "gate", "user": approved, "messages": [user("hi")]})
    done = _raw(served, {"model": "gate", "user": approved, "messages": [
        user('{"approved": true, "comment": "fine"}')]})
    assert done["choices"][0]["message"]["content"] == REPLY
    state = httpx.get(f"{served.url}/threads/{approved}/state", timeout=30).json()
    assert (state["values"]["approval"], state["values"]["why"]) == ("approved", "fine")
    assert len(served.sent("answer")) == before + 1


@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An agent whose SQL tool waits for approval (scripted model: graph logic)."""
    home = tmp_path_factory.mktemp("openai-agent")
    folder = home / "flows"
    folder.mkdir()
    agent = agent_flow(approve_tools=["sql_query"])
    agent["id"] = "guarded"
    (folder / "guarded.json").write_text(json.dumps(agent))

    def reply(messages: Any) -> str:
        first, last = str(messages[0].content), str(messages[-1].content)
        if "analyst" in first and "SELECT" in first:
            return "```sql\nSELECT COUNT(*) FROM customers\n```"
        if last.startswith("Result of sql_query"):
            return "declined" if "declined" in last else "Counted them."
        return call("sql_query", question="How many customers?")

    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home,
                              flows_dirs=(folder,))
    yield from run_server(create_app(settings, ctx=BuildContext(
        models=ScriptedModels(reply), data_dir=home)))


def test_an_agents_tool_approval_pauses_and_resumes_over_v1(agent_url: str) -> None:
    client = OpenAI(base_url=f"{agent_url}/v1", api_key="-", max_retries=0, timeout=60)
    thread = f"agent-{uuid.uuid4()}"
    asked = client.chat.completions.create(model="guarded", user=thread,
                                           messages=[user("How many customers?")])
    assert asked.choices[0].finish_reason == "interrupted"
    assert "The agent wants to call sql_query" in (asked.choices[0].message.content or "")
    assert (asked.model_extra or {})["flowloom"]["interrupts"][0]["kind"] == "tool_approval"
    done = client.chat.completions.create(model="guarded", user=thread,
                                          messages=[user("yes")])
    assert (done.choices[0].message.content, done.choices[0].finish_reason) == (
        "Counted them.", "stop")
