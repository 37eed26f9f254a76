"""The traffic record in PostgreSQL: the `traffic` table of the approvals' database.

Every replica appends to the same table, so `/api/traffic` on any replica answers for all of
them, and a held write's entry joins the `approvals` table directly (no attached file).

PostgreSQL keeps the space of deleted rows for reuse (VACUUM) rather than handing it back,
so the table's disk footprint (`footprint()`, pg_total_relation_size) does not shrink when
entries are pruned. `size()`, which `retention.max_size` bounds, is what the live entries
take: each row's stored bytes (compressed as stored, pg_column_size) plus a per-row
allowance for its tuple header and index entries. The footprint then settles near the bound
plus what arrives between two prunes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from review_api.models import iso
from review_api.store.postgres import without_password
from review_api.traffic import (
    COLUMNS,
    POSTGRES,
    TrafficError,
    TrafficFilter,
    TrafficRow,
    TrafficStore,
    entry,
    page_sql,
    storable,
)

# `at` is ISO text compared as text: bytewise ("C"), whatever the database's locale sorts.
_TYPES = {"at": 'TEXT COLLATE "C"', "port": "INTEGER", "status": "INTEGER",
          "upstream_status": "INTEGER", "request_bytes": "BIGINT", "response_bytes": "BIGINT",
          "duration_ms": "DOUBLE PRECISION"}
_NOT_NULL = ("at", "method", "scheme", "host", "port", "path", "decision")
# Ordered: a database at version N gets migrations N+1.. at open, under the migration lock.
MIGRATIONS: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS traffic ("
    " id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    + ", ".join(f"{name} {_TYPES.get(name, 'TEXT')}"
                f"{' NOT NULL' if name in _NOT_NULL else ''}" for name in COLUMNS)
    + ");"
    " CREATE INDEX IF NOT EXISTS traffic_at ON traffic (at);"
    " CREATE INDEX IF NOT EXISTS traffic_agent ON traffic (agent, id);"
    " CREATE INDEX IF NOT EXISTS traffic_host ON traffic (host, id);"
    " CREATE INDEX IF NOT EXISTS traffic_decision ON traffic (decision, id);"
    " CREATE INDEX IF NOT EXISTS traffic_approval ON traffic (approval_id);",
)
_VERSION_TABLE = "traffic_schema"
# pg_advisory locks are one namespace per database: keys of our own, apart from the
# approvals store's.
MIGRATION_LOCK = 0x7472_6166_6669_6301  # "traffic\x01"
PRUNE_LOCK = 0x7472_6166_6669_6302

_COPY = f"COPY traffic ({', '.join(COLUMNS)}) FROM STDIN"
_INSERT = (f"INSERT INTO traffic ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('%s' for _ in COLUMNS)})")
# A row's bytes beyond its values: tuple header, line pointer and its entries in the six
# indexes (about 320), and for a body stored out of line (TOAST: a row over 2 KB moves its big
# values out) about 400 per 1996-byte chunk. Measured on fresh tables of rows as the recorder
# writes them, with and without bodies; tests/test_traffic.py checks size() against the
# footprint.
ROW_OVERHEAD = 320
TOAST_CHUNK = 1996
TOAST_CHUNK_OVERHEAD = 400
TOAST_FROM = 1900  # a body this big leaves the row once the row's other values join it
_BODIES = ("request_body", "response_body")
_ROW_BYTES = (f"({ROW_OVERHEAD} + "
              + " + ".join(f"coalesce(pg_column_size({name}), 0)" for name in COLUMNS)
              + "".join(f" + CASE WHEN pg_column_size({name}) >= {TOAST_FROM} THEN "
                        f"(pg_column_size({name}) + {TOAST_CHUNK - 1}) / {TOAST_CHUNK} * "
                        f"{TOAST_CHUNK_OVERHEAD} ELSE 0 END" for name in _BODIES)
              + ")")
# An empty relation shaped like the approvals table, for a database the approvals store has not
# set up (the join then finds nothing, as SQLite's in-memory stand-in does).
_NO_APPROVALS = ("(SELECT NULL::text AS id, NULL::text AS status, NULL::text AS decided_by, "
                 "NULL::text AS votes WHERE false)")
# A query that runs longer is cancelled by the server (prune lifts it for its one long scan);
# keepalives find a server that vanished without closing the connection (a dead host).
STATEMENT_TIMEOUT_MS = 30_000
_CONNECTION = {"autocommit": True, "row_factory": dict_row,
               "application_name": "hitl-proxy traffic",
               "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
               "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3, "tcp_user_timeout": 20_000}
PROBE_ROW = TrafficRow(at="", method="", scheme="", host="", port=0, path="", decision="probe",
                       response_body="x" * 65536)


class PostgresTrafficStore(TrafficStore):
    """The record of every replica, in one table; a small pool of its own connections."""

    def __init__(self, url: str, *, busy_timeout: float = 5.0, pool_size: int = 4) -> None:
        self.url = url
        self._busy_timeout = busy_timeout
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._read_only = False
        self._approvals = _NO_APPROVALS

    @property
    def location(self) -> str:
        return without_password(self.url)

    def _failure(self, doing: str, exc: BaseException) -> TrafficError:
        """A TrafficError that says what failed and where; "full" when the disk is."""
        if isinstance(exc, errors.DiskFull):
            return TrafficError(f"the traffic record is full at {self.location}: {exc}")
        reason = str(exc).strip() or type(exc).__name__
        return TrafficError(f"cannot {doing} the traffic record at {self.location}: {reason}")

    async def open(self, read_only: bool = False) -> None:
        self._read_only = read_only
        pool = AsyncConnectionPool(
            self.url, min_size=1, max_size=self._pool_size, open=False,
            timeout=self._busy_timeout, name="hitl-traffic",
            kwargs={**_CONNECTION, "connect_timeout": max(1, round(self._busy_timeout))},
            # A connection the server dropped (a restart) is found and replaced before use.
            check=AsyncConnectionPool.check_connection)
        self._pool = pool  # before open: close() must stop its workers if open fails
        try:
            await pool.open(wait=True, timeout=self._busy_timeout)
            async with self._connection() as conn:
                if read_only:
                    await self._check_table(conn)
                else:
                    await self._migrate(conn)
                await self._find_approvals(conn)
        except TrafficError:
            await self.close()
            raise
        except (psycopg.Error, OSError) as exc:
            await self.close()
            raise self._failure("open", exc) from exc

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Bring the schema up to date; two replicas starting together take turns."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {_VERSION_TABLE} "
                               "(version INTEGER NOT NULL)")
            cursor = await conn.execute(f"SELECT max(version) AS v FROM {_VERSION_TABLE}")
            found = await cursor.fetchone()
            current = int(found["v"]) if found and found["v"] is not None else 0
            for version, migration in enumerate(MIGRATIONS[current:], current + 1):
                await conn.execute(migration)
                await conn.execute(f"INSERT INTO {_VERSION_TABLE} (version) VALUES (%s)",
                                   (version,))

    async def _check_table(self, conn: psycopg.AsyncConnection[Any]) -> None:
        cursor = await conn.execute("SELECT to_regclass('traffic') IS NOT NULL AS found")
        found = await cursor.fetchone()
        if not (found and found["found"]):
            raise TrafficError(f"no traffic record at {self.location}: no proxy has written "
                               "one to this database")

    async def _find_approvals(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Join the approvals table once the approvals store has created it."""
        if self._approvals != _NO_APPROVALS:
            return
        cursor = await conn.execute("SELECT to_regclass('approvals') IS NOT NULL AS found")
        found = await cursor.fetchone()
        if found and found["found"]:
            self._approvals = "approvals"

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None:
            raise TrafficError("the traffic record is not open")
        async with self._pool.connection() as conn:
            yield conn

    def _writable(self) -> None:
        if self._read_only:
            raise TrafficError(f"the traffic record at {self.location} was opened read-only")

    async def append(self, rows: Sequence[TrafficRow]) -> None:
        if not rows:
            return
        self._writable()
        try:
            async with self._connection() as conn, conn.transaction():
                cursor = conn.cursor()
                async with cursor.copy(_COPY) as copy:  # the fastest way in, one round trip
                    for row in rows:
                        await copy.write_row(storable(row))
        except (psycopg.Error, OSError) as exc:
            raise self._failure("write", exc) from exc

    async def probe(self) -> None:
        """The row carries 64 KiB, like SQLite's probe; rolled back, so nothing stays."""
        self._writable()
        try:
            async with self._connection() as conn, conn.transaction(force_rollback=True):
                await conn.execute(_INSERT, PROBE_ROW)
        except (psycopg.Error, OSError) as exc:
            raise self._failure("write", exc) from exc

    async def query(self, where: TrafficFilter, *, limit: int = 100, after: int | None = None,
                    newest_first: bool = True) -> list[dict[str, Any]]:
        """Ids come from one sequence for every replica; a page is in id order, which across
        replicas is the order rows were inserted (a batch still committing when a page is read
        can show up behind it: a follower of `order=asc` pages may see it one page late)."""
        try:
            async with self._connection() as conn:
                await self._find_approvals(conn)
                sql, params = page_sql(POSTGRES, where, self._approvals, after=after,
                                       newest_first=newest_first, limit=limit)
                cursor = await conn.execute(sql, params)
                return [entry(row) for row in await cursor.fetchall()]
        except (psycopg.Error, OSError) as exc:
            raise self._failure("read", exc) from exc

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            async with self._connection() as conn:
                cursor = await conn.execute(sql, params)
                found = await cursor.fetchone()
        except (psycopg.Error, OSError) as exc:
            raise self._failure("read", exc) from exc
        value = next(iter(found.values())) if found else None
        return int(value or 0)

    async def size(self) -> int:
        """The live entries' bytes (see the module's docstring); reads the whole table."""
        return await self._scalar(f"SELECT sum({_ROW_BYTES}) FROM traffic")

    async def footprint(self) -> int:
        """The table's bytes on disk, indexes and space kept for reuse included."""
        return await self._scalar("SELECT pg_total_relation_size('traffic')")

    async def count(self) -> int:
        return await self._scalar("SELECT count(*) FROM traffic")

    async def prune(self, max_age: float | None, max_bytes: int | None,
                    now: datetime | None = None, chunk: int = 5000) -> int:
        """One replica prunes at a time (the others find the lock taken and return 0);
        then VACUUM makes the freed space reusable at once instead of when autovacuum comes."""
        self._writable()
        deleted = 0
        try:
            async with self._connection() as conn:
                cursor = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got",
                                            (PRUNE_LOCK,))
                got = await cursor.fetchone()
                if not (got and got["got"]):
                    return 0
                try:
                    await conn.execute("SET statement_timeout = 0")  # one scan of the table
                    deleted = await self._prune_locked(conn, max_age, max_bytes, now, chunk)
                finally:
                    await conn.execute("RESET statement_timeout")
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK,))
                if deleted:
                    await conn.execute("VACUUM (SKIP_LOCKED) traffic")
        except (psycopg.Error, OSError) as exc:
            raise self._failure("prune", exc) from exc
        return deleted

    async def _prune_locked(self, conn: psycopg.AsyncConnection[Any], max_age: float | None,
                            max_bytes: int | None, now: datetime | None, chunk: int) -> int:
        deleted = 0
        if max_age is not None:
            cutoff = iso((now or datetime.now(UTC)) - timedelta(seconds=max_age))
            deleted += await self._delete_chunks(
                conn, "SELECT id FROM traffic WHERE at < %s ORDER BY id LIMIT %s", (cutoff,),
                chunk)
        if max_bytes is not None:
            # The newest entries that fit in max_bytes stay; the first one (newest first)
            # that does not, and every older one, go.
            cursor = await conn.execute(
                "SELECT id FROM (SELECT id, sum(" + _ROW_BYTES + ") OVER (ORDER BY id DESC "
                "ROWS UNBOUNDED PRECEDING) AS newer FROM traffic) AS kept "
                "WHERE newer > %s ORDER BY id DESC LIMIT 1", (max_bytes,))
            over = await cursor.fetchone()
            if over is not None:
                deleted += await self._delete_chunks(
                    conn, "SELECT id FROM traffic WHERE id <= %s ORDER BY id LIMIT %s",
                    (over["id"],), chunk)
        return deleted

    @staticmethod
    async def _delete_chunks(conn: psycopg.AsyncConnection[Any], select: str,
                             params: tuple[Any, ...], chunk: int) -> int:
        """A chunk per transaction (autocommit), so appends never wait long on a prune."""
        deleted = 0
        while True:
            cursor = await conn.execute(f"DELETE FROM traffic WHERE id IN ({select})",
                                        (*params, chunk))
            deleted += cursor.rowcount
            if cursor.rowcount < chunk:
                return deleted
