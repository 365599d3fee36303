"""`flowloom up` as a user runs it, for the UI's end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Up:
    proc: subprocess.Popen[str]
    ui: str
    api: str
    stdout: list[str]
    stderr: list[str] = field(default_factory=list)  # what it has said so far


@contextmanager
def flowloom_up(home: Path, *extra: str, timeout: float = 180) -> Iterator[Up]:
    """Run `flowloom up --port 0 --ui-port 0 ...` until it announces both URLs; Ctrl-C
    (SIGINT) it on the way out and check it stopped cleanly."""
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    env.pop("FLOWLOOM_MODEL_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowloom.ui.cli", "up", "--port", "0", "--ui-port", "0",
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr
    out: list[str] = []
    threading.Thread(target=lambda: out.extend(stdout), daemon=True).start()
    errors: list[str] = []
    ready = threading.Event()
    urls: dict[str, str] = {}

    def read_err() -> None:
        for line in stderr:
            errors.append(line)
            if line.startswith("FLOWLOOM_UP "):
                for part in line.split()[1:]:
                    key, _, value = part.partition("=")
                    urls[key] = value
                ready.set()
        ready.set()

    threading.Thread(target=read_err, daemon=True).start()
    if not ready.wait(timeout) or not urls:
        proc.kill()
        raise AssertionError("flowloom up did not come up:\n" + "".join(errors))
    up = Up(proc, urls["ui"], urls["api"], out, errors)
    try:
        yield up
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError("flowloom up did not stop on Ctrl-C") from None
