"""What the conformance suites share: a fake OpenAI-compatible model and a real
`flowloom serve` subprocess (free port, temporary FLOWLOOM_HOME, SQLite) over flows/.

The flows need no model but `conf_echo`, whose one chat call goes to the fake model (it
echoes; a last message `slow N` is held N seconds), so a run can be slow enough to cancel.
Both fixtures are per module: each suite gets a server of its own, with empty state.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

FLOWS = Path(__file__).parent / "flows"


class FakeModel:
    """An OpenAI-compatible chat endpoint on 127.0.0.1: answers `echo: <last message>`;
    a last message `slow N` is held N seconds (until the caller goes or `stop()`)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):  # noqa: ANN202
            body = await request.json()
            text = str(body["messages"][-1].get("content") or "")
            if text.startswith("slow"):
                parts = text.split()
                hold = float(parts[1]) if len(parts) > 1 else 30.0
                deadline = time.monotonic() + hold
                while time.monotonic() < deadline and not self.stopping.is_set():
                    if await request.is_disconnected():
                        break
                    await asyncio.sleep(0.05)
            answer = f"echo: {text}"
            # each answer its own id, as a real endpoint's: the message ids of a thread's
            # answers are these, and messages with one id merge into one
            cid = f"chatcmpl-{uuid.uuid4().hex}"
            if body.get("stream"):
                return StreamingResponse(_chunks(cid, body["model"], answer),
                                         media_type="text/event-stream")
            return {"id": cid, "object": "chat.completion", "created": 0,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": answer}}]}

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the fake model did not start"
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        self.stopping.set()
        self.server.should_exit = True
        self.thread.join(10)


async def _chunks(cid: str, model: str, answer: str):  # noqa: ANN202
    for i, piece in enumerate((answer[: len(answer) // 2], answer[len(answer) // 2:])):
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "finish_reason": None,
                              "delta": {"role": "assistant", "content": piece} if i == 0
                              else {"content": piece}}]}
        yield f"data: {json.dumps(chunk)}\n\n"
    done = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "delta": {}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    yield f"data: {json.dumps(done)}\n\n"
    yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeModel]:
    model = FakeModel()
    yield model
    model.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_model: FakeModel) -> Iterator[dict]:
    """`flowloom serve` on a free port over flows/, with its own home and SQLite file:
    `{"url", "log" (its stderr file), "warm_up_s"}`."""
    home = tmp_path_factory.mktemp("conformance-home")
    models = home / "models.yaml"
    models.write_text(
        "model_list:\n  - model_name: fake\n    litellm_params:\n      model: openai/fake\n"
        f"      api_base: {fake_model.url}\n      api_key: sk-test\n"
        "    model_info: {mode: chat}\nrouter_settings: {num_retries: 0, timeout: 60}\n")
    log_path = home / "server.log"
    log = log_path.open("w")
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowloom.ui.cli", "serve", "--port", "0", "--flows", str(FLOWS),
         "--models", str(models), "--database", f"sqlite:///{home / 'flowloom.sqlite'}"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        line = proc.stdout.readline()
        if not line.startswith("FLOWLOOM_SERVER_READY"):
            proc.kill()
            proc.wait(10)
            raise AssertionError(f"the server did not start: {line!r}\n{log_path.read_text()}")
        # keep reading its stdout, so a full pipe never blocks it
        threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
        url = line.split()[1]
        # The first model call of a fresh server is slow (the model client's first use:
        # seconds, more on a loaded machine); take it here, so the checks' time limits
        # measure the protocol.
        started = time.monotonic()
        warm = httpx.post(f"{url}/runs/wait", timeout=180, json={
            "assistant_id": "conf_echo",
            "input": {"messages": [{"role": "user", "content": "warm up"}]}})
        assert warm.status_code == 200, f"warm-up run: {warm.status_code} {warm.text}"
        yield {"url": url, "log": log_path, "warm_up_s": time.monotonic() - started}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
