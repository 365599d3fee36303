"""The chat page's data shaping, free of Streamlit: thread lists, message text, reading a
run's event stream into answer tokens and the nodes it is running, and per-turn node
updates from a thread's history."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flowloom.ui.app._approval import INTERRUPT_KEY, Pending, pending_from_event
from flowloom.ui.client import StreamEvent

__all__ = [
    "TICK",
    "RunReader",
    "activity",
    "is_ai",
    "last_ai_text",
    "message_text",
    "node_labels",
    "sort_threads",
    "thread_label",
    "thread_labels",
    "ticking",
    "turn_updates",
]

AI_TYPES = ("ai", "AIMessage", "AIMessageChunk")
HIDDEN_TAG = "nostream"
TICK = "tick"  # a pseudo-event of `ticking`: nothing arrived for a while


def ticking(events: Iterable[Any], every: float = 0.25) -> Iterator[Any]:
    """`events`, read on a background thread, with a `TICK` event whenever none arrived
    for `every` seconds: a page waiting for a slow first token (a model starting) can
    redraw its elapsed time, and Streamlit can stop the script for a click (Stop) at that
    redraw. Errors raised while reading are raised here. Closing this generator makes the
    reader close `events` after their next one (the HTTP stream with it)."""
    items: queue.Queue[Any] = queue.Queue()
    done, abandoned = object(), threading.Event()

    def pump() -> None:
        source = iter(events)
        try:
            for event in source:
                if abandoned.is_set():
                    break
                items.put(event)
        except Exception as exc:  # handed to the reader, raised there
            items.put(exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            items.put(done)

    threading.Thread(target=pump, daemon=True, name="flowloom-run-stream").start()
    try:
        while True:
            try:
                item = items.get(timeout=every)
            except queue.Empty:
                yield StreamEvent(TICK, None)
                continue
            if item is done:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        abandoned.set()


def node_labels(flow: Any) -> dict[str, str]:
    """Node id -> the name a person reads (its `label`, else the id as a word:
    `retrieve` -> `Retrieve`), from a flow document."""
    nodes = flow.get("nodes") if isinstance(flow, dict) else None
    labels = {}
    for node in nodes or []:
        if isinstance(node, dict) and node.get("id"):
            node_id = str(node["id"])
            label = str(node.get("label") or "").strip()
            labels[node_id] = label or (node_id[:1].upper() + node_id[1:]).replace("_", " ")
    return labels


def activity(running: Iterable[str], finished: Iterable[str], labels: dict[str, str],
             elapsed_s: float) -> str:
    """The run indicator's line: the nodes running now (`Retrieve… running · 4 s`), else
    what just ended, else that the run is starting."""
    def name(node: str) -> str:
        return labels.get(node) or node

    took = f" · {elapsed_s:.0f} s"
    now = [name(n) for n in running]
    if now:
        return f"{', '.join(now)}… running{took}"
    done = list(finished)
    if done:
        return f"{name(done[-1])} done; next step…{took}"
    return f"Starting the run…{took}"


def message_text(message: Any) -> str:
    """The text of a message dict (string content, or the text parts of a list)."""
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part if isinstance(part, str) else str(part.get("text") or "")
                       for part in content if isinstance(part, str | dict))
    return "" if content is None else str(content)


def is_ai(message: Any) -> bool:
    return isinstance(message, dict) and message.get("type") in AI_TYPES


def last_ai_text(values: Any, *, skip_ids: Iterable[Any] = ()) -> str | None:
    """The text of the last AI message in `values`, passing over those in `skip_ids`."""
    messages = values.get("messages") if isinstance(values, dict) else None
    skip = set(skip_ids)
    for message in reversed(messages or []):
        if (is_ai(message) and not (message.get("id") and message.get("id") in skip)
                and (text := message_text(message))):
            return text
    return None


def _message_ids(values: Any) -> set[Any]:
    messages = values.get("messages") if isinstance(values, dict) else None
    return {m.get("id") for m in messages or [] if isinstance(m, dict) and m.get("id")}


def sort_threads(threads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first (by creation time, then last update)."""
    return sorted(threads, key=lambda t: (str(t.get("created_at") or ""),
                                          str(t.get("updated_at") or "")), reverse=True)


def thread_label(thread: dict[str, Any]) -> str:
    name = str((thread.get("metadata") or {}).get("name") or "").strip()
    created = str(thread.get("created_at") or "")[:16].replace("T", " ")
    short = str(thread.get("thread_id", ""))[:8]
    return f"{name or 'Untitled'} · {created or short}"


