"""Who may decide an approval (review_api.routing): the routing table every decision path uses.

tests/test_routing.py is the connectors' request routing; this is the reviewers'.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from review_api import Decision, Reviewer, Reviewers
from review_api.models import Approval, Context, Status
from review_api.routing import deciding_groups, escalated, permission, visible
from review_api.store import Away

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
ALICE = Reviewer(name="alice", token="alice-token-00000001", groups=["finance"])
BOB = Reviewer(name="bob", token="bob-token-0000000002", groups=["support"])
CAROL = Reviewer(name="carol", token="carol-token-00000003", groups=["leads"])
DAN = Reviewer(name="dan", token="dan-token-0000000004", groups=["finance"])
REVIEWERS = Reviewers([ALICE, BOB, CAROL, DAN])
OWNERS = {"billing-bot": "dan", "helpdesk-bot": "bob"}


def approval(groups: list[str], *, agent: str | None = "helpdesk-bot", waited: float = 0.0,
             escalate_after: float | None = None,
             escalate_to: list[str] | None = None) -> Approval:
    return Approval(id="a1", status=Status.pending, created_at=NOW - timedelta(seconds=waited),
                    method="PUT", url="https://x.test/invoices/1", fingerprint="f" * 64,
                    reviewer_groups=groups, context=Context(agent=agent),
                    escalate_after=escalate_after, escalate_to=escalate_to or [])


def allowed(reviewer: Reviewer, found: Approval, away: list[Away] | None = None,
            decision: Decision = Decision.approve) -> tuple[bool, str | None]:
    answer = permission(reviewer, found, now=NOW, away=away or [], reviewers=REVIEWERS,
                        owners=OWNERS, decision=decision)
    assert answer.allowed == (answer.reason is None)  # a refusal always says why
    return answer.allowed, answer.on_behalf_of


def away(reviewer: str, delegate: str | None, hours: float = 24) -> Away:
    return Away(reviewer, NOW + timedelta(hours=hours), delegate)


@pytest.mark.parametrize(("reviewer", "groups", "expected"), [
    (ALICE, ["finance"], True),
    (BOB, ["finance"], False),
    (BOB, [], True),  # unrouted: any reviewer
    (CAROL, ["finance", "leads"], True),  # any one of the routed groups
])
def test_the_routed_groups_decide(reviewer: Reviewer, groups: list[str], expected: bool) -> None:
    found = approval(groups, agent=None)
    assert allowed(reviewer, found) == (expected, None)
    assert visible(reviewer, found, now=NOW, away=[], reviewers=REVIEWERS) is expected


def test_escalate_to_groups_decide_only_after_escalate_after() -> None:
    early = approval(["finance"], waited=59, escalate_after=60, escalate_to=["leads"])
    late = approval(["finance"], waited=60, escalate_after=60, escalate_to=["leads"])
    assert not escalated(early, NOW) and escalated(late, NOW)
    assert deciding_groups(late, NOW) == ["finance", "leads"]
    refused = permission(CAROL, early, now=NOW, away=[], reviewers=REVIEWERS, owners=OWNERS)
    assert not refused.allowed and "['leads'] after 60 s pending" in (refused.reason or "")
    assert allowed(CAROL, late) == (True, None)
    assert allowed(ALICE, early) == (True, None)  # the routed group keeps deciding
    assert allowed(BOB, late)[0] is False  # escalation widens to escalate_to only


def test_a_delegate_acts_for_an_away_reviewer_with_their_groups() -> None:
    found = approval(["finance"])
    assert allowed(CAROL, found) == (False, None)
    assert allowed(CAROL, found, [away("alice", "carol")]) == (True, "alice")
    assert visible(CAROL, found, now=NOW, away=[away("alice", "carol")], reviewers=REVIEWERS)
    # Someone else's delegation, or an away with no delegate, gives carol nothing.
    assert allowed(CAROL, found, [away("alice", "bob"), away("dan", None)]) == (False, None)
    # Being away takes nothing from the away reviewer, and their own groups come first.
    assert allowed(ALICE, found, [away("alice", "carol")]) == (True, None)
    assert allowed(DAN, approval(["finance"], agent=None), [away("alice", "dan")]) == (True, None)


def test_an_expired_away_delegates_nothing() -> None:
    found = approval(["finance"])
    assert allowed(CAROL, found, [away("alice", "carol", hours=-1)]) == (False, None)
    assert allowed(CAROL, found, [Away("alice", NOW, "carol")]) == (False, None)  # until is now
    assert not visible(CAROL, found, now=NOW, away=[away("alice", "carol", hours=-1)],
                       reviewers=REVIEWERS)


def test_an_owner_never_approves_their_own_agents_write_but_may_stop_it() -> None:
    found = approval(["support"], agent="helpdesk-bot")  # bob owns helpdesk-bot
    answer = permission(BOB, found, now=NOW, away=[], reviewers=REVIEWERS, owners=OWNERS)
    assert not answer.allowed and "owns the agent 'helpdesk-bot'" in (answer.reason or "")
    assert allowed(BOB, found, decision=Decision.reject) == (True, None)
    assert visible(BOB, found, now=NOW, away=[], reviewers=REVIEWERS)
    assert allowed(BOB, approval(["support"], agent="other-bot")) == (True, None)
    # Unrouted writes too: anyone may decide, except the owner approving.
    assert allowed(BOB, approval([], agent="helpdesk-bot"))[0] is False


def test_a_delegate_cannot_approve_their_own_agents_write() -> None:
    # alice (finance) is away and named bob; bob owns helpdesk-bot.
    found = approval(["finance"], agent="helpdesk-bot")
    answer = permission(BOB, found, now=NOW, away=[away("alice", "bob")], reviewers=REVIEWERS,
                        owners=OWNERS)
    assert not answer.allowed and "owns the agent" in (answer.reason or "")
    assert allowed(BOB, approval(["finance"], agent="other-bot"), [away("alice", "bob")]) == (
        True, "alice")


def test_a_delegation_carries_no_more_than_the_owner_has() -> None:
    # dan (finance) owns billing-bot, is away and named carol: carol may not approve
    # billing-bot's writes on dan's behalf, but alice's delegation would do.
    found = approval(["finance"], agent="billing-bot")
    answer = permission(CAROL, found, now=NOW, away=[away("dan", "carol")],
                        reviewers=REVIEWERS, owners=OWNERS)
    assert not answer.allowed and "only for dan" in (answer.reason or "")
    assert allowed(CAROL, found, [away("dan", "carol")], Decision.reject) == (True, "dan")
    assert allowed(CAROL, found, [away("dan", "carol"), away("alice", "carol")]) == (
        True, "alice")


def test_an_agent_only_claimed_in_a_header_binds_its_owner_too() -> None:
    """SOCKS5 or reverse mode: no proxy authentication, the agent is a claim; its owner still
    may not approve the write (refusing more there is the safe side)."""
    found = approval(["finance"], agent=None)
    found = found.model_copy(update={"context": Context(claimed_agent="billing-bot")})
    assert allowed(DAN, found) == (False, None)
    assert allowed(ALICE, found) == (True, None)
