"""The approvals domain: what a reviewer sees. The state machine is `review_api.lifecycle`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Status(StrEnum):
    pending = "pending"
    approved = "approved"
    sending = "sending"  # claimed by one replica, on its way upstream; its answer not yet recorded
    rejected = "rejected"
    expired = "expired"
    denied = "denied"
    executed = "executed"
    failed = "failed"
    outcome_unknown = "outcome_unknown"  # was being sent when the proxy died; never resent
    stale = "stale"  # the record changed after review; never sent


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"

    @property
    def status(self) -> Status:
        return Status.approved if self is Decision.approve else Status.rejected


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Change(_Model):
    field: str
    old: Any = None
    new: Any = None
    kind: str = "set"  # set | add (an item added, e.g. a comment) | remove
    record_id: str | None = None  # which record, for writes touching several


class Parameter(_Model):
    """Something the agent sent that is no field of the record: an option of the request
    (Stripe's proration_behavior, expand) or an action's argument, shown as sent."""

    name: str
    value: Any = None
    record_id: str | None = None  # which record's request, for writes touching several


class RecordRef(_Model):
    """One record a write touches (bulk writes touch several)."""

    object_type: str | None = None
    operation: str | None = None
    record_id: str | None = None
    action: str | None = None


class Risk(_Model):
    level: RiskLevel = RiskLevel.low
    reasons: list[str] = []
    money: bool = False  # moves money (amounts, refunds, payments, voids)
    customer_facing: bool = False  # a customer sees or receives it
    destructive: bool = False  # deletes, merges, archives


class Context(_Model):
    reason: str | None = None
    task: str | None = None
    agent: str | None = None
    # What the agent's X-HITL-Task said when its configured task overrode it: shown, never used.
    claimed_task: str | None = None
    # What X-HITL-Agent said on a flow no proxy authentication named (SOCKS5, reverse mode)
    # while agents are configured: shown, never used.
    claimed_agent: str | None = None
    # What started the task (X-HITL-Trigger: a URL or a short text): shown beside the reason.
    trigger: str | None = None


class IdentityField(_Model):
    """A field that tells a person which record this is (a ticket's subject, an invoice's
    number), from the fetched record, masked like every other value."""

    field: str  # dotted path inside the record, e.g. "CustomerRef.name"
    label: str  # what the page and messages call it
    value: str | None = None  # cut to 200 characters; None when the record lacks it


class OldValues(_Model):
    """Whether the old values shown are the record as it stands upstream."""

    known: bool
    reason: str | None = None  # why they are unknown, in words a reviewer understands


class RequestSummary(_Model):
    """The request as held, with nothing in it the proxy could not mask (proxy_addon.redact)."""

    headers: dict[str, str] = {}  # values of headers known to carry no secret; others "***"
    content_type: str | None = None
    # The body as parsed and masked (see body_form); None when there is none or it is withheld.
    body: Any = None
    body_bytes: int = 0  # as sent, before any content-encoding is undone
    body_sha256: str | None = None  # of the body as sent: all that is kept of a withheld one
    body_form: str | None = None  # json | ndjson | form | multipart | graphql; None: not shown
    body_withheld: str | None = None  # why the body is not shown, when it is not
    problem: str | None = None  # why the body could not be read as the vendor's record


class Result(_Model):
    status_code: int | None = None
    error: str | None = None
    at: datetime | None = None


class EditSupport(_Model):
    """What a reviewer may change before approving, and why not when they may not."""

    edits: bool = False
    partial: bool = False  # approve some fields, leave the others out
    reason: str | None = None


class Edit(_Model):
    field: str
    new: Any = None


class Proposal(_Model):
    """Everything the proxy learned about a write before anyone decided on it."""

    system: str | None = None
    object_type: str | None = None
    operation: str | None = None
    record_id: str | None = None
    action: str | None = None  # the action's name for operation "action" (void, send, merge...)
    records: list[RecordRef] = []
    method: str
    url: str
    changes: list[Change] = []
    identity: list[IdentityField] = []  # which record this is, to a person
    parameters: list[Parameter] = []  # what was sent beside the fields: not a field change
    patch: list[dict[str, Any]] = []
    old_values: OldValues = OldValues(known=False, reason="not fetched")
    risk: Risk = Risk()
    context: Context = Context()
    request: RequestSummary = RequestSummary()
    reviewer_groups: list[str] = []  # empty: any reviewer may decide
    quorum: int = 1  # distinct approvals needed
    remind_after: float | None = None  # seconds pending before the routed groups are reminded
    escalate_after: float | None = None  # seconds pending before escalate_to may decide too
    escalate_to: list[str] = []
    edit: EditSupport = EditSupport()
    reverts: str | None = None  # the executed approval this write would undo
    rule: str | None = None  # the policy rule that matched, for the audit
    fingerprint: str = Field(description="sha256 of method, URL and body as held")


class Vote(_Model):
    reviewer: str
    decision: Decision
    note: str | None = None
    at: datetime
    via: str | None = None  # page | api | slack | cli: where the reviewer decided
    on_behalf_of: str | None = None  # the away reviewer a delegate voted for


class Approval(Proposal):
    id: str
    status: Status
    created_at: datetime
    expires_at: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    note: str | None = None
    votes: list[Vote] = []  # every approve and reject, in order
    edits: list[Edit] = []  # the reviewer's values, sent instead of the agent's
    approve_fields: list[str] | None = None  # only these fields were approved
    result: Result | None = None


class AuditEntry(_Model):
    seq: int
    at: datetime
    event: str
    approval_id: str | None
    actor: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC with microseconds, one fixed width: stored times compare correctly as text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


_RELATIVE = re.compile(r"^(\d{1,7})([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


def parse_moment(text: str, now: datetime | None = None) -> str:
    """An ISO 8601 date or time (UTC unless it says otherwise), or "24h"/"7d" ago."""
    text = text.strip()
    try:
        if found := _RELATIVE.match(text):
            ago = timedelta(seconds=int(found.group(1)) * _UNIT_SECONDS[found.group(2)])
            return iso((now or datetime.now(UTC)) - ago)
        moment = datetime.fromisoformat(text)
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    except (ValueError, OverflowError):
        raise ValueError(f"{text!r} is neither an ISO 8601 time (2026-11-24, "
                         "2026-11-24T09:00Z) nor a duration ago (90m, 24h, 7d)") from None
