"""Crons: runs of a flow on a schedule (the LangGraph API's `/runs/crons`), kept in the
server database.

A cron holds an assistant (or graph name), a thread (None: stateless, a new thread per
run), a schedule in cron syntax read by croniter (5 fields, or 6 with seconds last, or an
alias such as `@hourly`) in an IANA time zone (UTC when none), an optional end time, the
run's options (`payload`), and when it fires next (`next_run_at`, UTC; None once it is
disabled or past its end). It belongs to the API key that made it (`owner_key`): another
user key does not see it, and its runs run as that key (tenancy.py). `CronScheduler`
(cron_scheduler.py) fires the due ones.

    >>> Schedule.parse("*/15 * * * *", "Europe/Paris").next_after(
    ...     datetime(2030, 1, 1, 10, 7, tzinfo=UTC)).isoformat()
    '2030-01-01T10:15:00+00:00'
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from flowloom.backends.netguard import url_problem
from flowloom.backends.server.catalog import CompiledFlow
from flowloom.backends.server.db import Database
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.runs import STREAM_MODES, RunManager
from flowloom.backends.server.store import now_iso
from flowloom.backends.server.tenancy import Principal

__all__ = [
    "Clock", "Cron", "CronCount", "CronCreate", "CronPatch", "CronSearch", "CronStore",
    "Crons", "Schedule", "stamp", "utc_now",
]

Clock = Callable[[], datetime]
"""The time a scheduler reads (aware, UTC); tests give one they move by hand."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def stamp(when: datetime) -> str:
    """`when` as stored: fixed-width UTC ISO 8601, so text order is time order."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


# -- request bodies (what langgraph-sdk's client.crons sends, nulls dropped) -------------

MAX_OFFSET = 1_000_000_000
Interrupts = Literal["*"] | list[str]


class _Body(BaseModel):
    # an option this server does not know is a 422 naming it, never ignored
    model_config = ConfigDict(extra="forbid", strict=True)


class _RunOptions(_Body):
    """What each run of the cron gets (`payload`), and the cron's own settings."""

    input: Any = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    interrupt_before: Interrupts | None = None
    interrupt_after: Interrupts | None = None
    webhook: str | None = None
    stream_mode: str | list[str] | None = None
    stream_subgraphs: StrictBool | None = None
    # a run's events are always kept for joining and resuming on this server
    stream_resumable: StrictBool | None = None
    durability: Literal["sync", "async", "exit"] | None = None
    timezone: str | None = None
    end_time: str | None = None
    enabled: StrictBool | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


class CronCreate(_RunOptions):
    assistant_id: str
    schedule: str
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] | None = None
    checkpoint_during: StrictBool | None = None  # older clients' durability: True is async


class CronPatch(_RunOptions):
    """Fields given change; `end_time: null` clears the end time."""

    schedule: str | None = None


SortBy = Literal["cron_id", "assistant_id", "thread_id", "created_at", "updated_at",
                 "next_run_date", "end_time"]
SelectField = Literal["cron_id", "assistant_id", "thread_id", "end_time", "schedule",
                      "timezone", "created_at", "updated_at", "user_id", "payload",
                      "next_run_date", "metadata", "now", "on_run_completed", "enabled"]


class CronCount(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None


class CronSearch(CronCount):
    enabled: StrictBool | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: SortBy | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[SelectField] | None = None


# -- schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A cron expression in a time zone (None: UTC)."""

    expression: str
    timezone: str | None = None

    @classmethod
    def parse(cls, expression: str, timezone: str | None = None) -> Schedule:
        """The schedule, or BadRequest naming the field that is wrong and why."""
        zone_problem = _zone_problem(timezone)
        if zone_problem is not None:
            raise BadRequest(f"timezone: {zone_problem}")
        fields_ = expression.split()
        alias = len(fields_) == 1 and fields_[0].startswith("@")
        if not alias and len(fields_) not in (5, 6):
            raise BadRequest(
                f"schedule: {expression!r} has {len(fields_)} fields; a cron schedule has 5 "
                "(minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'), or 6 "
                "with seconds last")
        schedule = cls(expression, timezone)
        try:
            croniter(expression, schedule._local(utc_now()))
        except Exception as exc:  # croniter says what is wrong in many exception types
            raise BadRequest(f"schedule: {expression!r} is not a cron schedule: {exc}; "
                             "e.g. '*/5 * * * *' (every 5 minutes)") from None
        if schedule.next_after(utc_now()) is None:
            raise BadRequest(f"schedule: {expression!r} never fires (no such date)")
        return schedule

    def _local(self, when: datetime) -> datetime:
        return when.astimezone(ZoneInfo(self.timezone) if self.timezone else UTC)

    def next_after(self, when: datetime) -> datetime | None:
        """The first time after `when` the schedule fires (UTC); None: never."""
        try:
            fire = croniter(self.expression, self._local(when)).get_next(datetime)
        except Exception:  # no such date, or past what datetime holds
            return None
        return fire.astimezone(UTC) if isinstance(fire, datetime) else None


def _zone_problem(timezone: str | None) -> str | None:
    if timezone is None:
        return None
    try:
        ZoneInfo(timezone)
    except Exception:
        return (f"{timezone!r} is not an IANA time zone; e.g. 'UTC', 'Europe/Paris', "
                "'America/New_York'")
    return None


def _end_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"end_time: {text!r} is not an ISO 8601 date and time, e.g. "
                         "'2030-01-31T12:00:00+00:00'") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # naive: UTC


