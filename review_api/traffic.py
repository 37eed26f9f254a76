"""The traffic record: one row of metadata per request through the proxy, for security teams.

What a row is, how filters and query strings read, and what every backend offers
(`TrafficStore`) live here; the backends are `traffic_sqlite.SqliteTrafficStore` (its own
file next to the approvals database, so pruning it never touches the hash-chained audit log
and its volume never competes with holds for the approvals' write lock) and
`traffic_pg.PostgresTrafficStore` (the `traffic` table of the approvals' PostgreSQL database,
shared by every replica). `traffic_store_from_url` picks one from `--store`.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from review_api.models import parse_moment

READS = ("GET", "HEAD", "OPTIONS")  # with decision "passed": what went through as a read
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


class Dialect(NamedTuple):
    """What the backends' SQL differs in; the rest of a query is shared text."""

    param: str  # the driver's placeholder
    votes: str  # the approval's votes as JSON text
    approved_by: str  # one parameter, the reviewer: among the approvals' approving votes
    approvers: str  # one parameter, the count of approving votes


SQLITE = Dialect(
    param="?",
    votes="a.votes",
    approved_by="EXISTS (SELECT 1 FROM json_each(a.votes) WHERE "
                "json_extract(value, '$.reviewer') = ? AND "
                "json_extract(value, '$.decision') = 'approve')",
    approvers="a.id IS NOT NULL AND (SELECT count(*) FROM json_each(a.votes) "
              "WHERE json_extract(value, '$.decision') = 'approve') = ?")
# votes::jsonb whether the approvals store keeps them as jsonb or text.
POSTGRES = Dialect(
    param="%s",
    votes="a.votes::text",
    approved_by="EXISTS (SELECT 1 FROM jsonb_array_elements(a.votes::jsonb) AS v WHERE "
                "v->>'reviewer' = %s AND v->>'decision' = 'approve')",
    approvers="a.id IS NOT NULL AND (SELECT count(*) FROM jsonb_array_elements(a.votes::jsonb)"
              " AS v WHERE v->>'decision' = 'approve') = %s")


@dataclass(frozen=True)
class TrafficFilter:
    """Every field given must match; a tuple matches any of its values."""

    agent: tuple[str, ...] = ()
    no_agent: bool = False  # only requests no agent was named for
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

    def where(self, dialect: Dialect = SQLITE) -> tuple[str, list[Any]]:
        """A WHERE clause over `traffic t LEFT JOIN approvals a`, and its parameters."""
        p = dialect.param
        clauses: list[str] = []
        params: list[Any] = []
        for column in ("agent", "host", "system", "object_type", "method", "decision"):
            values = getattr(self, column)
            if values:
                clauses.append(f"t.{column} IN ({', '.join(p for _ in values)})")
                params.extend(value.lower() if column == "host" else value for value in values)
        if self.no_agent:
            clauses.append("t.agent IS NULL")
        for column in ("record_id", "approval_id", "source"):
            if (value := getattr(self, column)) is not None:
                clauses.append(f"t.{column} = {p}")
                params.append(value)
        if self.status is not None and (found := _STATUS.match(self.status)):
            if found.group(1):
                low = int(found.group(1)) * 100
                clauses.append(f"t.status BETWEEN {p} AND {p}")
                params.extend((low, low + 99))
            else:
                clauses.append(f"t.status = {p}")
                params.append(int(self.status))
        if self.since is not None:
            clauses.append(f"t.at >= {p}")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"t.at < {p}")
            params.append(self.until)
        if self.risk in RISK_FLAGS:
            clauses.append(f"t.risk_flags LIKE {p}")
            params.append(f"%,{self.risk},%")
        elif self.risk in RISK_LEVELS:
            levels = RISK_LEVELS[RISK_LEVELS.index(self.risk):]
            clauses.append(f"t.risk_level IN ({', '.join(p for _ in levels)})")
            params.extend(levels)
        if self.approved_by is not None:
            clauses.append(dialect.approved_by)
            params.append(self.approved_by)
        if self.approvers is not None:
            clauses.append(dialect.approvers)
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


