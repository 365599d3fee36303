"""Parsing in a worker process with a memory limit, so a hostile document (a zip bomb
that slips past the size checks, a PDF that makes pdfminer loop over memory) costs the
worker, never the process that serves flows.

One spawned worker (no fork of a threaded server), started on first use and kept for the
process (`shared_pool`): its imports (unstructured, spaCy) are paid once. A worker that
dies or runs out of memory is replaced, and the file is reported with the reason; the
rest of a batch goes on.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowloom.retrievers.parse import ChunkSettings, ParseError, parse_file

if TYPE_CHECKING:
    from llama_index.core.schema import TextNode

__all__ = ["DEFAULT_MEMORY_MB", "ParsePool", "shared_pool"]

DEFAULT_MEMORY_MB = 3072


def _init_worker(limit_bytes: int) -> None:
    """Worker initializer: cap the process's data segment (heap and anonymous maps), and
    end the worker when the process that started it is gone (killed with -9, say: then no
    shutdown reaches the worker, which would otherwise live on holding its memory)."""
    import os
    import resource
    import time

    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _parse(path: str, settings: ChunkSettings) -> list[TextNode]:
    try:
        return parse_file(Path(path), settings)
    except MemoryError:
        raise ParseError(path, "parsing needed more memory than the parser's limit") from None


class ParsePool:
    """`await pool.parse(path, settings)`: `parse_file` in the worker; ParseError on a
    failure, including the worker's death."""

    def __init__(self, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        self.memory_mb = memory_mb
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_worker, initargs=(self.memory_mb * 2**20,))
            return self._pool

    async def parse(self, path: Path, settings: ChunkSettings) -> list[Any]:
        pool = self._executor()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                pool, _parse, str(path), settings)
        except BrokenProcessPool:
            self._discard(pool)
            raise ParseError(path, f"the parser stopped while reading it (it may need more "
                             f"than the {self.memory_mb} MB the parser may use)") from None

    def _discard(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_shared: ParsePool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> ParsePool:
    """The process's pool (every knowledge base parses through it), shut down at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = ParsePool()
            atexit.register(_shared.close)
        return _shared
