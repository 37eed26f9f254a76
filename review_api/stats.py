"""Autonomy earned from history: how reviewers decided, and whether a task could loosen.

The signal only advises. Loosening is a config change a person makes, following the concept:
enough volume, no recent rejections, reviewers agree, reviewers seldom had to edit the agent's
writes or undo them later (an edit means the plan was not clear), and money stays
approval-first.
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
    # Of the approved writes, at most this share edited by a reviewer (values changed, or only
    # some fields approved) and at most this share reverted later; none of the last `recent`
    # decisions may have been reverted.
    max_edit_rate: float = 0.1
    max_revert_rate: float = 0.05


def edited(approval: Approval) -> bool:
    """A reviewer changed what was sent: values of their own, or only some of the fields."""
    if approval.edits:
        return True
    if approval.approve_fields is None:
        return False
    proposed = {change.field for change in approval.changes if change.kind == "set"}
    return not proposed <= set(approval.approve_fields)


def reverted_ids(approvals: Iterable[Approval]) -> set[str]:
    """Approvals someone asked to undo later: a revert points at them and was not turned down
    (a rejected or denied revert means the write stood)."""
    return {a.reverts for a in approvals
            if a.reverts is not None and a.status not in (Status.rejected, Status.denied)}


def _split(approval: Approval) -> bool:
    """Reviewers disagreed: some approved, someone rejected."""
    decisions = {vote.decision for vote in approval.votes}
    return Decision.approve in decisions and Decision.reject in decisions


def _rate(count: int, total: int) -> float | None:
    return round(count / total, 4) if total else None


def summarize(approvals: list[Approval], criteria: LooseningCriteria,
              reverted: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """One group's numbers and its ready_to_loosen signal; `reverted`: ids (of any group)
    someone reverted later."""
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
    approved_writes = [a for a in human if a.status in APPROVED]
    edits = sum(edited(a) for a in approved_writes)
    reverts = sum(a.id in reverted for a in approved_writes)
    recent_reverts = sum(a.id in reverted for a in recent)
    edit_rate, revert_rate = (_rate(edits, len(approved_writes)),
                              _rate(reverts, len(approved_writes)))

    reasons: list[str] = []
    if len(human) < criteria.min_decisions:
        reasons.append(f"only {len(human)} decisions; at least {criteria.min_decisions} needed")
    if recent_rejections:
        reasons.append(f"{recent_rejections} of the last {len(recent)} decisions were rejections")
    if splits:
        reasons.append(f"reviewers disagreed on {splits} write(s)")
    if edit_rate is not None and edit_rate > criteria.max_edit_rate:
        reasons.append(f"reviewers edited {edits} of {len(approved_writes)} approved writes "
                       f"({edit_rate:.0%}; at most {criteria.max_edit_rate:.0%}): the agent's "
                       "plan is not clear enough")
    if recent_reverts:
        reasons.append(f"{recent_reverts} of the last {len(recent)} decisions were reverted "
                       "later")
    elif revert_rate is not None and revert_rate > criteria.max_revert_rate:
        reasons.append(f"{reverts} of {len(approved_writes)} approved writes were reverted "
                       f"later ({revert_rate:.0%}; at most {criteria.max_revert_rate:.0%})")
    if money and not criteria.allow_money:
        reasons.append("moves money: stays approval-first")
    ready = not reasons
    if ready:
        reasons.append(f"{len(human)} decisions, none of the last {len(recent)} rejected or "
                       f"reverted, reviewers agree, {edits} edited")
    return {
        "total": len(approvals),
        "approved": approved,
        "rejected": rejected,
        "expired": expired,
        "pending": sum(a.status is Status.pending for a in approvals),
        "rejection_rate": _rate(rejected, len(human)),
        "edited": edits,
        "edit_rate": edit_rate,  # of the approved writes
        "reverted": reverts,
        "revert_rate": revert_rate,  # of the approved writes
        "median_seconds_to_decision": round(statistics.median(seconds), 3) if seconds else None,
        "disagreements": splits,
        "moves_money": money,
        "ready_to_loosen": ready,
        "reasons": reasons,
    }


def _grouped(approvals: Iterable[Approval], key: Callable[[Approval], str | None],
             criteria: LooseningCriteria, reverted: set[str]) -> list[dict[str, Any]]:
    groups: dict[str, list[Approval]] = {}
    for approval in approvals:
        groups.setdefault(key(approval) or "(none)", []).append(approval)
    return [{"key": name, **summarize(members, criteria, reverted)}
            for name, members in sorted(groups.items())]


def compute_stats(approvals: list[Approval], criteria: LooseningCriteria) -> dict[str, Any]:
    held = [a for a in approvals if a.status is not Status.denied]
    # A revert may fall in another group (another rule): look for them across all.
    reverted = reverted_ids(approvals)
    return {
        "criteria": {"min_decisions": criteria.min_decisions, "recent": criteria.recent,
                     "allow_money": criteria.allow_money,
                     "max_edit_rate": criteria.max_edit_rate,
                     "max_revert_rate": criteria.max_revert_rate},
        "by_task": _grouped(held, lambda a: a.context.task, criteria, reverted),
        "by_system": _grouped(held, lambda a: a.system, criteria, reverted),
        "by_object": _grouped(held, lambda a: f"{a.system}/{a.object_type}" if a.system
                              else None, criteria, reverted),
        "by_rule": _grouped(held, lambda a: a.rule, criteria, reverted),
    }
