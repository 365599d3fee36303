"""The server's HTTP protocol: writes of one loop turn leave in one send."""

from __future__ import annotations

import asyncio

from flowloom.backends.server._http import _Gathering


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_writes_of_one_turn_are_sent_together_and_close_flushes_first():
    raw = _Recorder()
    transport = _Gathering(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(memoryview(b"{}"))
    assert raw.sent == []  # not yet: the turn is not over
    await asyncio.sleep(0)
    assert raw.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.writelines([b"a", b"b"])
    transport.close()  # pending bytes go out before the close
    assert raw.sent[-1] == b"ab" and raw.closed
    await asyncio.sleep(0)
    assert len(raw.sent) == 2
    assert transport.get_extra_info("peername") == "info:peername"  # the rest is passed on
