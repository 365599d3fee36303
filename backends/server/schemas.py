"""Request bodies of the LangGraph API, as pydantic models (422s name the field)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

MAX_OFFSET = 1_000_000_000  # search offsets: past this they would overflow SQLite's integers

__all__ = [
    "AssistantCreate", "AssistantLatest", "AssistantPatch", "AssistantSearch",
    "AssistantVersions", "CancelRuns", "CheckpointRequest",
    "HistoryRequest", "RunCreate", "RunField",
    "StateUpdate", "Superstep", "ThreadCreate", "ThreadPatch", "ThreadPrune", "ThreadSearch",
]


class _Body(BaseModel):
    # an option this server does not know is refused (422 naming it), never ignored;
    # strict: no "5" or true for numbers
    model_config = ConfigDict(extra="forbid", strict=True)


class AssistantCreate(_Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantPatch(_Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


AssistantField = Literal["assistant_id", "graph_id", "name", "description", "config", "context",
                         "metadata", "version", "created_at", "updated_at"]


class AssistantSearch(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["assistant_id", "graph_id", "name", "created_at",
                     "updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[AssistantField] | None = None


class AssistantVersions(_Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class AssistantLatest(_Body):
    version: int = Field(ge=1)


class StateUpdateSpec(_Body):
    values: Any = None
    as_node: str | None = None
    command: dict[str, Any] | None = None


class Superstep(_Body):
    updates: list[StateUpdateSpec]


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    graph_id: str | None = None
    # the thread's state built up as these steps of updates, applied in order
    supersteps: list[Superstep] | None = None
    ttl: dict[str, Any] | None = None  # refused when given (not supported)


class ThreadPatch(_Body):
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl: dict[str, Any] | None = None  # refused when given (not supported)


class ThreadPrune(_Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


ThreadField = Literal["thread_id", "created_at", "updated_at", "metadata", "config", "context",
                      "status", "values", "interrupts"]


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    ids: list[str] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at",
                     "state_updated_at"] | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None
    # alias -> path into the thread (`values.messages[-1]`), returned under `extracted`
    extract: dict[str, str] | None = Field(None, max_length=10)


class StateUpdate(_Body):
    values: Any = None
    as_node: str | None = None
    checkpoint_id: str | None = None
    checkpoint: dict[str, Any] | None = None


class CheckpointRequest(_Body):
    checkpoint: dict[str, Any] = Field(default_factory=dict)
    subgraphs: StrictBool = False
    select: list[str] | None = None  # dotted paths of the state: `values.messages`


RunField = Literal["run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status",
                   "metadata", "kwargs", "multitask_strategy"]


class CancelRuns(_Body):
    run_ids: list[str] | None = None
    thread_id: str | None = None
    status: Literal["pending", "running", "all"] | None = None


class HistoryRequest(_Body):
    limit: int = Field(10, ge=1, le=1000)
    before: str | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None


StreamModeName = Literal["values", "updates", "messages", "messages-tuple", "custom", "debug",
                         "tasks", "checkpoints", "events"]


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    command: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    stream_mode: StreamModeName | list[StreamModeName] = "values"
    stream_subgraphs: StrictBool = False
    stream_resumable: StrictBool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] | None = None
    after_seconds: float | None = Field(None, ge=0, le=86_400)
    # when checkpoints are written: "async" (default: each step, in the background),
    # "sync" (each step, before the next starts), "exit" (once, when the run ends: fastest;
    # a crashed run then resumes from its start, not from its last step)
    durability: Literal["sync", "async", "exit"] | None = None
    checkpoint_during: StrictBool | None = None  # older clients' durability: True async
    # what this server does not do is refused when given (RunManager says why)
    feedback_keys: list[str] | None = None
    langsmith_tracer: dict[str, Any] | None = None
    strict_resume: StrictBool | None = None

    def modes(self) -> list[str]:
        return [self.stream_mode] if isinstance(self.stream_mode, str) else list(
            self.stream_mode or ["values"])


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


class BatchRunCreate(RunCreate):
    """One run of `POST /runs/batch`. The JS SDK's `runs.createBatch` sends each payload as
    the caller wrote it, in camelCase (`assistantId`, `streamMode`, `afterSeconds`), beside
    `assistant_id`: a camelCase key of a run option is read as that option (both spellings
    must then agree); any other key is refused, as on every run route."""

    @model_validator(mode="before")
    @classmethod
    def _snake_case(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key, value in data.items():
            snake = _CAMEL.sub(r"_\1", key).lower()
            if snake == key or snake not in cls.model_fields:
                continue
            if snake in data and data[snake] != value:
                raise ValueError(f"{key} and {snake} name the same option with different "
                                 "values; give one")
            out[snake] = value
            del out[key]
        return out
