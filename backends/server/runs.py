"""Executing runs: queueing per thread, multitask strategies, events for streams and joins.

Each run is an asyncio task in this process. Its events (`metadata` first, then one per
stream part, `error` on failure) are kept in order with ids, so a client can stream
them live, join later, or resume after a dropped connection with `Last-Event-ID`.
Runs on one thread execute one at a time, in order (the thread's lock); a new run on a
busy thread follows the request's `multitask_strategy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver, copy_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.types import Command

from flowloom.backends.netguard import url_problem
from flowloom.backends.server.catalog import CompiledFlow, FlowCatalog
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.serde import to_jsonable
from flowloom.backends.server.store import ServerStore
from flowloom.backends.server.tenancy import LOCAL, Principal
from flowloom.flows.inputs import input_problems

__all__ = ["RunHandle", "RunManager", "RunObserver", "RunRequest", "STREAM_MODES", "ThreadLocks",
           "as_command"]

logger = logging.getLogger("flowloom.server")

# API stream mode -> LangGraph stream mode
STREAM_MODES = {
    "values": "values", "updates": "updates", "messages-tuple": "messages",
    "messages": "messages", "custom": "custom", "debug": "debug", "tasks": "tasks",
    "checkpoints": "checkpoints", "events": "events",  # events: astream_events v2, alone
}
FINAL = ("success", "error", "timeout", "interrupted")
HEARTBEAT_S = 5.0


@dataclass
class RunRequest:
    """A run as the API takes it (the SDK's RunCreate, nulls dropped)."""

    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    stream_mode: list[str] = field(default_factory=lambda: ["values"])
    stream_subgraphs: bool = False
    interrupt_before: list[str] | str | None = None
    interrupt_after: list[str] | str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None
    multitask_strategy: str = "enqueue"
    if_not_exists: str = "reject"
    on_completion: str | None = None
    durability: str | None = None
    webhook: str | None = None  # POSTed the run and its result when it ends
    after_seconds: float | None = None  # the run waits this long before it starts
    strict_resume: bool = False  # a resume is refused unless the thread is interrupted


@dataclass
class RunHandle:
    run: dict[str, Any]
    flow: CompiledFlow
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    result: Any = None
    cancel_action: str | None = None
    started: bool = False  # it got its thread and began executing (not only pending)
    owner_key: str | None = None  # the API key the run belongs to (tenancy.py)
    # followers waiting for the next event (or the end): one future each, no task
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def thread_id(self) -> str:
        return str(self.run["thread_id"])

    async def publish(self, event: str, data: Any) -> None:
        self.events.append((len(self.events) + 1, event, to_jsonable(data)))
        self._wake()

    def end(self) -> None:
        """Mark the run finished and wake everyone following it."""
        self.finished.set()
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def follow(self, after: int = 0) -> AsyncIterator[tuple[int, str, Any] | None]:
        """Events after id `after`, live until the run ends; None marks a heartbeat (no
        event for HEARTBEAT_S)."""
        index = after
        loop = asyncio.get_running_loop()
        while True:
            if index < len(self.events):
                pending = self.events[index:]
                index += len(pending)
                for item in pending:
                    yield item
                continue
            if self.finished.is_set():
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(HEARTBEAT_S, _time_out, waiter)
            try:
                await waiter
            except TimeoutError:
                yield None
            finally:
                timer.cancel()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class ThreadLocks:
    """One lock per thread, so work on a thread (runs, OpenAI-compatible requests) goes one
    at a time, in order; a lock is forgotten once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def busy(self, thread_id: str) -> bool:
        return thread_id in self._users

    @contextlib.asynccontextmanager
    async def hold(self, thread_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(thread_id, asyncio.Lock())
        self._users[thread_id] = self._users.get(thread_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            left = self._users[thread_id] - 1
            if left:
                self._users[thread_id] = left
            else:
                del self._users[thread_id], self._locks[thread_id]


async def _no_parts() -> AsyncIterator[Any]:
    return
    yield  # an async generator with nothing in it


def as_command(body: dict[str, Any]) -> Command[Any]:
    allowed = {"resume", "update", "goto"}
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"command: unknown keys {sorted(unknown)}; valid: resume, update, goto")
    return Command(**body)


class RunObserver(Protocol):
    """Told when a run starts executing (it may add to the run's LangGraph `config`, e.g.
    callbacks) and when it ends; used for metrics and per-key spend."""

    async def run_started(self, handle: RunHandle, config: dict[str, Any]) -> None: ...

    async def run_finished(self, handle: RunHandle, status: str) -> None: ...


class RunManager:
    """Starts, tracks and cancels runs of the catalog's flows."""

    def __init__(self, store: ServerStore, catalog: FlowCatalog, *, keep: int = 1000,
                 timeout_s: float | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.timeout_s = timeout_s  # a run's wall time once it starts executing; None: none
        self.owner = f"{uuid.uuid4()}"
        self._handles: OrderedDict[str, RunHandle] = OrderedDict()
        self._keep = keep
        self.locks = ThreadLocks()
        self._active: dict[str, RunHandle] = {}
        self._starting: set[str] = set()  # threads whose new run is being stored
        self.started_at = time.time()
        self.observers: list[RunObserver] = []
        # stateless runs deleted on completion: their checkpoints, by thread
        self._memory = InMemorySaver()
        self._ephemeral: dict[str, RunHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # webhook calls in flight
        # GET /threads/{id}/stream followers waiting for a thread's next run: by thread
        self._thread_waiters: dict[str, list[asyncio.Future[None]]] = {}

    def handle(self, run_id: str) -> RunHandle | None:
        return self._handles.get(run_id)

    def thread_handles(self, thread_id: str) -> list[RunHandle]:
        """The runs of `thread_id` this server knows, oldest first."""
        return [h for h in self._handles.values() if h.thread_id == thread_id]

    async def next_run(self, thread_id: str, timeout: float) -> None:
        """Wait (at most `timeout` s) until a run starts on `thread_id`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread_waiters.setdefault(thread_id, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            waiters = self._thread_waiters.get(thread_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._thread_waiters.pop(thread_id, None)

    async def resolve_assistant(self, assistant_id: str, who: Principal | None = None
                                ) -> tuple[CompiledFlow, dict[str, Any]]:
        """The flow behind a graph id, a system assistant's id, or an assistant `who` may
        see (another key's assistant is not found)."""
        flow = self.catalog.by_assistant(assistant_id)
        if flow is not None:
            return flow, {}
        stored = await self.store.find_assistant(assistant_id, who)
        if stored is not None:
            flow = self.catalog.get(stored["graph_id"])
            if flow is not None:
                return flow, stored.get("config") or {}
        raise NotFound(f"assistant {assistant_id!r} not found; graphs: "
                       f"{', '.join(self.catalog.ids()) or 'none'}")

    async def check(self, req: RunRequest, who: Principal = LOCAL
                    ) -> tuple[CompiledFlow, dict[str, Any]]:
        """Refuse a run `who` may not start as given (its flow, and the assistant's config,
        when it may): an unknown assistant, stream mode, webhook, input a state field
        refuses, a recursion limit above the flow's."""
        flow, assistant_config = await self.resolve_assistant(req.assistant_id, who)
        for mode in req.stream_mode:
            if mode not in STREAM_MODES:
                raise BadRequest(f"stream_mode {mode!r} is not supported; valid: "
                                 f"{', '.join(STREAM_MODES)}")
        if "events" in req.stream_mode and len(set(req.stream_mode)) > 1:
            raise BadRequest("stream_mode: events (LangChain's astream_events) cannot be "
                             "combined with other modes on this server; ask for it alone")
        if req.webhook is not None and (problem := url_problem(req.webhook)) is not None:
            raise BadRequest(f"webhook: {problem}")
        if isinstance(req.input, dict):
            problems = input_problems(flow.flow, req.input)
            if problems:
                raise BadRequest("; ".join(map(str, problems)))
        update = (req.command or {}).get("update")
        if isinstance(update, dict) and (problems := input_problems(flow.flow, update)):
            raise BadRequest("command.update: " + "; ".join(map(str, problems)))
        limit = {**assistant_config, **req.config}.get("recursion_limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or not 1 <= limit <= flow.flow.recursion_limit):
            raise BadRequest(f"config.recursion_limit: {limit!r} is not allowed; a run may "
                             f"lower flow {flow.id!r}'s limit of {flow.flow.recursion_limit} "
                             "steps, never raise it (1 to that)")
        return flow, assistant_config

    async def create(self, thread_id: str | None, req: RunRequest,
                     who: Principal = LOCAL) -> RunHandle:
        """Start a run of `req` on `thread_id` (None: a stateless run on a new thread) for
        `who`: its thread must be one `who` may see, and the run and a thread it creates
        are `who`'s."""
        flow, assistant_config = await self.check(req, who)
        stateless = thread_id is None
        thread: dict[str, Any] | None = None
        create_thread = stateless
        if thread_id is None:
            thread_id = str(uuid.uuid4())
        else:
            thread = await self.store.find_thread(thread_id, who)
            if thread is None:
                # another key's thread is not found, and cannot be made again
                if req.if_not_exists != "create" or (await self.store.thread_owner(thread_id))[0]:
                    raise NotFound(f"thread {thread_id} not found")
                create_thread = True
        if req.strict_resume and "resume" in (req.command or {}) and (
                thread is None or thread["status"] != "interrupted"):
            raise BadRequest(f"strict_resume: thread {thread_id} is not waiting on an "
                             "interrupt, so there is nothing to resume")
        active = self._active.get(thread_id)
        if active is None and thread is not None and self.store.db.kind != "sqlite":
            await self._elsewhere(thread_id, req.multitask_strategy)
        if active is not None:
            if req.multitask_strategy == "reject":
                raise Conflict(f"thread {thread_id} is busy with run {active.run_id}; "
                               "use multitask_strategy enqueue, interrupt or rollback")
            if req.multitask_strategy in ("interrupt", "rollback"):
                # the running run and any queued behind it: the new run replaces them all
                live = [h for h in self._handles.values()
                        if h.thread_id == thread_id and not h.finished.is_set()]
                for old in live:
                    await self.cancel(old, action=req.multitask_strategy, wait=True)
        run_id = str(uuid.uuid4())
        # Nothing ahead of it on its thread: stored as running at once (one commit less).
        # With servers sharing a database, a run on an existing thread is claimed in that
        # same transaction (stored pending when another server runs the thread, and then
        # claimed by `_claim`); a stateless run's thread is new and nobody else's
        starts_now = (thread_id not in self._active and thread_id not in self._starting
                      and not self.locks.busy(thread_id) and not req.after_seconds)
        shared = self.store.db.kind != "sqlite" and not stateless
        kwargs = {"input": req.input, "command": req.command, "config": req.config,
                  "stream_mode": req.stream_mode, "interrupt_before": req.interrupt_before,
                  "interrupt_after": req.interrupt_after}
        self._starting.add(thread_id)
        try:
            run = await self.store.start_run(
                run_id, thread_id, flow.assistant_id, metadata=req.metadata, kwargs=kwargs,
                multitask_strategy=req.multitask_strategy, owner=self.owner, graph_id=flow.id,
                thread=thread, create_thread=create_thread,
                status="running" if starts_now else "pending", owner_key=who.owner,
                claim=shared)
        finally:
            self._starting.discard(thread_id)
        handle = RunHandle(run, flow, owner_key=who.owner)
        self._remember(handle)
        for waiter in self._thread_waiters.pop(thread_id, ()):
            if not waiter.done():
                waiter.set_result(None)
        self._active[thread_id] = handle
        on_completion = req.on_completion or ("delete" if stateless else "keep")
        if stateless and on_completion == "delete":
            # its checkpoints die with it: kept in memory, never written to the database
            self._ephemeral[thread_id] = handle
        handle.task = asyncio.create_task(
            self._execute(handle, req, assistant_config, on_completion))
        return handle

    async def _elsewhere(self, thread_id: str, strategy: str) -> None:
        """With servers sharing the database, a thread may be busy on another one: `reject`
        is refused as here; `interrupt` and `rollback` cannot reach a run executing in
        another process, so they are refused rather than ignored; `enqueue` waits."""
        if strategy == "enqueue":
            return
        busy = await self.store.active_runs(thread_id)
        if not busy:
            return
        if strategy == "reject":
            raise Conflict(f"thread {thread_id} is busy with run {busy[0]['run_id']}; "
                           "use multitask_strategy enqueue, interrupt or rollback")
        raise Conflict(f"thread {thread_id} is busy with run {busy[0]['run_id']} on another "
                       f"server; multitask_strategy {strategy} can only stop a run on the "
                       "server executing it: cancel it there, or enqueue")

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call_webhook(self, url: str, handle: RunHandle) -> None:
        """POST the finished run (its row and its result: values, or `__error__`) to the
        run's webhook, as the LangGraph API does; a failure is logged, never raised."""
        import httpx

        body = {**to_jsonable(handle.run), "values": handle.result}
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.post(url, json=body)
            if answer.status_code >= 400:
                logger.warning("webhook %s of run %s answered %s", url, handle.run_id,
                               answer.status_code)
        except httpx.HTTPError as exc:
            logger.warning("webhook %s of run %s failed: %s", url, handle.run_id, exc)

    def saver_for(self, thread_id: str) -> BaseCheckpointSaver:
        """The checkpointer holding `thread_id`'s state: the catalog's, or the in-memory one
        of a stateless run whose thread is deleted when it ends."""
        return self._memory if thread_id in self._ephemeral else self.catalog.checkpointer

    def graph_config(self, thread_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """`config` for a graph call on `thread_id`'s state (see `saver_for`)."""
        if thread_id not in self._ephemeral:
            return config
        return {**config, "configurable": {**config.get("configurable", {}),
                                           CONFIG_KEY_CHECKPOINTER: self._memory}}

    def _remember(self, handle: RunHandle) -> None:
        self._handles[handle.run_id] = handle
        while len(self._handles) > self._keep:
            _, old = self._handles.popitem(last=False)
            if not old.finished.is_set():  # never forget a live run
                self._handles[old.run_id] = old
                break

    def _config(self, handle: RunHandle, req: RunRequest,
                assistant_config: dict[str, Any]) -> dict[str, Any]:
        config = {**assistant_config, **req.config}
        configurable = {**assistant_config.get("configurable", {}),
                        **req.config.get("configurable", {}),
                        "thread_id": handle.thread_id, "run_id": handle.run_id}
        checkpoint = req.checkpoint or {}
        if req.checkpoint_id or checkpoint.get("checkpoint_id"):
            configurable["checkpoint_id"] = req.checkpoint_id or checkpoint["checkpoint_id"]
        config["configurable"] = configurable
        config.setdefault("recursion_limit", handle.flow.flow.recursion_limit)
        config.setdefault("metadata", {}).update(req.metadata or {})
        return self.graph_config(handle.thread_id, config)

    async def _execute(self, handle: RunHandle, req: RunRequest,
                       assistant_config: dict[str, Any], on_completion: str) -> None:
        status = "error"
        try:
            if req.after_seconds:  # pending until then; a cancel meanwhile stops it
                await asyncio.sleep(req.after_seconds)
            async with self.locks.hold(handle.thread_id):
                if handle.run["status"] != "running":
                    await self._claim(handle)
                handle.started = True
                await handle.publish("metadata", {"run_id": handle.run_id, "attempt": 1})
                async with asyncio.timeout(self.timeout_s):
                    status = await self._stream(handle, req, assistant_config)
        except TimeoutError:
            status = "timeout"
            handle.result = {"__error__": {
                "error": "RunTimeout",
                "message": f"the run took longer than the server's limit of {self.timeout_s} s "
                           "and was stopped (its last checkpoint is kept)"}}
            await handle.publish("error", handle.result["__error__"])
        except asyncio.CancelledError:
            status = "interrupted"
        finally:
            await self._finish(handle, status, on_completion)
            if req.webhook is not None:
                self._background(self._call_webhook(req.webhook, handle))

    async def _claim(self, handle: RunHandle) -> None:
        """Wait until the run may execute: no other run of its thread runs, on this server
        (the thread lock, held) or on another one sharing the database (polled)."""
        delay = 0.02
        while not await self.store.claim_run(handle.thread_id, handle.run_id, self.owner):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def _stream(self, handle: RunHandle, req: RunRequest,
                      assistant_config: dict[str, Any]) -> str:
        graph = handle.flow.graph
        config = self._config(handle, req, assistant_config)
        await self._notify(lambda o: o.run_started(handle, config))
        graph_input: Any = as_command(req.command) if req.command else (
            await handle.flow.runner.with_defaults(
                req.input, config,  # type: ignore[arg-type]
                new_thread=True if handle.thread_id in self._ephemeral else None))
        modes = list(dict.fromkeys(STREAM_MODES[m] for m in req.stream_mode))
        names = {STREAM_MODES[m]: m for m in req.stream_mode}
        partial: dict[str, Any] = {}
        try:
            if modes == ["events"]:
                async for event in graph.astream_events(
                        graph_input, config, version="v2", context=req.context,
                        interrupt_before=req.interrupt_before,
                        interrupt_after=req.interrupt_after, durability=req.durability):
                    await handle.publish("events", event)
                parts: Any = _no_parts()
            else:
                parts = graph.astream(
                    graph_input, config, stream_mode=modes, subgraphs=req.stream_subgraphs,
                    interrupt_before=req.interrupt_before,
                    interrupt_after=req.interrupt_after, durability=req.durability,
                    context=req.context)
            async for part in parts:
                if req.stream_subgraphs:
                    namespace, mode, chunk = part
                else:
                    namespace, (mode, chunk) = (), part
                event = names.get(mode, mode)
                if mode == "messages" and event == "messages":
                    await self._publish_partial(handle, chunk, partial)
                    continue
                if event == "messages-tuple":
                    event = "messages"
                if namespace:
                    event = "|".join([event, *namespace])
                await handle.publish(event, list(chunk) if mode == "messages" else chunk)
            # the thread's head now: a run from an earlier checkpoint (time travel) made a
            # new head, which the checkpoint_id in `config` would not read
            head = {**config, "configurable": {
                k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}}
            state = await graph.aget_state(head)
        except Exception as exc:  # the run failed: the client gets it as data
            handle.result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
            await handle.publish("error", handle.result["__error__"])
            return "error"
        values = to_jsonable(state.values)
        if state.interrupts:
            values = {**(values or {}), "__interrupt__": to_jsonable(list(state.interrupts))}
            handle.result = values
            return "interrupted"
        handle.result = values
        # stopped before a node by interrupt_before / interrupt_after: waiting, as an
        # interrupt() is
        return "interrupted" if state.next else "success"

    async def _publish_partial(self, handle: RunHandle, chunk: Any,
                               partial: dict[str, Any]) -> None:
        message, metadata = chunk
        key = getattr(message, "id", None) or "_"
        merged = partial[key] + message if key in partial else message
        partial[key] = merged
        if len(partial) == 1 and key in partial and merged is message:
            await handle.publish("messages/metadata", {key: {"metadata": metadata}})
        await handle.publish("messages/partial", [merged])

    async def _finish(self, handle: RunHandle, status: str, on_completion: str) -> None:
        thread_id = handle.thread_id
        rollback = handle.cancel_action == "rollback"
        if rollback and handle.started:
            await self._rollback_state(handle)
        thread_status = {"success": "idle", "interrupted": "interrupted",
                         "error": "error", "timeout": "error"}.get(status, "idle")
        if handle.cancel_action is not None:  # interrupted where it was; rolled back: as before
            thread_status = "interrupted" if handle.cancel_action == "interrupt" else "idle"
        if not handle.started:  # cancelled while pending: the thread is as the run found it
            thread_status = await self._resting_status(handle)
        try:
            await self.store.finish_run(thread_id, handle.run_id, status=status,
                                        thread_status=thread_status, delete_run=rollback,
                                        delete_thread=on_completion == "delete")
        finally:
            if self._active.get(thread_id) is handle:
                del self._active[thread_id]
            if self._ephemeral.get(thread_id) is handle:
                del self._ephemeral[thread_id]
                await self._memory.adelete_thread(thread_id)
            elif on_completion == "delete":
                await self.catalog.checkpointer.adelete_thread(thread_id)
            handle.run = {**handle.run, "status": status}
            await self._notify(lambda o: o.run_finished(handle, status))
            handle.end()

    @contextlib.asynccontextmanager
    async def observed(self, flow: CompiledFlow, thread_id: str, *, source: str,
                       who: Principal = LOCAL
                       ) -> AsyncIterator[tuple[RunHandle, dict[str, Any]]]:
        """A run made outside the manager (the OpenAI-compatible endpoint), shown to the
        observers (metrics, run history, spend) as the manager's own runs are. Yields its
        handle and the LangGraph config to run the graph with (their callbacks); the
        caller sets `handle.result`. It ends `error` when the block raises or the result
        is an `__error__`, `interrupted` when cancelled or closed, else `success`."""
        handle = RunHandle({"run_id": str(uuid.uuid4()), "thread_id": thread_id,
                            "assistant_id": flow.assistant_id, "status": "running",
                            "metadata": {"source": source}}, flow, owner_key=who.owner)
        config: dict[str, Any] = {}
        await self._notify(lambda o: o.run_started(handle, config))
        status = "error"
        try:
            yield handle, config
            failed = isinstance(handle.result, dict) and "__error__" in handle.result
            status = "error" if failed else "success"
        except (asyncio.CancelledError, GeneratorExit):
            status = "interrupted"
            raise
        except Exception as exc:
            handle.result = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
            raise
        finally:
            handle.run = {**handle.run, "status": status}
            await self._notify(lambda o: o.run_finished(handle, status))
            handle.end()

    async def _resting_status(self, handle: RunHandle) -> str:
        """The status of `handle`'s thread without it: busy while another of its runs goes
        on, interrupted when its state waits (an interrupt, or nodes still to run), else
        idle."""
        if any(other is not handle and not other.finished.is_set()
               for other in self.thread_handles(handle.thread_id)):
            return "busy"
        config: Any = self.graph_config(handle.thread_id,
                                        {"configurable": {"thread_id": handle.thread_id}})
        try:
            state = await handle.flow.graph.aget_state(config)
        except Exception:  # an unreadable state: the thread's own listing says so
            return "idle"
        return "interrupted" if state.next or state.interrupts else "idle"

    async def _notify(self, call: Callable[[RunObserver], Awaitable[None]]) -> None:
        for observer in self.observers:
            try:
                await call(observer)
            except Exception:  # an observer must never fail a run
                logger.exception("run observer %r failed", observer)

    async def _rollback_state(self, handle: RunHandle) -> None:
        """Make the thread's state what it was before the run: the last checkpoint the run
        did not write becomes the head again, as a new checkpoint with newer channel
        versions (so a later run's writes never collide with the rolled-back ones)."""
        saver = self.saver_for(handle.thread_id)
        config: Any = {"configurable": {"thread_id": handle.thread_id, "checkpoint_ns": ""}}
        history = [saved async for saved in saver.alist(config)]  # savers lock while listing
        if not history:
            return
        head = history[0]
        for saved in history:
            if saved.metadata.get("run_id") == handle.run_id:
                continue
            if saved is head:
                return  # the run wrote nothing
            checkpoint = copy_checkpoint(saved.checkpoint)
            checkpoint["id"] = str(uuid6(clock_seq=-2))
            head_versions = head.checkpoint["channel_versions"]
            versions = {ch: saver.get_next_version(head_versions.get(ch), None)
                        for ch in checkpoint["channel_versions"]}
            checkpoint["channel_versions"] = versions
            metadata = {**saved.metadata, "source": "update", "rollback_of": handle.run_id}
            await saver.aput(head.config, checkpoint, metadata,  # type: ignore[arg-type]
                             versions)
            return
        await saver.adelete_thread(handle.thread_id)  # no state before this run

    async def cancel(self, handle: RunHandle, *, action: str = "interrupt",
                     wait: bool = False) -> None:
        if action not in ("interrupt", "rollback"):
            raise BadRequest(f"action must be interrupt or rollback, not {action!r}")
        handle.cancel_action = action
        if handle.task is not None and not handle.task.done():
            handle.task.cancel()
        if wait:
            await handle.finished.wait()

    async def wait(self, handle: RunHandle) -> Any:
        await handle.finished.wait()
        return handle.result

    async def shutdown(self) -> None:
        for handle in list(self._active.values()):
            await self.cancel(handle, wait=False)
        tasks = [h.task for h in self._handles.values() if h.task and not h.task.done()]
        tasks += list(self._tasks)  # webhooks of runs that just ended
        if tasks:
            await asyncio.wait(tasks, timeout=5)
