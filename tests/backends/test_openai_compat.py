"""The OpenAI-compatible endpoint, driven by the official `openai` client against a real
uvicorn server on 127.0.0.1 (port 0): example flows on a scripted model, and once on the
bundled model."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from openai import OpenAI

from flowloom.backends.server._openai_messages import usage_of
from flowloom.backends.server.catalog import FlowCatalog
from flowloom.backends.server.openai_compat import THREAD_HEADER, openai_router
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir, load_flow
from tests.fakes import ScriptedModels, last_text

QUESTION = "What is the capital of France?"

TEXT_FLOW = {
    "id": "quote", "name": "Quote",
    "state": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "nodes": [{"id": "say", "type": "prompt.template@1",
               "params": {"template": "Q: {{ question }}", "output": "answer"}}],
    "edges": [{"source": "START", "target": "say"}, {"source": "say", "target": "END"}],
    "io": {"input": "question", "output": "answer"},
}


def scripted_reply(messages: list[BaseMessage]) -> str:
    text = last_text(messages)
    if "boom" in text:
        raise RuntimeError("the scripted model exploded")
    return f"You said: {text}"


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """`app` on a real uvicorn server in a thread, on a socket bound to a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def make_app(catalog: FlowCatalog) -> FastAPI:
    app = FastAPI()
    app.include_router(openai_router(lambda: catalog))
    return app


@pytest.fixture(scope="module")
def models() -> ScriptedModels:
    return ScriptedModels(scripted_reply)


@pytest.fixture(scope="module")
def base_url(models: ScriptedModels) -> Iterator[str]:
    catalog = FlowCatalog(InMemorySaver(), BuildContext(models=models))
    catalog.load_dir(examples_dir())
    catalog.add(load_flow(TEXT_FLOW, catalog.registry).flow, "api")
    with serve(make_app(catalog)) as url:
        yield url


@pytest.fixture
def client(base_url: str, models: ScriptedModels) -> OpenAI:
    models.calls.clear()
    return OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=30)


def user(text: str) -> Any:
    """A user message (typed Any: the client's TypedDicts are not the point here)."""
    return {"role": "user", "content": text}


def post(base_url: str, body: Any, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{base_url}/v1/chat/completions", content=content, headers=headers,
                      timeout=30, **kwargs)


def _served_ids() -> list[str]:
    """The example flows and `quote`: what the catalog of these tests serves."""
    examples = [json.loads(p.read_text())["id"] for p in examples_dir().glob("*.json")]
    return sorted([*examples, "quote"])


def test_models_lists_every_flow(client: OpenAI) -> None:
    listed = client.models.list().data
    assert [m.id for m in listed] == _served_ids()
    assert {"chat", "quote", "triage"} <= {m.id for m in listed}
    for model in listed:
        assert model.object == "model"
        assert model.owned_by == "flowloom"
        assert isinstance(model.created, int) and model.created > 0
    assert client.models.retrieve("chat").id == "chat"


def test_answer_is_a_chat_completion(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[user(QUESTION)], temperature=0.9, max_tokens=5, seed=1,
        response_format={"type": "text"})
    completion = raw.parse()
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "chat"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == f"You said: {QUESTION}"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (0, 0)
    uuid.UUID(raw.headers[THREAD_HEADER])  # stateless: a fresh thread id


def test_stream_assembles_the_answer_and_ends(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="chat", messages=[user(QUESTION)], stream=True,
        stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == "chat" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    text_chunks = [c.choices[0].delta.content or "" for c in chunks[1:-2]]
    assert len(text_chunks) > 1  # token by token, not one block
    assert "".join(text_chunks) == f"You said: {QUESTION}"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


def test_stream_ends_with_done(base_url: str) -> None:
    response = post(base_url, {"model": "chat", "messages": [user("hi")], "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers[THREAD_HEADER]
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"


def test_thread_via_user_remembers(client: OpenAI, models: ScriptedModels) -> None:
    thread = f"alice-{uuid.uuid4()}"
    first = client.chat.completions.create(model="chat", messages=[user("My name is Ada.")],
                                           user=thread)
    history: list[Any] = [user("My name is Ada."),
               {"role": "assistant", "content": first.choices[0].message.content},
               user("What is my name?")]
    raw = client.chat.completions.with_raw_response.create(model="chat", messages=history,
                                                           user=thread)
    assert raw.headers[THREAD_HEADER] == thread
    sent = models.calls[-1]
    assert [type(m) for m in sent] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert [m.content for m in sent[1:]] == [
        "My name is Ada.", "You said: My name is Ada.", "What is my name?"]


def test_new_thread_starts_from_the_requests_history(
    client: OpenAI, models: ScriptedModels
) -> None:
    history: list[Any] = [user("a"), {"role": "assistant", "content": "b"}, user("c")]
    client.chat.completions.create(model="chat", messages=history, user=f"n-{uuid.uuid4()}")
    assert [m.content for m in models.calls[-1][1:]] == ["a", "b", "c"]


def test_thread_via_header_wins_over_user(client: OpenAI, models: ScriptedModels) -> None:
    thread = f"h-{uuid.uuid4()}"
    headers = {THREAD_HEADER: thread}
    client.chat.completions.create(model="chat", messages=[user("one")], user="ignored",
                                   extra_headers=headers)
    stream = client.chat.completions.with_raw_response.create(
        model="chat", messages=[user("two")], user="also-ignored", stream=True,
        extra_headers=headers)
    assert stream.headers[THREAD_HEADER] == thread
    assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    assert [m.content for m in models.calls[-1][1:]] == ["one", "You said: one", "two"]


def test_stateless_request_passes_its_history(client: OpenAI, models: ScriptedModels) -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, user("hi"),
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "again"}]}]
    raws = [client.chat.completions.with_raw_response.create(model="chat", messages=messages)
            for _ in range(2)]
    sent = models.calls[-1]
    assert [type(m) for m in sent] == [SystemMessage, SystemMessage, HumanMessage, AIMessage,
                                       HumanMessage]
    assert [m.content for m in sent[1:]] == ["Be brief.", "hi", "hello", "again"]
    assert raws[0].parse().choices[0].message.content == "You said: again"
    assert raws[0].headers[THREAD_HEADER] != raws[1].headers[THREAD_HEADER]


def test_text_flow_gets_the_last_user_message(client: OpenAI) -> None:
    messages: list[Any] = [user("first"), {"role": "assistant", "content": "x"}, user("second")]
    answer = client.chat.completions.create(model="quote", messages=messages)
    assert answer.choices[0].message.content == "Q: second"
    chunks = list(client.chat.completions.create(model="quote", messages=messages, stream=True))
    contents = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert contents == ["Q: second"]  # no tokens streamed: the output as one chunk
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_unknown_model_is_404_with_the_valid_ids(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="chta", messages=[user("hi")])
    error = caught.value.body
    assert isinstance(error, dict)
    assert "chta" in error["message"] and ", ".join(_served_ids()) in error["message"]
    assert error["param"] == "model" and error["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "chat"}, "messages", "Field required"),
        ({"model": "chat", "messages": []}, "messages", "at least 1"),
        ({"model": "chat", "messages": [{"role": "robot", "content": "hi"}]},
         "messages[0].role", "'user'"),
        ({"model": "chat", "messages": [{"content": "hi"}]}, "messages[0].role", "required"),
        ({"model": "chat", "messages": [user("hi")], "n": 2}, "n", "only n=1"),
        ({"model": "chat", "messages": [{"role": "system", "content": "x"}]},
         "messages", "role 'user'"),
        ({"model": "chat", "messages": [{"role": "user", "content": 5}]},
         "messages[0].content", "string or a list"),
        ({"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
         "messages[0].content", "only text parts"),
        ({"model": 3, "messages": [user("hi")]}, "model", "string"),
        ({"model": "chat", "messages": "hi"}, "messages", "list"),
        ({"model": "chat", "messages": [user("hi")], "stream": "maybe"}, "stream", "boolean"),
        ({"model": "chat", "messages": [user("hi")], "user": "bad\u00e9"}, "user", "ASCII"),
        ('{"model": "chat", "messages": [', None, "not valid JSON"),
        ("[1, 2]", None, "JSON object"),
        ("", None, "JSON object"),
    ],
)
def test_bad_requests_are_400_with_the_field(
    base_url: str, body: Any, param: str | None, words: str
) -> None:
    response = post(base_url, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"]


def test_bad_requests_raise_the_clients_error(client: OpenAI) -> None:
    cases: list[dict[str, Any]] = [{"messages": []}, {"messages": [user("hi")], "n": 2},
                                   {"messages": [{"role": "tool", "content": "x",
                                                  "tool_call_id": "1"}]}]
    for kwargs in cases:
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="chat", **kwargs)


def test_failing_flow_is_a_500_error(client: OpenAI, base_url: str) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="chat", messages=[user("boom")])
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["message"] == (
        "flow 'chat' failed: RuntimeError: the scripted model exploded")
    assert error["type"] == "server_error" and "Traceback" not in error["message"]
    assert caught.value.response.headers[THREAD_HEADER]

    with pytest.raises(openai.APIError, match="the scripted model exploded"):
        list(client.chat.completions.create(model="chat", messages=[user("boom")],
                                            stream=True))
    events = post(base_url, {"model": "chat", "messages": [user("boom")], "stream": True})
    lines = [line for line in events.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2].removeprefix("data: "))["error"]["code"] == "flow_failed"


def test_usage_of_sums_ai_message_usage() -> None:
    answer = AIMessage("hi", usage_metadata={"input_tokens": 7, "output_tokens": 2,
                                             "total_tokens": 9})
    assert usage_of({"messages": [HumanMessage("q"), answer], "route": "x"}) == (7, 2)
    assert usage_of({"messages": AIMessage("no usage")}) == (0, 0)
    assert usage_of(None) == (0, 0)


@pytest.mark.slow
def test_bundled_model_answers_through_the_endpoint(
    model_home: Path, running_model_service: str
) -> None:
    from flowloom.backends.context import default_build_context

    catalog = FlowCatalog(InMemorySaver(), default_build_context(home=model_home))
    catalog.load_dir(examples_dir())
    with serve(make_app(catalog)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=300)
        answer = client.chat.completions.create(model="chat", messages=[user(QUESTION)])
        assert "paris" in (answer.choices[0].message.content or "").lower()
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        chunks = list(client.chat.completions.create(model="chat", messages=[user(QUESTION)],
                                                     stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "paris" in text.lower()
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_requests_on_one_thread_take_turns() -> None:
    """Two requests at once on one thread run one after the other: the second sees the
    first's turn in the thread's history, and the model never runs twice at once."""
    in_flight = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow_reply(messages: list[BaseMessage]) -> str:
        with lock:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
        time.sleep(0.3)
        with lock:
            in_flight["now"] -= 1
        return f"turns seen: {sum(isinstance(m, HumanMessage) for m in messages)}"

    catalog = FlowCatalog(InMemorySaver(), BuildContext(models=ScriptedModels(slow_reply)))
    catalog.load_dir(examples_dir())
    thread_id = f"t-{uuid.uuid4()}"
    with serve(make_app(catalog)) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=30)

        def ask(stream: bool) -> str:
            if stream:
                chunks = client.chat.completions.create(
                    model="chat", messages=[user("hi")], user=thread_id, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            done = client.chat.completions.create(model="chat", messages=[user("hi")],
                                                  user=thread_id)
            return done.choices[0].message.content or ""

        results: list[str] = []
        workers = [threading.Thread(target=lambda s=s: results.append(ask(s)))
                   for s in (False, True)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
    assert in_flight["most"] == 1
    assert sorted(results) == ["turns seen: 1", "turns seen: 2"]
