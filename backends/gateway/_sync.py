"""Run the gateway's async core from sync code, on one long-lived background event loop.

One loop (not `asyncio.run` per call) keeps LiteLLM's cached async HTTP clients bound
to a loop that stays open, and works whether or not the caller's thread runs a loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class LoopThread:
    """A daemon thread running an event loop, started on first use."""

    def __init__(self, name: str = "flowloom-gateway") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self._name, daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the background loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._get_loop()).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """Iterate an async iterator from sync code, one item at a time."""
        loop = self._get_loop()
        try:
            while True:
                try:
                    yield asyncio.run_coroutine_threadsafe(_next(iterator), loop).result()
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                asyncio.run_coroutine_threadsafe(aclose(), loop).result()