class _Row(Protocol):
    """A result row by column name: sqlite3.Row and psycopg's dict rows both are."""

    def __getitem__(self, key: str, /) -> Any: ...


def page_sql(dialect: Dialect, where: TrafficFilter, approvals: str, *, after: int | None,
             newest_first: bool, limit: int) -> tuple[str, list[Any]]:
    """One page of entries with their approval as it stands now, in either dialect.

    `approvals` is the relation to join (a table name, or an empty one when there is none).
    """
    clause, params = where.where(dialect)
    if after is not None:
        clause += (" AND " if clause else " WHERE ") + (
            f"t.id < {dialect.param}" if newest_first else f"t.id > {dialect.param}")
        params.append(after)
    columns = ", ".join(f"t.{name}" for name in ("id", *COLUMNS))
    sql = (f"SELECT {columns}, a.status AS approval_status, "
           "a.decided_by AS approval_decided_by, "
           f"{dialect.votes} AS approval_votes "
           f"FROM traffic t LEFT JOIN {approvals} a ON a.id = t.approval_id"
           f"{clause} ORDER BY t.id {'DESC' if newest_first else 'ASC'} LIMIT {dialect.param}")
    return sql, [*params, limit]


def entry(row: _Row) -> dict[str, Any]:
    """A result row as the API shows it: a URL, a list of flags, the approval's summary."""
    found = {name: row[name] for name in ("id", *COLUMNS)}
    default_port = 443 if found["scheme"] == "https" else 80
    host = f"[{found['host']}]" if ":" in found["host"] else found["host"]  # IPv6
    netloc = host if found["port"] == default_port else f"{host}:{found['port']}"
    found["url"] = f"{found['scheme']}://{netloc}{found['path']}"
    found["risk_flags"] = [flag for flag in (found["risk_flags"] or "").split(",") if flag]
    found["approval"] = None
    if found["approval_id"] is not None and row["approval_status"] is not None:
        votes = json.loads(row["approval_votes"] or "[]")
        found["approval"] = {
            "status": row["approval_status"], "decided_by": row["approval_decided_by"],
            "approvers": [vote["reviewer"] for vote in votes if vote.get("decision") == "approve"]}
    return found


def _storable_text(value: str) -> str:
    """Text every database takes: no NUL (PostgreSQL refuses it), no lone surrogates (no
    UTF-8 encoding has them). One odd header value must not fail a whole batch."""
    if value.isascii() and "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def storable(row: TrafficRow) -> TrafficRow:
    """The row with every text field storable (most rows come back unchanged, not copied)."""
    if all(not isinstance(value, str) or (value.isascii() and "\x00" not in value)
           for value in row):
        return row
    return TrafficRow(*(_storable_text(value) if isinstance(value, str) else value
                        for value in row))


