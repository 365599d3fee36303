"""`flowloom serve` keeps the model service it started alive: kill -9 it, and the server
starts it again on the same port, says so in GET /ok, and the next chat is answered. The
real bundled model, a real `flowloom serve` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.slow

CHAT = {"assistant_id": "chat", "input": {"messages": [
    {"role": "user", "content": "Say hello in one word."}]},
    "config": {"configurable": {}}}


def test_a_killed_model_service_comes_back_and_ok_says_so(model_home):
    env = {**os.environ, "FLOWLOOM_HOME": str(model_home)}
    env.pop("FLOWLOOM_MODEL_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "flowloom.ui.cli", "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("FLOWLOOM_SERVER_READY"), proc.stderr.read()
        url = line.split()[1]
        with httpx.Client(base_url=url, timeout=300) as api:
            assert "model_service" not in api.get("/ok").json()  # nothing started yet
            first = api.post("/runs/wait", json=CHAT).json()
            assert first["messages"][-1]["content"]
            deadline = time.time() + 30
            while api.get("/ok").json().get("model_service", {}).get("state") != "running":
                assert time.time() < deadline
                time.sleep(0.2)
            state = json.loads((model_home / "run" / "model-service.json").read_text())
            os.kill(state["pid"], signal.SIGKILL)
            seen: set[str] = set()
            deadline = time.time() + 180
            while True:
                service = api.get("/ok").json()["model_service"]
                seen.add(service["state"])
                if service["state"] == "running" and service["restarts"] == 1:
                    break
                assert service["state"] != "failed", service
                assert time.time() < deadline, service
                time.sleep(0.2)
            assert "restarting" in seen and service["last_exit"] == -signal.SIGKILL
            again = json.loads((model_home / "run" / "model-service.json").read_text())
            assert again["url"] == state["url"] and again["pid"] != state["pid"]
            second = api.post("/runs/wait", json=CHAT).json()
            assert second["messages"][-1]["content"]
    finally:
        proc.terminate()
        proc.wait(30)
