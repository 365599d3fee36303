"""Find or start the embedded model service, one per flowloom home.

A running service is recorded in `<home>/run/model-service.json` (`{pid, url,
started_by}`). `ensure_model_service` reuses it while its `/health` answers; otherwise it
starts `python -m flowloom.backends.model_service` in the background (under a file lock,
so concurrent commands start one service, not several), waits for its READY line, and
stops it when this process exits. A foreground `flowloom serve-model` records itself with
`advertise_service` so other commands use it.

>>> from pathlib import Path
>>> url = ensure_model_service(Path("~/.flowloom").expanduser())  # doctest: +SKIP
>>> url  # doctest: +SKIP
'http://127.0.0.1:40517/v1'
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from flowloom.backends.errors import ModelServiceError
from flowloom.backends.model_files import ensure_bundled_gguf

__all__ = [
    "MODEL_URL_ENV",
    "READY_PREFIX",
    "advertise_service",
    "ensure_model_service",
    "read_service_state",
    "running_service_url",
    "service_log_path",
    "service_state_path",
    "started_service",
    "stop_started_services",
    "withdraw_service",
]

MODEL_URL_ENV = "FLOWLOOM_MODEL_URL"
READY_PREFIX = "FLOWLOOM_MODEL_SERVICE_READY"
"""The service prints `READY_PREFIX <url>` on stdout once it accepts connections."""

_STOP_GRACE_S = 10.0
_LOG_TAIL_LINES = 20


def service_state_path(home: Path) -> Path:
    return Path(home) / "run" / "model-service.json"


def service_log_path(home: Path) -> Path:
    return Path(home) / "logs" / "model-service.log"


def read_service_state(home: Path) -> dict[str, Any] | None:
    """The recorded service (`{pid, url, started_by}`), or None if none or unreadable."""
    try:
        state = json.loads(service_state_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or not isinstance(state.get("url"), str):
        return None
    return state


def _write_state(home: Path, state: dict[str, Any]) -> None:
    path = service_state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _remove_state_if(home: Path, pid: int) -> None:
    """Remove the state file if it still describes process `pid` (another service may
    have replaced it since)."""
    state = read_service_state(home)
    if state is not None and state.get("pid") == pid:
        service_state_path(home).unlink(missing_ok=True)


def advertise_service(home: Path, url: str) -> None:
    """Record this process as the home's model service (for `flowloom serve-model`)."""
    _write_state(home, {"pid": os.getpid(), "url": url, "started_by": os.getpid()})


def withdraw_service(home: Path) -> None:
    """Undo `advertise_service`: remove the state file if it still names this process."""
    _remove_state_if(home, os.getpid())


def _health_url(url: str) -> str:
    return url.rstrip("/").removesuffix("/v1") + "/health"


def _answers(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(_health_url(url), timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def running_service_url(home: Path) -> str | None:
    """The URL of a model service advertised in `home` that answers, else None (starts
    nothing)."""
    state = read_service_state(home)
    if state is not None and _answers(state["url"]):
        return str(state["url"])
    return None


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ModelServiceError(
                        f"timed out after {timeout:.0f} s waiting for another process "
                        f"to start the model service (lock: {path})"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class _Started:
    home: Path
    url: str
    process: subprocess.Popen[str]
    owner: int  # our pid; a forked child must not stop its parent's service


_started: dict[Path, _Started] = {}
_started_lock = threading.Lock()
_atexit_registered = False


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(f"  {line}" for line in lines[-_LOG_TAIL_LINES:]) or "  (empty log)"


def _pump_stdout(stdout: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stdout:
        lines.put(line)
    lines.put(None)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in (("DO_NOT_TRACK", "1"), ("HF_HUB_OFFLINE", "1"),
                       ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        env.setdefault(key, value)
    env.pop("CONFIG_FILE", None)  # llama_cpp.server would read its settings from there
    return env


def _wait_ready(
    process: subprocess.Popen[str], log: Path, log_file: IO[str], timeout: float
) -> str:
    """Read the child's stdout until its READY line; copy other lines to the log."""
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump_stdout, args=(process.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ModelServiceError(
                f"the model service did not become ready within {timeout:.0f} s; "
                f"last lines of {log}:\n{_log_tail(log)}"
            )
        try:
            line = lines.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        if line is None:  # stdout closed: the child exited (or closed it) before READY
            try:
                code: int | str = process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = "?"
            raise ModelServiceError(
                f"the model service exited with code {code} before it was ready; "
                f"last lines of {log}:\n{_log_tail(log)}"
            )
        if line.startswith(READY_PREFIX):
            return line[len(READY_PREFIX):].strip()
        log_file.write(line)
        log_file.flush()


def _start(home: Path, timeout: float, port: int = 0) -> _Started:
    log = service_log_path(home)
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "flowloom.backends.model_service", "--port", str(port),
           "--home", str(home), "--launched-by", str(os.getpid())]
    with log.open("a", encoding="utf-8") as log_file:
        log_file.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n")
        log_file.flush()
        # Its own session: a Ctrl-C meant for this command does not kill the service
        # mid-request; the service exits by itself when its launcher is gone.
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
            text=True, env=_child_env(), start_new_session=True,
        )
        try:
            url = _wait_ready(process, log, log_file, timeout)
        except BaseException:
            _terminate(process)
            raise
    _write_state(home, {"pid": process.pid, "url": url, "started_by": os.getpid()})
    return _Started(home=home, url=url, process=process, owner=os.getpid())


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_GRACE_S)


def ensure_model_service(home: Path, *, timeout: float = 120, port: int = 0) -> str:
    """Return the base URL (`http://127.0.0.1:PORT/v1`) of the home's model service,
    starting one in the background if none answers (on `port`; 0: any free one), and set
    `$FLOWLOOM_MODEL_URL` to it.

    A service this process starts is stopped when the process exits (or by
    `stop_started_services`). Raises `ModelServiceError` (with the last lines of
    `<home>/logs/model-service.log`) if it fails to start within `timeout` seconds.
    """
    global _atexit_registered
    home = Path(home).expanduser().resolve()
    url = running_service_url(home)
    if url is None:
        ensure_bundled_gguf(home)  # its errors name the missing package; raise them here
        with _file_lock(home / "run" / "model-service.lock", timeout), _started_lock:
            url = running_service_url(home)
            if url is None:
                started = _start(home, timeout, port)
                _started[home] = started
                url = started.url
                if not _atexit_registered:
                    atexit.register(stop_started_services)
                    _atexit_registered = True
    os.environ[MODEL_URL_ENV] = url
    return url


def started_service(home: Path) -> subprocess.Popen[str] | None:
    """The process of the home's model service if this process started it (what `flowloom
    up` watches, to restart it when it dies), else None."""
    key = Path(home).expanduser().resolve()
    with _started_lock:
        started = _started.get(key)
    return started.process if started is not None and started.owner == os.getpid() else None


def stop_started_services(home: Path | None = None) -> None:
    """Stop the services this process started (all, or only `home`'s): terminate, then
    kill after a grace period, and remove their state files. Services started by other
    processes are left alone."""
    key = None if home is None else Path(home).expanduser().resolve()
    with _started_lock:
        mine = [s for h, s in _started.items()
                if s.owner == os.getpid() and (key is None or h == key)]
        for started in mine:
            del _started[started.home]
    for started in mine:
        _terminate(started.process)
        _remove_state_if(started.home, started.process.pid)
        if os.environ.get(MODEL_URL_ENV) == started.url:
            del os.environ[MODEL_URL_ENV]
