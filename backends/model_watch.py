"""`flowloom serve` keeps the embedded model service it started alive: a service that dies
is started again on its old port (so the gateway's URL stays right), after a backoff
that doubles, within a budget (`RestartPolicy`); what happened shows in `GET /ok`.

Only a service this process started is watched: one started by `flowloom up` (which has
its own supervision) or by another process is theirs to keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowloom.backends.model_launcher import (
    ensure_model_service,
    read_service_state,
    started_service,
)
from flowloom.backends.restarts import RestartBudget, RestartPolicy

__all__ = ["ModelServiceWatch"]

logger = logging.getLogger("flowloom.server")


@dataclass
class ModelServiceWatch:
    """Polls the home's model service process every `interval` seconds."""

    home: Path
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    interval: float = 1.0
    state: str = "not started"  # running | restarting | failed | not started
    restarts: int = 0
    last_exit: int | None = None
    last_error: str | None = None
    since: float = field(default_factory=time.time)
    _task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        """For `GET /ok`: the service's state, restarts so far and the last failure."""
        return {"state": self.state, "restarts": self.restarts, "last_exit": self.last_exit,
                "last_error": self.last_error, "since": self.since}

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="flowloom-model-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, time.time()

    async def _watch(self) -> None:
        budget = RestartBudget(self.policy)
        url: str | None = None
        while True:
            await asyncio.sleep(self.interval)
            process = started_service(self.home)
            if process is None:
                if self.state == "running":  # stopped by someone else on purpose
                    self._set("not started")
                continue
            if process.poll() is None:
                url = url or _recorded_url(self.home)
                self._set("running")
                continue
            self.last_exit = process.returncode
            attempt = budget.take()
            if attempt is None:
                self._set("failed")
                self.last_error = (f"exited with code {process.returncode} more than "
                                   f"{self.policy.max_restarts} times in "
                                   f"{self.policy.window_s:.0f} s; not restarted")
                logger.error("model service %s", self.last_error)
                return
            self._set("restarting")
            logger.warning("model service exited with code %s; restarting (%d/%d)",
                           process.returncode, attempt, self.policy.max_restarts)
            await asyncio.sleep(budget.backoff(attempt))
            port = urlsplit(url).port if url else 0
            try:
                url = await asyncio.to_thread(ensure_model_service, self.home, port=port or 0)
            except Exception as exc:  # said in /ok; the next poll tries again
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                logger.error("model service did not restart: %s", self.last_error)
                continue
            self.restarts += 1
            self.last_error = None
            self._set("running")
            logger.warning("model service is back at %s", url)


def _recorded_url(home: Path) -> str | None:
    state = read_service_state(home)
    return str(state["url"]) if state else None
