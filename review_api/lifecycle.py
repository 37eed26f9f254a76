"""An approval's life, in one place: which status may follow which, and what a vote does.

Both store backends call `check` before every status change and `vote` for every reviewer's
vote, so quorum, expiry and the legal transitions are decided here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from review_api.models import Decision, Status, iso

# Every status change goes through this table; anything else is a bug or a race lost.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.pending: frozenset({Status.approved, Status.rejected, Status.expired}),
    # failed: never claimed, e.g. the held request no longer matches what was reviewed.
    Status.approved: frozenset({Status.sending, Status.failed}),
    Status.sending: frozenset({Status.executed, Status.failed, Status.outcome_unknown,
                               Status.stale}),
    Status.outcome_unknown: frozenset({Status.executed, Status.failed}),  # a reviewer resolves
    Status.stale: frozenset(),
    Status.rejected: frozenset(),
    Status.expired: frozenset(),
    Status.denied: frozenset(),
    Status.executed: frozenset(),
    Status.failed: frozenset(),
}
# The statuses an approval is created in: held for review, or refused by policy at once.
INITIAL: frozenset[Status] = frozenset({Status.pending, Status.denied})


class IllegalTransition(ValueError):
    """A status change the table does not allow: a bug in the caller, never a lost race."""

    def __init__(self, source: Status | None, target: Status) -> None:
        self.source, self.target = source, target
        start = "created" if source is None else f"{source.value} ->"
        super().__init__(f"illegal approval status change: {start} {target.value}")


def check(source: Status | None, target: Status) -> None:
    """Raise IllegalTransition unless `target` may follow `source` (None: a new approval)."""
    allowed = INITIAL if source is None else TRANSITIONS[source]
    if target not in allowed:
        raise IllegalTransition(source, target)


def is_terminal(status: Status) -> bool:
    return not TRANSITIONS[status]


def forgets_sealed(target: Status) -> bool:
    """Whether reaching `target` drops the sealed request and the record as it was: a write
    that did not happen never needs the agent's credentials again. An executed one keeps them
    (sealed) for a revert; outcome_unknown keeps them until a reviewer resolves it."""
    return is_terminal(target) and target is not Status.executed


class VoteKind(StrEnum):
    expired = "expired"  # the approval's time ran out before this vote: it moves to expired
    repeat = "repeat"  # this reviewer already approved it: counted once, nothing changes
    voted = "voted"  # counted, the quorum is not reached yet: it stays pending
    decided = "decided"  # the vote decides it: approved (quorum reached) or rejected


@dataclass(frozen=True, slots=True)
class VoteOutcome:
    kind: VoteKind
    votes: list[dict[str, Any]]  # every vote so far, this one included when counted
    approvals: int  # distinct approving reviewers, this one included
    status: Status  # the approval's status after the vote


def vote(votes: list[dict[str, Any]], *, quorum: int, expires_at: datetime | None,
         decision: Decision, reviewer: str, note: str | None, now: datetime,
         on_behalf_of: str | None = None) -> VoteOutcome:
    """What one reviewer's vote does to a pending approval with `votes` stored so far.

    Any rejection rejects; approvals count distinct authorities until `quorum`; a vote after
    `expires_at` expires the approval instead of counting. A delegate's vote counts as the
    away reviewer's (`on_behalf_of`): one person's authority never counts twice, whether they
    voted themselves or through their delegate, and one person never votes twice.
    """
    if expires_at is not None and expires_at <= now:
        return VoteOutcome(VoteKind.expired, votes, 0, Status.expired)
    approving = [v for v in votes if v["decision"] == Decision.approve]
    people = {v["reviewer"] for v in approving}
    approvers = {v.get("on_behalf_of") or v["reviewer"] for v in approving}
    authority = on_behalf_of or reviewer
    if decision is Decision.approve and (reviewer in people or authority in approvers):
        return VoteOutcome(VoteKind.repeat, votes, len(approvers), Status.pending)
    cast: dict[str, Any] = {"reviewer": reviewer, "decision": decision.value, "note": note,
                            "at": iso(now)}
    if on_behalf_of is not None:
        cast["on_behalf_of"] = on_behalf_of
    counted = [*votes, cast]
    if decision is Decision.approve:
        approvers.add(authority)
    if decision is Decision.reject or len(approvers) >= max(quorum, 1):
        return VoteOutcome(VoteKind.decided, counted, len(approvers), decision.status)
    return VoteOutcome(VoteKind.voted, counted, len(approvers), Status.pending)
