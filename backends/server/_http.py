"""uvicorn's httptools protocol, with the writes of one event-loop turn sent together.

uvicorn writes a response's headers and its body with one socket send each. On loopback,
each send also runs the receiving side's TCP work and wakes the client, so a small JSON
answer cost two of them. Here writes are gathered and sent once, when the loop turn that
made them ends (a `call_soon`): a response sent whole, or a burst of stream events, goes
out in one send, and nothing waits longer than the current turn.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["http_protocol"]


class _Gathering:
    """A transport whose `write`s are joined and flushed at the end of the loop turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> Any:
    """The protocol class to give uvicorn's `http=`: httptools' with gathered writes, or
    "auto" where httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "auto"

    class GatheringHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(_Gathering(transport, self.loop))  # type: ignore[arg-type]

    return GatheringHttpToolsProtocol