# -- the stored cron ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """One row of `fl_crons`; `api()` is the LangGraph API's Cron."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    end_time: str | None
    enabled: bool
    on_run_completed: str | None  # stateless crons: delete (default) or keep the thread
    payload: dict[str, Any]
    metadata: dict[str, Any]
    next_run_at: str | None
    created_at: str
    updated_at: str
    owner_key: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Cron:
        return cls(**{**row, "enabled": bool(row["enabled"]),
                      "payload": json.loads(row["payload"]),
                      "metadata": json.loads(row["metadata"])})

    def row(self) -> dict[str, Any]:
        return {**asdict(self), "enabled": int(self.enabled),
                "payload": json.dumps(self.payload), "metadata": json.dumps(self.metadata)}

    @property
    def plan(self) -> Schedule:
        return Schedule(self.schedule, self.timezone)

    def following(self, now: datetime) -> datetime | None:
        """When it fires after `now`: None when disabled, or when that is past its end."""
        if not self.enabled:
            return None
        fire = self.plan.next_after(now)
        if fire is None or (self.end_time and stamp(fire) > self.end_time):
            return None
        return fire

    def api(self) -> dict[str, Any]:
        return {
            "cron_id": self.cron_id, "assistant_id": self.assistant_id,
            "thread_id": self.thread_id, "on_run_completed": self.on_run_completed,
            "end_time": self.end_time, "schedule": self.schedule, "timezone": self.timezone,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "payload": self.payload, "user_id": self.owner_key,
            "next_run_date": self.next_run_at, "metadata": self.metadata,
            "enabled": self.enabled,
        }


_COLUMNS = [f.name for f in fields(Cron)]
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM fl_crons"


