"""Who may decide an approval, in one place: every decision path (API, page, Slack, bulk, CLI)
asks `permission` and nothing else.

An approval's routed groups decide it (an unrouted one: any reviewer). Once it has waited
`escalate_after`, its `escalate_to` groups may decide too. A reviewer named delegate by
someone away acts with the away reviewer's groups (`on_behalf_of`) until the away ends.
Nobody approves a write of an agent they own, neither directly nor through a delegation:
the owner of an agent is the one person whose judgement of its writes is not independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from review_api.auth import Reviewer, Reviewers
from review_api.models import Approval, Decision
from review_api.store.base import Away


@dataclass(frozen=True, slots=True)
class Permission:
    allowed: bool
    reason: str | None  # why not, in words for the reviewer; None when allowed
    on_behalf_of: str | None  # the away reviewer whose groups allowed it, if not their own


def escalated(approval: Approval, now: datetime) -> bool:
    """The approval has waited long enough that its escalate_to groups may decide it too."""
    return (approval.escalate_after is not None and bool(approval.escalate_to)
            and now >= approval.created_at + timedelta(seconds=approval.escalate_after))


def deciding_groups(approval: Approval, now: datetime) -> list[str]:
    """The groups that may decide now; empty: any reviewer."""
    if not approval.reviewer_groups:
        return []
    extra = approval.escalate_to if escalated(approval, now) else []
    return list(dict.fromkeys([*approval.reviewer_groups, *extra]))


def _in(groups: list[str], reviewer: Reviewer) -> bool:
    return not groups or bool(set(groups) & set(reviewer.groups))


def delegators(reviewer: Reviewer, *, now: datetime, away: list[Away],
               reviewers: Reviewers) -> list[Reviewer]:
    """The configured reviewers away now who named `reviewer` their delegate."""
    found = []
    for entry in away:
        if entry.delegate != reviewer.name or entry.until <= now or entry.reviewer == reviewer.name:
            continue
        absent = reviewers.named(entry.reviewer)
        if absent is not None:
            found.append(absent)
    return found


def _routing(reviewer: Reviewer, approval: Approval, now: datetime, away: list[Away],
             reviewers: Reviewers, *, skip: str | None = None) -> tuple[bool, str | None]:
    """(routed to them, on whose behalf): their own groups first, then a delegation from
    anyone away but `skip`."""
    groups = deciding_groups(approval, now)
    if _in(groups, reviewer):
        return True, None
    for absent in delegators(reviewer, now=now, away=away, reviewers=reviewers):
        if absent.name != skip and _in(groups, absent):
            return True, absent.name
    return False, None


def visible(reviewer: Reviewer, approval: Approval, *, now: datetime, away: list[Away],
            reviewers: Reviewers) -> bool:
    """Whether the approval is routed to this reviewer (directly, escalated or delegated):
    what lists and reads show them. An agent's owner sees its writes, but may not approve."""
    return _routing(reviewer, approval, now, away, reviewers)[0]


def permission(reviewer: Reviewer, approval: Approval, *, now: datetime, away: list[Away],
               reviewers: Reviewers, owners: dict[str, str],
               decision: Decision = Decision.approve) -> Permission:
    """May `reviewer` cast `decision` on `approval` now? The owner rule binds approvals only:
    stopping one's own agent is always safe, so an owner routed to it may reject."""
    # An agent only claimed in a header (SOCKS5, reverse mode) binds its owner too: refusing
    # more there errs on the safe side.
    agent = approval.context.agent or approval.context.claimed_agent
    owner = owners.get(agent) if agent is not None and decision is Decision.approve else None
    if owner is not None and owner == reviewer.name:
        return Permission(False, f"{reviewer.name} owns the agent {agent!r} and may not "
                                 f"approve its writes", None)
    routed, on_behalf_of = _routing(reviewer, approval, now, away, reviewers, skip=owner)
    if routed:
        return Permission(True, None, on_behalf_of)
    if owner is not None and _routing(reviewer, approval, now, away, reviewers)[0]:
        # Only the owner's own delegation reaches it: a delegation carries no more than
        # the owner has, and the owner may not approve this.
        return Permission(False, f"{reviewer.name} may decide this only for {owner}, who "
                                 f"owns the agent {agent!r}: a delegation cannot approve "
                                 f"the owner's own agent's writes", None)
    groups = deciding_groups(approval, now)
    later = (f" (and {approval.escalate_to} after {approval.escalate_after:g} s pending)"
             if approval.escalate_after is not None and approval.escalate_to
             and not escalated(approval, now) else "")
    return Permission(False, f"approval {approval.id} is routed to {groups}{later}; "
                             f"{reviewer.name} is in none of them, nor delegated by anyone "
                             f"away who is", None)
