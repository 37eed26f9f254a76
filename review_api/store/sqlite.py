"""The embedded store: one SQLite file in the data dir, for one process.

Writes go through one connection in BEGIN IMMEDIATE transactions (an asyncio lock keeps each
whole); reads use a second connection, so under WAL they see only committed data. The change
feed wakes readers in this process after each commit: nobody else writes the file. At open,
every replica recorded before is dead (this is the only process), so its in-flight sends are
recovered (outcome_unknown) by the first `recover_in_flight`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from review_api.models import Status
from review_api.store.base import DEFAULT_LEASE, StoreError
from review_api.store.sql import Migration, Row, SqlStore, T, Tx, Work, statements


class _SqliteTx(Tx):
    def __init__(self, db: aiosqlite.Connection) -> None:
        super().__init__()
        self._db = db

    # One thread hop per statement: execute_fetchall, and no cursor to close afterwards.
    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self._db.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._db.execute_fetchall(sql, params))

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._db.execute(sql, params)).rowcount


# Version 1: the schema as it was before versioning (the first release's table plus the
# columns added since), so a data dir of any earlier release is brought up to it.
_V1_TABLES = statements("""
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT,
    result TEXT,
    fingerprint TEXT NOT NULL,
    proposal TEXT NOT NULL
)""", """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    approval_id TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""")
_V1_COLUMNS = {
    "sent_at": "TEXT", "votes": "TEXT NOT NULL DEFAULT '[]'",
    "edits": "TEXT NOT NULL DEFAULT '[]'", "approve_fields": "TEXT", "agent": "TEXT",
    "idempotency_key": "TEXT", "sealed_request": "BLOB", "sealed_before": "BLOB",
}
_V1_INDEXES = statements(
    "CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created_at)",
    "CREATE INDEX IF NOT EXISTS approvals_retry ON approvals (status, fingerprint)",
    "CREATE INDEX IF NOT EXISTS approvals_expiry ON approvals (status, expires_at)",
    "CREATE INDEX IF NOT EXISTS approvals_agent ON approvals (status, agent)",
    "CREATE INDEX IF NOT EXISTS approvals_key ON approvals (agent, idempotency_key, created_at)"
    " WHERE idempotency_key IS NOT NULL",
)


async def _add_columns(tx: Tx, columns: dict[str, str]) -> None:
    present = {row["name"] for row in await tx.all("PRAGMA table_info(approvals)")}
    for name, definition in columns.items():
        if name not in present:
            await tx.run(f"ALTER TABLE approvals ADD COLUMN {name} {definition}")


async def _v1(tx: Tx) -> None:
    await _V1_TABLES(tx)
    await _add_columns(tx, _V1_COLUMNS)
    await _V1_INDEXES(tx)  # after the columns: an index on a column an old file lacks fails


# Version 2 (issue 16): sending is a status (it hid in sent_at), quorum a column, holders and
# senders carry their replica; replicas, the change feed and reviewer sessions are tables.
_V2 = statements(
    "ALTER TABLE approvals ADD COLUMN quorum INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE approvals ADD COLUMN held_by TEXT",
    "ALTER TABLE approvals ADD COLUMN sending_by TEXT",
    "UPDATE approvals SET quorum = COALESCE(json_extract(proposal, '$.quorum'), 1)",
    f"UPDATE approvals SET status = '{Status.sending.value}' WHERE status ="
    f" '{Status.approved.value}' AND sent_at IS NOT NULL AND result IS NULL",
    "CREATE INDEX approvals_sending ON approvals (status, sent_at)",
    "CREATE TABLE replicas (id TEXT PRIMARY KEY, started_at REAL NOT NULL,"
    " lease_until REAL NOT NULL)",
    "CREATE TABLE changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, approval_id TEXT NOT NULL,"
    " status TEXT NOT NULL, event TEXT NOT NULL, replica TEXT, delivered_by TEXT)",
    "CREATE TABLE sessions (key_hash TEXT PRIMARY KEY, reviewer TEXT NOT NULL,"
    " csrf TEXT NOT NULL, expires REAL NOT NULL)",
)
# Version 3 (issue 17): delivery claims per consumer (webhooks, Slack), reminders and
# escalations sent, reviewers away, and Slack's message refs and seen request signatures.
_V3 = statements(
    "CREATE TABLE deliveries (seq INTEGER NOT NULL, consumer TEXT NOT NULL,"
    " replica TEXT NOT NULL, PRIMARY KEY (seq, consumer))",
    "INSERT INTO deliveries (seq, consumer, replica) SELECT seq, 'webhooks', delivered_by"
    " FROM changes WHERE delivered_by IS NOT NULL",
    "CREATE TABLE escalations (approval_id TEXT NOT NULL, event TEXT NOT NULL,"
    " at TEXT NOT NULL, replica TEXT, PRIMARY KEY (approval_id, event))",
    "CREATE TABLE away (reviewer TEXT PRIMARY KEY, until_at TEXT NOT NULL, delegate TEXT)",
    "CREATE TABLE slack_messages (approval_id TEXT NOT NULL, channel TEXT NOT NULL,"
    " ts TEXT NOT NULL, posted_at TEXT NOT NULL, PRIMARY KEY (approval_id, channel))",
    "CREATE TABLE slack_signatures (signature TEXT PRIMARY KEY, expires REAL NOT NULL)",
)
MIGRATIONS: list[Migration] = [_v1, _V2, _V3]


class SqliteStore(SqlStore):
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    GROUPS = "json_extract(proposal, '$.reviewer_groups')"
    TIEBREAK = "rowid"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, audit_key: bytes | None = None,
                 anchor: Path | None = None, lease: float = DEFAULT_LEASE) -> None:
        super().__init__(audit_key=audit_key, lease=lease)
        self.path = path
        self._busy_timeout = busy_timeout
        # The last entry's seq and hash, outside the database: a cut-off tail shows.
        self.anchor = anchor or path.with_name("audit.head")
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one connection writes: each transaction stays whole

    @property
    def location(self) -> str:
        return str(self.path)

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = await self._connect()
            await self._writer.execute("PRAGMA journal_mode=WAL")
            await self._writer.execute("PRAGMA synchronous=FULL")
            await self._write(lambda tx: self._migrate(tx, MIGRATIONS))
            self._reader = await self._connect()
            # Only this process uses the file: whoever registered before is gone.
            await self._write(lambda tx: tx.run("UPDATE replicas SET lease_until = 0"
                                                " WHERE id <> ?", (self.replica,)))
            await self._start()
        except (OSError, sqlite3.Error, StoreError) as exc:
            await self.close()
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc

    async def _connect(self) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    async def close(self) -> None:
        if self._writer is not None and self._reader is not None:
            await self._retire()
        # Closed from here on for every caller, before the connections finish closing.
        connections, self._reader, self._writer = (self._reader, self._writer), None, None
        for db in connections:
            if db is not None:
                await db.close()

    def _connection(self, db: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if db is None:
            raise StoreError(f"the store at {self.path} is not open")
        return db

    async def _write(self, work: Work[T], *, serialise: bool = True) -> T:
        """Every SQLite write is serialised: the file has one writer anyway."""
        async with self._lock:
            db = self._connection(self._writer)
            tx = _SqliteTx(db)
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    outcome = await work(tx)
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"store write failed at {self.path}: {exc}") from exc
            self._committed(tx)
            return outcome

    async def _read(self, work: Work[T]) -> T:
        try:
            return await work(_SqliteTx(self._connection(self._reader or self._writer)))
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed at {self.path}: {exc}") from exc
        except ValueError as exc:
            if self._reader is None and self._writer is None:
                # aiosqlite's "Connection closed": the store closed under a read in flight.
                raise StoreError(f"the store at {self.path} closed during a read") from exc
            raise

    def _committed(self, tx: Tx) -> None:
        if tx.head is not None:
            self._write_anchor(*tx.head)
        super()._committed(tx)

    def _write_anchor(self, seq: int, digest: str) -> None:
        try:
            temporary = self.anchor.with_suffix(".tmp")
            temporary.write_text(f"{seq} {digest}\n")
            os.replace(temporary, self.anchor)
        except OSError as exc:
            raise StoreError(f"cannot write the audit anchor {self.anchor}: {exc}") from exc
