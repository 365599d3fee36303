"""The Responses API (`/v1/responses`) and embeddings (`/v1/embeddings`), driven by the
official `openai` client (`responses.create`, streamed and not, `responses.stream`,
`responses.retrieve`, `responses.delete`, `embeddings.create`) against a real server
whose flows call the fake OpenAI-compatible model server through the real gateway."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.backends.conftest import EMBED_DIM, REPLY, FakeOpenAI
from tests.backends.test_openai_params import FLOWS, SCHEMA, WEATHER, Served, serve_flows


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, fake_openai: FakeOpenAI
           ) -> Iterator[Served]:
    yield from serve_flows(tmp_path_factory.mktemp("openai-responses"), fake_openai, FLOWS)


def _error(caught: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    body = caught.value.body
    assert isinstance(body, dict)
    return body


def _users(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]


def test_a_response_and_its_continuation(served: Served) -> None:
    client = served.client()
    first = client.responses.create(model="talk", input="My name is Ada.")
    assert first.id.startswith("resp_") and first.object == "response"
    assert (first.status, first.model, first.output_text) == ("completed", "talk", REPLY)
    assert first.output[0].type == "message" and first.output[0].role == "assistant"
    assert first.usage is not None and first.usage.output_tokens == len(REPLY.split())
    assert first.store is True and first.previous_response_id is None
    again = client.responses.retrieve(first.id)
    assert again.model_dump() == first.model_dump()
    second = client.responses.create(model="talk", input="What is my name?",
                                     previous_response_id=first.id,
                                     instructions="Answer in one word.")
    assert second.output_text == REPLY and second.previous_response_id == first.id
    sent = served.sent("answer")[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("system", "Be brief."), ("user", "My name is Ada."), ("assistant", REPLY),
        ("system", "Answer in one word."), ("user", "What is my name?")]
    # a second answer to the first response is a branch: it does not see the other one
    client.responses.create(model="talk", input=[{"role": "user", "content": [
        {"type": "input_text", "text": "And my age?"}]}], previous_response_id=first.id)
    assert _users(served.sent("answer")[-1]) == [
        ("user", "My name is Ada."), ("assistant", REPLY), ("user", "And my age?")]
    # message arrays start a conversation with their history
    client.responses.create(model="talk", input=[
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"type": "message", "role": "user", "content": "c"}])
    assert _users(served.sent("answer")[-1]) == [("user", "a"), ("assistant", "b"),
                                                 ("user", "c")]


def test_streamed_events_are_the_ones_the_client_expects(served: Served) -> None:
    client = served.client()
    events = list(client.responses.create(model="talk", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(d.delta for d in deltas) == REPLY
    assert [e.sequence_number for e in events] == list(range(len(events)))
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == REPLY and done.response.status == "completed"
    assert client.responses.retrieve(done.response.id).output_text == REPLY
    # the SDK's stream helper assembles the same response
    with client.responses.stream(model="talk", input="hi again",
                                 previous_response_id=done.response.id) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == REPLY
    assert final.previous_response_id == done.response.id


def test_store_false_keeps_nothing(served: Served) -> None:
    client = served.client()
    gone = client.responses.create(model="talk", input="secret", store=False)
    assert gone.output_text == REPLY and gone.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(gone.id)
    assert _error(caught)["code"] == "response_not_found"
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="talk", input="more", previous_response_id=gone.id)
    assert _error(caught)["param"] == "previous_response_id"
    thread = httpx.post(f"{served.url}/v1/responses", timeout=30, json={
        "model": "talk", "input": "x", "store": False}).headers["x-flowloom-thread"]
    assert httpx.get(f"{served.url}/threads/{thread}/state", timeout=30).status_code == 404
    kept = client.responses.create(model="talk", input="kept")
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)


def test_parameters_limits_and_formats(served: Served) -> None:
    client = served.client()
    client.responses.create(model="talk", input="hi", max_output_tokens=21, temperature=0.4,
                            top_p=0.9, text={"format": {"type": "json_schema", **{
                                k: v for k, v in SCHEMA["json_schema"].items()}}})
    sent = served.sent("answer")[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (21, 0.4, 0.9)
    assert sent["response_format"] == SCHEMA
    cut = client.responses.create(model="cutter", input="hi", max_output_tokens=2)
    assert (cut.status, cut.output_text) == ("incomplete", "Hello from")
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    events = list(client.responses.create(model="cutter", input="hi", max_output_tokens=2,
                                          stream=True))
    assert events[-1].type == "response.incomplete"


def test_function_tools_and_their_outputs(served: Served) -> None:
    client = served.client()
    tool: Any = {"type": "function", **WEATHER["function"]}
    first = client.responses.create(model="tools", input="weather?", tools=[tool])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"query": "weather"})]
    assert served.sent("toolish")[-1]["tools"] == [WEATHER]
    second = client.responses.create(
        model="tools", previous_response_id=first.id, tools=[tool],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "sunny"}])
    assert second.output_text == "Tool said: sunny"
    streamed = list(client.responses.create(model="tools", input="weather?", tools=[tool],
                                            stream=True))
    added = [e for e in streamed if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"]
    assert streamed[-1].type == "response.completed"
    assert streamed[-1].response.output[0].type == "function_call"


@pytest.mark.parametrize(("body", "status", "param", "words"), [
    ({"model": "quote", "input": "hi", "instructions": "x"}, 400, "instructions",
     "takes text"),
    ({"model": "quote", "input": "hi", "max_output_tokens": 5}, 400, "max_output_tokens",
     "cannot honour max_output_tokens"),
    ({"model": "quote", "input": "hi", "text": {"format": {"type": "json_object"}}}, 400,
     "text.format", "cannot honour text.format"),
    ({"model": "talk", "input": "hi", "tools": [{"type": "web_search"}]}, 400,
     "tools[0].type", "only function tools"),
    ({"model": "talk", "input": "hi", "reasoning": {"effort": "high"}}, 400, "reasoning",
     "not supported"),
    ({"model": "talk", "input": "hi", "background": True}, 400, "background",
     "not supported"),
    ({"model": "talk", "input": [{"type": "item_reference", "id": "x"}]}, 400,
     "input[0].type", "not supported"),
    ({"model": "talk", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "http://x"}]}]}, 400, "input[0].content[0]",
     "only text parts"),
    ({"model": "talk", "input": []}, 400, "input", "at least one"),
    ({"model": "nope", "input": "hi"}, 404, "model", "not a flow"),
    ({"model": "talk", "input": "hi", "previous_response_id": "resp_nope"}, 404,
     "previous_response_id", "not found"),
])
def test_responses_refusals_name_the_parameter(served: Served, body: dict[str, Any],
                                               status: int, param: str, words: str) -> None:
    answer = httpx.post(f"{served.url}/v1/responses", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error


def test_a_paused_flow_answers_and_the_next_response_resumes_it(served: Served) -> None:
    client = served.client()
    before = len(served.sent("answer"))
    asked = client.responses.create(model="gate", input="what is 2+2?")
    assert asked.status == "incomplete"
    assert asked.incomplete_details is not None
    assert asked.incomplete_details.reason == "interrupted"  # type: ignore[comparison-overlap]
    assert asked.output_text.startswith("May I answer: what is 2+2??")
    assert (asked.model_extra or {})["flowloom"]["status"] == "interrupted"
    done = client.responses.create(model="gate", input="yes", previous_response_id=asked.id)
    assert (done.status, done.output_text) == ("completed", REPLY)
    assert len(served.sent("answer")) == before + 1
    assert _users(served.sent("answer")[-1]) == [("user", "what is 2+2?")]


def test_embeddings_over_the_gateways_embedding_aliases(served: Served) -> None:
    client = served.client()
    texts = ["ab", "cde"]
    default = client.embeddings.create(model="embedder", input=texts)  # base64 by default
    assert served.sent("embedder", "embeddings")[-1]["input"] == texts
    expected = [[float(len(t)), float(i), 0.5, 1.0][:EMBED_DIM] for i, t in enumerate(texts)]
    assert [list(d.embedding) for d in default.data] == expected
    assert [d.index for d in default.data] == [0, 1] and default.model == "embedder"
    assert default.usage.prompt_tokens == 2
    floats = client.embeddings.create(model="embedder", input="abcd", encoding_format="float")
    assert floats.data[0].embedding == [4.0, 0.0, 0.5, 1.0][:EMBED_DIM]
    raw = httpx.post(f"{served.url}/v1/embeddings", timeout=30, json={
        "model": "embedder", "input": "ab", "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack(f"<{EMBED_DIM}f", packed)) == [2.0, 0.0, 0.5, 1.0][:EMBED_DIM]


@pytest.mark.parametrize(("body", "status", "param", "words"), [
    ({"model": "answer", "input": "x"}, 400, "model", "a chat model"),
    ({"model": "nope", "input": "x"}, 404, "model", "embedding models: embedder"),
    ({"model": "embedder", "input": "x", "dimensions": 2}, 400, "dimensions",
     "not supported"),
    ({"model": "embedder", "input": [1, 2, 3]}, 400, "input", "token arrays"),
    ({"model": "embedder", "input": []}, 400, "input", "at least one"),
    ({"model": "embedder", "input": ["a", ""]}, 400, "input", "empty text"),
    ({"model": "embedder", "input": "x", "encoding_format": "int8"}, 400,
     "encoding_format", "'float' or 'base64'"),
])
def test_embedding_refusals_name_the_parameter(served: Served, body: dict[str, Any],
                                               status: int, param: str, words: str) -> None:
    answer = httpx.post(f"{served.url}/v1/embeddings", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"], error
