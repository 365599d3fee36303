"""The chat page's data shaping, free of Streamlit: thread lists, message text, reading a
run's event stream into answer tokens, and per-turn node updates from a thread's history."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RunReader",
    "is_ai",
    "last_ai_text",
    "message_text",
    "sort_threads",
    "thread_label",
    "turn_updates",
]

AI_TYPES = ("ai", "AIMessage", "AIMessageChunk")
HIDDEN_TAG = "nostream"


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


def last_ai_text(values: Any) -> str | None:
    messages = values.get("messages") if isinstance(values, dict) else None
    for message in reversed(messages or []):
        if is_ai(message) and (text := message_text(message)):
            return text
    return None


def sort_threads(threads: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first (by creation time, then last update)."""
    return sorted(threads, key=lambda t: (str(t.get("created_at") or ""),
                                          str(t.get("updated_at") or "")), reverse=True)


def thread_label(thread: dict[str, Any]) -> str:
    name = str((thread.get("metadata") or {}).get("name") or "").strip()
    created = str(thread.get("created_at") or "")[:16].replace("T", " ")
    short = str(thread.get("thread_id", ""))[:8]
    return f"{name or 'Untitled'} · {created or short}"


@dataclass
class RunReader:
    """Reads a run's events once: `segments()` yields, per node that streams tokens, a
    generator of its text chunks (for `st.write_stream`); everything else is kept —
    final `values`, node `updates` in order, the `error`, the `run_id`.

    Chunks tagged `nostream` (e.g. a router's classifier) are skipped. A page shows each
    segment in the same place, so the last streaming node's answer is what stays."""

    events: Iterable[Any]
    values: dict[str, Any] | None = None
    updates: list[tuple[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    run_id: str | None = None
    texts: list[tuple[str | None, str]] = field(default_factory=list)
    done: bool = False
    _iter: Iterator[Any] | None = field(default=None, init=False, repr=False)
    _pending: tuple[str | None, str] | None = field(default=None, init=False, repr=False)

    def _next_token(self) -> tuple[str | None, str] | None:
        if self._pending is not None:
            token, self._pending = self._pending, None
            return token
        if self._iter is None:
            self._iter = iter(self.events)
        for event in self._iter:
            token = self._take(event.event, event.data)
            if token is not None:
                return token
        self.done = True
        return None

    def _take(self, name: str, data: Any) -> tuple[str | None, str] | None:
        if name == "metadata" and isinstance(data, dict):
            self.run_id = data.get("run_id")
        elif name == "values" and isinstance(data, dict):
            self.values = data
        elif name == "updates" and isinstance(data, dict):
            self.updates.extend((str(node), update) for node, update in data.items())
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
    def streamed(self) -> str | None:
        """The last streaming node's text."""
        return self.texts[-1][1] if self.texts else None

    @property
    def answer(self) -> str | None:
        """The final AI message when the run's values have one, else what streamed."""
        return last_ai_text(self.values) or self.streamed


def turn_updates(history: list[dict[str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    """From a thread's history (newest first, as the API returns it): per run, the node
    updates it made (each checkpoint's finished tasks and their writes), keyed by the id of
    the last AI message that run wrote — so panels can be drawn under past answers."""
    by_run: dict[str, list[tuple[str, Any]]] = {}
    order: list[str] = []
    for snapshot in reversed(history):
        run_id = (snapshot.get("metadata") or {}).get("run_id")
        if not run_id:
            continue
        if run_id not in by_run:
            by_run[run_id] = []
            order.append(run_id)
        for task in snapshot.get("tasks") or []:
            result = task.get("result")
            if isinstance(result, dict) and task.get("name"):
                by_run[run_id].append((str(task["name"]), result))
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
