"""Who a request acts for, and what it may see: every key owns what it creates.

Threads, their runs and checkpoints, the assistants a key creates, and the observations of
its runs and model calls are stored with `owner_key`, the id of the key whose request made
them. A `user` key sees and changes only its own; to it, everything else does not exist
(404, never 403: no existence oracle), and searches and counts list only its own. An
`admin` key sees all. With auth off (a loopback server before any key exists) requests act
as the one local user, who sees all and whose creations have no owner (`owner_key` NULL),
as do rows made before ownership existed: once keys exist, those belong to admins.

Flows, prompts and knowledge bases are shared resources governed by roles (reads for
every key, writes for admins), not owned.

    >>> who = Principal("a1b2c3", admin=False)
    >>> who.sees(None), who.sees("a1b2c3"), LOCAL.sees("zz")
    (False, True, True)
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ACCESS_KEY",
    "LOCAL",
    "Access",
    "Principal",
    "access",
    "caller",
    "current_principal",
    "scoped_thread_id",
]

ACCESS_KEY = "x-flowloom-access"
Access = Literal["open", "shared", "owner", "admin", "user"]
"""Each route's rule, stated in the OpenAPI document under `x-flowloom-access`:
- `open`: no key needed (`/ok`, `/info`, the docs);
- `shared`: a shared resource (flows, prompts, knowledge bases, node types): any key
  reads, admins write;
- `owner`: owned resources (threads, runs, assistants, observations): a user key reaches
  only its own, 404 otherwise, and lists only its own;
- `user`: any key, nothing owned involved (validation of a posted document);
- `admin`: admin keys only (403 to a user key)."""


def access(rule: Access) -> dict[str, Any]:
    """`openapi_extra` stating a route's rule: `@router.get(..., openapi_extra=access(...))`."""
    return {ACCESS_KEY: rule}


@dataclass(frozen=True)
class Principal:
    """The caller: its key's id (None: no key, auth is off) and whether it is an admin."""

    key_id: str | None
    admin: bool

    @property
    def owner(self) -> str | None:
        """What the caller's new threads, runs and assistants record as their owner."""
        return self.key_id

    @property
    def sees_all(self) -> bool:
        return self.admin

    def sees(self, owner_key: str | None) -> bool:
        """Whether a row owned by `owner_key` exists for this caller."""
        return self.admin or (owner_key is not None and owner_key == self.key_id)


LOCAL = Principal(None, admin=True)
"""The one local user of a server without keys: sees all, owns nothing by key."""

current_principal: ContextVar[Principal] = ContextVar("flowloom_principal", default=LOCAL)
"""Set by the auth middleware for each request; runs started by it inherit it."""


def caller() -> Principal:
    """FastAPI dependency: the current request's principal."""
    return current_principal.get()


_NAMESPACE = uuid.UUID("6f0c1e8e-5f7a-4f55-9a55-3d5d8a1f0c19")


def scoped_thread_id(who: Principal, name: str) -> str:
    """The thread behind a client-chosen thread name (`/v1`'s `user` or thread header):
    each key has its own space of names, so two keys naming "alice" get two threads. Without
    a key (auth off) the name is the thread id, as it always was."""
    if who.key_id is None:
        return name
    return str(uuid.uuid5(_NAMESPACE, f"{who.key_id}\n{name}"))
