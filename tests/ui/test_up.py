"""`flowloom up`: the API server and the UI start together and stop together."""

from __future__ import annotations

import signal
import socket
from urllib.parse import urlparse

import httpx

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
