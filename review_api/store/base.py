"""What every approvals store offers, whichever database holds it.

The store is the single source of truth. Components never hear of a change through a callback
registered in a constructor: every committed status change is also a row of the change feed,
numbered by `seq`, and each component reads the feed (`review_api.feed.ChangeFeed`) from the
last number it saw. Several replicas on one database therefore all see every decision, and one
that missed a wake-up catches up by sequence number.

Two backends implement it: `SqliteStore` (embedded, one process) and `PostgresStore`
(replicas). Status changes go through `review_api.lifecycle`: a transition not in its table
is an error, never a silent update.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from review_api.models import Approval, AuditEntry, Decision, Proposal, Status

GENESIS_HASH = "0" * 64
DEFAULT_AUDIT_KEY = b"hitl-proxy-audit"
KEY_REUSE_WINDOW = 24 * 3600.0  # an Idempotency-Key binds one request this long, as Stripe's
DEFAULT_LEASE = 30.0  # seconds a replica's claims outlive its last heartbeat
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


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One row of the change feed: an approval reached `status` (or got a vote) at `seq`.

    `seq` grows strictly in commit order within one database; a reader that saw seq N reads
    everything after N with `changes_after(N)` and misses nothing.
    """

    seq: int
    approval_id: str
    status: Status
    event: str  # the audit event that made it: held, approved, vote, sending, executed, ...
    replica: str | None  # the replica whose transaction committed it


@dataclass(frozen=True, slots=True)
class ReviewerSession:
    """A signed-in reviewer on the web page; shared by every replica."""

    key_hash: str  # sha256 of the cookie value: the database never holds a usable cookie
    reviewer: str  # the configured reviewer's name
    csrf: str
    expires: float  # epoch seconds


@dataclass(frozen=True)
class Away:
    """A reviewer away until `until`; `delegate` decides with their groups meanwhile."""

    reviewer: str
    until: datetime
    delegate: str | None


