"""`flowloom up`: the API server and the UI start together, come back when killed, and
stop together."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from flowloom.ui.launcher import RestartBudget, RestartPolicy
from tests.ui.launch import flowloom_up


def _listening(url: str) -> bool:
    parts = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


def test_up_starts_both_and_ctrl_c_stops_both(tmp_path):
    with flowloom_up(tmp_path, "--no-model-service", "--no-demo-kb") as up:
        assert httpx.get(f"{up.api}/ok").json() == {"ok": True}
        assert httpx.get(f"{up.ui}/_stcore/health").text == "ok"
        page = httpx.get(up.ui).text
        assert "<noscript>You need to enable JavaScript" in page or "streamlit" in page.lower()
        assert any("UI:" in line for line in up.stdout)
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(40) == 0
    assert not _listening(up.api) and not _listening(up.ui)
    assert (tmp_path / "logs" / "server.log").exists()
    assert (tmp_path / "logs" / "ui.log").exists()


def test_up_refuses_a_taken_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "flowloom.ui.cli", "up", "--port", str(port),
             "--no-model-service"], capture_output=True, text=True, timeout=60,
            env={"FLOWLOOM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert f"--port {port} is taken" in done.stderr
    assert "Traceback" not in done.stderr


# -- a part that dies is restarted -------------------------------------------------------


def _children(pid: int) -> list[int]:
    """The processes `pid` started (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _part(up, marker: str) -> int:
    """The pid of `flowloom up`'s child whose command line has `marker`."""
    for child in _children(up.proc.pid):
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ") \
                    .decode():
                return child
    raise AssertionError(f"no child of flowloom up runs {marker!r}")


def _said(up, text: str, timeout: float = 60) -> str:
    """All `flowloom up` has said on stderr, once it has said `text`."""
    deadline = time.monotonic() + timeout
    while text not in (said := "".join(up.stderr)):
        assert time.monotonic() < deadline, f"flowloom up did not say {text!r}:\n{said}"
        time.sleep(0.1)
    return said


def _answers(url: str, path: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def test_up_restarts_a_killed_api_server_and_ui_at_the_same_urls(tmp_path):
    with flowloom_up(tmp_path, "--no-model-service", "--no-demo-kb") as up:
        server = _part(up, "flowloom.ui.cli serve")
        os.kill(server, signal.SIGKILL)
        said = _said(up, "api server exited with code -9; restarting (1/5)")
        log = tmp_path / "logs" / "server.log"
        assert f"The end of its log ({log}):" in said or f"Its log ({log}) is empty." in said
        _said(up, f"api server is back ({up.api})")
        assert _answers(up.api, "/ok")
        assert httpx.get(f"{up.api}/ok").json() == {"ok": True}
        assert _part(up, "flowloom.ui.cli serve") != server
        assert "restarted by flowloom up" in (tmp_path / "logs" / "server.log").read_text()
        # the UI still talks to it: its page script reaches the same API URL
        assert httpx.get(f"{up.ui}/_stcore/health").text == "ok"

        ui = _part(up, "streamlit run")
        os.kill(ui, signal.SIGKILL)
        _said(up, "ui exited with code -9; restarting (1/5)")
        _said(up, f"ui is back ({up.ui})")
        assert _answers(up.ui, "/_stcore/health")
        assert "Traceback" not in "".join(up.stderr)
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(40) == 0
    assert not _listening(up.api) and not _listening(up.ui)


def test_up_stops_everything_past_its_restart_budget(tmp_path):
    with flowloom_up(tmp_path, "--no-model-service", "--no-demo-kb",
                     "--max-restarts", "1") as up:
        os.kill(_part(up, "flowloom.ui.cli serve"), signal.SIGKILL)
        _said(up, "api server exited with code -9; restarting (1/1)")
        _said(up, "api server is back")
        os.kill(_part(up, "flowloom.ui.cli serve"), signal.SIGKILL)
        assert up.proc.wait(60) == 1
        said = _said(up, "api server exited with code -9 again, after 1 restart within "
                         "10 minutes: not restarting it; stopping everything.")
        assert "Traceback" not in said
    assert not _listening(up.api) and not _listening(up.ui)


def test_restart_budget_counts_within_its_window_and_backs_off():
    budget = RestartBudget(RestartPolicy(max_restarts=3, window_s=600, backoff_s=1,
                                         max_backoff_s=5))
    assert [budget.take(now=t) for t in (0, 10, 20, 30)] == [1, 2, 3, None]
    assert budget.take(now=605) == 3  # the restart at 0 s has left the window
    assert [budget.backoff(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]


@pytest.mark.slow
def test_up_restarts_a_killed_model_service_on_its_port(model_home):
    with flowloom_up(model_home, "--no-demo-kb", timeout=600) as up:
        service = json.loads((model_home / "run" / "model-service.json").read_text())
        os.kill(service["pid"], signal.SIGKILL)
        _said(up, "model service exited with code -9; restarting (1/5)", timeout=60)
        _said(up, f"model service is back ({service['url']})", timeout=300)
        again = json.loads((model_home / "run" / "model-service.json").read_text())
        assert again["url"] == service["url"] and again["pid"] != service["pid"]
        # the API server, given the service's URL once, reaches the new one there
        answer = httpx.post(f"{up.api}/runs/wait", timeout=300, json={
            "assistant_id": "chat",
            "input": {"messages": [{"role": "user", "content": "Say hello."}]}})
        assert answer.status_code == 200, answer.text
        reply = answer.json()["messages"][-1]
        assert reply["type"] == "ai" and reply["content"].strip()
