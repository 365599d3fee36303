"""API keys kept in the server database: only a salted SHA-256 of each key is stored.

A key reads `fl_<id>_<secret>`: the id finds its row, the secret (256 random bits) is
checked against the row's hash in constant time. High-entropy keys need no slow hash.

    >>> async with open_database(None) as db:  # doctest: +SKIP
    ...     store = KeyStore(db)
    ...     await store.setup()
    ...     key, secret = await store.create("user", name="ci", rpm=60, budget_usd=5.0)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from flowloom.backends.server.db import Database
from flowloom.backends.server.errors import BadRequest, NotFound
from flowloom.backends.server.store import now_iso

__all__ = ["KEY_PREFIX", "ROLES", "ApiKey", "KeyStore", "Role", "key_id_of"]

Role = Literal["admin", "user"]
ROLES: tuple[Role, ...] = ("admin", "user")
KEY_PREFIX = "fl_"

_TABLE = """CREATE TABLE IF NOT EXISTS fl_api_keys (
    key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, salt TEXT NOT NULL,
    hash TEXT NOT NULL, rpm INTEGER, budget_usd DOUBLE PRECISION,
    spent_usd DOUBLE PRECISION NOT NULL DEFAULT 0, created_at TEXT NOT NULL, revoked_at TEXT)"""
_COLUMNS = "key_id, name, role, salt, hash, rpm, budget_usd, spent_usd, created_at, revoked_at"


def _digest(salt: str, key: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()


def key_id_of(key: str) -> str | None:
    """The id part of `fl_<id>_<secret>`, or None when `key` is not shaped like a key."""
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = key[len(KEY_PREFIX):].partition("_")
    return key_id if sep and key_id and secret else None


@dataclass(frozen=True)
class ApiKey:
    """One key's row: role, limits, what it has spent; never the key itself."""

    key_id: str
    name: str
    role: Role
    rpm: int | None
    budget_usd: float | None
    spent_usd: float
    created_at: str
    revoked_at: str | None
    salt: str = field(repr=False)
    hash: str = field(repr=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def matches(self, key: str) -> bool:
        """Whether `key` is this key (constant-time compare of the hashes)."""
        return hmac.compare_digest(_digest(self.salt, key), self.hash)

    def public(self) -> dict[str, Any]:
        """The row without salt and hash, for listings."""
        data = asdict(self)
        del data["salt"], data["hash"]
        return data

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKey:
        budget = row["budget_usd"]
        return cls(row["key_id"], row["name"], cast(Role, row["role"]), row["rpm"],
                   None if budget is None else float(budget), float(row["spent_usd"] or 0),
                   row["created_at"], row["revoked_at"], row["salt"], row["hash"])


class KeyStore:
    """Create, find, list, revoke and charge API keys in the `fl_api_keys` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.execute(_TABLE)

    async def create(self, role: str, *, name: str = "", rpm: int | None = None,
                     budget_usd: float | None = None) -> tuple[ApiKey, str]:
        """A new key: its row and the key itself, which is not kept anywhere."""
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if rpm is not None and rpm < 1:
            raise BadRequest(f"rpm must be at least 1, not {rpm}")
        if budget_usd is not None and budget_usd < 0:
            raise BadRequest(f"budget must be at least 0 USD, not {budget_usd}")
        key_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_hex(16)
        row = {"key_id": key_id, "name": name, "role": role, "salt": salt,
               "hash": _digest(salt, key), "rpm": rpm, "budget_usd": budget_usd,
               "spent_usd": 0.0, "created_at": now_iso(), "revoked_at": None}
        await self.db.execute(
            f"INSERT INTO fl_api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row[c] for c in _COLUMNS.split(", ")])
        return ApiKey.from_row(row), key

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM fl_api_keys WHERE key_id = ?",
                                     [key_id])
        return ApiKey.from_row(row) if row else None

    async def list(self) -> list[ApiKey]:
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM fl_api_keys ORDER BY created_at, key_id")
        return [ApiKey.from_row(r) for r in rows]

    async def active_count(self) -> int:
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS n FROM fl_api_keys WHERE revoked_at IS NULL")
        return int(row["n"]) if row else 0

    async def revoke(self, key_id: str) -> ApiKey:
        """Mark the key revoked (kept for its history); NotFound if no such id."""
        await self.db.execute(
            "UPDATE fl_api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            [now_iso(), key_id])
        key = await self.get(key_id)
        if key is None:
            raise NotFound(f"no API key with id {key_id!r}; `flowloom keys list` shows them")
        return key

    async def charge(self, key_id: str, usd: float) -> None:
        """Add `usd` to what the key has spent."""
        await self.db.execute(
            "UPDATE fl_api_keys SET spent_usd = spent_usd + ? WHERE key_id = ?", [usd, key_id])