class TrafficStore(ABC):
    """The traffic record, whichever database holds it. Writes come in batches from the
    proxy's recorder; reads (the API, exports) never wait on them."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the record is, for messages (a path, or a URL without its password)."""

    @abstractmethod
    async def open(self, read_only: bool = False) -> None:
        """Connect and create or upgrade the schema; read-only serves exports of a stopped
        proxy's data without writing to it. TrafficError on failure."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def append(self, rows: Sequence[TrafficRow]) -> None:
        """One transaction per batch: a thousand rows cost about what one would. TrafficError
        (its message says "full" when the record has no room) and nothing written."""

    @abstractmethod
    async def probe(self) -> None:
        """Writes a sizeable row and takes it back: whether a batch could land now (after a
        failure). TrafficError when it could not."""

    @abstractmethod
    async def query(self, where: TrafficFilter, *, limit: int = 100, after: int | None = None,
                    newest_first: bool = True) -> list[dict[str, Any]]:
        """A page of entries; `after` is the last id of the previous page."""

    async def iterate(self, where: TrafficFilter, page: int = 1000
                      ) -> AsyncIterator[dict[str, Any]]:
        """Every matching entry, oldest first, a page at a time (exports of any size)."""
        after: int | None = None
        while True:
            entries = await self.query(where, limit=page, after=after, newest_first=False)
            for found in entries:
                yield found
            if len(entries) < page:
                return
            after = entries[-1]["id"]

    async def recent_reads(self, agent: str | None, before: str, within: float,
                           limit: int = 20) -> list[TrafficEntry]:
        """What the agent looked at in the `within` seconds before `before` (a held write's
        created_at), newest first: reads the proxy passed, by the same agent (None: by
        requests no agent was named for). A reviewer weighs a write by what it was based on.
        """
        until = parse_moment(before)
        since = datetime.fromisoformat(until) - timedelta(seconds=max(within, 0.0))
        where = TrafficFilter(agent=(agent,) if agent is not None else (),
                              no_agent=agent is None, method=READS, decision=("passed",),
                              since=parse_moment(since.isoformat()), until=until)
        found = await self.query(where, limit=limit, newest_first=True)
        return [TrafficEntry.model_validate(item) for item in found]

    @abstractmethod
    async def size(self) -> int:
        """Bytes the entries take now: what `retention.max_size` bounds, so it shrinks when
        entries are pruned."""

    @abstractmethod
    async def count(self) -> int: ...

    @abstractmethod
    async def prune(self, max_age: float | None, max_bytes: int | None,
                    now: datetime | None = None, chunk: int = 5000) -> int:
        """Deletes the oldest entries beyond the bounds (age in seconds, `size()` in bytes),
        a chunk per transaction, and returns how many went."""


TRAFFIC_FILE = "traffic.sqlite3"  # in the data dir, for the SQLite backend
APPROVALS_FILE = "hitl.sqlite3"  # the approvals store's default file in the data dir


def _sqlite_path(url: str) -> Path:
    """The approvals file a SQLite `--store` names, read as the approvals store reads it:
    sqlite:///abs/path, sqlite:rel/path or a plain path."""
    if url.lower().startswith("sqlite:"):
        return Path(url.split("://", 1)[1] if "://" in url else url.split(":", 1)[1])
    return Path(url)


def traffic_store_from_url(url: str | None, data_dir: Path, *,
                           max_file_bytes: int | None = None, busy_timeout: float = 5.0,
                           pool_size: int = 4) -> TrafficStore:
    """The traffic record that goes with `--store URL` (not opened yet).

    None, a path or sqlite: its own file, data_dir/traffic.sqlite3, joined with the approvals
    file the URL names (data_dir/hitl.sqlite3 by default).
    postgresql:// (or postgres://): the `traffic` table of that database, which every replica
    shares. `max_file_bytes` (traffic.max_file_size) bounds the SQLite file; PostgreSQL has no
    file to bound, so it is refused there rather than silently not enforced.
    """
    scheme = urlsplit(url).scheme.lower() if url and url.strip() else ""
    if scheme in ("", "sqlite") or len(scheme) == 1:  # a Windows drive letter is no scheme
        from review_api.traffic_sqlite import SqliteTrafficStore

        approvals = _sqlite_path(url) if url and url.strip() else data_dir / APPROVALS_FILE
        return SqliteTrafficStore(data_dir / TRAFFIC_FILE, approvals=approvals,
                                  max_file_bytes=max_file_bytes, busy_timeout=busy_timeout)
    if scheme in ("postgresql", "postgres"):
        if max_file_bytes is not None:
            raise TrafficError(
                "traffic.max_file_size bounds the SQLite traffic file; with a postgresql:// "
                "store bound the record with traffic.retention.max_size (and the database's "
                "disk) instead")
        from review_api.traffic_pg import PostgresTrafficStore

        assert url is not None
        return PostgresTrafficStore(url, busy_timeout=busy_timeout, pool_size=pool_size)
    raise TrafficError(f"--store {scheme}://...: unknown store scheme {scheme!r}; use a SQLite "
                       "file path or postgresql://user@host/db")
