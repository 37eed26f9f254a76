"""Policy rules from the config: first match wins, and a write no rule names is held."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from proxy_addon.config import ChangeCondition, Rule
from review_api.models import RiskLevel

_RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class WriteFacts:
    """What the rules may look at."""

    system: str | None
    object_type: str | None
    operation: str | None
    host: str
    fields: Sequence[str]
    agent: str | None = None
    task: str | None = None
    action: str | None = None
    risk: RiskLevel = RiskLevel.low
    changes: Sequence[tuple[str, Any, Any]] = field(default_factory=tuple)  # field, old, new


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["allow", "hold", "deny"]
    reviewer_groups: list[str]
    expire_after: float | None
    rule: str  # "policy[2]" or the rule's name; "default" when none matched
    quorum: int = 1
    hold_timeout: float | None = None
    # Nobody decided: remind the routed groups after remind_after seconds; from escalate_after
    # on, escalate_to may decide too (review_api.routing, review_api.reminders).
    remind_after: float | None = None
    escalate_after: float | None = None
    escalate_to: list[str] = field(default_factory=list)


DEFAULT_VERDICT = Verdict("hold", [], None, "default")


def _fields_within(touched: Sequence[str], allowed: Sequence[str]) -> bool:
    """A rule on fields matches only a write that touches nothing outside them."""
    return bool(touched) and all(
        any(field == name or field.startswith(name + ".") for name in allowed) for field in touched
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _holds(condition: ChangeCondition, changes: Sequence[tuple[str, Any, Any]]) -> bool:
    """Some change of the condition's field satisfies every test the condition names."""
    for name, old, new in changes:
        if name != condition.field:
            continue
        new_number, old_number = _number(new), _number(old)
        tests = [
            condition.to is None or new == condition.to,
            condition.from_ is None or old == condition.from_,
            condition.above is None or (new_number is not None and new_number > condition.above),
            condition.below is None or (new_number is not None and new_number < condition.below),
            condition.increase_above is None or (
                new_number is not None and (new_number - (old_number or 0.0))
                > condition.increase_above),
        ]
        if all(tests):
            return True
    return False


def _named(names: list[str] | None, value: str | None) -> bool:
    return names is None or (value or "").lower() in {name.lower() for name in names}


def _matches(rule: Rule, facts: WriteFacts) -> bool:
    match = rule.match
    return (
        _named(match.agent, facts.agent)
        and _named(match.task, facts.task)
        and _named(match.system, facts.system)
        and _named(match.object, facts.object_type)
        and _named(match.operation, facts.operation)
        and _named(match.action, facts.action)
        and (match.host is None or fnmatchcase(facts.host.lower(), match.host.lower()))
        and (match.fields is None or _fields_within(facts.fields, match.fields))
        and (match.risk is None or _RISK_ORDER[facts.risk.value] >= _RISK_ORDER[match.risk])
        and all(_holds(condition, facts.changes) for condition in match.changes)
    )


class Policy:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = list(rules)

    def decide(self, facts: WriteFacts) -> Verdict:
        for index, rule in enumerate(self._rules):
            if _matches(rule, facts):
                return Verdict(rule.action, list(rule.reviewers), rule.expire_after,
                               rule.name or f"policy[{index}]", rule.quorum, rule.hold_timeout,
                               rule.remind_after, rule.escalate_after, list(rule.escalate_to))
        return DEFAULT_VERDICT
