"""The traffic record in its own SQLite file, next to the approvals database.

Its own file, so pruning it can never touch the approvals' hash-chained audit log, and its
volume never competes with holds for the approvals' write lock. Reads attach the approvals
file read-only to show each held write's approval as it stands now. Writes come in batches
from the proxy's recorder on one connection; reads (the API, exports) use a second one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiosqlite

from review_api.models import iso
from review_api.traffic import (
    COLUMNS,
    SQLITE,
    TrafficError,
    TrafficFilter,
    TrafficRow,
    TrafficStore,
    entry,
    page_sql,
    storable,
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(COLUMNS)}
);
CREATE INDEX IF NOT EXISTS traffic_at ON traffic (at);
CREATE INDEX IF NOT EXISTS traffic_agent ON traffic (agent, id);
CREATE INDEX IF NOT EXISTS traffic_host ON traffic (host, id);
CREATE INDEX IF NOT EXISTS traffic_decision ON traffic (decision, id);
CREATE INDEX IF NOT EXISTS traffic_approval ON traffic (approval_id);
"""
_INSERT = (f"INSERT INTO traffic ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


_NO_APPROVALS = "CREATE TABLE IF NOT EXISTS ap.approvals (id TEXT, status TEXT, decided_by TEXT," \
                " votes TEXT)"


class SqliteTrafficStore(TrafficStore):
    """The embedded default: one file, one process."""

    def __init__(self, path: Path, approvals: Path | None = None,
                 max_file_bytes: int | None = None, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._approvals = approvals
        self._max_file_bytes = max_file_bytes
        self._busy_timeout = busy_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self, read_only: bool = False) -> None:
        """Read-only serves exports of a stopped proxy's data without writing to it."""
        try:
            if not read_only:
                await self._open_writer()
            reader = await aiosqlite.connect(_read_only_uri(self.path) if read_only else self.path,
                                             timeout=self._busy_timeout, isolation_level=None,
                                             uri=True)
            self._reader = reader
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA query_only=1")
            if self._approvals is not None and self._approvals.exists():
                await reader.execute("ATTACH DATABASE ? AS ap",
                                     (_read_only_uri(self._approvals),))
            else:
                await reader.execute("ATTACH DATABASE ':memory:' AS ap")
                await reader.execute("PRAGMA query_only=0")
                await reader.execute(_NO_APPROVALS)
                await reader.execute("PRAGMA query_only=1")
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise TrafficError(f"cannot open the traffic record at {self.path}: {exc}") from exc

    async def _open_writer(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(self.path, timeout=self._busy_timeout,
                                         isolation_level=None)
        self._writer = writer
        # Set before the first table exists; lets pruning hand space back to the disk.
        await writer.execute("PRAGMA auto_vacuum=INCREMENTAL")
        await writer.execute("PRAGMA journal_mode=WAL")
        await writer.execute("PRAGMA synchronous=NORMAL")
        await writer.executescript(_SCHEMA)
        if self._max_file_bytes is not None:
            async with writer.execute("PRAGMA page_size") as cursor:
                page_size = int((await cursor.fetchone() or [4096])[0])
            pages = max(self._max_file_bytes // page_size, 8)
            await writer.execute(f"PRAGMA max_page_count={pages}")

    @property
    def location(self) -> str:
        return str(self.path)

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            if connection is not None:
                await connection.close()
        self._writer = self._reader = None

    def _connection(self, which: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if which is None:
            raise TrafficError("the traffic record is not open")
        return which

    async def append(self, rows: Sequence[TrafficRow]) -> None:
        """One transaction per batch: a thousand rows cost about what one would."""
        if not rows:
            return
        db = self._connection(self._writer)
        async with self._write_lock:
            try:
                await db.execute("BEGIN")
                try:
                    await db.executemany(_INSERT, [storable(row) for row in rows])
                    await db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # SQLITE_FULL has already rolled it back
                        await db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise TrafficError(f"cannot write the traffic record: {exc}") from exc

    async def probe(self) -> None:
        """Writes a row and takes it back: whether a batch could land now (after a failure).

        The row carries 64 KiB, so a file with room for a few small rows still counts as full.
        """
        db = self._connection(self._writer)
        async with self._write_lock:
            try:
                await db.execute("BEGIN")
                try:
                    await db.execute(_INSERT, TrafficRow(at="", method="", scheme="", host="",
                                                         port=0, path="", decision="probe",
                                                         response_body="x" * 65536))
                finally:
                    if db.in_transaction:
                        await db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                raise TrafficError(f"cannot write the traffic record: {exc}") from exc

    async def query(self, where: TrafficFilter, *, limit: int = 100, after: int | None = None,
                    newest_first: bool = True) -> list[dict[str, Any]]:
        """A page of entries; `after` is the last id of the previous page."""
        db = self._connection(self._reader)
        sql, params = page_sql(SQLITE, where, "ap.approvals", after=after,
                               newest_first=newest_first, limit=limit)
        try:
            async with db.execute(sql, params) as cursor:
                return [entry(row) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise TrafficError(f"cannot read the traffic record: {exc}") from exc

    async def size(self) -> int:
        """Bytes in use (pages not on the free list)."""
        db = self._connection(self._writer)
        values = []
        for pragma in ("page_count", "freelist_count", "page_size"):
            async with db.execute(f"PRAGMA {pragma}") as cursor:
                values.append(int((await cursor.fetchone() or [0])[0]))
        return (values[0] - values[1]) * values[2]

    async def count(self) -> int:
        db = self._connection(self._writer)
        async with db.execute("SELECT count(*) FROM traffic") as cursor:
            return int((await cursor.fetchone() or [0])[0])

    async def prune(self, max_age: float | None, max_bytes: int | None,
                    now: datetime | None = None, chunk: int = 5000) -> int:
        """Deletes the oldest entries beyond the bounds, a chunk per transaction."""
        db = self._connection(self._writer)
        deleted = 0
        try:
            if max_age is not None:
                cutoff = iso((now or datetime.now(UTC)) - timedelta(seconds=max_age))
                while True:
                    removed = await self._delete(db, "SELECT id FROM traffic WHERE at < ? "
                                                 "ORDER BY id LIMIT ?", (cutoff, chunk))
                    deleted += removed
                    if removed < chunk:
                        break
            if max_bytes is not None:
                for _ in range(100):
                    used, rows = await self.size(), await self.count()
                    if used <= max_bytes or rows == 0:
                        break
                    # Rows are about the same size: drop the share that is over, and a tenth more.
                    share = min(1.0, (used - max_bytes) / used + 0.1)
                    deleted += await self._delete(
                        db, "SELECT id FROM traffic ORDER BY id LIMIT ?",
                        (max(1, min(chunk, int(rows * share))),))
            await db.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error as exc:
            raise TrafficError(f"cannot prune the traffic record: {exc}") from exc
        return deleted

    async def _delete(self, db: aiosqlite.Connection, select: str,
                      params: tuple[Any, ...]) -> int:
        async with self._write_lock:
            cursor = await db.execute(f"DELETE FROM traffic WHERE id IN ({select})", params)
            return cursor.rowcount
