"""A policy rule given as YAML, tried on the store's history: which decided writes it would have
let through (review_api.simulate counts what people did with those).

The rule is matched by the policy itself (`Policy([rule]).decide`), on the same facts the proxy
gave it when the write was held, rebuilt from the stored approval: one matcher, never a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from proxy_addon.config import Rule
from proxy_addon.policy import Policy, WriteFacts
from proxy_addon.proposals import _policy_field as policy_field
from review_api.models import Approval, Status
from review_api.simulate import Simulation, simulate
from review_api.stats import APPROVED
from review_api.store import ApprovalStore

DEFAULT_LAST = 500


class RuleError(ValueError):
    """The rule cannot be simulated; the message names the key and the problem."""


def parse_rule(text: str) -> Rule:
    """A policy rule as written under `policy:` in the config; `action` defaults to allow,
    the only action a simulation asks about."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RuleError(f"rule: not YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise RuleError("rule: expected a mapping such as "
                        "'{match: {system: Zendesk, fields: [tags]}}'")
    raw.setdefault("action", "allow")
    try:
        rule = Rule.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise RuleError(f"rule: {where}: {message}") from None
    if rule.action != "allow":
        raise RuleError(f"rule: action: a simulation asks what an allow rule would let "
                        f"through, got {rule.action!r}")
    return rule


def facts_of(approval: Approval) -> WriteFacts:
    """The facts the policy saw when this write was held (proxy_addon.proposals builds them the
    same way: fields and parameters as the policy names them, the risk level, each change)."""
    fields = ({policy_field(change.field) for change in approval.changes}
              | {policy_field(parameter.name) for parameter in approval.parameters})
    return WriteFacts(
        system=approval.system, object_type=approval.object_type,
        operation=approval.operation, host=urlsplit(approval.url).hostname or "",
        fields=sorted(fields), agent=approval.context.agent, task=approval.context.task,
        action=approval.action, risk=approval.risk.level,
        changes=[(policy_field(c.field), c.old, c.new) for c in approval.changes])


def rule_predicate(rule: Rule) -> Callable[[Approval], bool]:
    """Whether the policy, with this rule first, would have let the write through."""
    policy = Policy([rule])
    return lambda approval: policy.decide(facts_of(approval)).action == "allow"


DECIDED = APPROVED | {Status.rejected}


Visible = Callable[[Approval], bool]


async def last_decided(store: ApprovalStore, last: int,
                       visible: Visible | None = None) -> list[Approval]:
    """The newest `last` writes a person decided (approved or rejected) and `visible` lets
    through, oldest first."""
    decided = [a for a in await store.list(limit=10_000_000)
               if a.status in DECIDED and a.decided_at is not None
               and (visible is None or visible(a))]
    decided.sort(key=lambda a: a.decided_at or a.created_at)
    return decided[-last:] if last else []


async def simulate_rule(store: ApprovalStore, rule: Rule, last: int = DEFAULT_LAST,
                        visible: Visible | None = None) -> Simulation:
    """`visible`: only these approvals count (the page passes the reviewer's own, as the stats
    do, so a simulation names no write the reviewer may not see)."""
    decided = await last_decided(store, last, visible)
    return simulate(rule_predicate(rule), decided, await store.audit_entries())


class Simulator(Protocol):
    def __call__(self, text: str, visible: Visible | None = None) -> Awaitable[Simulation]: ...


def simulator(store: ApprovalStore, last: int = DEFAULT_LAST) -> Simulator:
    """ReviewApp's `simulator`: rule YAML (and optionally which approvals the reviewer may see)
    -> Simulation; RuleError (a ValueError) for a rule that cannot be used, its message fit
    for the page."""

    async def run(text: str, visible: Visible | None = None) -> Simulation:
        return await simulate_rule(store, parse_rule(text), last, visible)

    return run
