"""`flowloom serve-model --engine vllm`: the same OpenAI-style API from vLLM on a CUDA GPU.

vLLM runs as `vllm serve <model> --served-model-name local` in a child process; this
waits for its `/health`, then announces it like the llama.cpp service. vLLM serves chat
and completions only (no `local-embed`), and downloads the model (by default
`Qwen/Qwen2.5-Coder-0.5B-Instruct`, or `$FLOWLOOM_VLLM_MODEL`) unless it is cached.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from flowloom.backends.errors import ModelServiceError
from flowloom.backends.model_launcher import READY_PREFIX, advertise_service, withdraw_service

__all__ = ["DEFAULT_VLLM_MODEL", "serve_vllm", "vllm_command"]

DEFAULT_VLLM_MODEL = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
_START_TIMEOUT_S = 600.0


def vllm_command() -> list[str]:
    """How to run vLLM's CLI here; `ModelServiceError` if vLLM is not installed."""
    # The console script sits next to this interpreter even when the venv is not on PATH.
    beside = Path(sys.executable).with_name("vllm")
    exe = shutil.which("vllm") or (str(beside) if beside.is_file() else None)
    if exe:
        return [exe]
    raise ModelServiceError(
        "vLLM is not installed; install flowloom[gpu] on a machine with a CUDA GPU"
    )


def _free_port(host: str) -> int:
    # vLLM binds its own socket, so port 0 is resolved here; another process could take
    # the port in between, in which case vLLM exits and the error says so.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_healthy(process: subprocess.Popen[bytes], root: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if (code := process.poll()) is not None:
            raise ModelServiceError(f"vLLM exited with code {code} before it was ready")
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise ModelServiceError(f"vLLM did not become ready within {_START_TIMEOUT_S:.0f} s")


def serve_vllm(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    home: Path,
    ready: Callable[[str], None] | None = None,
    advertise: bool = True,
) -> None:
    """Run vLLM in the foreground until it exits or this process is interrupted."""
    command = vllm_command()
    model = os.environ.get("FLOWLOOM_VLLM_MODEL", DEFAULT_VLLM_MODEL)
    port = port or _free_port(host)
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    root = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
    url = f"{root}/v1"
    process = subprocess.Popen([*command, "serve", model, "--served-model-name", "local",
                                "--host", host, "--port", str(port)])
    try:
        _wait_healthy(process, root)
        print(f"{READY_PREFIX} {url}", flush=True)
        if advertise:
            advertise_service(home, url)
        if ready is not None:
            ready(url)
        process.wait()
    finally:
        if advertise:
            withdraw_service(home)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
