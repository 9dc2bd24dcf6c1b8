"""PostgresAdapterStore: adapter versions by SHA-256, and which one of each name is active.

Every change of the active version (seed, activate, rollback, quarantine) runs in
one transaction under a per-name advisory lock, with its row in
`adapter_activations`. A rollback pops that history: it returns to the version
active before the current one, and the row it writes points further back, so a
second rollback goes back again rather than toggling.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool


@dataclass(frozen=True, slots=True)
class VersionRow:
    sha256: str
    name: str
    version: str
    size: int
    builtin: bool
    status: str
    manifest: dict[str, Any]
    golden: dict[str, Any]
    smoke: dict[str, Any]
    uploaded_at: datetime
    activated_at: datetime | None
    quarantined_at: datetime | None
    quarantine_reason: str | None


@dataclass(frozen=True, slots=True)
class Module:
    """A module to record: its bytes and what its manifest says."""

    sha256: str
    name: str
    version: str
    wasm: bytes
    manifest: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """A change of an adapter's active version."""

    name: str
    sha256: str
    version: str
    previous_sha256: str | None
    action: str


class DeployError(Exception):
    """A requested change is not possible; `code` is a catalogue code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_COLUMNS = """sha256, name, version, size, builtin, status, manifest, golden, smoke, uploaded_at,
              activated_at, quarantined_at, quarantine_reason"""


def _row(r: tuple[Any, ...]) -> VersionRow:
    return VersionRow(*r)


async def _lock(conn: psycopg.AsyncConnection[Any], name: str) -> None:
    # Changes of one adapter are serialised; a holder that never lets go (a process stuck
    # mid-transaction) makes the next change fail after 10 s rather than wait for ever.
    await conn.execute("SET LOCAL lock_timeout = '10s'")
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('hermes.adapter:' || %s))", (name,))


async def _active(conn: psycopg.AsyncConnection[Any], name: str) -> VersionRow | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM adapter_versions WHERE name = %s AND status = 'active'", (name,))
    r = await cur.fetchone()
    return None if r is None else _row(r)


async def _switch(conn: psycopg.AsyncConnection[Any], name: str, old: VersionRow | None,
                  new_sha: str, previous: str | None, action: str, reason: str | None,
                  old_status: str = "retired") -> None:
    if old is not None:
        await conn.execute(
            "UPDATE adapter_versions SET status = %s,"
            " quarantined_at = CASE WHEN %s = 'quarantined' THEN now() END,"
            " quarantine_reason = CASE WHEN %s = 'quarantined' THEN %s END"
            " WHERE sha256 = %s", (old_status, old_status, old_status, reason, old.sha256))
    await conn.execute(
        "UPDATE adapter_versions SET status = 'active', activated_at = now(),"
        " quarantined_at = NULL, quarantine_reason = NULL WHERE sha256 = %s", (new_sha,))
    await conn.execute(
        "INSERT INTO adapter_activations (name, sha256, previous_sha256, action, reason)"
        " VALUES (%s, %s, %s, %s, %s)", (name, new_sha, previous, action, reason))


class PostgresAdapterStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # --- reading ---

    async def get(self, sha256: str) -> VersionRow | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM adapter_versions WHERE sha256 = %s", (sha256,))
            r = await cur.fetchone()
        return None if r is None else _row(r)

    async def find(self, name: str, *, version: str | None = None,
                   sha256: str | None = None) -> VersionRow | None:
        """A version of `name` by sha256, or by version (the uploaded one first, then the
        newest built-in)."""
        async with self.pool.connection() as conn:
            if sha256 is not None:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM adapter_versions WHERE name = %s AND sha256 = %s",
                    (name, sha256))
            else:
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM adapter_versions WHERE name = %s AND version = %s"
                    " ORDER BY builtin, (status = 'active') DESC, uploaded_at DESC LIMIT 1",
                    (name, version))
            r = await cur.fetchone()
        return None if r is None else _row(r)

    async def versions(self) -> list[VersionRow]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM adapter_versions ORDER BY name, uploaded_at, sha256")
            return [_row(r) for r in await cur.fetchall()]

    async def wasm(self, sha256: str) -> bytes | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT wasm FROM adapter_versions WHERE sha256 = %s",
                                     (sha256,))
            r = await cur.fetchone()
        return None if r is None else bytes(r[0])

    async def wanted(self) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        """What every process should have loaded: the active sha256 of each name, and the
        sha256 of each version a provider account pins (quarantined versions left out)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT name, sha256 FROM adapter_versions WHERE status = 'active'")
            active = {name: sha for name, sha in await cur.fetchall()}
            cur = await conn.execute(
                "SELECT DISTINCT ON (p.adapter, p.adapter_version) p.adapter, p.adapter_version,"
                " v.sha256 FROM provider_accounts p JOIN adapter_versions v"
                " ON v.name = p.adapter AND v.version = p.adapter_version"
                " WHERE p.adapter_version IS NOT NULL AND p.status = 'active'"
                " AND v.status <> 'quarantined'"
                " ORDER BY p.adapter, p.adapter_version, v.builtin, (v.status = 'active') DESC,"
                " v.uploaded_at DESC")
            pins = {(name, version): sha for name, version, sha in await cur.fetchall()}
        return active, pins

    # --- writing ---

    async def seed_builtin(self, module: Module) -> Change | None:
        """Record a built-in module. It becomes active when its adapter has no active version,
        or when the active one is an older built-in (a new release of Hermes); a version an
        operator activated stays active."""
        async with self.pool.connection() as conn, conn.transaction():
            await _lock(conn, module.name)
            cur = await conn.execute(
                "INSERT INTO adapter_versions (sha256, name, version, wasm, manifest, size,"
                " builtin, golden, smoke) VALUES (%s, %s, %s, %s, %s, %s, true, %s, %s)"
                " ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
                (module.sha256, module.name, module.version, module.wasm, Jsonb(module.manifest),
                 len(module.wasm), Jsonb({"status": "skipped", "reason": "built in"}),
                 Jsonb({"status": "skipped", "reason": "built in"})))
            inserted = await cur.fetchone() is not None
            current = await _active(conn, module.name)
            if current is None or (inserted and current.builtin):
                if current is not None and current.sha256 == module.sha256:
                    return None
                previous = None if current is None else current.sha256
                await _switch(conn, module.name, current, module.sha256, previous, "seed",
                              "built in")
                return Change(module.name, module.sha256, module.version, previous, "seed")
        return None

    async def upload(self, module: Module, *, golden: dict[str, Any],
                     smoke: dict[str, Any]) -> tuple[VersionRow, bool]:
        """Store an uploaded module; (row, created). The same name, version and bytes again
        is not an error (created False); the same name and version with other bytes is
        `adapter.version_exists`."""
        async with self.pool.connection() as conn, conn.transaction():
            await _lock(conn, module.name)
            cur = await conn.execute(
                "SELECT sha256 FROM adapter_versions WHERE name = %s AND version = %s",
                (module.name, module.version))
            existing = [r[0] for r in await cur.fetchall()]
            if existing and module.sha256 not in existing:
                raise DeployError("adapter.version_exists",
                                  f"{module.name} {module.version} was uploaded with other "
                                  f"content (sha256 {existing[0]})")
            cur = await conn.execute(
                "INSERT INTO adapter_versions (sha256, name, version, wasm, manifest, size,"
                " golden, smoke) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
                (module.sha256, module.name, module.version, module.wasm, Jsonb(module.manifest),
                 len(module.wasm), Jsonb(golden), Jsonb(smoke)))
            created = await cur.fetchone() is not None
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM adapter_versions WHERE sha256 = %s", (module.sha256,))
            r = await cur.fetchone()
        assert r is not None
        return _row(r), created

    async def activate(self, name: str, sha256: str, *, force: bool = False) -> Change | None:
        """Make `sha256` the active version of `name`; None when it already is."""
        async with self.pool.connection() as conn, conn.transaction():
            await _lock(conn, name)
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM adapter_versions WHERE sha256 = %s AND name = %s",
                (sha256, name))
            r = await cur.fetchone()
            if r is None:
                raise DeployError("request.not_found", f"no version {sha256} of {name}")
            target = _row(r)
            if target.status == "quarantined" and not force:
                raise DeployError("adapter.quarantined",
                                  f"{name} {target.version} is quarantined "
                                  f"({target.quarantine_reason}); activate with force to "
                                  "override")
            current = await _active(conn, name)
            if current is not None and current.sha256 == sha256:
                return None
            previous = None if current is None else current.sha256
            await _switch(conn, name, current, sha256, previous, "activate", None)
            return Change(name, sha256, target.version, previous, "activate")

    async def rollback(self, name: str, *, quarantine: str | None = None,
                       reason: str | None = None) -> Change:
        """Return `name` to the version active before the current one (skipping quarantined
        versions). With `quarantine` (a sha256, which must be the active version), that
        version is quarantined with `reason` as it is left."""
        async with self.pool.connection() as conn, conn.transaction():
            await _lock(conn, name)
            current = await _active(conn, name)
            if current is None:
                raise DeployError("request.not_found", f"{name} has no active version")
            if quarantine is not None and current.sha256 != quarantine:
                raise DeployError("request.not_found", f"{quarantine} is not {name}'s active "
                                  "version")
            cur = await conn.execute(
                "SELECT id, sha256, previous_sha256 FROM adapter_activations WHERE name = %s"
                " ORDER BY id DESC", (name,))
            history = await cur.fetchall()
            target, below = await _pop(conn, history, current.sha256)
            if target is None:
                raise DeployError("request.invalid",
                                  f"{name} has no earlier version to roll back to")
            action = "rollback" if quarantine is None else "quarantine"
            await _switch(conn, name, current, target.sha256, below, action, reason,
                          old_status="quarantined" if quarantine is not None else "retired")
            return Change(name, target.sha256, target.version, below, action)

    async def quarantine_inactive(self, sha256: str, reason: str) -> bool:
        """Quarantine a version that is not active (a pinned one); True if it changed."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE adapter_versions SET status = 'quarantined', quarantined_at = now(),"
                " quarantine_reason = %s WHERE sha256 = %s AND status IN ('uploaded', 'retired')",
                (reason, sha256))
            return cur.rowcount == 1


async def _pop(conn: psycopg.AsyncConnection[Any], history: list[tuple[Any, ...]],
               current: str) -> tuple[VersionRow | None, str | None]:
    """The version to return to from `current`, and the one below it in the history."""
    # The row that made `current` active is the newest one.
    position = next((i for i, (_, sha, _p) in enumerate(history) if sha == current), None)
    if position is None:
        return None, None
    candidate = history[position][2]
    while candidate is not None:
        # The newest row, older than where we stand, that made the candidate active: what
        # was below it then is below it now.
        found = next((i for i in range(position + 1, len(history))
                      if history[i][1] == candidate), None)
        below = None if found is None else history[found][2]
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM adapter_versions WHERE sha256 = %s",
                                 (candidate,))
        r = await cur.fetchone()
        if r is not None and r[5] != "quarantined":
            return _row(r), below
        if found is None:
            return None, None
        position, candidate = found, below
    return None, None


def manifest_of(manifest_json: str) -> dict[str, Any]:
    value = json.loads(manifest_json)
    return value if isinstance(value, dict) else {}