def thread_labels(threads: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Thread id -> its label, made unique: threads with the same name and minute get
    their short ids added (a selectbox tells its options apart by their labels)."""
    labels = {str(t.get("thread_id")): thread_label(t) for t in threads}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {tid: f"{label} · {tid[:8]}" if counts[label] > 1 else label
            for tid, label in labels.items()}


@dataclass
class RunReader:
    """Reads a run's events once: `segments()` yields, per node that streams tokens, a
    generator of its text chunks (for `st.write_stream`); everything else is kept —
    final `values`, node `updates` in order, the `error`, the `run_id`, and the
    `interrupts` the run paused on (a request for approval: see `_approval`).

    Chunks tagged `nostream` (e.g. a router's classifier) are skipped. A page shows each
    segment in the same place, so the last streaming node's answer is what stays.

    With the `tasks` stream mode, `running` holds the nodes running now (task id -> node)
    and `finished` those that ended, in order; `on_event` is called after every event (a
    `TICK` of `ticking` too), so a page can show them while it waits."""

    events: Iterable[Any]
    on_event: Callable[[RunReader], None] | None = None
    running: dict[str, str] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    values: dict[str, Any] | None = None
    updates: list[tuple[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    run_id: str | None = None
    interrupts: list[Pending] = field(default_factory=list)
    texts: list[tuple[str | None, str]] = field(default_factory=list)
    done: bool = False
    _iter: Iterator[Any] | None = field(default=None, init=False, repr=False)
    # ids of the messages in the run's first `values` (the thread before this run wrote)
    _before: set[Any] = field(default_factory=set, init=False, repr=False)
    _later_values: bool = field(default=False, init=False, repr=False)
    _pending: tuple[str | None, str] | None = field(default=None, init=False, repr=False)

    def _next_token(self) -> tuple[str | None, str] | None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        if self._iter is None:
            self._iter = iter(self.events)
        for event in self._iter:
            token = self._take(event.event, event.data)
            if self.on_event is not None:
                self.on_event(self)
            if token is not None:
                return token
        self.done = True
        return None

    def _take(self, name: str, data: Any) -> tuple[str | None, str] | None:
        if (paused := pending_from_event(name, data)) is not None:
            self.interrupts = paused
        if name == "metadata" and isinstance(data, dict):
            self.run_id = data.get("run_id")
        elif name == "values" and isinstance(data, dict):
            if self.values is None:
                self._before = _message_ids(data)
            else:
                self._later_values = True
            self.values = data
        elif name == "updates" and isinstance(data, dict):
            self.updates.extend((str(node), update) for node, update in data.items()
                                if node != INTERRUPT_KEY)
        elif name == "tasks" and isinstance(data, dict) and data.get("id"):
            self._task(str(data["id"]), str(data.get("name") or ""), data)
        elif name == "error":
            self.error = data if isinstance(data, dict) else {"message": str(data)}
        elif name == "messages" and isinstance(data, list) and len(data) == 2:
            chunk, metadata = data
            metadata = metadata if isinstance(metadata, dict) else {}
            if HIDDEN_TAG in (metadata.get("tags") or []) or not is_ai(chunk):
                return None
            text = message_text(chunk)
            if text:
                return metadata.get("langgraph_node"), text
        return None

    def _task(self, task_id: str, node: str, data: dict[str, Any]) -> None:
        if not node or node.startswith("__"):
            return  # LangGraph's own steps (__start__) are nobody's business
        if "result" in data or "error" in data:  # the task ended
            if self.running.pop(task_id, None) is not None:
                self.finished.append(node)
        else:
            self.running[task_id] = node

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at

    def segments(self) -> Iterator[Iterator[str]]:
        """One text generator per streaming node, in order, until the run ends."""
        while not self.done:
            first = self._next_token()
            if first is None:
                return
            yield self._segment(first)

    def _segment(self, first: tuple[str | None, str]) -> Iterator[str]:
        node, text = first
        self.texts.append((node, text))
        yield text
        while (token := self._next_token()) is not None:
            if token[0] != node:
                self._pending = token
                return
            self.texts[-1] = (node, self.texts[-1][1] + token[1])
            yield token[1]

    def drain(self) -> None:
        """Read whatever is left (values, updates, error)."""
        while self._next_token() is not None:
            pass

    @property
    def paused(self) -> bool:
        """The run stopped to wait for a person (its stream ended with an interrupt)."""
        return bool(self.interrupts) and self.error is None

    @property
    def streamed(self) -> str | None:
        """The last streaming node's text."""
        return self.texts[-1][1] if self.texts else None

    @property
    def answer(self) -> str | None:
        """The final AI message this run wrote when its values have one (not an earlier
        turn's: those were in its first `values`), else what streamed."""
        skip = self._before if self._later_values else set()
        return last_ai_text(self.values, skip_ids=skip) or self.streamed


def turn_updates(history: list[dict[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    """From a thread's history (newest first, as the API returns it): per run, the node
    updates it made (each checkpoint's finished tasks and their writes), keyed by the id of
    the last AI message that run wrote — so panels can be drawn under past answers.

    A task that paused (it has `interrupts`) and finished later, resumed by another run,
    counts for the run that wrote the next checkpoint: the one that resumed it."""
    snapshots = list(reversed(history))
    run_ids = [(s.get("metadata") or {}).get("run_id") for s in snapshots]
    order = list(dict.fromkeys(r for r in run_ids if r))
    by_run: dict[str, list[tuple[str, Any]]] = {r: [] for r in order}
    for i, snapshot in enumerate(snapshots):
        run_id = run_ids[i]
        if not run_id:
            continue
        resumed_by = next((r for r in run_ids[i + 1:] if r), None)
        for task in snapshot.get("tasks") or []:
            result = task.get("result")
            if isinstance(result, dict) and task.get("name"):
                owner = resumed_by if task.get("interrupts") and resumed_by else run_id
                by_run[owner].append((str(task["name"]), result))
    out: dict[str, list[tuple[str, Any]]] = {}
    for run_id in order:
        updates = by_run[run_id]
        ai_ids = [m.get("id") for _, update in updates
                  for m in _as_list(update.get("messages")) if is_ai(m) and m.get("id")]
        if ai_ids:
            out[str(ai_ids[-1])] = updates
    return out


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []
