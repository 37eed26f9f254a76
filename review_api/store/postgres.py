"""The store on PostgreSQL: several replicas of the proxy share one database.

- Every transaction that changes an approval or appends to the audit chain first takes one
  transaction-scoped advisory lock. The chain is therefore one chain (each entry reads its
  predecessor under the lock), `max_pending` counts cannot be raced, and the change feed's
  seq order is its commit order: a reader that saw seq N never later finds a smaller seq
  committing, so `changes_after(N)` can never skip one. The cost is one writer at a time,
  what SQLite always had; reads, sessions, leases and delivery claims do not take it.
- The committing transaction sends `NOTIFY hitl_changes, '<seq>'`; a dedicated LISTEN
  connection wakes `wait_for_change` and reconnects after a loss. A notification is only a
  hint: readers catch up by seq, so a missed one costs at most the feed's poll interval.
- Every connection has a connect and a statement timeout, and the pool a checkout timeout:
  with the server gone every method raises StoreError within seconds, never hangs, and works
  again once the server is back (broken connections are checked out of the pool).
- Migrations run at open in one transaction under their own advisory lock, so replicas
  starting together apply each version once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from review_api.store.base import DEFAULT_LEASE, StoreError
from review_api.store.sql import Migration, Row, SqlStore, T, Tx, Work, statements

logger = logging.getLogger("hitl_proxy")
CHANNEL = "hitl_changes"
WRITE_LOCK = 0x6869746C  # "hitl": the one lock serialising status changes and audit appends
MIGRATE_LOCK = WRITE_LOCK + 1
CONNECT_TIMEOUT = 5  # seconds to reach the server
STATEMENT_TIMEOUT_MS = 15_000  # bounds a statement, a lock wait included
CHECKOUT_TIMEOUT = 5.0  # seconds to get a pooled connection
RELISTEN_DELAY = 0.5  # seconds between attempts to get the LISTEN connection back
Connection = psycopg.AsyncConnection[dict[str, Any]]
Cursor = psycopg.AsyncCursor[dict[str, Any]]


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The shared SQL's `?` as psycopg's `%s` (the shared SQL holds no other ? or %)."""
    return sql.replace("?", "%s")


class _PostgresTx(Tx):
    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    async def _execute(self, sql: str, params: Sequence[Any]) -> Cursor:
        return await self._conn.execute(_placeholders(sql), tuple(params) or None)

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await (await self._execute(sql, params)).fetchone()

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await (await self._execute(sql, params)).fetchall()

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._execute(sql, params)).rowcount


# Times are ISO text compared as text (see store/sql.py), so they are collated bytewise.
_V1 = statements("""
CREATE TABLE approvals (
    pos BIGINT GENERATED ALWAYS AS IDENTITY,
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C",
    decided_at TEXT COLLATE "C",
    decided_by TEXT,
    note TEXT,
    result TEXT,
    sent_at TEXT COLLATE "C",
    votes TEXT NOT NULL DEFAULT '[]',
    edits TEXT NOT NULL DEFAULT '[]',
    approve_fields TEXT,
    agent TEXT,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    proposal TEXT NOT NULL,
    quorum INTEGER NOT NULL DEFAULT 1,
    held_by TEXT,
    sending_by TEXT,
    sealed_request BYTEA,
    sealed_before BYTEA
)""",
    "CREATE INDEX approvals_status ON approvals (status, created_at)",
    "CREATE INDEX approvals_retry ON approvals (status, fingerprint)",
    "CREATE INDEX approvals_expiry ON approvals (status, expires_at)",
    "CREATE INDEX approvals_agent ON approvals (status, agent)",
    "CREATE INDEX approvals_sending ON approvals (status, sent_at)",
    "CREATE INDEX approvals_key ON approvals (agent, idempotency_key, created_at)"
    " WHERE idempotency_key IS NOT NULL",
    # detail is TEXT, not JSONB: its hash covers the exact text, key order included.
    """CREATE TABLE audit (
    seq BIGINT PRIMARY KEY,
    at TEXT COLLATE "C" NOT NULL,
    event TEXT NOT NULL,
    approval_id TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
    "CREATE INDEX audit_approval ON audit (approval_id, seq)",
    "CREATE TABLE replicas (id TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL,"
    " lease_until DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE changes (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " approval_id TEXT NOT NULL, status TEXT NOT NULL, event TEXT NOT NULL, replica TEXT,"
    " delivered_by TEXT)",
    "CREATE TABLE sessions (key_hash TEXT PRIMARY KEY, reviewer TEXT NOT NULL,"
    " csrf TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)",
)
# Version 2 (issue 17): as SQLite's version 3.
_V2 = statements(
    "CREATE TABLE deliveries (seq BIGINT NOT NULL, consumer TEXT NOT NULL,"
    " replica TEXT NOT NULL, PRIMARY KEY (seq, consumer))",
    "INSERT INTO deliveries (seq, consumer, replica) SELECT seq, 'webhooks', delivered_by"
    " FROM changes WHERE delivered_by IS NOT NULL",
    """CREATE TABLE escalations (approval_id TEXT NOT NULL, event TEXT NOT NULL,
    at TEXT COLLATE "C" NOT NULL, replica TEXT, PRIMARY KEY (approval_id, event))""",
    """CREATE TABLE away (reviewer TEXT PRIMARY KEY, until_at TEXT COLLATE "C" NOT NULL,
    delegate TEXT)""",
    """CREATE TABLE slack_messages (approval_id TEXT NOT NULL, channel TEXT NOT NULL,
    ts TEXT NOT NULL, posted_at TEXT COLLATE "C" NOT NULL, PRIMARY KEY (approval_id, channel))""",
    "CREATE TABLE slack_signatures (signature TEXT PRIMARY KEY,"
    " expires DOUBLE PRECISION NOT NULL)",
)
MIGRATIONS: list[Migration] = [_V1, _V2]


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(SqlStore):
    NOW = "extract(epoch FROM clock_timestamp())::float8"
    GROUPS = "(proposal::json -> 'reviewer_groups')::text"
    TIEBREAK = "pos"

    def __init__(self, url: str, *, audit_key: bytes | None = None,
                 lease: float = DEFAULT_LEASE, pool_size: int = 10,
                 checkout_timeout: float = CHECKOUT_TIMEOUT) -> None:
        super().__init__(audit_key=audit_key, lease=lease)
        self.url = url
        self._pool_size = pool_size
        # How long a write waits for a pooled connection before it is refused (503), like
        # SQLite's busy timeout: limits.store_timeout.
        self._checkout_timeout = checkout_timeout
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._beating: Connection | None = None  # heartbeats' own connection, see heartbeat
        self._beat_lock = asyncio.Lock()

    @property
    def location(self) -> str:
        return without_password(self.url)

    def _connect_kwargs(self) -> dict[str, Any]:
        return {"connect_timeout": CONNECT_TIMEOUT,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}

    async def open(self) -> None:
        """Migrate on one direct connection first: an unreachable server or a wrong database
        fails at once with the server's own words, not after the pool's checkout timeout."""
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row, **self._connect_kwargs())
            async with conn, conn.transaction():
                tx = _PostgresTx(conn)
                await tx.run(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
                await self._migrate(tx, MIGRATIONS)
        except (psycopg.Error, OSError, StoreError) as exc:
            raise StoreError(f"cannot reach the store at {self.location}: {exc}") from exc
        self._pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self._pool_size, open=False,
            kwargs={"autocommit": True, "row_factory": dict_row, **self._connect_kwargs()},
            timeout=self._checkout_timeout, check=AsyncConnectionPool.check_connection,
            name="hitl-store")
        try:
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
            await self._start()
        except (psycopg.Error, OSError, StoreError) as exc:
            await self.close()
            raise StoreError(f"cannot open the store at {self.location}: {exc}") from exc
        self._listener = asyncio.create_task(self._listen(), name="hitl-store-listen")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._stop_beating()
        if self._pool is not None:
            if not self._pool.closed:
                await self._retire()
            await self._pool.close()
            self._pool = None

    def _opened(self) -> AsyncConnectionPool[Connection]:
        if self._pool is None:
            raise StoreError(f"the store at {self.location} is not open")
        return self._pool

    async def _write(self, work: Work[T], *, serialise: bool = True) -> T:
        pool = self._opened()
        try:
            async with pool.connection() as conn, conn.transaction():
                tx = _PostgresTx(conn)
                if serialise:
                    await conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
                outcome = await work(tx)
                if tx.changes:  # delivered at commit, to every replica listening
                    await conn.execute("SELECT pg_notify(%s, %s)",
                                       (CHANNEL, str(max(tx.changes))))
        except psycopg.Error as exc:
            raise StoreError(f"store write failed at {self.location}: {exc}") from exc
        self._committed(tx)
        return outcome

    async def _read(self, work: Work[T]) -> T:
        pool = self._opened()
        try:
            async with pool.connection() as conn:
                return await work(_PostgresTx(conn))
        except psycopg.Error as exc:
            raise StoreError(f"store read failed at {self.location}: {exc}") from exc

    async def heartbeat(self) -> None:
        """On a connection of its own: a lease must never wait behind the pool's queue of
        writers (a burst of decisions holds every pooled connection waiting for the write
        lock), or a busy replica's lease would run out and others take over its writes."""
        async with self._beat_lock:
            try:
                if self._beating is None or self._beating.closed:
                    self._beating = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, row_factory=dict_row,
                        **self._connect_kwargs())
                await self._beat(_PostgresTx(self._beating))
            except psycopg.Error as exc:
                await self._stop_beating()
                raise StoreError(f"heartbeat failed at {self.location}: {exc}") from exc

    async def _stop_beating(self) -> None:
        if self._beating is not None:
            with contextlib.suppress(psycopg.Error):
                await self._beating.close()
            self._beating = None

    async def _listen(self) -> None:
        """Wake this process's feed readers on every replica's commits, for ever."""
        lost = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             **self._connect_kwargs())
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if lost:  # what committed while nobody listened: readers catch up now
                        self._wake(None)
                    async for note in conn.notifies():
                        self._wake(int(note.payload) if note.payload.isdigit() else None)
            except (psycopg.Error, OSError) as exc:
                if not lost:
                    logger.warning("store %s: change notifications lost (%s); reconnecting",
                                   self.location, exc)
            lost = True
            await asyncio.sleep(RELISTEN_DELAY)
