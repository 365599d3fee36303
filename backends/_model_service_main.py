"""`python -m flowloom.backends.model_service`: the command line the launcher runs.

With `--launched-by PID` the service belongs to that process: it leaves the state file to
the launcher, sends its stdout to stderr (the log) once the READY line is out, since the
launcher stops reading the pipe, and exits when the launcher is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flowloom.backends.model_service",
        description="Serve flowloom's bundled models on an OpenAI-compatible API.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument("--home", type=Path, required=True, help="flowloom home directory")
    parser.add_argument("--engine", default="llama.cpp", choices=("llama.cpp", "vllm"))
    parser.add_argument("--launched-by", type=int, default=None, metavar="PID",
                        help="the launching process: exit when it exits")
    return parser


def _exit_with_parent(parent: int) -> None:
    """Send ourselves SIGTERM (a graceful uvicorn shutdown) once `parent` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _stdout_to_stderr(_url: str) -> None:
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the service; return the exit code (1 with a message on a `BackendError`)."""
    for key, value in (("DO_NOT_TRACK", "1"), ("HF_HUB_OFFLINE", "1"),
                       ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    args = _parser().parse_args(argv)
    from flowloom.backends.errors import BackendError
    from flowloom.backends.model_service import serve

    launched = args.launched_by is not None
    if launched:
        _exit_with_parent(args.launched_by)
    try:
        serve(args.host, args.port, home=args.home, engine=args.engine,
              ready=_stdout_to_stderr if launched else None, advertise=not launched)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
