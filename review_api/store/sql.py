"""The approvals store in the SQL that SQLite and PostgreSQL both speak.

Everything that does not depend on the database lives here once: building rows into Approvals,
the audit entries and their chain, the change feed rows, the lifecycle checks, the lease rules.
A backend supplies a connection (`Tx`), its schema migrations and the few expressions whose
dialects differ (the clock, a JSON path, a row order tie-break).

Queries use `?` placeholders; a backend rewrites them for its driver. Times an approval
carries are ISO 8601 text of one fixed width (models.iso) in both databases, so they compare
correctly as text and the audit's `at` is hashed exactly as stored. Leases are epoch seconds
from the database's own clock (`NOW`), so replicas on several machines agree on them.

Every transaction that changes an approval or appends to the audit chain is serialised
(SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock): the chain stays one chain, the
`max_pending` count cannot be raced, and the change feed's seq order is its commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from review_api import lifecycle
from review_api.models import (
    Approval,
    AuditEntry,
    Decision,
    Proposal,
    Result,
    Status,
    iso,
    utcnow,
)
from review_api.store.base import (
    DEFAULT_AUDIT_KEY,
    DEFAULT_LEASE,
    ESCALATION_EVENTS,
    GENESIS_HASH,
    KEY_REUSE_WINDOW,
    ApprovalStore,
    AuditHead,
    AuditRow,
    Away,
    Conflict,
    Full,
    HeadListener,
    NotFound,
    ReviewerSession,
    StatusChange,
    StoreError,
    entry_hash,
    new_replica_id,
)

logger = logging.getLogger("hitl_proxy")


class Row(Protocol):
    """A result row read by column name (a dict, or sqlite3.Row without copying it)."""

    def __getitem__(self, key: str, /) -> Any: ...


T = TypeVar("T")
AUDIT_COLUMNS = "seq, at, event, approval_id, actor, detail, prev_hash, hash"


class Tx(ABC):
    """One connection's view for one unit of work: a transaction for writes, or reads.

    It collects what the unit committed (the new audit head, the change feed seqs) for the
    store to announce after the commit, never before.
    """

    def __init__(self) -> None:
        self.head: AuditHead | None = None
        self.changes: list[int] = []

    @abstractmethod
    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abstractmethod
    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute; the number of rows changed."""


Work = Callable[[Tx], Awaitable[T]]
Migration = Callable[[Tx], Awaitable[None]]


def statements(*sql: str) -> Migration:
    """A migration that is only DDL/DML statements, run in order."""

    async def migrate(tx: Tx) -> None:
        for statement in sql:
            await tx.run(statement)

    return migrate


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def held_detail(proposal: Proposal) -> dict[str, Any]:
    """What the audit keeps of a new approval: enough to find it, nothing secret."""
    return {
        "system": proposal.system, "object_type": proposal.object_type,
        "record_id": proposal.record_id, "operation": proposal.operation,
        "method": proposal.method, "url": proposal.url,
        "fingerprint": proposal.fingerprint, "rule": proposal.rule,
        "risk": proposal.risk.level.value,
    }


def approval_from_row(row: Row) -> Approval:
    fields = json.loads(row["proposal"])
    fields.update(
        id=row["id"], status=row["status"], created_at=row["created_at"],
        expires_at=row["expires_at"], decided_at=row["decided_at"],
        decided_by=row["decided_by"], note=row["note"],
        result=json.loads(row["result"]) if row["result"] else None,
        votes=json.loads(row["votes"]),
        edits=json.loads(row["edits"]),
        approve_fields=json.loads(row["approve_fields"]) if row["approve_fields"] else None,
    )
    return Approval.model_validate(fields)


