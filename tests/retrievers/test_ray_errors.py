"""`flowloom ingest --ray`: a failure inside the Ray pipeline reaches the user as its root
cause in one line, never as the worker's traceback Ray puts in its exception's text."""

from __future__ import annotations

import pytest

from flowloom.retrievers._ray_ingest import _rows
from flowloom.retrievers.errors import KnowledgeError


class _WorkerFailed(Exception):
    """Like ray.exceptions.RayTaskError: a traceback as its text, the cause in `cause`."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__("ray::MapWorker(MapBatches(_Embed)).submit()\n  File \"x.py\", line 1"
                         "\nTraceback (most recent call last):\n  ...")
        self.cause = cause


class _Dataset:
    def iter_rows(self):
        yield {"path": "a.md"}
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 45719)")
        except ConnectionRefusedError as refused:
            raise _WorkerFailed(refused) from None


def test_a_worker_failure_is_said_as_its_root_cause_in_one_line():
    rows = _rows(_Dataset())
    assert next(rows) == {"path": "a.md"}
    with pytest.raises(KnowledgeError) as failed:
        next(rows)
    message = str(failed.value)
    assert message.startswith("the Ray ingestion pipeline failed: ConnectionRefusedError")
    assert "45719" in message and "Traceback" not in message and "\n" not in message
