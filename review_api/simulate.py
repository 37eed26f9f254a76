"""What if this rule were allow: how many decided writes it would have let through, and how
many of those a person rejected, edited or reverted later (evidence against loosening).

Pure: the caller reads the decided approvals and the audit log from the store, and gives the
rule as a predicate (proxy_addon.simulate builds it from the policy's own matching).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from review_api.models import Approval, AuditEntry, Status
from review_api.stats import APPROVED, edited

MAX_EXAMPLES = 10


@dataclass(frozen=True, slots=True)
class Example:
    """One write the rule would have let through that a person did not let stand as sent."""

    id: str
    system: str | None
    object_type: str | None
    record_id: str | None
    outcome: str  # rejected | edited | reverted
    decided_by: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class Simulation:
    considered: int  # decided writes looked at (approved or rejected by a person)
    would_allow: int  # of those, the rule would have let through without review
    rejected: int  # of would_allow: a person rejected it
    edited: int  # of would_allow: a person changed values or approved only some fields
    reverted: int  # of would_allow: executed, then someone asked to undo it
    as_sent: int  # of would_allow: approved unchanged and never undone (the rule was right)
    examples: list[Example] = field(default_factory=list)  # the first MAX_EXAMPLES troubled

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def reverted_in(audit: list[AuditEntry]) -> set[str]:
    """Approvals someone asked to undo (`revert_proposed`), unless that revert was rejected:
    then the write stood."""
    proposed = {entry.detail.get("revert_approval_id"): entry.approval_id for entry in audit
                if entry.event == "revert_proposed" and entry.approval_id is not None}
    turned_down = {entry.approval_id for entry in audit
                   if entry.event in (Status.rejected.value, Status.denied.value)}
    return {original for revert, original in proposed.items() if revert not in turned_down}


def _outcomes(approval: Approval, reverted: set[str]) -> list[str]:
    found = []
    if approval.status is Status.rejected:
        found.append("rejected")
    if approval.status in APPROVED and edited(approval):
        found.append("edited")
    if approval.id in reverted:
        found.append("reverted")
    return found


def simulate(rule_matches: Callable[[Approval], bool], decided: list[Approval],
             audit: list[AuditEntry]) -> Simulation:
    """Counts over `decided` (others, e.g. pending or expired ones, are skipped: nobody
    decided them); `audit` says which were reverted later."""
    reverted = reverted_in(audit)
    considered = [a for a in decided if a.status in APPROVED or a.status is Status.rejected]
    allowed = [a for a in considered if rule_matches(a)]
    counts = {"rejected": 0, "edited": 0, "reverted": 0}
    examples: list[Example] = []
    as_sent = 0
    for approval in allowed:
        outcomes = _outcomes(approval, reverted)
        for outcome in outcomes:
            counts[outcome] += 1
        as_sent += not outcomes
        if outcomes and len(examples) < MAX_EXAMPLES:
            examples.append(Example(approval.id, approval.system, approval.object_type,
                                    approval.record_id, ", ".join(outcomes),
                                    approval.decided_by, approval.note))
    return Simulation(len(considered), len(allowed), counts["rejected"], counts["edited"],
                      counts["reverted"], as_sent, examples)
