"""Risk a reviewer can read: what a write moves, who sees it, what it destroys."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from connectors_schemas import Operation, RiskHints, RiskKind
from proxy_addon.diff import FieldChange
from review_api.models import Risk, RiskLevel

_ORDER = {RiskLevel.low: 0, RiskLevel.medium: 1, RiskLevel.high: 2}


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """Where inside two lists or objects they first differ, e.g. ("[0].Amount", 120, 1200)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(dict.fromkeys([*old, *new])):
            found = _first_difference(old.get(key), new.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            found = _first_difference(old[index] if index < len(old) else None,
                                      new[index] if index < len(new) else None,
                                      f"{path}[{index}]")
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def _moved(change: FieldChange) -> str:
    inner = _first_difference(change.old, change.new)
    if inner is not None and inner[0] and isinstance(change.old, list | dict):
        return f"{change.field}{inner[0]} {_short(inner[1])} -> {_short(inner[2])}"
    return f"{change.field} {_short(change.old)} -> {_short(change.new)}"


def _under(field: str, hints: Sequence[str]) -> bool:
    return any(field == hint or field.startswith(hint + ".") for hint in hints)


def _amount_moved(change: FieldChange) -> float:
    """How much a money field moves; unknown amounts count as unbounded."""
    try:
        old = float(change.old) if change.old is not None else 0.0
        new = float(change.new) if change.new is not None else 0.0
    except (TypeError, ValueError):
        return float("inf")
    return abs(new - old)


def _customer_sees(change: FieldChange) -> bool:
    """An added item marked not public (an internal note) reaches no customer."""
    return not (change.kind == "add" and isinstance(change.new, dict)
                and change.new.get("public") is False)


def assess(
    operation: Operation | None,
    changes: Sequence[FieldChange],
    hints: RiskHints | None,
    *,
    notes: Sequence[tuple[RiskKind, str]] = (),
    old_values_known: bool,
    recognised: bool,
    body_problem: str | None = None,
    money_threshold: float = 0.0,
) -> Risk:
    level = RiskLevel.low
    reasons: list[str] = []
    kinds: set[RiskKind] = set()

    def flag(at_least: RiskLevel, reason: str, kind: RiskKind | None = None) -> None:
        nonlocal level
        if _ORDER[at_least] > _ORDER[level]:
            level = at_least
        reasons.append(reason)
        if kind is not None:
            kinds.add(kind)

    if not recognised:
        flag(RiskLevel.medium, "unrecognised write: no connector describes this request")
    if operation is Operation.delete:
        flag(RiskLevel.high, "deletes a record", RiskKind.destructive)
    for kind, reason in notes:
        flag(RiskLevel.medium if kind is RiskKind.customer_facing else RiskLevel.high, reason,
             kind)
    hints = hints or RiskHints()
    for change in changes:
        if _under(change.field, hints.money):
            small = _amount_moved(change) < money_threshold
            flag(RiskLevel.medium if small else RiskLevel.high,
                 f"moves money: {_moved(change)}",
                 RiskKind.money)
        elif _under(change.field, hints.customer_facing) and _customer_sees(change):
            what = f"added {change.field}" if change.kind == "add" else change.field
            flag(RiskLevel.medium, f"customer-visible: {what}", RiskKind.customer_facing)
    if body_problem is not None:
        flag(RiskLevel.medium, f"unreadable body: {body_problem}")
    if recognised and operation is not Operation.create and not old_values_known:
        flag(RiskLevel.medium, "old values unknown: the current record could not be fetched")
    return Risk(level=level, reasons=reasons, money=RiskKind.money in kinds,
                customer_facing=RiskKind.customer_facing in kinds,
                destructive=RiskKind.destructive in kinds)
