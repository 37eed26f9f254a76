"""Autonomy earned from history: how reviewers decided, and whether a task could loosen.

The signal only advises. Loosening is a config change a person makes, following the concept:
enough volume, no recent rejections, reviewers agree, and money stays approval-first.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from review_api.lifecycle import TRANSITIONS
from review_api.models import Approval, Decision, Status


def _after(status: Status) -> frozenset[Status]:
    """`status` and every status an approval can reach from it."""
    found, todo = {status}, [status]
    while todo:
        for following in TRANSITIONS[todo.pop()] - found:
            found.add(following)
            todo.append(following)
    return frozenset(found)


# A reviewer approved it, whatever sending did next (sending, executed, failed, stale,
# outcome_unknown): a decision to count, neither pending nor known to be executed.
APPROVED = _after(Status.approved)


@dataclass(frozen=True, slots=True)
class LooseningCriteria:
    min_decisions: int = 20
    recent: int = 10  # none of the last this many decisions may be a rejection
    allow_money: bool = False


def _split(approval: Approval) -> bool:
    """Reviewers disagreed: some approved, someone rejected."""
    decisions = {vote.decision for vote in approval.votes}
    return Decision.approve in decisions and Decision.reject in decisions


def summarize(approvals: list[Approval], criteria: LooseningCriteria) -> dict[str, Any]:
    decided = [a for a in approvals if a.decided_at is not None
               and (a.status in APPROVED or a.status in (Status.rejected, Status.expired))]
    decided.sort(key=lambda a: a.decided_at or a.created_at)
    approved = sum(a.status in APPROVED for a in decided)
    rejected = sum(a.status is Status.rejected for a in decided)
    expired = sum(a.status is Status.expired for a in decided)
    human = [a for a in decided if a.status is not Status.expired]
    seconds = [((a.decided_at or a.created_at) - a.created_at).total_seconds() for a in human]
    splits = sum(_split(a) for a in approvals)
    money = any(a.risk.money for a in approvals)
    recent = human[-criteria.recent:]
    recent_rejections = sum(a.status is Status.rejected for a in recent)

    reasons: list[str] = []
    if len(human) < criteria.min_decisions:
        reasons.append(f"only {len(human)} decisions; at least {criteria.min_decisions} needed")
    if recent_rejections:
        reasons.append(f"{recent_rejections} of the last {len(recent)} decisions were rejections")
    if splits:
        reasons.append(f"reviewers disagreed on {splits} write(s)")
    if money and not criteria.allow_money:
        reasons.append("moves money: stays approval-first")
    ready = not reasons
    if ready:
        reasons.append(f"{len(human)} decisions, none of the last {len(recent)} rejected, "
                       "reviewers agree")
    return {
        "total": len(approvals),
        "approved": approved,
        "rejected": rejected,
        "expired": expired,
        "pending": sum(a.status is Status.pending for a in approvals),
        "rejection_rate": round(rejected / len(human), 4) if human else None,
        "median_seconds_to_decision": round(statistics.median(seconds), 3) if seconds else None,
        "disagreements": splits,
        "moves_money": money,
        "ready_to_loosen": ready,
        "reasons": reasons,
    }


def _grouped(approvals: Iterable[Approval], key: Callable[[Approval], str | None],
             criteria: LooseningCriteria) -> list[dict[str, Any]]:
    groups: dict[str, list[Approval]] = {}
    for approval in approvals:
        groups.setdefault(key(approval) or "(none)", []).append(approval)
    return [{"key": name, **summarize(members, criteria)}
            for name, members in sorted(groups.items())]


def compute_stats(approvals: list[Approval], criteria: LooseningCriteria) -> dict[str, Any]:
    held = [a for a in approvals if a.status is not Status.denied]
    return {
        "criteria": {"min_decisions": criteria.min_decisions, "recent": criteria.recent,
                     "allow_money": criteria.allow_money},
        "by_task": _grouped(held, lambda a: a.context.task, criteria),
        "by_system": _grouped(held, lambda a: a.system, criteria),
        "by_object": _grouped(held, lambda a: f"{a.system}/{a.object_type}" if a.system
                              else None, criteria),
        "by_rule": _grouped(held, lambda a: a.rule, criteria),
    }