ESCALATION_EVENTS = ("reminded", "escalated")
DELIVERY_CONSUMERS = ("webhooks", "slack")  # who follows the feed and claims each change
VIAS = ("page", "api", "slack", "cli")  # where a decision was taken


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit entry as stored, `detail` as the exact JSON text its hash covers: what
    `review_api.audit.verify` checks, whichever backend it came from."""

    seq: int
    at: str
    event: str
    approval_id: str | None
    actor: str
    detail: str
    prev_hash: str
    hash: str


def new_replica_id() -> str:
    """A fresh id per process start, readable in logs: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def entry_hash(key: bytes, prev_hash: str, at: str, event: str, approval_id: str | None,
               actor: str, detail: str) -> str:
    """HMAC over an entry and its predecessor: rewriting the chain needs the key, kept outside."""
    payload = json.dumps([prev_hash, at, event, approval_id, actor, detail], separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def session_key_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class ApprovalStore(ABC):
    """Approvals and votes, the hash-chained audit log, the change feed, replica leases,
    reviewer sessions, delivery claims, reminders sent, reviewers away and Slack's state.

    `replica` names this process's instance (a new one at every start): claims it takes carry
    it, and they outlive it only until its lease runs out.
    """

    replica: str
    lease: float

    # -- life ---------------------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect, apply schema migrations, register this replica. StoreError on failure."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data is, for messages (a path, or a URL without its password)."""

    # -- approvals: writes ----------------------------------------------------------------------

    @abstractmethod
    async def find_pending(self, fingerprint: str, agent: str | None,
                           idempotency_key: str | None) -> Approval | None:
        """The pending approval a retried write joins: same agent, request and key."""

    @abstractmethod
    async def key_in_use(self, agent: str | None, idempotency_key: str,
                         within: float = KEY_REUSE_WINDOW) -> Approval | None:
        """The newest approval, any status, this agent held under this key lately."""

    @abstractmethod
    async def create(self, proposal: Proposal, *, status: Status = Status.pending,
                     actor: str = "proxy", expires_at: datetime | None = None,
                     sealed_request: bytes | None = None, idempotency_key: str | None = None,
                     max_pending: int | None = None, sealed_before: bytes | None = None,
                     max_pending_per_agent: int | None = None,
                     held_here: bool = False) -> Approval:
        """Commit a held (or denied) write; only after this returns may the agent be held.
        `held_here`: this replica holds the agent's connection (see `hold`). Raises Full."""

    @abstractmethod
    async def hold(self, approval_id: str) -> None:
        """This replica now holds the agent's connection for it (a retry joined here): no
        other replica sends it while this replica's lease lasts."""

    @abstractmethod
    async def unhold(self, approval_id: str) -> None:
        """The agent's connection here ended (answered, timed out or gone)."""

    @abstractmethod
    async def log_event(self, event: str, approval_id: str | None, actor: str,
                        detail: dict[str, Any]) -> None:
        """An audit entry that changes no approval, e.g. a write a rule allowed."""

    @abstractmethod
    async def decide(self, approval_id: str, decision: Decision, actor: str,
                     note: str | None, edits: list[dict[str, Any]] | None = None,
                     approve_fields: list[str] | None = None,
                     via: str | None = None, on_behalf_of: str | None = None) -> Approval:
        """One reviewer's vote (lifecycle.vote decides what it does; `on_behalf_of`: the away
        reviewer a delegate votes for, whose authority it counts as). Raises Conflict when
        the approval is no longer pending (an expired one is moved to expired first) or when
        this reviewer already approved it; NotFound. `via` ("page", "api", "slack", "cli")
        is kept in the vote and the audit detail, so a message can say where it was taken."""

    @abstractmethod
    async def expire(self, approval_id: str) -> Approval: ...

    @abstractmethod
    async def claim_for_sending(self, approval_id: str, *, agent_here: bool = False) -> bool:
        """approved -> sending, for exactly one caller across every replica.

        `agent_here`: the caller holds the agent's connection, so it may claim even though
        the approval is held. Otherwise an approval held by another replica whose lease is
        live is not claimed: that replica releases the agent's own request.
        """

    @abstractmethod
    async def record_result(self, approval_id: str, *, status_code: int | None,
                            error: str | None = None) -> Approval:
        """sending -> executed (an answer came) or failed (none did)."""

    @abstractmethod
    async def fail_unsent(self, approval_id: str, reason: str) -> Approval:
        """approved -> failed, for a write never claimed. Conflict otherwise."""

    @abstractmethod
    async def mark_outcome_unknown(self, approval_id: str, reason: str) -> Approval:
        """sending -> outcome_unknown: claimed, answer never recorded. Never resent."""

    @abstractmethod
    async def mark_stale(self, approval_id: str, reason: str) -> Approval:
        """sending -> stale: the record changed after review; nothing was sent."""

    @abstractmethod
    async def resolve(self, approval_id: str, executed: bool, actor: str,
                      note: str | None) -> Approval:
        """outcome_unknown -> executed | failed, as a reviewer found upstream."""

    @abstractmethod
    async def recover_in_flight(self) -> list[str]:
        """`sending` writes whose sender's lease ran out (it died or restarted) become
        outcome_unknown; a live replica's in-flight writes are never touched. Returns ids."""

    @abstractmethod
    async def approved_older_than(self, seconds: float, *, claimed: bool = False) -> list[str]:
        """claimed=False: approved more than `seconds` ago, never claimed. claimed=True:
        sending for more than `seconds` with no answer."""

    @abstractmethod
    async def sendable(self) -> list[str]:
        """Approved, unclaimed writes that no live replica holds an agent for: the ones a
        replica's own sender should claim and send (oldest decision first)."""

    @abstractmethod
    async def heartbeat(self) -> None:
        """Extend this replica's lease; called every lease/3 by the sweeper."""

    # -- approvals: reads -----------------------------------------------------------------------

    @abstractmethod
    async def get(self, approval_id: str) -> Approval: ...

    @abstractmethod
    async def list(self, status: Status | None = None, limit: int = 1000,
                   offset: int = 0) -> list[Approval]:
        """Oldest first."""

    @abstractmethod
    async def count(self, status: Status) -> int: ...

    @abstractmethod
    async def due_for_expiry(self, now: datetime) -> list[str]: ...

    @abstractmethod
    async def sealed_request(self, approval_id: str) -> bytes | None: ...

    @abstractmethod
    async def sealed_before(self, approval_id: str) -> bytes | None: ...

    @abstractmethod
    async def reviewer_groups(self) -> dict[str, list[str]]:
        """Each approval's routing (empty: any reviewer), without decoding whole approvals."""

    # -- audit ----------------------------------------------------------------------------------

    @abstractmethod
    async def audit_head(self) -> AuditHead | None:
        """(seq, hash) of the newest entry in the database, or None for an empty log."""

    @property
    @abstractmethod
    def head(self) -> AuditHead | None:
        """The newest entry this process has seen committed, without a query."""

    @abstractmethod
    def subscribe_head(self, listener: HeadListener) -> None:
        """(seq, hash) after every commit of this process that added audit entries: for the
        witness outside the database. Not a change feed: only this process's own commits."""

    @abstractmethod
    async def audit_entries(self, approval_id: str | None = None) -> list[AuditEntry]:
        """In chain order."""

    @abstractmethod
    async def audit_rows(self) -> list[AuditRow]:
        """Every entry as stored, in chain order: for `audit verify` and export."""

    # -- change feed ----------------------------------------------------------------------------

    @abstractmethod
    async def changes_after(self, seq: int, limit: int = 500) -> list[StatusChange]:
        """Committed changes with a greater seq, in order."""

    @abstractmethod
    async def last_change(self) -> int:
        """The newest seq (0 for none): where a reader that wants only new changes starts."""

    @abstractmethod
    async def wait_for_change(self, after: int, timeout: float) -> None:
        """Return soon after a change with seq > `after` may have committed (in this process
        or, for PostgreSQL, any replica), or after `timeout`. A wake-up is a hint: readers
        always read `changes_after`."""

    @abstractmethod
    async def claim_delivery(self, seq: int, consumer: str = "webhooks") -> bool:
        """True for exactly one replica per change and consumer ("webhooks", "slack"): the
        one that sends that change's webhooks, or updates its Slack messages."""

    @abstractmethod
    async def note_escalation(self, approval_id: str, event: str,
                              detail: dict[str, Any]) -> bool:
        """`event` "reminded" or "escalated": True exactly once per approval and event across
        every replica, and only while the approval is pending (a reminder of a decided write
        tells nobody anything). That one call writes an audit entry and a change-feed row
        with the approval's status and `event`, so webhooks and Slack followers act on it."""

    # -- reviewers away -------------------------------------------------------------------------

    @abstractmethod
    async def set_away(self, reviewer: str, until: datetime | None,
                       delegate: str | None) -> None:
        """Away until `until` (audit `away`), or back (None: audit `back`)."""

    @abstractmethod
    async def away(self) -> list[Away]:
        """Reviewers away now (until later than now), by name."""

    # -- Slack ----------------------------------------------------------------------------------

    @abstractmethod
    async def slack_refs(self, approval_id: str) -> list[tuple[str, str]]:
        """(channel, ts) of each Slack message showing this approval, in posting order."""

    @abstractmethod
    async def save_slack_ref(self, approval_id: str, channel: str, ts: str) -> None:
        """The message posted for this approval in `channel` (one per channel)."""

    @abstractmethod
    async def seen_signature(self, signature: str, expires: float) -> bool:
        """True if this Slack request signature was seen before (a replay); otherwise it is
        recorded until `expires` (epoch seconds) and False. One answer across replicas."""

    # -- reviewer sessions ----------------------------------------------------------------------

    @abstractmethod
    async def save_session(self, session: ReviewerSession) -> None: ...

    @abstractmethod
    async def load_session(self, key_hash: str) -> ReviewerSession | None:
        """None for an unknown or expired session."""

    @abstractmethod
    async def drop_session(self, key_hash: str) -> None: ...
