"""`/prompts`: versioned prompts over HTTP, in the data dir's store (the one `flowloom
prompts` uses and flows' `name@version` refs resolve against).

- `GET /prompts`: every prompt with its latest version.
- `GET /prompts/{name}`: its versions (without their text).
- `GET /prompts/{name}/{version}`: one version with its text; `version` may be `latest`.
- `POST /prompts/{name}` `{text, notes?}` → 201 with the new version (role admin).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flowloom.backends.server._state import services
from flowloom.backends.server.errors import BadRequest, Conflict, NotFound
from flowloom.backends.server.tenancy import access
from flowloom.flows.errors import FlowError
from flowloom.flows.prompts import (
    PromptConflict,
    PromptNotFound,
    PromptStore,
    PromptVersion,
    check_name,
)

__all__ = ["router"]

# Prompts are shared: every key reads them, admins add versions.
router = APIRouter(tags=["prompts"])
SHARED = access("shared")
MAX_TEXT = 200_000


class PromptCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, max_length=MAX_TEXT,
                      description="Template text (Jinja syntax over state fields).")
    notes: str = Field("", max_length=4000, description="What changed, and why.")


class VersionInfo(BaseModel):
    ref: str = Field(..., description="name@version")
    version: int
    variables: list[str] = Field(..., description="State fields the template reads.")
    notes: str
    created_at: str


class PromptOut(VersionInfo):
    name: str
    text: str


class PromptSummary(BaseModel):
    name: str
    latest: VersionInfo
    versions: list[int]


class PromptVersions(BaseModel):
    name: str
    versions: list[VersionInfo]


def _store(request: Request) -> PromptStore:
    store = services(request).catalog.ctx.prompts
    if store is None:
        raise NotFound("this server has no prompt store configured")
    return store


@contextmanager
def _mapped() -> Iterator[None]:
    """Prompt errors as the API's: unknown → 404, an existing version → 409, invalid → 422."""
    try:
        yield
    except PromptNotFound as exc:
        raise NotFound(str(exc)) from None
    except PromptConflict as exc:
        raise Conflict(str(exc)) from None
    except (FlowError, ValueError) as exc:
        raise BadRequest(str(exc)) from None


def _info(prompt: PromptVersion) -> VersionInfo:
    return VersionInfo(ref=prompt.ref, version=prompt.version, variables=prompt.variables,
                       notes=prompt.notes, created_at=prompt.created_at)


def _out(prompt: PromptVersion) -> PromptOut:
    return PromptOut(name=prompt.name, text=prompt.text, **_info(prompt).model_dump())


@router.get("/prompts", response_model=list[PromptSummary], summary="Every stored prompt",
            openapi_extra=SHARED)
def list_prompts(request: Request) -> list[PromptSummary]:
    store = _store(request)
    out = []
    for name in store.names():
        versions = store.versions(name)
        if versions:
            out.append(PromptSummary(name=name, latest=_info(store.get(f"{name}@{versions[-1]}")),
                                     versions=versions))
    return out


@router.get("/prompts/{name}", response_model=PromptVersions, summary="A prompt's versions",
            openapi_extra=SHARED)
def get_versions(name: str, request: Request) -> PromptVersions:
    store = _store(request)
    with _mapped():
        check_name(name)
        if not store.versions(name):
            store.get(name)  # raises PromptNotFound, listing the prompts there are
        return PromptVersions(name=name, versions=[_info(store.get(f"{name}@{v}"))
                                                   for v in store.versions(name)])


@router.get("/prompts/{name}/{version}", response_model=PromptOut,
            summary="One version with its text (`latest` for the newest)", openapi_extra=SHARED)
def get_version(name: str, version: str, request: Request) -> PromptOut:
    store = _store(request)
    with _mapped():
        check_name(name)
        return _out(store.get(f"{name}@{version}"))


@router.post("/prompts/{name}", response_model=PromptOut, status_code=201,
             summary="Store a new version", openapi_extra=SHARED)
def create_version(name: str, body: PromptCreate, request: Request) -> PromptOut:
    store = _store(request)
    with _mapped():
        return _out(store.save(name, body.text, body.notes))
