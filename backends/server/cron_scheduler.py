"""Firing crons while the server runs: one task per server process, started and stopped
by the app's lifespan.

Each pass reads the crons due by now, and for each moves its next fire forward with one
conditional UPDATE (`CronStore.claim`): of the servers sharing a database that read the
same due fire, exactly one's UPDATE changes the row, and that server starts the run,
through `RunManager.create` as the cron's owner (its key's role, ownership, spend and
model calls, as if that key had sent the run). A claimed fire whose server dies before
the run is stored is lost, never run twice.

Between passes it sleeps until the earliest next fire, at most `tick_s` (a cron made or
changed on another server is seen within that), and wakes at once when one is made or
changed here. Fires missed while no server ran are run once when one starts, then the
schedule goes on from that time (as the LangGraph API's scheduler does): a server down
for an hour runs an every-minute cron once, not 60 times.

    >>> scheduler = CronScheduler(CronStore(db), runs, KeyStore(db))  # doctest: +SKIP
    >>> await scheduler.start(); ...; await scheduler.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowloom.backends.gateway.records import call_owner
from flowloom.backends.server.crons import Clock, Cron, CronStore, utc_now
from flowloom.backends.server.errors import NotFound, ServerError
from flowloom.backends.server.keys import KeyStore
from flowloom.backends.server.runs import RunManager, RunRequest
from flowloom.backends.server.tenancy import LOCAL, Principal, current_principal

__all__ = ["CronScheduler", "CronStats"]

logger = logging.getLogger("flowloom.server")


@dataclass
class CronStats:
    """What this server's scheduler did: runs started, fires another server claimed
    first, fires skipped (owner's key revoked or budget spent, run refused)."""

    fired: int = 0
    lost: int = 0
    skipped: int = 0


class CronScheduler:
    def __init__(self, store: CronStore, runs: RunManager, keys: KeyStore, *,
                 tick_s: float = 5.0, clock: Clock = utc_now, batch: int = 100) -> None:
        self.store = store
        self.runs = runs
        self.keys = keys
        self.tick_s = tick_s
        self.clock = clock
        self.batch = batch
        self.stats = CronStats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop(), name="flowloom-crons")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop after the fire in progress, if any (a run being stored is not cut in
        two); cancelled past `timeout`."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look at the crons again now (one was made or changed)."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
                delay = await self._until_next()
            except Exception:  # the database away for a moment: try again later
                logger.exception("cron scheduler pass failed")
                delay = self.tick_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    async def _until_next(self) -> float:
        at = await self.store.next_due()
        if at is None:
            return self.tick_s
        wait = (datetime.fromisoformat(at) - self.clock()).total_seconds()
        return min(self.tick_s, max(0.0, wait))

    async def tick(self) -> int:
        """Fire every cron due now; how many runs this server started."""
        now = self.clock()
        started = 0
        for cron in await self.store.due(now, self.batch):
            if self._stopping:
                break
            started += await self.fire(cron, now)
        return started

    async def fire(self, cron: Cron, now: datetime) -> bool:
        """Claim `cron`'s due fire and start its run; False when another server claimed
        it first, or the run was not started (said in the log)."""
        if not await self.store.claim(cron, cron.following(now)):
            self.stats.lost += 1
            return False
        who = await self._owner(cron)
        if who is None:
            self.stats.skipped += 1
            return False
        principal = current_principal.set(who)  # the run's task inherits both
        owner = call_owner.set(who.key_id)
        try:
            handle = await self.runs.create(cron.thread_id, _request(cron), who)
        except NotFound as exc:
            self.stats.skipped += 1
            if cron.thread_id is not None and not await self.runs.store.thread_exists(
                    cron.thread_id):
                logger.info("cron %s deleted: its thread %s is gone", cron.cron_id,
                            cron.thread_id)
                await self.store.delete(cron.cron_id)
            else:
                logger.warning("cron %s not run: %s", cron.cron_id, exc)
            return False
        except ServerError as exc:  # refused as a client's run would be (busy thread...)
            self.stats.skipped += 1
            logger.warning("cron %s not run: %s", cron.cron_id, exc)
            return False
        finally:
            call_owner.reset(owner)
            current_principal.reset(principal)
        self.stats.fired += 1
        logger.info("cron %s started run %s on thread %s", cron.cron_id, handle.run_id,
                    handle.thread_id)
        return True

    async def _owner(self, cron: Cron) -> Principal | None:
        """Who the cron's runs run as: its key, as that key's requests would (None: not
        now, said in the log). A revoked key's crons are disabled."""
        if cron.owner_key is None:
            return LOCAL
        key = await self.keys.get(cron.owner_key)
        if key is None or not key.active:
            logger.warning("cron %s disabled: its API key %s was revoked", cron.cron_id,
                           cron.owner_key)
            await self.store.disable(cron.cron_id)
            return None
        if key.budget_usd is not None and key.spent_usd >= key.budget_usd:
            logger.warning("cron %s not run: key %s has spent its $%.6f model budget",
                           cron.cron_id, key.key_id, key.budget_usd)
            return None
        return Principal(key.key_id, admin=key.role == "admin")


def _request(cron: Cron) -> RunRequest:
    payload: dict[str, Any] = cron.payload
    modes = payload.get("stream_mode") or ["values"]
    return RunRequest(
        assistant_id=payload["assistant_id"], input=payload.get("input"),
        config=payload.get("config") or {}, context=payload.get("context"),
        metadata={**cron.metadata, "cron_id": cron.cron_id},
        stream_mode=[modes] if isinstance(modes, str) else list(modes),
        stream_subgraphs=bool(payload.get("stream_subgraphs")),
        interrupt_before=payload.get("interrupt_before"),
        interrupt_after=payload.get("interrupt_after"),
        multitask_strategy=payload.get("multitask_strategy") or "enqueue",
        on_completion=cron.on_run_completed, durability=payload.get("durability"),
        webhook=payload.get("webhook"))
