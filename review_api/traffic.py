"""The traffic record: one row of metadata per request through the proxy, for security teams.

It lives in its own SQLite file, so pruning it can never touch the approvals' hash-chained
audit log, and its volume never competes with holds for the approvals' write lock. Writes come
in batches from the proxy's recorder; reads (the API, exports) use a second connection.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import quote

import aiosqlite
from pydantic import BaseModel, ConfigDict

from review_api.models import iso, parse_moment

DECISIONS = ("passed", "held", "allowed", "denied", "refused", "proxy")
RISK_FLAGS = ("money", "customer_facing", "destructive")
RISK_LEVELS = ("low", "medium", "high")


class TrafficRow(NamedTuple):
    """What the recorder writes; secrets are already masked by the time a row exists."""

    at: str  # ISO 8601 UTC with microseconds: compares as text
    method: str
    scheme: str
    host: str
    port: int
    path: str  # path and query, secrets in the query masked
    decision: str
    agent: str | None = None
    task: str | None = None
    http_version: str | None = None
    system: str | None = None
    object_type: str | None = None
    record_id: str | None = None
    operation: str | None = None
    approval_id: str | None = None
    source: str = "agent"  # agent | proxy (an approved write the proxy sent after a 202)
    status: int | None = None  # what the agent was answered
    upstream_status: int | None = None  # None: nothing reached upstream
    request_bytes: int = 0
    response_bytes: int = 0
    duration_ms: float | None = None
    error: str | None = None
    request_type: str | None = None
    response_type: str | None = None
    request_body: str | None = None  # masked, only when the config asks for bodies
    response_body: str | None = None
    risk_level: str | None = None
    risk_flags: str | None = None  # ",money,destructive," so a flag is found with LIKE


COLUMNS = TrafficRow._fields

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


class TrafficError(RuntimeError):
    """The traffic record could not be written or read (a full disk, a broken file)."""


class ApprovalSummary(BaseModel):
    status: str | None = None
    decided_by: str | None = None
    approvers: list[str] = []


class TrafficEntry(BaseModel):
    """One request as the API and the exports show it."""

    model_config = ConfigDict(extra="forbid")

    id: int
    at: str
    agent: str | None
    task: str | None
    method: str
    scheme: str
    host: str
    port: int
    path: str
    url: str
    http_version: str | None
    system: str | None
    object_type: str | None
    record_id: str | None
    operation: str | None
    decision: Literal["passed", "held", "allowed", "denied", "refused", "proxy"]
    approval_id: str | None
    approval: ApprovalSummary | None  # the approval as it stands now, for held writes
    source: Literal["agent", "proxy"]
    status: int | None
    upstream_status: int | None
    request_bytes: int
    response_bytes: int
    duration_ms: float | None
    error: str | None
    request_type: str | None
    response_type: str | None
    request_body: str | None
    response_body: str | None
    risk_level: str | None
    risk_flags: list[str]


_STATUS = re.compile(r"^([1-5])xx$|^([1-5]\d\d)$")
@dataclass(frozen=True)
class TrafficFilter:
    """Every field given must match; a tuple matches any of its values."""

    agent: tuple[str, ...] = ()
    host: tuple[str, ...] = ()
    system: tuple[str, ...] = ()
    object_type: tuple[str, ...] = ()
    method: tuple[str, ...] = ()
    decision: tuple[str, ...] = ()
    record_id: str | None = None
    approval_id: str | None = None
    status: str | None = None  # "404" or "4xx"
    since: str | None = None  # ISO, inclusive
    until: str | None = None  # ISO, exclusive
    risk: str | None = None  # a flag (money, ...) or a least level (medium, high)
    approved_by: str | None = None  # a reviewer among the approvers of the held write
    approvers: int | None = None  # exactly this many reviewers approved it
    source: str | None = None

    def problems(self) -> list[str]:
        found = []
        if bad := sorted(set(self.decision) - set(DECISIONS)):
            found.append(f"decision {bad}: expected one of {list(DECISIONS)}")
        if self.status is not None and not _STATUS.match(self.status):
            found.append(f"status {self.status!r}: expected a code (403) or a class (4xx)")
        if self.risk is not None and self.risk not in RISK_FLAGS + RISK_LEVELS:
            found.append(f"risk {self.risk!r}: expected one of {list(RISK_FLAGS + RISK_LEVELS)}")
        if self.source is not None and self.source not in ("agent", "proxy"):
            found.append(f"source {self.source!r}: expected agent or proxy")
        return found

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("agent", "host", "system", "object_type", "method", "decision"):
            values = getattr(self, column)
            if values:
                clauses.append(f"t.{column} IN ({', '.join('?' for _ in values)})")
                params.extend(value.lower() if column == "host" else value for value in values)
        for column in ("record_id", "approval_id", "source"):
            if (value := getattr(self, column)) is not None:
                clauses.append(f"t.{column} = ?")
                params.append(value)
        if self.status is not None and (found := _STATUS.match(self.status)):
            if found.group(1):
                low = int(found.group(1)) * 100
                clauses.append("t.status BETWEEN ? AND ?")
                params.extend((low, low + 99))
            else:
                clauses.append("t.status = ?")
                params.append(int(self.status))
        if self.since is not None:
            clauses.append("t.at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("t.at < ?")
            params.append(self.until)
        if self.risk in RISK_FLAGS:
            clauses.append("t.risk_flags LIKE ?")
            params.append(f"%,{self.risk},%")
        elif self.risk in RISK_LEVELS:
            levels = RISK_LEVELS[RISK_LEVELS.index(self.risk):]
            clauses.append(f"t.risk_level IN ({', '.join('?' for _ in levels)})")
            params.extend(levels)
        if self.approved_by is not None:
            clauses.append("EXISTS (SELECT 1 FROM json_each(a.votes) WHERE "
                           "json_extract(value, '$.reviewer') = ? AND "
                           "json_extract(value, '$.decision') = 'approve')")
            params.append(self.approved_by)
        if self.approvers is not None:
            clauses.append("a.id IS NOT NULL AND (SELECT count(*) FROM json_each(a.votes) "
                           "WHERE json_extract(value, '$.decision') = 'approve') = ?")
            params.append(self.approvers)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


REPEATABLE = ("agent", "host", "system", "object_type", "method", "decision")
FILTERS = ("record_id", "approval_id", "status", "since", "until", "risk", "approved_by",
           "approvers", "source")
PAGING = ("limit", "cursor", "order")
TrafficQuery = tuple[TrafficFilter, int, int | None, bool]  # filter, limit, cursor, newest first


class QueryParams(Protocol):
    def get(self, key: str) -> str | None: ...
    def getlist(self, key: str) -> list[str]: ...


def parse_query(params: QueryParams) -> TrafficQuery:
    """Filter, page size, cursor and order from a query string; ValueError names each problem."""
    single = {name: params.get(name) for name in (*FILTERS, *PAGING)}
    problems = [f"{name} is given more than once" for name in single
                if len(params.getlist(name)) > 1]
    moments: dict[str, str | None] = {"since": None, "until": None}
    for name in moments:
        try:
            raw_moment = single[name]
            moments[name] = parse_moment(raw_moment) if raw_moment is not None else None
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    numbers: dict[str, int | None] = {}
    for name, low, high, default in (("limit", 1, 1000, 100), ("cursor", 0, 2**62, None),
                                     ("approvers", 0, 100, None)):
        raw = single[name]
        numbers[name] = default
        if raw is not None and raw.isascii() and raw.isdigit() and low <= int(raw) <= high:
            numbers[name] = int(raw)
        elif raw is not None:
            problems.append(f"{name} must be a whole number from {low} to {high}")
    if single["order"] not in (None, "asc", "desc"):
        problems.append("order must be asc or desc")
    where = TrafficFilter(
        **{name: tuple(params.getlist(name)) for name in REPEATABLE},
        record_id=single["record_id"], approval_id=single["approval_id"],
        status=single["status"], since=moments["since"], until=moments["until"],
        risk=single["risk"], approved_by=single["approved_by"],
        approvers=numbers["approvers"], source=single["source"])
    problems += where.problems()
    if problems:
        raise ValueError("; ".join(problems))
    return where, numbers["limit"] or 100, numbers["cursor"], single["order"] != "asc"


def _entry(row: sqlite3.Row) -> dict[str, Any]:
    entry = {name: row[name] for name in ("id", *COLUMNS)}
    default_port = 443 if entry["scheme"] == "https" else 80
    host = f"[{entry['host']}]" if ":" in entry["host"] else entry["host"]  # IPv6
    netloc = host if entry["port"] == default_port else f"{host}:{entry['port']}"
    entry["url"] = f"{entry['scheme']}://{netloc}{entry['path']}"
    entry["risk_flags"] = [flag for flag in (entry["risk_flags"] or "").split(",") if flag]
    entry["approval"] = None
    if entry["approval_id"] is not None and row["approval_status"] is not None:
        votes = json.loads(row["approval_votes"] or "[]")
        entry["approval"] = {
            "status": row["approval_status"], "decided_by": row["approval_decided_by"],
            "approvers": [vote["reviewer"] for vote in votes if vote.get("decision") == "approve"]}
    return entry


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


_NO_APPROVALS = "CREATE TABLE IF NOT EXISTS ap.approvals (id TEXT, status TEXT, decided_by TEXT," \
                " votes TEXT)"


class TrafficStore:
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
                    await db.executemany(_INSERT, rows)  # a NamedTuple is its own row
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
        clause, params = where.where()
        if after is not None:
            clause += (" AND " if clause else " WHERE ") + ("t.id < ?" if newest_first
                                                            else "t.id > ?")
            params.append(after)
        sql = ("SELECT t.*, a.status AS approval_status, a.decided_by AS approval_decided_by,"
               " a.votes AS approval_votes FROM traffic t"
               " LEFT JOIN ap.approvals a ON a.id = t.approval_id"
               f"{clause} ORDER BY t.id {'DESC' if newest_first else 'ASC'} LIMIT ?")
        try:
            async with db.execute(sql, (*params, limit)) as cursor:
                return [_entry(row) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise TrafficError(f"cannot read the traffic record: {exc}") from exc

    async def iterate(self, where: TrafficFilter, page: int = 1000
                      ) -> AsyncIterator[dict[str, Any]]:
        """Every matching entry, oldest first, a page at a time (exports of any size)."""
        after: int | None = None
        while True:
            entries = await self.query(where, limit=page, after=after, newest_first=False)
            for entry in entries:
                yield entry
            if len(entries) < page:
                return
            after = entries[-1]["id"]

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
