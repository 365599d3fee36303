"""`flowloom up`: the model service, the API server and the Streamlit UI, started together
and stopped together.

The API server and the UI run as child processes (their logs go to `<home>/logs/`); the
embedded model service is started first (unless one is already running for this data
dir) so the first chat doesn't wait for it. Ctrl-C, SIGTERM, or any child dying stops
everything this command started, in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["LaunchError", "Stack", "UpSettings", "up"]

READY_PREFIX = "FLOWLOOM_UP"


class LaunchError(Exception):
    """A part failed to start; the message names it and quotes the end of its log."""


@dataclass
class UpSettings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8123
    ui_port: int = 8501
    database: str | None = None
    flows_dirs: tuple[Path, ...] = ()
    models: Path | None = None
    model_service: bool = True
    demo_kb: bool = True  # the server builds the `demo` knowledge base in the background
    timeout: float = 120.0


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[str]
    log: Path


@dataclass
class Stack:
    """What `up` started, stopped in reverse order by `stop()`."""

    home: Path
    children: list[_Child] = field(default_factory=list)
    api_url: str = ""
    ui_url: str = ""
    model_url: str | None = None
    started_model_service: bool = False

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in reversed(self.children):
            try:
                child.proc.wait(15)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(5)
        self.children.clear()
        if self.started_model_service:
            from flowloom.backends.model_launcher import stop_started_services

            stop_started_services(self.home)
            self.started_model_service = False

    def dead_child(self) -> _Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> _Child:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    handle = log.open("w")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=handle, text=True, env=env,
                            start_new_session=True)  # Ctrl-C reaches us, not them
    handle.close()
    return _Child(name, proc, log)


def _start_api(settings: UpSettings, env: dict[str, str], stack: Stack) -> None:
    args = [sys.executable, "-m", "flowloom.ui.cli", "serve", "--host", settings.host,
            "--port", str(settings.port)]
    if settings.database:
        args += ["--database", settings.database]
    for folder in settings.flows_dirs:
        args += ["--flows", str(folder)]
    if settings.models:
        args += ["--models", str(settings.models)]
    if settings.demo_kb:
        args.append("--demo-kb")
    child = _spawn("server", args, env, settings.home / "logs")
    stack.children.append(child)
    assert child.proc.stdout is not None
    line = child.proc.stdout.readline()  # the server prints one line when it listens
    if not line.startswith("FLOWLOOM_SERVER_READY "):
        child.proc.wait(10)
        raise LaunchError(f"the API server did not start (log {child.log}):\n"
                          f"{_tail(child.log)}")
    stack.api_url = line.split()[1]
    _drain(child.proc.stdout, child.log)


def _drain(stream: object, log: Path) -> None:
    """Copy a child's further stdout into its log, so a full pipe never blocks it."""
    import threading

    def copy() -> None:
        with log.open("a") as out:
            for text in stream:  # type: ignore[attr-defined]
                out.write(text)
                out.flush()

    threading.Thread(target=copy, daemon=True, name="flowloom-up-drain").start()


def _start_ui(settings: UpSettings, env: dict[str, str], stack: Stack) -> None:
    ui_port = settings.ui_port or _free_port(settings.host)
    if _port_taken(settings.host, ui_port):
        raise LaunchError(f"--ui-port {ui_port} is taken on {settings.host}; pick another "
                          "(0: any free port)")
    script = Path(__file__).with_name("app") / "main.py"
    args = [sys.executable, "-m", "streamlit", "run", str(script),
            "--server.address", settings.host, "--server.port", str(ui_port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal"]
    child = _spawn("ui", args, {**env, "FLOWLOOM_API_URL": stack.api_url},
                   settings.home / "logs")
    stack.children.append(child)
    _drain(child.proc.stdout, child.log)
    url = _url(settings.host, ui_port)
    deadline = time.monotonic() + settings.timeout
    with httpx.Client(timeout=2) as http:
        while True:
            if child.proc.poll() is not None:
                raise LaunchError(f"the UI did not start (log {child.log}):\n{_tail(child.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}/_stcore/health").status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise LaunchError(f"the UI did not answer within {settings.timeout:.0f} s "
                                  f"(log {child.log}):\n{_tail(child.log)}")
            time.sleep(0.2)
    stack.ui_url = url


def _start_model_service(settings: UpSettings, stack: Stack) -> None:
    from flowloom.backends.model_launcher import ensure_model_service, running_service_url

    already = running_service_url(settings.home)
    stack.model_url = ensure_model_service(settings.home, timeout=settings.timeout)
    stack.started_model_service = already is None


@contextlib.contextmanager
def up(settings: UpSettings, *, say: Callable[[str], None] = print) -> Iterator[Stack]:
    """Start everything; yield the running `Stack`; stop it all on the way out."""
    if settings.port and _port_taken(settings.host, settings.port):
        raise LaunchError(f"--port {settings.port} is taken on {settings.host}; pick another "
                          "(0: any free port)")
    stack = Stack(home=settings.home)
    env = {**os.environ, "FLOWLOOM_HOME": str(settings.home)}
    try:
        if settings.model_service:
            say("starting the embedded model service ...")
            _start_model_service(settings, stack)
            assert stack.model_url
            env["FLOWLOOM_MODEL_URL"] = stack.model_url
        say("starting the API server ...")
        _start_api(settings, env, stack)
        say("starting the UI ...")
        _start_ui(settings, env, stack)
        yield stack
    finally:
        stack.stop()


def run_until_stopped(stack: Stack, *, say: Callable[[str], None] = print) -> int:
    """Block until Ctrl-C / SIGTERM (exit 0) or a child dies (exit 1)."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            dead = stack.dead_child()
            if dead is not None:
                say(f"the {dead.name} stopped (exit {dead.proc.returncode}); stopping the rest. "
                    f"Its log ({dead.log}):\n{_tail(dead.log)}")
                return 1
            time.sleep(0.3)
        say("stopping ...")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
