"""SQLite store of approvals and the hash-chained audit log: the single source of truth.

A decision is a conditional UPDATE that only a pending approval can pass, so two reviewers
(or a reviewer and the expiry) racing on one approval leave exactly one decision behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from review_api.models import (
    TRANSITIONS,
    Approval,
    AuditEntry,
    Decision,
    Proposal,
    Result,
    Status,
    iso,
    utcnow,
)

logger = logging.getLogger("hitl_proxy")
GENESIS_HASH = "0" * 64
Listener = Callable[[Approval], Awaitable[None]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    decided_at TEXT,
    decided_by TEXT,
    note TEXT,
    result TEXT,
    sent_at TEXT,
    votes TEXT NOT NULL DEFAULT '[]',
    edits TEXT NOT NULL DEFAULT '[]',
    approve_fields TEXT,
    agent TEXT,
    idempotency_key TEXT,
    fingerprint TEXT NOT NULL,
    proposal TEXT NOT NULL,
    sealed_request BLOB,
    sealed_before BLOB
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    approval_id TEXT,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""
# Columns added after the first release, so an older data dir is brought up to date on open.
_ADDED_COLUMNS = {
    "sent_at": "TEXT", "votes": "TEXT NOT NULL DEFAULT '[]'",
    "edits": "TEXT NOT NULL DEFAULT '[]'", "approve_fields": "TEXT", "agent": "TEXT",
    "idempotency_key": "TEXT", "sealed_request": "BLOB", "sealed_before": "BLOB",
}
# After the columns: an index on a column an old file lacks would fail.
_INDEXES = """
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created_at);
CREATE INDEX IF NOT EXISTS approvals_retry ON approvals (status, fingerprint);
CREATE INDEX IF NOT EXISTS approvals_expiry ON approvals (status, expires_at);
CREATE INDEX IF NOT EXISTS approvals_agent ON approvals (status, agent);
CREATE INDEX IF NOT EXISTS approvals_key ON approvals (agent, idempotency_key, created_at)
    WHERE idempotency_key IS NOT NULL;
