"""`flowloom up`: the model service, the API server and the Streamlit UI, started together,
kept running, and stopped together.

The API server and the UI run as child processes (their logs go to `<home>/logs/`); the
embedded model service is started first (unless one is already running for this data
dir) so the first chat doesn't wait for it. A part that dies is started again at the
same URL, and stderr says so with the end of its log ("api server exited with code -9;
restarting (1/5)"), after a backoff that doubles each time; past `RestartPolicy`'s budget
(5 restarts in 10 minutes per part) everything is stopped with a message saying why.
Ctrl-C or SIGTERM stops everything this command started, in reverse order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from flowloom.backends.restarts import RestartBudget, RestartPolicy

__all__ = ["LaunchError", "RestartBudget", "RestartPolicy", "Stack", "UpSettings",
           "run_until_stopped", "up"]

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
    restart: RestartPolicy = field(default_factory=RestartPolicy)


@dataclass
class _Child:
    name: str  # its log's name: server, ui
    proc: subprocess.Popen[str]
    log: Path

    @property
    def title(self) -> str:
        return TITLES.get(self.name, self.name)


TITLES = {"server": "api server", "ui": "ui", "model-service": "model service"}


@dataclass
class Stack:
    """What `up` started, stopped in reverse order by `stop()`; `settings` and `env` are
    what it was started with (a part that dies is started again with them)."""

    home: Path
    children: list[_Child] = field(default_factory=list)
    api_url: str = ""
    ui_url: str = ""
    model_url: str | None = None
    started_model_service: bool = False
    settings: UpSettings | None = None
    env: dict[str, str] = field(default_factory=dict)

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
        """A part that has exited: a child, or the model service this command started."""
        dead = next((c for c in self.children if c.proc.poll() is not None), None)
        if dead is None and self.started_model_service:
            from flowloom.backends.model_launcher import service_log_path, started_service

            proc = started_service(self.home)
            if proc is not None and proc.poll() is not None:
                dead = _Child("model-service", proc, service_log_path(self.home))
        return dead

    def restart(self, dead: _Child) -> None:
        """Start `dead` again, at the URL it had; LaunchError when it does not come up."""
        assert self.settings is not None
        if dead.name == "model-service":
            _restart_model_service(self)
            return
        index = self.children.index(dead)
        if dead.name == "server":
            settings = dataclasses.replace(self.settings, port=_port_of(self.api_url))
            child = _spawn_api(settings, self.env, append=True)
            self.children[index] = child  # stopped by stop() even if it fails to start
            self.api_url = _await_api(child)
        else:
            settings = dataclasses.replace(self.settings, ui_port=_port_of(self.ui_url))
            self.children[index] = child = _spawn_ui(settings, self.env, self.api_url,
                                                     append=True)
            self.ui_url = _await_ui(settings, child)


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


def _port_of(url: str) -> int:
    return int(urlparse(url).port or 0)


def _spawn(name: str, args: list[str], env: dict[str, str], logs: Path, *,
           append: bool = False) -> _Child:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    handle = log.open("a" if append else "w")
    if append:  # a restart: the log keeps why the last one died
        handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} restarted by flowloom up\n")
        handle.flush()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=handle, text=True, env=env,
                            start_new_session=True)  # Ctrl-C reaches us, not them
    handle.close()
    return _Child(name, proc, log)


def _spawn_api(settings: UpSettings, env: dict[str, str], *, append: bool = False) -> _Child:
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
    return _spawn("server", args, env, settings.home / "logs", append=append)


def _await_api(child: _Child) -> str:
    """The URL the API server prints once it listens; LaunchError if it prints none."""
    assert child.proc.stdout is not None
    line = child.proc.stdout.readline()  # the server prints one line when it listens
    if not line.startswith("FLOWLOOM_SERVER_READY "):
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(10)
        raise LaunchError(f"the API server did not start (log {child.log}):\n"
                          f"{_tail(child.log)}")
    _drain(child.proc.stdout, child.log)
    return line.split()[1]


def _start_api(settings: UpSettings, env: dict[str, str], stack: Stack) -> None:
    child = _spawn_api(settings, env)
    stack.children.append(child)
    stack.api_url = _await_api(child)


def _drain(stream: object, log: Path) -> None:
    """Copy a child's further stdout into its log, so a full pipe never blocks it."""
    import threading

    def copy() -> None:
        with log.open("a") as out:
            for text in stream:  # type: ignore[attr-defined]
                out.write(text)
                out.flush()

    threading.Thread(target=copy, daemon=True, name="flowloom-up-drain").start()