class CronStore:
    """`fl_crons` (db.py SCHEMA): crons as `who` may see them, and the claims of due fires
    that make each fire run once across servers sharing the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, cron: Cron) -> None:
        row = cron.row()
        await self.db.execute(
            f"INSERT INTO fl_crons ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
            list(row.values()))

    async def get(self, cron_id: str, who: Principal) -> Cron:
        """The cron, if `who` may see it (another key's is not found)."""
        row = await self.db.fetchone(f"{_SELECT} WHERE cron_id = ?", [cron_id])
        if row is None or not who.sees(row["owner_key"]):
            raise NotFound(f"cron {cron_id} not found")
        return Cron.from_row(row)

    async def visible(self, who: Principal, *, assistant_id: str | None = None,
                      thread_id: str | None = None, enabled: bool | None = None) -> list[Cron]:
        where, params = ["1 = 1"], []
        for column, value in (("assistant_id", assistant_id), ("thread_id", thread_id),
                              ("enabled", None if enabled is None else int(enabled))):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if not who.sees_all:
            where.append("owner_key = ?")
            params.append(who.key_id)
        rows = await self.db.fetchall(f"{_SELECT} WHERE {' AND '.join(where)}", params)
        return [Cron.from_row(r) for r in rows]

    async def save(self, cron: Cron) -> None:
        row = cron.row()
        del row["cron_id"]
        await self.db.execute(
            f"UPDATE fl_crons SET {', '.join(f'{c} = ?' for c in row)} WHERE cron_id = ?",
            [*row.values(), cron.cron_id])

    async def delete(self, cron_id: str) -> None:
        await self.db.execute("DELETE FROM fl_crons WHERE cron_id = ?", [cron_id])

    async def due(self, now: datetime, limit: int = 100) -> list[Cron]:
        """Enabled crons whose next fire is at or before `now`, earliest first."""
        rows = await self.db.fetchall(
            f"{_SELECT} WHERE enabled = 1 AND next_run_at IS NOT NULL AND next_run_at <= ? "
            "ORDER BY next_run_at LIMIT ?", [stamp(now), limit])
        return [Cron.from_row(r) for r in rows]

    async def next_due(self) -> str | None:
        row = await self.db.fetchone(
            "SELECT MIN(next_run_at) AS at FROM fl_crons WHERE enabled = 1")
        return row["at"] if row else None

    async def claim(self, cron: Cron, following: datetime | None) -> bool:
        """Move the cron's next fire from the one `cron` was read with to `following`;
        True for exactly one of the servers that try (the UPDATE's condition holds for
        the first only): that server runs the fire."""
        count = await self.db.execute(
            "UPDATE fl_crons SET next_run_at = ? WHERE cron_id = ? AND next_run_at = ? "
            "AND enabled = 1",
            [stamp(following) if following else None, cron.cron_id, cron.next_run_at])
        return count == 1

    async def disable(self, cron_id: str) -> None:
        await self.db.execute("UPDATE fl_crons SET enabled = 0, next_run_at = NULL, "
                              "updated_at = ? WHERE cron_id = ?", [now_iso(), cron_id])


# -- the service the routes call ----------------------------------------------------------

# payload fields a run of the cron gets (metadata is the cron's own, given to its runs)
_RUN_FIELDS = ("input", "config", "context", "interrupt_before", "interrupt_after",
               "webhook", "stream_mode", "stream_subgraphs", "stream_resumable",
               "durability")


def _sort_key(field: str) -> Callable[[Cron], tuple[bool, Any]]:
    column = "next_run_at" if field == "next_run_date" else field

    def key(cron: Cron) -> tuple[bool, Any]:
        value = getattr(cron, column)
        return value is None, value or ""  # NULLs sort last ascending, as in Postgres

    return key


def _matches(metadata: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(metadata.get(k) == v for k, v in wanted.items())


class Crons:
    """Create, change, list and delete crons for a principal; `changed` is told of each
    change (the scheduler wakes to it)."""

    def __init__(self, store: CronStore, runs: RunManager, *, clock: Clock = utc_now,
                 changed: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.runs = runs
        self.clock = clock
        self.changed = changed

    async def _assistant(self, assistant_id: str, who: Principal
                         ) -> tuple[str, CompiledFlow]:
        """The id a cron stores (a graph name becomes its system assistant's) and the
        flow, or NotFound as a run would have."""
        flow, _ = await self.runs.resolve_assistant(assistant_id, who)
        system = self.runs.catalog.by_assistant(assistant_id)
        return (system.assistant_id if system is not None else assistant_id), flow

    def _check_run(self, flow: CompiledFlow, payload: dict[str, Any]) -> None:
        """Refuse now what every run of the cron would be refused for."""
        modes = payload.get("stream_mode")
        for mode in [modes] if isinstance(modes, str) else modes or []:
            if mode not in STREAM_MODES:
                raise BadRequest(f"stream_mode: {mode!r} is not supported; valid: "
                                 f"{', '.join(STREAM_MODES)}")
        webhook = payload.get("webhook")
        if webhook is not None and (problem := url_problem(webhook)) is not None:
            raise BadRequest(f"webhook: {problem}")
        values = payload.get("input")
        if isinstance(values, dict):
            unknown = sorted(k for k in values if k not in flow.flow.state)
            if unknown:
                raise BadRequest(
                    f"input: fields {', '.join(unknown)} are not in flow {flow.id!r}, which "
                    f"does not declare them; declared: {', '.join(flow.flow.state) or 'none'}")

    async def create(self, body: CronCreate, who: Principal,
                     thread_id: str | None = None) -> Cron:
        assistant_id, flow = await self._assistant(body.assistant_id, who)
        if thread_id is not None:
            if await self.runs.store.find_thread(thread_id, who) is None:
                raise NotFound(f"thread {thread_id} not found")
            if body.on_run_completed is not None:
                raise BadRequest("on_run_completed: applies to stateless crons only (each "
                                 "run's new thread kept or deleted); a thread cron's runs "
                                 "always keep their thread")
        schedule = Schedule.parse(body.schedule, body.timezone)
        payload = {k: v for k in _RUN_FIELDS if (v := getattr(body, k)) is not None}
        if body.checkpoint_during is not None:
            if body.durability is not None:
                raise BadRequest("checkpoint_during: give durability or checkpoint_during, "
                                 "not both")
            payload["durability"] = "async" if body.checkpoint_during else "exit"
        if body.multitask_strategy is not None:
            payload["multitask_strategy"] = body.multitask_strategy
        self._check_run(flow, payload)
        now, created = self.clock(), now_iso()
        end = stamp(_end_time(body.end_time)) if body.end_time is not None else None
        cron = Cron(
            cron_id=str(uuid.uuid4()), assistant_id=assistant_id, thread_id=thread_id,
            schedule=schedule.expression, timezone=schedule.timezone, end_time=end,
            enabled=body.enabled is not False,
            on_run_completed=None if thread_id else (body.on_run_completed or "delete"),
            payload={"assistant_id": body.assistant_id, **payload},
            metadata=body.metadata or {}, next_run_at=None, created_at=created,
            updated_at=created, owner_key=who.owner)
        first = schedule.next_after(now)
        if end is not None and (first is None or stamp(first) > end):
            raise BadRequest(f"end_time: {body.end_time} is before the schedule's first run "
                             f"at {first and stamp(first)}: the cron would never run")
        following = cron.following(now)
        cron = replace(cron, next_run_at=stamp(following) if following else None)
        await self.store.insert(cron)
        self.changed()
        return cron

    async def update(self, cron_id: str, body: CronPatch, who: Principal) -> Cron:
        cron = await self.store.get(cron_id, who)
        given = {k for k in body.model_fields_set
                 if getattr(body, k) is not None or k == "end_time"}
        if "on_run_completed" in given and cron.thread_id is not None:
            raise BadRequest("on_run_completed: applies to stateless crons only; cron "
                             f"{cron_id} runs on thread {cron.thread_id}")
        now = self.clock()
        changes: dict[str, Any] = {}
        if given & {"schedule", "timezone"}:
            schedule = Schedule.parse(body.schedule or cron.schedule,
                                      body.timezone if "timezone" in given else cron.timezone)
            changes.update(schedule=schedule.expression, timezone=schedule.timezone)
        if "end_time" in given:
            end = _end_time(body.end_time) if body.end_time is not None else None
            if end is not None and end <= now:
                raise BadRequest(f"end_time: {body.end_time} has passed; to stop the cron, "
                                 "set enabled false or delete it")
            changes["end_time"] = stamp(end) if end is not None else None
        for key in ("enabled", "on_run_completed"):
            if key in given:
                changes[key] = getattr(body, key)
        if "metadata" in given:
            changes["metadata"] = body.metadata
        run_changes = {k: getattr(body, k) for k in _RUN_FIELDS if k in given}
        if run_changes:
            _, flow = await self._assistant(cron.payload["assistant_id"], who)
            payload = {**cron.payload, **run_changes}
            self._check_run(flow, payload)
            changes["payload"] = payload
        updated = replace(cron, **changes, updated_at=now_iso())
        timing = {"schedule", "timezone", "enabled", "end_time"} & set(changes)
        if timing:
            # a fire already due is kept unless the timing changed under it
            keep = (updated.enabled and cron.enabled and cron.next_run_at is not None
                    and not {"schedule", "timezone"} & set(changes)
                    and (updated.end_time is None or cron.next_run_at <= updated.end_time))
            following = updated.following(now)
            updated = replace(updated, next_run_at=cron.next_run_at if keep else (
                stamp(following) if following else None))
        await self.store.save(updated)
        self.changed()
        return updated

    async def delete(self, cron_id: str, who: Principal) -> None:
        await self.store.get(cron_id, who)
        await self.store.delete(cron_id)

    async def _found(self, who: Principal, query: CronCount,
                     enabled: bool | None = None) -> list[Cron]:
        assistant_id = query.assistant_id
        if assistant_id is not None and (system := self.runs.catalog.by_assistant(
                assistant_id)) is not None:
            assistant_id = system.assistant_id
        crons = await self.store.visible(who, assistant_id=assistant_id,
                                         thread_id=query.thread_id, enabled=enabled)
        return [c for c in crons if _matches(c.metadata, query.metadata)]

    async def search(self, query: CronSearch, who: Principal) -> list[dict[str, Any]]:
        """Crons `who` may see, filtered, sorted (newest created first by default), a page
        of them; `select` keeps only those fields (`now`: the server's time)."""
        crons = sorted(await self._found(who, query, query.enabled), key=lambda c: c.cron_id)
        crons.sort(key=_sort_key(query.sort_by or "created_at"),
                   reverse=query.sort_order != "asc")
        page = crons[query.offset:query.offset + query.limit]
        return [_selected(c, query.select, self.clock()) for c in page]

    async def count(self, query: CronCount, who: Principal) -> int:
        return len(await self._found(who, query))


def _selected(cron: Cron, select: Sequence[str] | None, now: datetime) -> dict[str, Any]:
    full = {**cron.api(), "now": stamp(now)}
    if not select:
        del full["now"]
        return full
    return {k: full[k] for k in select}