"""
KEY_REUSE_WINDOW = 24 * 3600.0  # an Idempotency-Key binds one request this long, as Stripe's
AuditHead = tuple[int, str]  # (seq, hash) of the newest audit entry
HeadListener = Callable[[int, str], None]


class StoreError(RuntimeError):
    """The store could not record something; callers holding a write must refuse it."""


class NotFound(LookupError):
    pass


class Full(RuntimeError):
    """The bound on pending approvals is reached; the write is refused, nothing is lost."""


class Conflict(RuntimeError):
    """The approval is no longer in a state that allows this change."""

    def __init__(self, approval: Approval, reason: str | None = None) -> None:
        self.reason = reason or f"approval {approval.id} is already {approval.status}"
        super().__init__(self.reason)
        self.approval = approval


def _iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


DEFAULT_AUDIT_KEY = b"hitl-proxy-audit"


def entry_hash(key: bytes, prev_hash: str, at: str, event: str, approval_id: str | None,
               actor: str, detail: str) -> str:
    """HMAC over an entry and its predecessor: rewriting the chain needs the key, kept outside."""
    payload = json.dumps([prev_hash, at, event, approval_id, actor, detail], separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


class Store:
    def __init__(self, path: Path, busy_timeout: float = 5.0, audit_key: bytes | None = None,
                 anchor: Path | None = None) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._audit_key = audit_key or DEFAULT_AUDIT_KEY
        # The last entry's seq and hash, outside the database: a cut-off tail shows.
        self.anchor = anchor or path.with_name("audit.head")
        self._head: AuditHead | None = None  # written by the open transaction
        self._committed_head: AuditHead | None = None
        self._db: aiosqlite.Connection | None = None
        # aiosqlite shares one connection; the lock keeps each transaction whole.
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []
        self._head_listeners: list[HeadListener] = []

    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, timeout=self._busy_timeout,
                                               isolation_level=None)
            self._db.row_factory = sqlite3.Row
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=FULL")
            await self._db.executescript(_SCHEMA)
            await self._add_missing_columns(self._db)
            await self._db.executescript(_INDEXES)
            self._committed_head = await self.audit_head()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc

    @staticmethod
    async def _add_missing_columns(db: aiosqlite.Connection) -> None:
        async with db.execute("PRAGMA table_info(approvals)") as cursor:
            present = {row["name"] for row in await cursor.fetchall()}
        for name, definition in _ADDED_COLUMNS.items():
            if name not in present:
                await db.execute(f"ALTER TABLE approvals ADD COLUMN {name} {definition}")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def subscribe(self, listener: Listener) -> None:
        """Called after every committed status change (the addon learns of decisions here)."""
        self._listeners.append(listener)

    def subscribe_head(self, listener: HeadListener) -> None:
        """Called with (seq, hash) after every commit that added audit entries: for witnesses
        outside the data dir, which its owner cannot rewrite."""
        self._head_listeners.append(listener)

    @property
    def head(self) -> AuditHead | None:
        """The newest audit entry this process has seen committed, without a query."""
        return self._committed_head

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def _transaction(self, work: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        async with self._lock:
            db = self.db
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    outcome = await work(db)
                except BaseException:
                    self._head = None
                    await db.execute("ROLLBACK")
                    raise
                await db.execute("COMMIT")
                if self._head is not None:
                    head, self._head = self._head, None
                    self._committed_head = head
                    self._write_anchor(*head)
                    self._tell_head(head)
                return outcome
            except sqlite3.Error as exc:
                raise StoreError(f"store write failed: {exc}") from exc

    def _tell_head(self, head: AuditHead) -> None:
        for listener in list(self._head_listeners):
            try:
                listener(*head)
            except Exception:  # the entry is committed; a witness's failure must not undo that
                logger.exception("audit head listener failed")

    async def _audit(self, db: aiosqlite.Connection, event: str, approval_id: str | None,
                     actor: str, detail: dict[str, Any]) -> None:
        async with db.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        prev_hash = row["hash"] if row else GENESIS_HASH
        at = _iso(utcnow())
        detail_json = json.dumps(detail, sort_keys=True, default=str)
        digest = entry_hash(self._audit_key, prev_hash, at, event, approval_id, actor,
                            detail_json)
        cursor = await db.execute(
            "INSERT INTO audit (at, event, approval_id, actor, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, event, approval_id, actor, detail_json, prev_hash, digest),
        )
        self._head = (int(cursor.lastrowid or 0), digest)

    def _write_anchor(self, seq: int, digest: str) -> None:
        try:
            temporary = self.anchor.with_suffix(".tmp")
            temporary.write_text(f"{seq} {digest}\n")
            os.replace(temporary, self.anchor)
        except OSError as exc:
            raise StoreError(f"cannot write the audit anchor {self.anchor}: {exc}") from exc

    async def _notify(self, approval: Approval) -> None:
        for listener in list(self._listeners):
            await listener(approval)

    # -- writes -----------------------------------------------------------------------------

    async def find_pending(self, fingerprint: str, agent: str | None,
                           idempotency_key: str | None) -> Approval | None:
        """The pending approval a retried write joins: same agent, same request and same key.

        Both must agree: a key reused for another body is not a retry (see key_in_use), and the
        same body under another key is a second, deliberate write (Stripe's rule).
        """
        async with self.db.execute(
            "SELECT * FROM approvals WHERE status = ? AND fingerprint = ? AND agent IS ?"
            " AND idempotency_key IS ? ORDER BY created_at DESC LIMIT 1",
            (Status.pending.value, fingerprint, agent, idempotency_key),
        ) as cursor:
            row = await cursor.fetchone()
        return self._approval(row) if row else None

    async def key_in_use(self, agent: str | None, idempotency_key: str,
                         within: float = KEY_REUSE_WINDOW) -> Approval | None:
        """The newest approval, in any status, this agent held under this key in the last
        `within` seconds. A different fingerprint on it means the key is being reused for
        another request: the addon answers 409 rather than join or create."""
        since = _iso(utcnow() - timedelta(seconds=within))
        async with self.db.execute(
            "SELECT * FROM approvals WHERE agent IS ? AND idempotency_key = ?"
            " AND created_at >= ? ORDER BY created_at DESC LIMIT 1",
            (agent, idempotency_key, since),
        ) as cursor:
            row = await cursor.fetchone()
        return self._approval(row) if row else None

    async def create(self, proposal: Proposal, *, status: Status = Status.pending,
                     actor: str = "proxy", expires_at: datetime | None = None,
                     sealed_request: bytes | None = None, idempotency_key: str | None = None,
                     max_pending: int | None = None,
                     sealed_before: bytes | None = None,
                     max_pending_per_agent: int | None = None) -> Approval:
        """Commit a held (or denied) write; only after this returns may the agent be held.

        Raises Full when `max_pending` writes wait in all, or `max_pending_per_agent` from this
        agent (`context.agent`; writes naming none count as one anonymous agent), so one agent
        flooding the queue cannot lock the others out.
        """
        approval = Approval(
            **proposal.model_dump(),
            id=str(uuid.uuid4()),
            status=status,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        event = "held" if status is Status.pending else status.value

        async def insert(db: aiosqlite.Connection) -> None:
            if max_pending is not None and status is Status.pending:
                async with db.execute("SELECT COUNT(*) FROM approvals WHERE status = ?",
                                      (Status.pending.value,)) as cursor:
                    row = await cursor.fetchone()
                if row is not None and row[0] >= max_pending:
                    raise Full(f"{row[0]} writes are already waiting for review "
                               f"(limits.max_pending is {max_pending})")
            if max_pending_per_agent is not None and status is Status.pending:
                agent = proposal.context.agent
                async with db.execute(
                        "SELECT COUNT(*) FROM approvals WHERE status = ? AND agent IS ?",
                        (Status.pending.value, agent)) as cursor:
                    row = await cursor.fetchone()
                if row is not None and row[0] >= max_pending_per_agent:
                    who = f"agent {agent!r}" if agent is not None else "the anonymous agent"
                    raise Full(f"{who} already has {row[0]} writes waiting for review "
                               f"(limits.max_pending_per_agent is {max_pending_per_agent})")
            await db.execute(
                "INSERT INTO approvals (id, status, created_at, expires_at, fingerprint, proposal,"
                " sealed_request, agent, idempotency_key, sealed_before)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (approval.id, approval.status.value, _iso(approval.created_at),
                 _iso(expires_at), proposal.fingerprint, proposal.model_dump_json(),
                 sealed_request, proposal.context.agent, idempotency_key, sealed_before),
            )
            await self._audit(db, event, approval.id, actor, {
                "system": proposal.system, "object_type": proposal.object_type,
                "record_id": proposal.record_id, "operation": proposal.operation,
                "method": proposal.method, "url": proposal.url,
                "fingerprint": proposal.fingerprint, "rule": proposal.rule,
                "risk": proposal.risk.level.value,
            })

        await self._transaction(insert)
        await self._notify(approval)
        return approval

    async def log_event(self, event: str, approval_id: str | None, actor: str,
                        detail: dict[str, Any]) -> None:
        """An audit entry that changes no approval, e.g. a write a rule allowed."""

        async def write(db: aiosqlite.Connection) -> None:
            await self._audit(db, event, approval_id, actor, detail)

        await self._transaction(write)

    async def decide(self, approval_id: str, decision: Decision, actor: str,
                     note: str | None, edits: list[dict[str, Any]] | None = None,
                     approve_fields: list[str] | None = None) -> Approval:
        """One reviewer's vote. A rejection decides; approvals decide at the quorum.

        Raises Conflict when the approval is no longer pending (expiry included) or when this
        reviewer already approved it: the same reviewer twice counts once.
        """
        now = utcnow()

        async def vote(db: aiosqlite.Connection) -> str:
            async with db.execute(
                "SELECT status, expires_at, votes, proposal FROM approvals WHERE id = ?",
                (approval_id,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return "missing"
            if row["status"] != Status.pending.value:
                return "conflict"
            if row["expires_at"] is not None and row["expires_at"] <= _iso(now):
                await db.execute("UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?,"
                                 " sealed_request = NULL, sealed_before = NULL WHERE id = ?",
                                 (Status.expired.value, _iso(now), "proxy", approval_id))
                await self._audit(db, Status.expired.value, approval_id, "proxy", {})
                return "expired"
            votes = json.loads(row["votes"])
            approvers = {v["reviewer"] for v in votes if v["decision"] == Decision.approve}
            if decision is Decision.approve and actor in approvers:
                return "repeat"
            votes.append({"reviewer": actor, "decision": decision.value, "note": note,
                          "at": _iso(now)})
            quorum = int(json.loads(row["proposal"]).get("quorum", 1))
            decided = decision is Decision.reject or len(approvers | {actor}) >= quorum
            if decided:
                # A rejected write never needs the agent's credentials again.
                forget = (", sealed_request = NULL, sealed_before = NULL"
                          if decision is Decision.reject else "")
                await db.execute(
                    "UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, note = ?,"
                    f" votes = ?, edits = ?, approve_fields = ?{forget}"
                    " WHERE id = ? AND status = ?",
                    (decision.status.value, _iso(now), actor, note, json.dumps(votes),
                     json.dumps(edits or []),
                     None if approve_fields is None else json.dumps(approve_fields),
                     approval_id, Status.pending.value))
                detail: dict[str, Any] = {"note": note}
                if edits:
                    detail["edits"] = edits  # the agent's proposal stays in the held entry
                if approve_fields is not None:
                    detail["approve_fields"] = approve_fields
                await self._audit(db, decision.status.value, approval_id, actor, detail)
                return "decided"
            await db.execute("UPDATE approvals SET votes = ? WHERE id = ?",
                             (json.dumps(votes), approval_id))
            await self._audit(db, "vote", approval_id, actor, {
                "decision": decision.value, "note": note,
                "approvals": len(approvers | {actor}), "quorum": quorum})
            return "voted"

        outcome = await self._transaction(vote)
        if outcome == "missing":
            raise NotFound(approval_id)
        approval = await self.get(approval_id)
        if outcome in ("conflict", "expired", "repeat"):
            if outcome == "expired":
                await self._notify(approval)
            raise Conflict(approval, "you already approved it; it waits for other reviewers"
                           if outcome == "repeat" else None)
        if outcome == "decided":
            await self._notify(approval)
        return approval

    async def expire(self, approval_id: str) -> Approval:
        return await self._move(approval_id, Status.pending, Status.expired, "proxy", {},
                                decided=True, note=None)

    async def claim_for_sending(self, approval_id: str) -> bool:
        """True for exactly one caller: the one allowed to send this approved write upstream."""

        async def claim(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "UPDATE approvals SET sent_at = ? WHERE id = ? AND status = ? AND sent_at IS NULL",
                (_iso(utcnow()), approval_id, Status.approved.value),
            )
            if cursor.rowcount == 1:
                await self._audit(db, "sending", approval_id, "proxy", {})
            return cursor.rowcount == 1

        return await self._transaction(claim)

    async def record_result(self, approval_id: str, *, status_code: int | None,
                            error: str | None = None) -> Approval:
        executed = status_code is not None
        result = Result(status_code=status_code, error=error, at=utcnow())
        return await self._move(
            approval_id, Status.approved, Status.executed if executed else Status.failed, "proxy",
            {"status_code": status_code, "error": error}, result=result,
        )

    async def mark_in_flight_unknown(self) -> list[str]:
        """After a crash: writes claimed for sending without a recorded answer. Never resent."""
        async with self.db.execute(
            "SELECT id FROM approvals WHERE status = ? AND sent_at IS NOT NULL AND result IS NULL",
            (Status.approved.value,),
        ) as cursor:
            ids = [row["id"] for row in await cursor.fetchall()]
        for approval_id in ids:
            with contextlib.suppress(Conflict):
                await self.mark_outcome_unknown(approval_id, "the proxy stopped while sending "
                                                             "it; check upstream, then resolve it")
        return ids

    async def approved_older_than(self, seconds: float, *, claimed: bool = False) -> list[str]:
        """Approvals stuck in `approved`, oldest first, for a sweep that bounds how long an
        approved write can stay unsent.

        claimed=False: approved more than `seconds` ago and never claimed for sending (re-drive
        them, or fail_unsent). claimed=True: claimed more than `seconds` ago with no answer
        recorded (they may have landed: mark_outcome_unknown, never resend).
        """
        before = _iso(utcnow() - timedelta(seconds=seconds))
        query = ("SELECT id FROM approvals WHERE status = ? AND sent_at IS NOT NULL"
                 " AND sent_at <= ? AND result IS NULL ORDER BY sent_at" if claimed else
                 "SELECT id FROM approvals WHERE status = ? AND sent_at IS NULL"
                 " AND decided_at <= ? ORDER BY decided_at")
        async with self.db.execute(query, (Status.approved.value, before)) as cursor:
            return [row["id"] for row in await cursor.fetchall()]

    async def fail_unsent(self, approval_id: str, reason: str) -> Approval:
        """approved -> failed for a write that was never sent, e.g. the held request no longer
        matches what was reviewed. Only an unclaimed approval moves, so it cannot race a sender:
        after this, claim_for_sending answers False. Raises Conflict otherwise."""
        return await self._move(approval_id, Status.approved, Status.failed, "proxy",
                                {"status_code": None, "error": reason, "sent": False},
                                result=Result(error=reason, at=utcnow()), unclaimed=True)

    async def mark_outcome_unknown(self, approval_id: str, reason: str) -> Approval:
        """approved -> outcome_unknown for a write claimed for sending whose answer never came;
        a reviewer checks upstream and resolves it. Raises Conflict if it is not in flight."""
        return await self._move(approval_id, Status.approved, Status.outcome_unknown, "proxy",
                                {"reason": reason}, unclaimed=False)

    async def mark_stale(self, approval_id: str, reason: str) -> Approval:
        return await self._move(approval_id, Status.approved, Status.stale, "proxy",
                                {"reason": reason})

    async def resolve(self, approval_id: str, executed: bool, actor: str,
                      note: str | None) -> Approval:
        """A reviewer records what upstream did with a write whose outcome is unknown."""
        return await self._move(approval_id, Status.outcome_unknown,
                                Status.executed if executed else Status.failed, actor,
                                {"note": note, "resolved": True}, decided=False,
                                result=Result(error=None if executed else note, at=utcnow()))

    async def _move(self, approval_id: str, source: Status, target: Status, actor: str,
                    detail: dict[str, Any], *, decided: bool = False, note: str | None = None,
                    result: Result | None = None, unclaimed: bool | None = None) -> Approval:
        """One transition of TRANSITIONS; `unclaimed` also requires (True) or forbids (False)
        that nobody claimed the write for sending."""
        now = _iso(utcnow())
        claim = {None: "", True: " AND sent_at IS NULL",
                 False: " AND sent_at IS NOT NULL AND result IS NULL"}[unclaimed]

        async def move(db: aiosqlite.Connection) -> bool:
            assignments = ["status = ?"]
            values: list[Any] = [target.value]
            if decided:
                assignments += ["decided_at = ?", "decided_by = ?", "note = ?"]
                values += [now, actor, note]
            if not TRANSITIONS[target] and target is not Status.executed:
                # A write that did not happen never needs the agent's credentials again; an
                # executed one keeps them (sealed) with the record as it was, for a revert.
                assignments.append("sealed_request = NULL, sealed_before = NULL")
            if result is not None:
                assignments.append("result = ?")
                values.append(result.model_dump_json())
            cursor = await db.execute(
                f"UPDATE approvals SET {', '.join(assignments)} WHERE id = ? AND status = ?"
                f"{claim}",
                (*values, approval_id, source.value),
            )
            if cursor.rowcount != 1:
                return False
            await self._audit(db, target.value, approval_id, actor, detail)
            return True

        moved = await self._transaction(move)
        approval = await self.get(approval_id)
        if not moved:
            raise Conflict(approval)
        await self._notify(approval)
        return approval

    # -- reads ------------------------------------------------------------------------------

    @staticmethod
    def _approval(row: sqlite3.Row) -> Approval:
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

    async def get(self, approval_id: str) -> Approval:
        async with self.db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise NotFound(approval_id)
        return self._approval(row)

    async def list(self, status: Status | None = None, limit: int = 1000,
                   offset: int = 0) -> list[Approval]:
        query = "SELECT * FROM approvals"
        params: tuple[Any, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status.value,)
        query += " ORDER BY created_at, rowid LIMIT ? OFFSET ?"
        async with self.db.execute(query, (*params, limit, offset)) as cursor:
            return [self._approval(row) for row in await cursor.fetchall()]

    async def count(self, status: Status) -> int:
        async with self.db.execute("SELECT COUNT(*) FROM approvals WHERE status = ?",
                                   (status.value,)) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def due_for_expiry(self, now: datetime) -> list[str]:
        async with self.db.execute(
            "SELECT id FROM approvals WHERE status = ? AND expires_at IS NOT NULL"
            " AND expires_at <= ?", (Status.pending.value, _iso(now)),
        ) as cursor:
            return [row["id"] for row in await cursor.fetchall()]

    async def sealed_before(self, approval_id: str) -> bytes | None:
        async with self.db.execute(
            "SELECT sealed_before FROM approvals WHERE id = ?", (approval_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(approval_id)
        return row["sealed_before"]

    async def sealed_request(self, approval_id: str) -> bytes | None:
        async with self.db.execute(
            "SELECT sealed_request FROM approvals WHERE id = ?", (approval_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(approval_id)
        return row["sealed_request"]

    async def audit_head(self) -> AuditHead | None:
        """(seq, hash) of the newest entry in the database, or None for an empty log."""
        async with self.db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
                                   ) as cursor:
            row = await cursor.fetchone()
        return (int(row["seq"]), str(row["hash"])) if row else None

    async def reviewer_groups(self) -> dict[str, list[str]]:
        """Each approval's routing (empty: any reviewer), without decoding whole approvals."""
        async with self.db.execute(
            "SELECT id, json_extract(proposal, '$.reviewer_groups') AS groups FROM approvals"
        ) as cursor:
            rows = await cursor.fetchall()
        return {row["id"]: json.loads(row["groups"]) if row["groups"] else [] for row in rows}

    async def audit_entries(self, approval_id: str | None = None) -> list[AuditEntry]:
        query, params = "SELECT * FROM audit", ()
        if approval_id is not None:
            query, params = query + " WHERE approval_id = ?", (approval_id,)
        async with self.db.execute(query + " ORDER BY seq", params) as cursor:
            rows = await cursor.fetchall()
        return [
            AuditEntry(seq=row["seq"], at=row["at"], event=row["event"],
                       approval_id=row["approval_id"], actor=row["actor"],
                       detail=json.loads(row["detail"]), prev_hash=row["prev_hash"],
                       hash=row["hash"])
            for row in rows
        ]