class SqlStore(ApprovalStore):
    """ApprovalStore over a backend's `Tx`; see the module docstring for the split."""

    # Epoch seconds now, by the database's clock.
    NOW: ClassVar[str]
    # `reviewer_groups` of the proposal JSON, as JSON text.
    GROUPS: ClassVar[str]
    # What orders approvals created in the same microsecond: insertion order.
    TIEBREAK: ClassVar[str]

    def __init__(self, *, audit_key: bytes | None, lease: float = DEFAULT_LEASE) -> None:
        self._audit_key = audit_key or DEFAULT_AUDIT_KEY
        self.replica = new_replica_id()
        self.lease = lease
        self._committed_head: AuditHead | None = None
        self._head_listeners: list[HeadListener] = []
        self._seen = 0  # the newest change seq this process knows committed
        self._changed = asyncio.Event()

    # -- what a backend provides ----------------------------------------------------------------

    @abstractmethod
    async def _write(self, work: Work[T], *, serialise: bool = True) -> T:
        """Run `work` in one transaction, then `_committed`. StoreError on database errors;
        the domain errors `work` raises (Conflict, Full, ...) roll back and pass through."""

    @abstractmethod
    async def _read(self, work: Work[T]) -> T:
        """Run `work` on committed data. StoreError on database errors."""

    def _committed(self, tx: Tx) -> None:
        """After a commit: tell the witness the new head, wake this process's feed readers."""
        if tx.head is not None:
            self._committed_head = tx.head
            for listener in list(self._head_listeners):
                try:
                    listener(*tx.head)
                except Exception:  # committed; a witness's failure must not undo that
                    logger.exception("audit head listener failed")
        if tx.changes:
            self._wake(max(tx.changes))

    def _wake(self, seq: int | None) -> None:
        """A change up to `seq` committed (None: maybe some did, e.g. after a reconnect)."""
        if seq is not None:
            self._seen = max(self._seen, seq)
        self._changed.set()
        self._changed = asyncio.Event()

    async def _migrate(self, tx: Tx, migrations: Sequence[Migration]) -> None:
        """Apply the migrations this database has not had yet, each recorded by number."""
        await tx.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = await tx.one("SELECT MAX(version) AS version FROM schema_version")
        current = int(row["version"] or 0) if row else 0
        if current > len(migrations):
            raise StoreError(f"its schema version {current} is newer than this hitl-proxy "
                             f"knows ({len(migrations)}): upgrade hitl-proxy")
        for version, migration in enumerate(migrations[current:], start=current + 1):
            await migration(tx)
            await tx.run("INSERT INTO schema_version (version) VALUES (?)", (version,))

    async def _start(self) -> None:
        """After migrations: register this replica and learn where the log and feed end."""
        await self.heartbeat()
        self._committed_head = await self.audit_head()
        self._seen = await self.last_change()

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._read(lambda tx: tx.one(sql, params))

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return await self._read(lambda tx: tx.all(sql, params))

    # -- the audit chain and the change feed, written inside a transaction ----------------------

    async def _audit(self, tx: Tx, event: str, approval_id: str | None, actor: str,
                     detail: dict[str, Any]) -> None:
        last = await tx.one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        # seq is counted here, not by a sequence: a rolled-back transaction leaves no gap
        # that verify would read as a deleted entry.
        seq, prev_hash = (int(last["seq"]) + 1, last["hash"]) if last else (1, GENESIS_HASH)
        at = iso(utcnow())
        detail_json = json.dumps(detail, sort_keys=True, default=str)
        digest = entry_hash(self._audit_key, prev_hash, at, event, approval_id, actor,
                            detail_json)
        await tx.run(f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (seq, at, event, approval_id, actor, detail_json, prev_hash, digest))
        tx.head = (seq, digest)

    async def _record(self, tx: Tx, approval_id: str, status: Status, event: str, actor: str,
                      detail: dict[str, Any]) -> None:
        """The audit entry and the change feed row of one change, in its transaction."""
        await self._audit(tx, event, approval_id, actor, detail)
        row = await tx.one("INSERT INTO changes (approval_id, status, event, replica)"
                           " VALUES (?, ?, ?, ?) RETURNING seq",
                           (approval_id, status.value, event, self.replica))
        assert row is not None
        tx.changes.append(int(row["seq"]))

    async def _transition(self, tx: Tx, approval_id: str, source: Status, target: Status,
                          actor: str, detail: dict[str, Any], *,
                          columns: dict[str, Any] | None = None, where: str = "",
                          where_params: Sequence[Any] = ()) -> bool:
        """source -> target if the approval is still in `source` (and `where` holds); False
        when it is not, so racing callers leave exactly one change."""
        lifecycle.check(source, target)
        values = {"status": target.value, **(columns or {})}
        if lifecycle.forgets_sealed(target):
            values |= {"sealed_request": None, "sealed_before": None}
        assignments = ", ".join(f"{name} = ?" for name in values)
        changed = await tx.run(
            f"UPDATE approvals SET {assignments} WHERE id = ? AND status = ?{where}",
            (*values.values(), approval_id, source.value, *where_params))
        if changed != 1:
            return False
        await self._record(tx, approval_id, target, target.value, actor, detail)
        return True

    async def _move(self, approval_id: str, source: Status, target: Status, actor: str,
                    detail: dict[str, Any], **transition: Any) -> Approval:
        moved = await self._write(lambda tx: self._transition(
            tx, approval_id, source, target, actor, detail, **transition))
        approval = await self.get(approval_id)
        if not moved:
            raise Conflict(approval)
        return approval

    def _live(self, column: str) -> str:
        """SQL: the replica named in `column` holds a lease that has not run out."""
        return (f"EXISTS (SELECT 1 FROM replicas WHERE replicas.id = approvals.{column}"
                f" AND replicas.lease_until > {self.NOW})")

    # -- approvals: writes ----------------------------------------------------------------------

    async def find_pending(self, fingerprint: str, agent: str | None,
                           idempotency_key: str | None) -> Approval | None:
        """Both must agree: a key reused for another body is not a retry (see key_in_use), and
        the same body under another key is a second, deliberate write (Stripe's rule)."""
        row = await self._one(
            "SELECT * FROM approvals WHERE status = ? AND fingerprint = ?"
            " AND agent IS NOT DISTINCT FROM ? AND idempotency_key IS NOT DISTINCT FROM ?"
            " ORDER BY created_at DESC LIMIT 1",
            (Status.pending.value, fingerprint, agent, idempotency_key))
        return approval_from_row(row) if row else None

    async def key_in_use(self, agent: str | None, idempotency_key: str,
                         within: float = KEY_REUSE_WINDOW) -> Approval | None:
        """A different fingerprint on the answer means the key is being reused for another
        request: the addon answers 409 rather than join or create."""
        row = await self._one(
            "SELECT * FROM approvals WHERE agent IS NOT DISTINCT FROM ? AND idempotency_key = ?"
            " AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
            (agent, idempotency_key, iso(utcnow() - timedelta(seconds=within))))
        return approval_from_row(row) if row else None

    async def create(self, proposal: Proposal, *, status: Status = Status.pending,
                     actor: str = "proxy", expires_at: datetime | None = None,
                     sealed_request: bytes | None = None, idempotency_key: str | None = None,
                     max_pending: int | None = None, sealed_before: bytes | None = None,
                     max_pending_per_agent: int | None = None,
                     held_here: bool = False) -> Approval:
        """Raises Full when `max_pending` writes wait in all, or `max_pending_per_agent` from
        this agent (`context.agent`; writes naming none count as one anonymous agent), so one
        agent flooding the queue cannot lock the others out."""
        lifecycle.check(None, status)
        approval = Approval(**proposal.model_dump(), id=str(uuid.uuid4()), status=status,
                            created_at=utcnow(), expires_at=expires_at)
        event = "held" if status is Status.pending else status.value

        async def insert(tx: Tx) -> None:
            if status is Status.pending:
                await self._check_room(tx, proposal.context.agent, max_pending,
                                       max_pending_per_agent)
            await tx.run(
                "INSERT INTO approvals (id, status, created_at, expires_at, fingerprint,"
                " proposal, sealed_request, agent, idempotency_key, sealed_before, quorum,"
                " held_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (approval.id, status.value, iso(approval.created_at),
                 iso(expires_at) if expires_at else None, proposal.fingerprint,
                 proposal.model_dump_json(), sealed_request, proposal.context.agent,
                 idempotency_key, sealed_before, proposal.quorum,
                 self.replica if held_here else None))
            await self._record(tx, approval.id, status, event, actor, held_detail(proposal))

        await self._write(insert)
        return approval

    @staticmethod
    async def _check_room(tx: Tx, agent: str | None, max_pending: int | None,
                          max_pending_per_agent: int | None) -> None:
        if max_pending is not None:
            row = await tx.one("SELECT COUNT(*) AS n FROM approvals WHERE status = ?",
                               (Status.pending.value,))
            waiting = int(row["n"]) if row else 0
            if waiting >= max_pending:
                raise Full(f"{waiting} writes are already waiting for review "
                           f"(limits.max_pending is {max_pending})")
        if max_pending_per_agent is not None:
            row = await tx.one("SELECT COUNT(*) AS n FROM approvals WHERE status = ?"
                               " AND agent IS NOT DISTINCT FROM ?", (Status.pending.value, agent))
            waiting = int(row["n"]) if row else 0
            if waiting >= max_pending_per_agent:
                who = f"agent {agent!r}" if agent is not None else "the anonymous agent"
                raise Full(f"{who} already has {waiting} writes waiting for review "
                           f"(limits.max_pending_per_agent is {max_pending_per_agent})")

    async def hold(self, approval_id: str) -> None:
        await self._write(lambda tx: tx.run("UPDATE approvals SET held_by = ? WHERE id = ?",
                                            (self.replica, approval_id)), serialise=False)

    async def unhold(self, approval_id: str) -> None:
        await self._write(lambda tx: tx.run(
            "UPDATE approvals SET held_by = NULL WHERE id = ? AND held_by = ?",
            (approval_id, self.replica)), serialise=False)

    async def log_event(self, event: str, approval_id: str | None, actor: str,
                        detail: dict[str, Any]) -> None:
        await self._write(lambda tx: self._audit(tx, event, approval_id, actor, detail))

    async def decide(self, approval_id: str, decision: Decision, actor: str,
                     note: str | None, edits: list[dict[str, Any]] | None = None,
                     approve_fields: list[str] | None = None,
                     via: str | None = None, on_behalf_of: str | None = None) -> Approval:
        """The same reviewer approving twice counts once; any rejection rejects; a delegate's
        vote counts as the away reviewer's (lifecycle.vote)."""
        now = utcnow()
        origin: dict[str, Any] = {} if via is None else {"via": via}

        async def count(tx: Tx) -> lifecycle.VoteKind | None:
            row = await tx.one("SELECT status, expires_at, votes, quorum FROM approvals"
                               " WHERE id = ?", (approval_id,))
            if row is None:
                raise NotFound(approval_id)
            if row["status"] != Status.pending.value:
                return None
            outcome = lifecycle.vote(json.loads(row["votes"]), quorum=int(row["quorum"]),
                                     expires_at=_time(row["expires_at"]), decision=decision,
                                     reviewer=actor, note=note, now=now,
                                     on_behalf_of=on_behalf_of)
            if via is not None and outcome.kind in (
                    lifecycle.VoteKind.decided, lifecycle.VoteKind.voted):
                outcome.votes[-1]["via"] = via  # the vote just counted is the last one
            if outcome.kind is lifecycle.VoteKind.expired:
                await self._transition(tx, approval_id, Status.pending, Status.expired, "proxy",
                                       {}, columns={"decided_at": iso(now),
                                                    "decided_by": "proxy"})
            elif outcome.kind is lifecycle.VoteKind.decided:
                detail: dict[str, Any] = {"note": note, **origin}
                if edits:
                    detail["edits"] = edits  # the agent's proposal stays in the held entry
                if approve_fields is not None:
                    detail["approve_fields"] = approve_fields
                await self._transition(tx, approval_id, Status.pending, outcome.status, actor,
                                       detail, columns={
                    "decided_at": iso(now), "decided_by": actor, "note": note,
                    "votes": json.dumps(outcome.votes), "edits": json.dumps(edits or []),
                    "approve_fields": None if approve_fields is None
                    else json.dumps(approve_fields)})
            elif outcome.kind is lifecycle.VoteKind.voted:
                await tx.run("UPDATE approvals SET votes = ? WHERE id = ?",
                             (json.dumps(outcome.votes), approval_id))
                await self._record(tx, approval_id, Status.pending, "vote", actor, {
                    "decision": decision.value, "note": note, "approvals": outcome.approvals,
                    "quorum": int(row["quorum"]), **origin})
            return outcome.kind

        kind = await self._write(count)
        approval = await self.get(approval_id)
        if kind is None or kind in (lifecycle.VoteKind.expired, lifecycle.VoteKind.repeat):
            raise Conflict(approval, "you already approved it (yourself, or through the "
                           "delegate of the reviewer you vote for); it waits for other "
                           "reviewers" if kind is lifecycle.VoteKind.repeat else None)
        return approval

    async def expire(self, approval_id: str) -> Approval:
        return await self._move(approval_id, Status.pending, Status.expired, "proxy", {},
                                columns={"decided_at": iso(utcnow()), "decided_by": "proxy",
                                         "note": None})

    async def claim_for_sending(self, approval_id: str, *, agent_here: bool = False) -> bool:
        where, params = "", ()
        if not agent_here:
            where = f" AND (held_by IS NULL OR held_by = ? OR NOT {self._live('held_by')})"
            params = (self.replica,)
        return await self._write(lambda tx: self._transition(
            tx, approval_id, Status.approved, Status.sending, "proxy",
            {"replica": self.replica},
            columns={"sending_by": self.replica, "sent_at": iso(utcnow())},
            where=where, where_params=params))

    async def record_result(self, approval_id: str, *, status_code: int | None,
                            error: str | None = None) -> Approval:
        result = Result(status_code=status_code, error=error, at=utcnow())
        target = Status.executed if status_code is not None else Status.failed
        return await self._move(approval_id, Status.sending, target, "proxy",
                                {"status_code": status_code, "error": error},
                                columns={"result": result.model_dump_json()})

    async def fail_unsent(self, approval_id: str, reason: str) -> Approval:
        """Only an unclaimed approval moves, so it cannot race a sender: after this,
        claim_for_sending answers False."""
        result = Result(error=reason, at=utcnow())
        return await self._move(approval_id, Status.approved, Status.failed, "proxy",
                                {"status_code": None, "error": reason, "sent": False},
                                columns={"result": result.model_dump_json()})

    async def mark_outcome_unknown(self, approval_id: str, reason: str) -> Approval:
        return await self._move(approval_id, Status.sending, Status.outcome_unknown, "proxy",
                                {"reason": reason})

    async def mark_stale(self, approval_id: str, reason: str) -> Approval:
        return await self._move(approval_id, Status.sending, Status.stale, "proxy",
                                {"reason": reason})

    async def resolve(self, approval_id: str, executed: bool, actor: str,
                      note: str | None) -> Approval:
        result = Result(error=None if executed else note, at=utcnow())
        return await self._move(approval_id, Status.outcome_unknown,
                                Status.executed if executed else Status.failed, actor,
                                {"note": note, "resolved": True},
                                columns={"result": result.model_dump_json()})

    async def recover_in_flight(self) -> list[str]:
        lapsed = f" AND (sending_by IS NULL OR sending_by <> ?) AND NOT {self._live('sending_by')}"
        rows = await self._all(f"SELECT id, sending_by FROM approvals WHERE status = ?{lapsed}"
                               " ORDER BY sent_at", (Status.sending.value, self.replica))
        recovered: list[str] = []
        for row in rows:
            reason = (f"replica {row['sending_by'] or '(an earlier one)'} stopped while sending"
                      " it; check upstream, then resolve it")
            # The lease is checked again in the update: a sender that came back wins.
            with contextlib.suppress(Conflict):
                await self._move(row["id"], Status.sending, Status.outcome_unknown, "proxy",
                                 {"reason": reason, "replica": row["sending_by"]},
                                 where=lapsed, where_params=(self.replica,))
                recovered.append(row["id"])
        return recovered

    async def approved_older_than(self, seconds: float, *, claimed: bool = False) -> list[str]:
        """Approvals stuck on their way, oldest first, for a sweep that bounds how long an
        approved write can stay unsent (claimed=False: re-drive or fail_unsent) or unanswered
        (claimed=True: it may have landed, mark_outcome_unknown, never resend)."""
        before = iso(utcnow() - timedelta(seconds=seconds))
        status, column = ((Status.sending, "sent_at") if claimed
                          else (Status.approved, "decided_at"))
        rows = await self._all(f"SELECT id FROM approvals WHERE status = ? AND {column} <= ?"
                               f" ORDER BY {column}", (status.value, before))
        return [row["id"] for row in rows]

    async def sendable(self) -> list[str]:
        # This replica's own holds are live whatever its lease row says (a second process
        # opening a SQLite file resets it): its hold releases them.
        rows = await self._all(
            f"SELECT id FROM approvals WHERE status = ? AND (held_by IS NULL"
            f" OR (held_by <> ? AND NOT {self._live('held_by')})) ORDER BY decided_at",
            (Status.approved.value, self.replica))
        return [row["id"] for row in rows]

    async def heartbeat(self) -> None:
        await self._write(self._beat, serialise=False)

    async def _beat(self, tx: Tx) -> None:
        await tx.run(
            f"INSERT INTO replicas (id, started_at, lease_until) VALUES (?, {self.NOW},"
            f" {self.NOW} + ?) ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until",
            (self.replica, float(self.lease)))

    async def _retire(self) -> None:
        """At a clean close: this replica holds nothing any more, others may take over now."""
        with contextlib.suppress(StoreError):
            await self._write(lambda tx: tx.run("DELETE FROM replicas WHERE id = ?",
                                                (self.replica,)), serialise=False)

    # -- approvals: reads -----------------------------------------------------------------------

    async def get(self, approval_id: str) -> Approval:
        row = await self._one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        if row is None:
            raise NotFound(approval_id)
        return approval_from_row(row)

    async def list(self, status: Status | None = None, limit: int = 1000,
                   offset: int = 0) -> list[Approval]:
        where, params = ("", ()) if status is None else (" WHERE status = ?", (status.value,))
        rows = await self._all(f"SELECT * FROM approvals{where} ORDER BY created_at,"
                               f" {self.TIEBREAK} LIMIT ? OFFSET ?", (*params, limit, offset))
        return [approval_from_row(row) for row in rows]

    async def count(self, status: Status) -> int:
        row = await self._one("SELECT COUNT(*) AS n FROM approvals WHERE status = ?",
                              (status.value,))
        return int(row["n"]) if row else 0

    async def due_for_expiry(self, now: datetime) -> list[str]:
        rows = await self._all("SELECT id FROM approvals WHERE status = ? AND expires_at"
                               " IS NOT NULL AND expires_at <= ?", (Status.pending.value, iso(now)))
        return [row["id"] for row in rows]

    async def _sealed(self, approval_id: str, column: str) -> bytes | None:
        row = await self._one(f"SELECT {column} AS data FROM approvals WHERE id = ?",
                              (approval_id,))
        if row is None:
            raise NotFound(approval_id)
        return bytes(row["data"]) if row["data"] is not None else None

    async def sealed_request(self, approval_id: str) -> bytes | None:
        return await self._sealed(approval_id, "sealed_request")

    async def sealed_before(self, approval_id: str) -> bytes | None:
        return await self._sealed(approval_id, "sealed_before")

    async def reviewer_groups(self) -> dict[str, list[str]]:
        rows = await self._all(f"SELECT id, {self.GROUPS} AS groups FROM approvals")
        return {row["id"]: json.loads(row["groups"]) if row["groups"] else [] for row in rows}

    # -- audit ----------------------------------------------------------------------------------

    async def audit_head(self) -> AuditHead | None:
        row = await self._one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (int(row["seq"]), str(row["hash"])) if row else None

    @property
    def head(self) -> AuditHead | None:
        return self._committed_head

    def subscribe_head(self, listener: HeadListener) -> None:
        self._head_listeners.append(listener)

    async def audit_entries(self, approval_id: str | None = None) -> list[AuditEntry]:
        where, params = ("", ()) if approval_id is None else (" WHERE approval_id = ?",
                                                              (approval_id,))
        rows = await self._all(f"SELECT * FROM audit{where} ORDER BY seq", params)
        return [AuditEntry(seq=row["seq"], at=row["at"], event=row["event"],
                           approval_id=row["approval_id"], actor=row["actor"],
                           detail=json.loads(row["detail"]), prev_hash=row["prev_hash"],
                           hash=row["hash"]) for row in rows]

    async def audit_rows(self) -> list[AuditRow]:
        rows = await self._all(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY seq")
        return [AuditRow(int(row["seq"]), row["at"], row["event"], row["approval_id"],
                         row["actor"], row["detail"], row["prev_hash"], row["hash"])
                for row in rows]

    # -- change feed ----------------------------------------------------------------------------

    async def changes_after(self, seq: int, limit: int = 500) -> list[StatusChange]:
        rows = await self._all("SELECT seq, approval_id, status, event, replica FROM changes"
                               " WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
        return [StatusChange(int(row["seq"]), row["approval_id"], Status(row["status"]),
                             row["event"], row["replica"]) for row in rows]

    async def last_change(self) -> int:
        row = await self._one("SELECT MAX(seq) AS seq FROM changes")
        return int(row["seq"] or 0) if row else 0

    async def wait_for_change(self, after: int, timeout: float) -> None:
        if self._seen > after:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)

    async def claim_delivery(self, seq: int, consumer: str = "webhooks") -> bool:
        claimed = await self._write(lambda tx: tx.run(
            "INSERT INTO deliveries (seq, consumer, replica) VALUES (?, ?, ?)"
            " ON CONFLICT (seq, consumer) DO NOTHING", (seq, consumer, self.replica)),
            serialise=False)
        return claimed == 1

    async def note_escalation(self, approval_id: str, event: str,
                              detail: dict[str, Any]) -> bool:
        """Serialised like a status change: its feed row's seq is in commit order too."""
        if event not in ESCALATION_EVENTS:
            raise ValueError(f"note_escalation: event {event!r} is not one of "
                             f"{list(ESCALATION_EVENTS)}")

        async def note(tx: Tx) -> bool:
            row = await tx.one("SELECT status FROM approvals WHERE id = ?", (approval_id,))
            if row is None:
                raise NotFound(approval_id)
            if row["status"] != Status.pending.value:
                return False
            inserted = await tx.run(
                "INSERT INTO escalations (approval_id, event, at, replica) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (approval_id, event) DO NOTHING",
                (approval_id, event, iso(utcnow()), self.replica))
            if inserted != 1:
                return False
            await self._record(tx, approval_id, Status.pending, event, "proxy", detail)
            return True

        return await self._write(note)

    # -- reviewers away -------------------------------------------------------------------------

    async def set_away(self, reviewer: str, until: datetime | None,
                       delegate: str | None) -> None:
        async def mark(tx: Tx) -> None:
            if until is None:
                await tx.run("DELETE FROM away WHERE reviewer = ?", (reviewer,))
                await self._audit(tx, "back", None, reviewer, {})
                return
            moment = until if until.tzinfo is not None else until.replace(tzinfo=UTC)
            await tx.run(
                "INSERT INTO away (reviewer, until_at, delegate) VALUES (?, ?, ?)"
                " ON CONFLICT (reviewer) DO UPDATE SET until_at = excluded.until_at,"
                " delegate = excluded.delegate", (reviewer, iso(moment), delegate))
            await self._audit(tx, "away", None, reviewer,
                              {"until": iso(moment), "delegate": delegate})

        await self._write(mark)

    async def away(self) -> list[Away]:
        rows = await self._all("SELECT reviewer, until_at, delegate FROM away"
                               " WHERE until_at > ? ORDER BY reviewer", (iso(utcnow()),))
        return [Away(row["reviewer"], datetime.fromisoformat(row["until_at"]), row["delegate"])
                for row in rows]

    # -- Slack ----------------------------------------------------------------------------------

    async def slack_refs(self, approval_id: str) -> list[tuple[str, str]]:
        rows = await self._all("SELECT channel, ts FROM slack_messages WHERE approval_id = ?"
                               " ORDER BY posted_at, channel", (approval_id,))
        return [(row["channel"], row["ts"]) for row in rows]

    async def save_slack_ref(self, approval_id: str, channel: str, ts: str) -> None:
        await self._write(lambda tx: tx.run(
            "INSERT INTO slack_messages (approval_id, channel, ts, posted_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (approval_id, channel) DO UPDATE SET ts = excluded.ts",
            (approval_id, channel, ts, iso(utcnow()))), serialise=False)

    async def seen_signature(self, signature: str, expires: float) -> bool:
        async def seen(tx: Tx) -> bool:
            await tx.run("DELETE FROM slack_signatures WHERE expires <= ?", (time.time(),))
            inserted = await tx.run(
                "INSERT INTO slack_signatures (signature, expires) VALUES (?, ?)"
                " ON CONFLICT (signature) DO NOTHING", (signature, float(expires)))
            return inserted != 1

        return await self._write(seen, serialise=False)

    # -- reviewer sessions ----------------------------------------------------------------------

    async def save_session(self, session: ReviewerSession) -> None:
        async def save(tx: Tx) -> None:
            await tx.run("DELETE FROM sessions WHERE expires <= ?", (time.time(),))
            await tx.run(
                "INSERT INTO sessions (key_hash, reviewer, csrf, expires) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key_hash) DO UPDATE SET reviewer = excluded.reviewer,"
                " csrf = excluded.csrf, expires = excluded.expires",
                (session.key_hash, session.reviewer, session.csrf, float(session.expires)))

        await self._write(save, serialise=False)

    async def load_session(self, key_hash: str) -> ReviewerSession | None:
        row = await self._one("SELECT key_hash, reviewer, csrf, expires FROM sessions"
                              " WHERE key_hash = ? AND expires > ?", (key_hash, time.time()))
        if row is None:
            return None
        return ReviewerSession(row["key_hash"], row["reviewer"], row["csrf"],
                               float(row["expires"]))

    async def drop_session(self, key_hash: str) -> None:
        await self._write(lambda tx: tx.run("DELETE FROM sessions WHERE key_hash = ?",
                                            (key_hash,)), serialise=False)
