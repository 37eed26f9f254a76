"""Whether a reviewer's edits fit the held write: one check for the API and the page."""

from __future__ import annotations

from typing import Any

from review_api.models import Approval


def edit_problem(approval: Approval, edits: list[dict[str, Any]] | None,
                  approve_fields: list[str] | None) -> str | None:
    """Why the vendor's request cannot carry these edits, in words (answered as 422)."""
    if not edits and approve_fields is None:
        return None
    if not approval.edit.edits:
        return f"this write cannot be edited: {approval.edit.reason}"
    proposed = {change.field for change in approval.changes if change.kind == "set"}
    for name in [e["field"] for e in edits or []] + (approve_fields or []):
        if name not in proposed:
            return f"{name!r} is not a field this write changes (it changes {sorted(proposed)})"
    if approve_fields is not None and not approval.edit.partial:
        return f"only the whole write can be approved: {approval.edit.reason}"
    return None