def _spawn_ui(settings: UpSettings, env: dict[str, str], api_url: str, *,
              append: bool = False) -> _Child:
    ui_port = settings.ui_port
    if _port_taken(settings.host, ui_port):
        raise LaunchError(f"--ui-port {ui_port} is taken on {settings.host}; pick another "
                          "(0: any free port)")
    script = Path(__file__).with_name("app") / "main.py"
    args = [sys.executable, "-m", "streamlit", "run", str(script),
            "--server.address", settings.host, "--server.port", str(ui_port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal"]
    child = _spawn("ui", args, {**env, "FLOWLOOM_API_URL": api_url}, settings.home / "logs",
                   append=append)
    _drain(child.proc.stdout, child.log)
    return child


def _await_ui(settings: UpSettings, child: _Child) -> str:
    """The UI's URL once it answers; LaunchError if it exits or stays silent."""
    url = _url(settings.host, settings.ui_port)
    deadline = time.monotonic() + settings.timeout
    with httpx.Client(timeout=2) as http:
        while True:
            if child.proc.poll() is not None:
                raise LaunchError(f"the UI did not start (log {child.log}):\n{_tail(child.log)}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}/_stcore/health").status_code == 200:
                    return url
            if time.monotonic() > deadline:
                raise LaunchError(f"the UI did not answer within {settings.timeout:.0f} s "
                                  f"(log {child.log}):\n{_tail(child.log)}")
            time.sleep(0.2)


def _start_ui(settings: UpSettings, env: dict[str, str], stack: Stack) -> None:
    settings = dataclasses.replace(settings,
                                   ui_port=settings.ui_port or _free_port(settings.host))
    child = _spawn_ui(settings, env, stack.api_url)
    stack.children.append(child)
    stack.ui_url = _await_ui(settings, child)


def _start_model_service(settings: UpSettings, stack: Stack) -> None:
    from flowloom.backends.model_launcher import ensure_model_service, running_service_url

    already = running_service_url(settings.home)
    stack.model_url = ensure_model_service(settings.home, timeout=settings.timeout)
    stack.started_model_service = already is None


def _restart_model_service(stack: Stack) -> None:
    """The model service again, on its port: the API server keeps the URL it was given."""
    from flowloom.backends.errors import ModelServiceError
    from flowloom.backends.model_launcher import ensure_model_service

    assert stack.settings is not None and stack.model_url is not None
    try:
        url = ensure_model_service(stack.home, timeout=stack.settings.timeout,
                                   port=_port_of(stack.model_url))
    except ModelServiceError as exc:
        raise LaunchError(str(exc)) from None
    if url != stack.model_url:
        raise LaunchError(f"the model service came back at {url}, not {stack.model_url}")


@contextlib.contextmanager
def up(settings: UpSettings, *, say: Callable[[str], None] = print) -> Iterator[Stack]:
    """Start everything; yield the running `Stack`; stop it all on the way out."""
    if settings.port and _port_taken(settings.host, settings.port):
        raise LaunchError(f"--port {settings.port} is taken on {settings.host}; pick another "
                          "(0: any free port)")
    env = {**os.environ, "FLOWLOOM_HOME": str(settings.home)}
    stack = Stack(home=settings.home, settings=settings, env=env)
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
    """Block until Ctrl-C / SIGTERM (exit 0), restarting a part that dies (see
    `RestartPolicy`); exit 1 when one dies more often than its budget allows."""
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    policy = stack.settings.restart if stack.settings is not None else RestartPolicy()
    budgets: dict[str, RestartBudget] = {}
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopping:
            dead = stack.dead_child()
            if dead is None:
                time.sleep(0.3)
                continue
            code = dead.proc.returncode
            budget = budgets.setdefault(dead.name, RestartBudget(policy))
            attempt = budget.take()
            if attempt is None:
                times = "restart" if policy.max_restarts == 1 else "restarts"
                say(f"{dead.title} exited with code {code} again, after "
                    f"{policy.max_restarts} {times} within {policy.window_s / 60:g} "
                    f"minutes: not restarting it; stopping everything. "
                    f"{_log_end(dead.log)}")
                return 1
            say(f"{dead.title} exited with code {code}; restarting "
                f"({attempt}/{policy.max_restarts}). {_log_end(dead.log)}")
            deadline = time.monotonic() + budget.backoff(attempt)
            while not stopping and time.monotonic() < deadline:
                time.sleep(0.1)
            if stopping:
                break
            try:
                stack.restart(dead)
            except LaunchError as exc:  # still dead: the next turn counts another try
                say(f"could not restart the {dead.title}: {exc}")
            else:
                say(f"{dead.title} is back ({_where(stack, dead)})")
        say("stopping ...")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_end(log: Path) -> str:
    tail = _tail(log)
    return f"The end of its log ({log}):\n{tail}" if tail.strip() else f"Its log ({log}) is empty."


def _where(stack: Stack, part: _Child) -> str:
    return {"server": stack.api_url, "ui": stack.ui_url}.get(part.name) or \
        str(stack.model_url)
