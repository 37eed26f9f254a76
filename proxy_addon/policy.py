"""Policy rules from the config: first match wins, and a write no rule names is held."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from proxy_addon.config import Rule


@dataclass(frozen=True, slots=True)
class WriteFacts:
    """What the rules may look at."""

    system: str | None
    object_type: str | None
    operation: str | None
    host: str
    fields: Sequence[str]


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["allow", "hold", "deny"]
    reviewer_groups: list[str]
    expire_after: float | None
    rule: str  # "policy[2]" or the rule's name; "default" when none matched


DEFAULT_VERDICT = Verdict("hold", [], None, "default")


def _fields_within(touched: Sequence[str], allowed: Sequence[str]) -> bool:
    """A rule on fields matches only a write that touches nothing outside them."""
    return bool(touched) and all(
        any(field == name or field.startswith(name + ".") for name in allowed) for field in touched
    )


def _matches(rule: Rule, facts: WriteFacts) -> bool:
    match = rule.match
    return (
        (match.system is None or (facts.system or "").lower() == match.system.lower())
        and (match.object is None or (facts.object_type or "").lower() == match.object.lower())
        and (match.operation is None or facts.operation == match.operation)
        and (match.host is None or fnmatchcase(facts.host.lower(), match.host.lower()))
        and (match.fields is None or _fields_within(facts.fields, match.fields))
    )


class Policy:
    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = list(rules)

    def decide(self, facts: WriteFacts) -> Verdict:
        for index, rule in enumerate(self._rules):
            if _matches(rule, facts):
                return Verdict(rule.action, list(rule.reviewers), rule.expire_after,
                               rule.name or f"policy[{index}]")
        return DEFAULT_VERDICT
