"""Deciding many approvals at once, each checked on its own exactly as if decided alone.

One note for all, but routing (review_api.routing), the owner rule, the quorum and the
fingerprint are checked per approval: a bulk decision is a loop of single decisions whose
failures are reported, never a way around a check. The page, the API and the CLI use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from review_api.auth import Reviewer, Reviewers
from review_api.models import Approval, Decision, utcnow
from review_api.routing import Permission, permission, visible
from review_api.store import Conflict, NotFound
from review_api.store.base import ApprovalStore, Away

MAX_IDS = 500  # one request decides at most this many: a bound on the work a click starts


@dataclass(frozen=True, slots=True)
class BulkResult:
    id: str
    ok: bool
    status: str | None  # the approval's status after this attempt, when it exists for them
    error: str | None  # why nothing was decided, in words for the reviewer


async def record_decision(store: ApprovalStore, reviewer: Reviewer, approval: Approval,
                          decision: Decision, note: str | None, allowed: Permission, *,
                          via: str, edits: list[dict[str, Any]] | None = None,
                          approve_fields: list[str] | None = None) -> Approval:
    """The vote, plus an audit entry naming the away reviewer when a delegation allowed it.
    Raises Conflict and NotFound as `store.decide` does."""
    decided = await store.decide(approval.id, decision, reviewer.name, note, edits=edits,
                                 approve_fields=approve_fields, via=via,
                                 on_behalf_of=allowed.on_behalf_of)
    if allowed.on_behalf_of is not None:
        await store.log_event("delegated_vote", approval.id, reviewer.name,
                              {"on_behalf_of": allowed.on_behalf_of,
                               "decision": decision.value, "via": via})
    return decided


async def decide_many(store: ApprovalStore, reviewer: Reviewer, ids: list[str],
                      decision: Decision, note: str | None, *, via: str, reviewers: Reviewers,
                      owners: dict[str, str], away: list[Away] | None = None,
                      fingerprints: dict[str, str] | None = None,
                      now: datetime | None = None) -> list[BulkResult]:
    """One result per id, in the order given (a repeated id is decided once)."""
    away = await store.away() if away is None else away
    results = []
    for approval_id in dict.fromkeys(ids):
        results.append(await _decide_one(
            store, reviewer, approval_id, decision, note, via=via, reviewers=reviewers,
            owners=owners, away=away, fingerprint=(fingerprints or {}).get(approval_id),
            now=now or utcnow()))
    return results


async def _decide_one(store: ApprovalStore, reviewer: Reviewer, approval_id: str,
                      decision: Decision, note: str | None, *, via: str, reviewers: Reviewers,
                      owners: dict[str, str], away: list[Away], fingerprint: str | None,
                      now: datetime) -> BulkResult:
    try:
        approval = await store.get(approval_id)
    except NotFound:
        return BulkResult(approval_id, False, None, f"no approval {approval_id}")
    if not visible(reviewer, approval, now=now, away=away, reviewers=reviewers):
        # Not routed to them: as absent as on the single-approval routes.
        return BulkResult(approval_id, False, None, f"no approval {approval_id}")
    if fingerprint is not None and fingerprint != approval.fingerprint:
        return BulkResult(approval_id, False, approval.status.value,
                          f"approval {approval_id} is not the write you saw: it was edited "
                          f"or replaced since; open it again")
    allowed = permission(reviewer, approval, now=now, away=away, reviewers=reviewers,
                         owners=owners, decision=decision)
    if not allowed.allowed:
        return BulkResult(approval_id, False, approval.status.value, allowed.reason)
    try:
        decided = await record_decision(store, reviewer, approval, decision, note, allowed,
                                        via=via)
    except Conflict as exc:
        return BulkResult(approval_id, False, exc.approval.status.value, exc.reason)
    except NotFound:
        return BulkResult(approval_id, False, None, f"no approval {approval_id}")
    return BulkResult(approval_id, True, decided.status.value, None)
