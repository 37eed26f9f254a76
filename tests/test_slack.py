"""Slack approvals: the message, the signed interactions and the poster, against the fake
Slack Web API over real HTTP and a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import Route

from review_api.auth import Reviewer, Reviewers
from review_api.feed import ChangeFeed
from review_api.models import (
    Approval,
    Change,
    Context,
    Decision,
    IdentityField,
    Parameter,
    Proposal,
    Risk,
    RiskLevel,
    Status,
    utcnow,
)
from review_api.slack import (
    PATH,
    DecisionRequest,
    InMemoryReplayGuard,
    MessageRef,
    Refusal,
    Refused,
    SlackApi,
    SlackApprovals,
    SlackDecisionLimit,
    SlackError,
    SlackFollower,
    SlackInteractions,
    SlackPoster,
    SlackSettings,
    check_decision,
)
from review_api.slack.blocks import (
    APPROVE_ACTION,
    MAX_BLOCKS,
    MAX_BUTTON_VALUE,
    MAX_FIELD_TEXT,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    NOTE_BLOCK,
    NOTE_INPUT,
    OPEN_ACTION,
    REJECT_ACTION,
    ButtonRef,
    held_message,
)
from review_api.store.base import Away
from review_api.store.sqlite import SqliteStore
from tests.fakes.server import HTTPSFake
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, User, block_kit_problem

REVIEWERS = [
    Reviewer(name="alice", token="alice-token-000000000", groups=["support"]),
    Reviewer(name="bob", token="bob-token-00000000000", groups=["support"]),
    Reviewer(name="carol", token="carol-token-000000000", groups=["finance"]),
]
USERS = (User("U0ALICE", "alice", "alice@example.com"), User("U0BOB", "bob", "Bob@Example.com"),
         User("U0CAROL", "carol"), User("U0MALLORY", "mallory", "mallory@example.com"))
REVIEW_URL = "http://review.example:8081"


def proposal(*, groups: list[str] | None = None, risk: Risk | None = None,
             fingerprint: str = "a" * 64, quorum: int = 1, agent: str | None = "support-bot",
             changes: list[Change] | None = None,
             reason: str | None = "customer asked") -> Proposal:
    return Proposal(
        method="PUT", url="https://acme.zendesk.com/api/v2/tickets/42.json", system="Zendesk",
        object_type="ticket", operation="update", record_id="42", fingerprint=fingerprint,
        changes=changes if changes is not None else [Change(field="status", old="open",
                                                            new="solved")],
        risk=risk or Risk(level=RiskLevel.medium, reasons=["customer-facing status"]),
        context=Context(reason=reason, task="close-resolved", agent=agent),
        reviewer_groups=["support"] if groups is None else groups, quorum=quorum)


def settings_for(port: int, **more: Any) -> SlackSettings:
    return SlackSettings(
        bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
        channels={"support": "C0SUPPORT", "finance": "C0FINANCE"},
        default_channel="C0GENERAL", api_url=f"http://127.0.0.1:{port}/api/",
        users={"U0ALICE": "alice", "bob@example.com": "bob", "U0CAROL": "carol"}, **more)


@pytest.fixture
def fake() -> Iterator[tuple[FakeSlack, int]]:
    slack = FakeSlack(users=USERS)
    with HTTPSFake(slack.app) as server:
        yield slack, server.port


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    yield store
    await store.close()


class Rig:
    """The Slack side as the composition root would build it, against the fake."""

    def __init__(self, slack: FakeSlack, port: int, store: SqliteStore,
                 owners: dict[str, str] | None = None, **settings: Any) -> None:
        self.slack = slack
        self.store = store
        self.settings = settings_for(port, **settings)
        self.api = SlackApi(self.settings)
        self.poster = SlackPoster(self.api, self.settings, REVIEW_URL, store)
        self.approvals = SlackApprovals(self.settings, Reviewers(REVIEWERS), store, self.api,
                                        self.poster, owners=owners)  # the store's replay guard

    async def hold(self, **fields: Any) -> tuple[Approval, MessageRef]:
        approval = await self.store.create(proposal(**fields))
        await self.poster.show(approval)
        refs = await self.poster.refs.of(approval.id)
        assert len(refs) == 1
        return approval, refs[0]

    async def send(self, payload: dict[str, Any], **sign: Any) -> Any:
        body = self.slack.form(payload)
        return await self.approvals.handle(self.slack.sign(body, **sign), body)

    async def click(self, ref: MessageRef, action: str, user: str) -> Any:
        return await self.send(self.slack.click(ref.channel, ref.ts, action, user))

    def told(self, user: str) -> list[str]:
        return [e["text"] for e in self.slack.ephemeral if e["user"] == user]


@pytest.fixture
def rig(fake: tuple[FakeSlack, int], store: SqliteStore) -> Rig:
    return Rig(fake[0], fake[1], store, team_id="T0FAKE")  # the fake's workspace


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions"
            for e in b["elements"]}


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# -- the message ---------------------------------------------------------------------------


async def test_held_message_stays_within_block_kit_limits_and_escapes_the_agent(
        store: SqliteStore) -> None:
    changes = [Change(field=f"custom_fields.f{i}", old="x" * 5000, new=f"<!channel> {i}")
               for i in range(300)]
    approval = await store.create(proposal(
        changes=changes, reason="<!channel> <https://evil.example|your bank> & more " * 200))
    approval = approval.model_copy(update={"parameters": [
        Parameter(name=f"opt{i}", value={"deep": "y" * 900}) for i in range(100)]})
    message = held_message(approval, f"{REVIEW_URL}/approvals/{approval.id}", decide_here=True)
    blocks = message["blocks"]

    assert len(blocks) <= MAX_BLOCKS and block_kit_problem(blocks) is None
    for block in blocks:
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= MAX_SECTION_TEXT
            assert all(len(f["text"]) <= MAX_FIELD_TEXT for f in block.get("fields", []))
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
    text = all_text(blocks)
    assert "<!channel>" not in text and "<https://evil" not in text  # no mention, no fake link
    assert "&lt;!channel&gt;" in text and "more on the page" in text
    found = buttons(message)
    assert list(found) == [APPROVE_ACTION, REJECT_ACTION, OPEN_ACTION]
    assert found[APPROVE_ACTION]["style"] == "primary"
    assert found[OPEN_ACTION]["url"] == f"{REVIEW_URL}/approvals/{approval.id}"
    for action in (APPROVE_ACTION, REJECT_ACTION):
        value = found[action]["value"]
        assert len(value) <= MAX_BUTTON_VALUE
        assert ButtonRef.parse(value) == ButtonRef(approval.id, approval.fingerprint)


async def test_message_shows_what_a_reviewer_judges_by(store: SqliteStore) -> None:
    approval = await store.create(proposal())
    text = all_text(held_message(approval, "http://x/approvals/1", decide_here=True)["blocks"])
    for shown in ("Zendesk", "ticket", "42", "`status`", "`open` → `solved`", "customer asked",
                  "close-resolved", "support-bot", "medium", "customer-facing status"):
        assert shown in text, shown


def test_money_and_destructive_writes_get_only_open_by_default() -> None:
    limit = SlackDecisionLimit()
    assert limit.allows(Risk(level=RiskLevel.high, customer_facing=True))
    assert not limit.allows(Risk(level=RiskLevel.low, money=True))
    assert not limit.allows(Risk(level=RiskLevel.low, destructive=True))
    assert limit.why_not(Risk(money=True)) == "it moves money"
    assert SlackDecisionLimit(money=True).allows(Risk(money=True))
    assert not SlackDecisionLimit(risk=RiskLevel.medium).allows(Risk(level=RiskLevel.high))


async def test_page_only_write_is_posted_with_only_open(rig: Rig) -> None:
    approval, ref = await rig.hold(risk=Risk(level=RiskLevel.high, money=True,
                                             reasons=["refund of 900.00"]))
    posted = rig.slack.message(ref.channel, ref.ts)
    assert list(buttons({"blocks": posted.blocks})) == [OPEN_ACTION]
    assert "Decided on the review page: it moves money" in all_text(posted.blocks)
    # A button left from before the limit was set decides nothing either.
    old = held_message(approval, rig.poster.link(approval.id), decide_here=True)
    stale = await rig.api.post_message("C0SUPPORT", old["text"], old["blocks"])
    reply = await rig.click(stale, APPROVE_ACTION, "U0ALICE")
    assert reply.outcome.why is Refused.page_only
    assert (await rig.store.get(approval.id)).status is Status.pending
    assert any("decided on the review page: it moves money" in t for t in rig.told("U0ALICE"))


# -- the signature ---------------------------------------------------------------------------


def interactions(clock: list[float]) -> SlackInteractions:
    settings = settings_for(1)
    return SlackInteractions(settings, REVIEWERS, InMemoryReplayGuard(lambda: clock[0]),
                             clock=lambda: clock[0])


def approve_payload(user: str = "U0ALICE", fingerprint: str = "a" * 64) -> bytes:
    return FakeSlack.form({
        "type": "block_actions", "user": {"id": user}, "trigger_id": "t",
        "container": {"type": "message", "channel_id": "C0SUPPORT", "message_ts": "1.000001"},
        "actions": [{"type": "button", "action_id": APPROVE_ACTION,
                     "value": ButtonRef("appr-1", fingerprint).value()}]})


async def test_a_correctly_signed_request_passes() -> None:
    clock = [time.time()]
    body = approve_payload()
    found = await interactions(clock).parse(FakeSlack().sign(body, int(clock[0])), body)
    assert isinstance(found, DecisionRequest)
    assert (found.approval_id, found.fingerprint, found.decision, found.reviewer.name) == (
        "appr-1", "a" * 64, Decision.approve, "alice")
    assert (found.where.channel, found.where.message_ts) == ("C0SUPPORT", "1.000001")


@pytest.mark.parametrize("tamper", ["secret", "body", "missing", "timestamp_in_signature"])
async def test_forged_signatures_are_refused(tamper: str) -> None:
    clock = [time.time()]
    body = approve_payload()
    slack = FakeSlack()
    headers = slack.sign(body, int(clock[0]),
                         secret="not-the-secret-at-all" if tamper == "secret" else None)
    if tamper == "body":
        body = approve_payload(fingerprint="b" * 64)
    if tamper == "missing":
        del headers["X-Slack-Signature"]
    if tamper == "timestamp_in_signature":  # signed for another moment, sent with now
        headers["X-Slack-Signature"] = slack.sign(body, int(clock[0]) - 1)["X-Slack-Signature"]
    found = await interactions(clock).parse(headers, body)
    assert isinstance(found, Refusal) and found.why is Refused.forged and not found.trusted


async def test_a_stale_timestamp_is_refused_even_when_signed() -> None:
    clock = [time.time()]
    body = approve_payload()
    for offset in (-301, 301):
        found = await interactions(clock).parse(
            FakeSlack().sign(body, int(clock[0]) + offset), body)
        assert isinstance(found, Refusal) and found.why is Refused.stale_timestamp
    assert "five minutes" in found.reason
    found = await interactions(clock).parse({"X-Slack-Request-Timestamp": "soon",
                                             "X-Slack-Signature": "v0=00"}, body)
    assert isinstance(found, Refusal) and found.why is Refused.malformed


async def test_a_replayed_request_is_refused_and_forgotten_after_the_window() -> None:
    clock = [time.time()]
    guard = InMemoryReplayGuard(lambda: clock[0])
    checker = SlackInteractions(settings_for(1), REVIEWERS, guard, clock=lambda: clock[0])
    body = approve_payload()
    headers = FakeSlack().sign(body, int(clock[0]))
    assert isinstance(await checker.parse(headers, body), DecisionRequest)
    again = await checker.parse(headers, body)
    assert isinstance(again, Refusal) and again.why is Refused.replay
    clock[0] += 301  # past the window the timestamp refuses it; the guard may forget it
    late = await checker.parse(headers, body)
    assert isinstance(late, Refusal) and late.why is Refused.stale_timestamp
    assert len(guard) == 1
    assert await guard.first_use("v0=other", clock[0] + 300)
    assert len(guard) == 1  # the expired signature is forgotten: memory stays bounded


async def test_an_unmapped_user_is_refused_with_a_reason() -> None:
    clock = [time.time()]
    body = approve_payload(user="U0MALLORY")
    found = await interactions(clock).parse(FakeSlack().sign(body, int(clock[0])), body)
    assert isinstance(found, Refusal) and found.why is Refused.unmapped and found.trusted
    assert "U0MALLORY" in found.reason and "notifications.slack.users" in found.reason


async def test_a_user_of_another_workspace_is_refused_when_the_team_is_set() -> None:
    clock = [time.time()]
    body = FakeSlack.form({
        "type": "block_actions", "user": {"id": "U0ALICE"}, "team": {"id": "T0OTHER"},
        "actions": [{"type": "button", "action_id": APPROVE_ACTION,
                     "value": ButtonRef("appr-1", "a" * 64).value()}]})
    checker = SlackInteractions(settings_for(1, team_id="T0FAKE"), REVIEWERS,
                                InMemoryReplayGuard(), clock=lambda: clock[0])
    found = await checker.parse(FakeSlack().sign(body, int(clock[0])), body)
    assert isinstance(found, Refusal) and found.why is Refused.other_team
    assert "T0OTHER" in found.reason


# -- the checks --------------------------------------------------------------------------------


async def test_check_decision_applies_routing_fingerprint_and_self_approval(
        store: SqliteStore) -> None:
    limit = SlackDecisionLimit()
    alice, bob, carol = REVIEWERS
    reviewers = Reviewers(REVIEWERS)

    def check(approval: Approval, who: Reviewer, fingerprint: str, decision: Decision,
              owners: dict[str, str] | None = None, away: list[Away] | None = None,
              ) -> Refused | None:
        return check_decision(approval, who, fingerprint, decision, limit, now=utcnow(),
                              away=away or [], reviewers=reviewers, owners=owners).why

    approval = await store.create(proposal())
    assert check(approval, alice, approval.fingerprint, Decision.approve) is None
    assert check(approval, carol, approval.fingerprint, Decision.approve) is Refused.not_routed
    assert check(approval, alice, "b" * 64, Decision.approve) is Refused.stale_fingerprint
    owners = {"support-bot": "alice"}
    assert check(approval, alice, approval.fingerprint, Decision.approve,
                 owners) is Refused.self_approval
    assert check(approval, alice, approval.fingerprint, Decision.reject,
                 owners) is None  # stopping one's own agent is always allowed
    unrouted = await store.create(proposal(groups=[]))
    assert check(unrouted, carol, unrouted.fingerprint, Decision.approve) is None
    # Routing is review_api.routing's: a delegate of an away support reviewer may decide,
    # and an escalation opens the write to the escalate_to groups.
    bob_away = [Away("bob", utcnow() + timedelta(days=1), "carol")]
    found = check_decision(approval, carol, approval.fingerprint, Decision.approve, limit,
                           now=utcnow(), away=bob_away, reviewers=reviewers)
    assert found.why is None and found.permission.on_behalf_of == "bob"
    late = await store.create(proposal().model_copy(update={"escalate_after": 60.0,
                                                            "escalate_to": ["finance"]}))
    assert check(late, carol, late.fingerprint, Decision.approve) is Refused.not_routed
    assert check_decision(late, carol, late.fingerprint, Decision.approve, limit,
                          now=utcnow() + timedelta(seconds=61), away=[],
                          reviewers=reviewers).why is None
    assert bob.groups == ["support"]


# -- decisions through the endpoint, against the fake Slack and the store -----------------------


async def test_a_valid_approve_decides_and_updates_the_message_in_place(rig: Rig) -> None:
    approval, ref = await rig.hold()
    assert ref.channel == "C0SUPPORT"
    reply = await rig.click(ref, APPROVE_ACTION, "U0ALICE")
    assert (reply.status_code, reply.decided) == (200, Status.approved)
    decided = await rig.store.get(approval.id)
    assert (decided.status, decided.decided_by) == (Status.approved, "alice")
    posted = rig.slack.message(ref.channel, ref.ts)
    assert posted.updates == 1 and len(rig.slack.posted_in("C0SUPPORT")) == 1
    text = all_text(posted.blocks)
    assert "Approved* by alice in Slack" in text and "<!date^" in text
    assert list(buttons({"blocks": posted.blocks})) == [OPEN_ACTION]
    update = rig.slack.calls.of("chat.update")[-1]
    assert (update["channel"], update["ts"]) == (ref.channel, ref.ts)


@pytest.mark.parametrize("case", ["unmapped", "outside_group", "stale_fingerprint", "replay",
                                  "forged", "stale_timestamp"])
async def test_refused_interactions_decide_nothing_and_say_why(rig: Rig, case: str) -> None:
    approval, ref = await rig.hold()
    user = {"unmapped": "U0MALLORY", "outside_group": "U0CAROL"}.get(case, "U0ALICE")
    if case == "stale_fingerprint":  # the message of an earlier version of the write
        earlier = approval.model_copy(update={"fingerprint": "e" * 64})
        old = held_message(earlier, rig.poster.link(approval.id), decide_here=True)
        ref = await rig.api.post_message("C0SUPPORT", old["text"], old["blocks"])
    payload = rig.slack.click(ref.channel, ref.ts, APPROVE_ACTION, user)
    body = rig.slack.form(payload)
    headers = rig.slack.sign(body)
    if case == "replay":
        first = await rig.approvals.handle(headers, body)
        assert first.decided is Status.approved
        await rig.store.create(proposal())  # something else pending: the replay must not touch
    if case == "forged":
        headers = rig.slack.sign(body, secret="someone-elses-secret")
    if case == "stale_timestamp":
        headers = rig.slack.sign(body, timestamp=int(time.time()) - 600)
    reply = await rig.approvals.handle(headers, body)

    assert isinstance(reply.outcome, Refusal)
    expected = {"unmapped": Refused.unmapped, "outside_group": Refused.not_routed,
                "stale_fingerprint": Refused.stale_fingerprint, "replay": Refused.replay,
                "forged": Refused.forged, "stale_timestamp": Refused.stale_timestamp}[case]
    assert reply.outcome.why is expected
    after = await rig.store.get(approval.id)
    if case == "replay":
        assert [v.reviewer for v in after.votes] == ["alice"]  # once, not twice
    else:
        assert after.status is Status.pending and after.votes == []
    if case in ("replay", "forged", "stale_timestamp"):
        assert reply.status_code == 401 and reply.body == {"error": reply.outcome.reason}
        assert rig.told(user) == []  # an untrusted request's user is never answered
    else:
        assert reply.status_code == 200
        told = rig.told(user)
        assert told and told[-1] == f"Nothing was decided: {reply.outcome.reason}"
        words = {"unmapped": "not mapped to a reviewer",
                 "outside_group": "routed to ['support']; carol is in none of them",
                 "stale_fingerprint": "earlier version"}[case]
        assert words in told[-1]


async def test_reject_opens_a_note_modal_and_the_submission_rejects_with_the_note(
        rig: Rig) -> None:
    approval, ref = await rig.hold()
    reply = await rig.click(ref, REJECT_ACTION, "U0ALICE")
    assert reply.status_code == 200 and (await rig.store.get(approval.id)).status is Status.pending
    opened = rig.slack.calls.of("views.open")
    assert len(opened) == 1 and opened[0]["trigger_id"].startswith("fake-trigger-")
    (view_id,) = rig.slack.views
    payload = rig.slack.submit(view_id, "U0ALICE", {NOTE_BLOCK: {NOTE_INPUT: "  not yet  "}})
    reply = await rig.send(payload)
    assert (reply.status_code, reply.body, reply.decided) == (200, None, Status.rejected)
    decided = await rig.store.get(approval.id)
    assert (decided.status, decided.decided_by, decided.note) == (Status.rejected, "alice",
                                                                  "not yet")
    text = all_text(rig.slack.message(ref.channel, ref.ts).blocks)
    assert "Rejected* by alice in Slack" in text and "not yet" in text


async def test_a_refusal_inside_the_modal_is_shown_in_the_modal(rig: Rig) -> None:
    approval, ref = await rig.hold()
    await rig.click(ref, REJECT_ACTION, "U0ALICE")
    (view_id,) = rig.slack.views
    await rig.store.decide(approval.id, Decision.approve, "bob", None)  # on the page, meanwhile
    reply = await rig.send(rig.slack.submit(view_id, "U0ALICE", {NOTE_BLOCK: {NOTE_INPUT: "no"}}))
    assert reply.outcome.why is Refused.not_pending
    assert reply.body == {"response_action": "errors",
                          "errors": {NOTE_BLOCK: f"{approval.id} is already approved by bob"}}
    assert (await rig.store.get(approval.id)).status is Status.approved


async def test_reject_by_someone_outside_the_group_opens_no_modal(rig: Rig) -> None:
    approval, ref = await rig.hold()
    reply = await rig.click(ref, REJECT_ACTION, "U0CAROL")
    assert reply.outcome.why is Refused.not_routed
    assert rig.slack.calls.of("views.open") == []
    assert "carol is in none of them" in rig.told("U0CAROL")[-1]
    assert (await rig.store.get(approval.id)).status is Status.pending


async def test_a_user_mapped_by_email_decides_as_that_reviewer(rig: Rig) -> None:
    approval, ref = await rig.hold()
    reply = await rig.click(ref, APPROVE_ACTION, "U0BOB")
    assert reply.decided is Status.approved
    assert (await rig.store.get(approval.id)).decided_by == "bob"
    assert rig.slack.calls.of("users.info")[-1]["user"] == "U0BOB"


async def test_quorum_counts_each_slack_reviewer_once(rig: Rig) -> None:
    approval, ref = await rig.hold(quorum=2)
    first = await rig.click(ref, APPROVE_ACTION, "U0ALICE")
    assert first.decided is Status.pending
    assert rig.told("U0ALICE")[-1] == f"Your approval of {approval.id} is counted: 1 of 2."
    assert "1 of 2 approvals: alice" in all_text(rig.slack.message(ref.channel, ref.ts).blocks)
    again = await rig.click(ref, APPROVE_ACTION, "U0ALICE")
    assert again.outcome.why is Refused.conflict and "already approved" in rig.told("U0ALICE")[-1]
    second = await rig.click(ref, APPROVE_ACTION, "U0BOB")
    assert second.decided is Status.approved


async def test_nobody_approves_their_own_agents_write_from_slack(
        fake: tuple[FakeSlack, int], store: SqliteStore) -> None:
    rig = Rig(fake[0], fake[1], store, owners={"support-bot": "alice"})
    approval, ref = await rig.hold()
    reply = await rig.click(ref, APPROVE_ACTION, "U0ALICE")
    assert reply.outcome.why is Refused.self_approval
    assert (await rig.store.get(approval.id)).status is Status.pending
    assert (await rig.click(ref, APPROVE_ACTION, "U0BOB")).decided is Status.approved


async def test_the_open_link_click_is_acknowledged_and_decides_nothing(rig: Rig) -> None:
    approval, ref = await rig.hold()
    reply = await rig.click(ref, OPEN_ACTION, "U0MALLORY")
    assert (reply.status_code, reply.body) == (200, None)
    assert (await rig.store.get(approval.id)).status is Status.pending


async def test_the_starlette_route_answers_slack(rig: Rig) -> None:
    approval, ref = await rig.hold()
    app = Starlette(routes=[Route(PATH, rig.approvals.endpoint, methods=["POST"])])
    body = rig.slack.form(rig.slack.click(ref.channel, ref.ts, APPROVE_ACTION, "U0ALICE"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://review") as client:
        forged = await client.post(PATH, content=body,
                                   headers=rig.slack.sign(body, secret="wrong-secret-123"))
        assert forged.status_code == 401 and "signature" in forged.json()["error"]
        huge = b"payload=" + b"x" * 70_000
        assert (await client.post(PATH, content=huge, headers=rig.slack.sign(huge))
                ).status_code == 413
        good = await client.post(PATH, content=body, headers=rig.slack.sign(body))
        assert (good.status_code, good.content) == (200, b"")
    assert (await rig.store.get(approval.id)).status is Status.approved


# -- the poster --------------------------------------------------------------------------------


async def test_poster_posts_to_the_routed_groups_channels(rig: Rig) -> None:
    finance = await rig.store.create(proposal(groups=["finance"]))
    both = await rig.store.create(proposal(groups=["support", "finance", "nobody"]))
    unrouted = await rig.store.create(proposal(groups=[]))
    unknown_group = await rig.store.create(proposal(groups=["legal"]))
    for approval in (finance, both, unrouted, unknown_group):
        await rig.poster.show(approval)
    channels = {a.id: sorted(r.channel for r in await rig.poster.refs.of(a.id))
                for a in (finance, both, unrouted, unknown_group)}
    assert channels == {finance.id: ["C0FINANCE"], both.id: ["C0FINANCE", "C0SUPPORT"],
                        unrouted.id: ["C0GENERAL"], unknown_group.id: ["C0GENERAL"]}
    await rig.poster.show(finance)  # shown again: updated, never posted twice
    assert len(rig.slack.posted_in("C0FINANCE")) == 2


async def test_a_decision_on_the_page_updates_the_message_through_the_change_feed(
        rig: Rig) -> None:
    follow = asyncio.ensure_future(rig.poster.follow(ChangeFeed(rig.store, poll=0.05),
                                                     after=await rig.store.last_change()))
    try:
        approval = await rig.store.create(proposal(groups=["finance"]))
        ref = await _first_ref(rig, approval.id)
        assert "Held for review" in rig.slack.message(ref.channel, ref.ts).text
        await rig.store.decide(approval.id, Decision.reject, "carol", "wrong customer")
        posted = await _until(lambda: rig.slack.message(ref.channel, ref.ts),
                              lambda m: m.text.startswith("Rejected"))
        text = all_text(posted.blocks)
        assert "Rejected* by carol on the review page or through the API" in text
        assert "wrong customer" in text and len(rig.slack.posted_in("C0FINANCE")) == 1
    finally:
        follow.cancel()


async def _first_ref(rig: Rig, approval_id: str) -> MessageRef:
    deadline = time.monotonic() + 5
    while not (refs := await rig.poster.refs.of(approval_id)):
        assert time.monotonic() < deadline, f"{approval_id} was never posted"
        await asyncio.sleep(0.02)
    return refs[0]


async def _until(get: Any, done: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get()
        if found is not None and done(found):
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached in {timeout} s: last {get()!r}")


async def test_the_poster_follows_only_the_changes_its_replica_claims(rig: Rig) -> None:
    claimed: list[int] = []

    async def claim(seq: int) -> bool:
        claimed.append(seq)
        return False  # another replica won every change

    follow = asyncio.ensure_future(rig.poster.follow(ChangeFeed(rig.store, poll=0.05), claim,
                                                     after=await rig.store.last_change()))
    try:
        await rig.store.create(proposal())
        await _until(lambda: claimed, bool)
        assert rig.slack.calls.of("chat.postMessage") == []
    finally:
        follow.cancel()


async def test_the_message_follows_the_write_until_upstream_answered(rig: Rig) -> None:
    approval, ref = await rig.hold()
    await rig.click(ref, APPROVE_ACTION, "U0ALICE")
    assert await rig.store.claim_for_sending(approval.id)
    await rig.poster.show(await rig.store.get(approval.id))
    assert rig.slack.message(ref.channel, ref.ts).text.startswith("Approved, being sent")
    await rig.poster.show(await rig.store.record_result(approval.id, status_code=200))
    posted = rig.slack.message(ref.channel, ref.ts)
    assert posted.text.startswith("Approved and sent") and posted.updates == 3
    text = all_text(posted.blocks)
    assert "by alice in Slack" in text and "Upstream answered 200" in text


async def test_a_write_decided_before_it_was_posted_is_not_posted(rig: Rig) -> None:
    approval = await rig.store.create(proposal())
    decided = await rig.store.decide(approval.id, Decision.approve, "alice", None)
    await rig.poster.show(decided)
    assert rig.slack.calls.of("chat.postMessage") == []


async def test_the_message_shows_which_record_and_what_started_the_task(
        store: SqliteStore) -> None:
    held = proposal().model_copy(update={
        "identity": [IdentityField(field="subject", label="Subject", value="Refund <!here>"),
                     IdentityField(field="requester.email", label="Requester", value=None)],
        "context": Context(reason="customer asked", agent="support-bot",
                           trigger="https://acme.zendesk.com/agent/tickets/42")})
    approval = await store.create(held)
    message = held_message(approval, "http://x/approvals/1", decide_here=True)
    text = all_text(message["blocks"])
    assert "*Subject*\\nRefund &lt;!here&gt;" in text and "*Requester*\\n(none)" in text
    assert "*Trigger*\\nhttps://acme.zendesk.com/agent/tickets/42" in text
    assert block_kit_problem(message["blocks"]) is None


async def test_a_reminder_replies_in_the_thread_and_an_escalation_reaches_more_channels(
        rig: Rig) -> None:
    approval = await rig.store.create(proposal().model_copy(update={
        "remind_after": 60.0, "escalate_after": 120.0, "escalate_to": ["finance"]}))
    await rig.poster.show(approval)
    (ref,) = await rig.poster.refs.of(approval.id)
    before = await rig.store.last_change()
    assert await rig.store.note_escalation(approval.id, "reminded", {})
    assert await rig.store.note_escalation(approval.id, "escalated", {})
    for change in await rig.store.changes_after(before):
        await rig.poster.on_change(change)
    replies = [c for c in rig.slack.calls.of("chat.postMessage") if c.get("thread_ts")]
    assert [(c["channel"], c["thread_ts"]) for c in replies] == [(ref.channel, ref.ts)] * 2
    assert "Reminder: waiting 0 min" in replies[0]["text"]
    assert "Escalated" in replies[1]["text"] and "finance may now decide" in replies[1]["text"]
    (escalated,) = rig.slack.posted_in("C0FINANCE")
    assert "Held for review" in escalated.text
    assert sorted(r.channel for r in await rig.poster.refs.of(approval.id)) == [
        "C0FINANCE", "C0SUPPORT"]
    # Now finance decides it from its own channel; both messages show the outcome.
    late = utcnow() + timedelta(seconds=121)
    assert check_decision(approval, REVIEWERS[2], approval.fingerprint, Decision.approve,
                          SlackDecisionLimit(), now=late, away=[],
                          reviewers=Reviewers(REVIEWERS)).why is None
    decided = await rig.store.decide(approval.id, Decision.approve, "carol", None, via="page")
    await rig.poster.show(decided)
    for message in (rig.slack.message(ref.channel, ref.ts), escalated):
        assert "Approved* by carol on the review page" in all_text(message.blocks)


async def test_a_delegate_decides_in_slack_for_the_reviewer_away(rig: Rig) -> None:
    approval, ref = await rig.hold()
    await rig.store.set_away("alice", utcnow() + timedelta(days=1), "carol")
    reply = await rig.click(ref, APPROVE_ACTION, "U0CAROL")
    assert reply.decided is Status.approved
    entries = {e.event: e for e in await rig.store.audit_entries(approval.id)}
    assert entries["approved"].actor == "carol" and entries["approved"].detail["via"] == "slack"
    assert entries["delegated_vote"].detail == {"on_behalf_of": "alice", "decision": "approve",
                                                "via": "slack"}


async def test_a_replay_to_another_replica_is_refused(rig: Rig, tmp_path: Path) -> None:
    other = SqliteStore(tmp_path / "hitl.sqlite3")  # a second instance on the same database
    await other.open()
    try:
        there = SlackApprovals(rig.settings, Reviewers(REVIEWERS), other, rig.api,
                               SlackPoster(rig.api, rig.settings, REVIEW_URL, other))
        approval, ref = await rig.hold()
        body = rig.slack.form(rig.slack.click(ref.channel, ref.ts, APPROVE_ACTION, "U0ALICE"))
        headers = rig.slack.sign(body)
        assert (await rig.approvals.handle(headers, body)).decided is Status.approved
        again = await there.handle(headers, body)
        assert isinstance(again.outcome, Refusal) and again.outcome.why is Refused.replay
        assert [v.reviewer for v in (await other.get(approval.id)).votes] == ["alice"]
    finally:
        await other.close()


async def test_two_replicas_following_the_feed_post_each_write_once(
        rig: Rig, tmp_path: Path) -> None:
    other = SqliteStore(tmp_path / "hitl.sqlite3")  # a second replica on the same database
    await other.open()
    followers = [SlackFollower(poster, store, ChangeFeed(store, poll=0.05)) for poster, store in (
        (rig.poster, rig.store),
        (SlackPoster(rig.api, rig.settings, REVIEW_URL, other), other))]
    try:
        for follower in followers:
            await follower.running()
        approval = await rig.store.create(proposal())
        ref = await _first_ref(rig, approval.id)
        await other.decide(approval.id, Decision.reject, "bob", "no", via="page")
        posted = await _until(lambda: rig.slack.message(ref.channel, ref.ts),
                              lambda m: m.text.startswith("Rejected"))
        assert "Rejected* by bob on the review page" in all_text(posted.blocks)
        assert len(rig.slack.calls.of("chat.postMessage")) == 1
        assert len(rig.slack.calls.of("chat.update")) == 1  # one replica took the change
    finally:
        for follower in followers:
            await follower.done()
        await other.close()


# -- the fake Slack's own answers, as Slack documents them --------------------------------------


async def test_fake_slack_answers_errors_as_slack_does(fake: tuple[FakeSlack, int]) -> None:
    slack, port = fake
    wrong = SlackApi(settings_for(port).model_copy(update={"bot_token": "xoxb-wrong-token"}))
    with pytest.raises(SlackError) as caught:
        await wrong.post_message("C0SUPPORT", "hi", [])
    assert caught.value.error == "invalid_auth"
    api = SlackApi(settings_for(port))
    with pytest.raises(SlackError) as caught:
        await api.post_message("Cnowhere", "hi", [])
    assert caught.value.error == "channel_not_found"
    with pytest.raises(SlackError) as caught:
        await api.update(MessageRef("C0SUPPORT", "1.2"), "hi", [])
    assert caught.value.error == "message_not_found"
    with pytest.raises(SlackError) as caught:
        await api.open_view("made-up", {"type": "modal"})
    assert caught.value.error == "invalid_trigger_id"
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackError) as caught:
        await api.post_message("C0SUPPORT", "hi", too_long)
    assert caught.value.error == "invalid_blocks"
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"http://127.0.0.1:{port}/api/chat.postMessage",
                                   json={"channel": "C0SUPPORT", "text": "hi"})
    assert answer.json() == {"ok": False, "error": "not_authed"}
    ref = await api.post_message("C0SUPPORT", "hi", [])
    assert ref.channel == "C0SUPPORT" and slack.message(ref.channel, ref.ts).text == "hi"
    await api.update(ref, "hello", [])
    assert slack.message(ref.channel, ref.ts).text == "hello"
    assert await api.email_of("U0ALICE") == "alice@example.com"
    assert await api.email_of("U0NOBODY") is None


# -- settings ------------------------------------------------------------------------------------


def test_settings_are_strict_and_checked_against_the_reviewers() -> None:
    base = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
            "channels": {"support": "C0SUPPORT"}}
    parsed = SlackSettings.model_validate(base)
    assert parsed.api_url == "https://slack.com/api/"
    assert SIGNING_SECRET not in repr(parsed) and BOT_TOKEN not in repr(parsed)
    for bad, words in (({"channel": "C1"}, "Extra inputs"),
                       ({"channels": {}}, "default_channel"),
                       ({"users": {"alice": "alice"}}, "neither a Slack user id"),
                       ({"decide_in_slack_up_to": {"money": "sometimes"}}, "money")):
        with pytest.raises(ValidationError, match=words):
            SlackSettings.model_validate(base | bad)
    with pytest.raises(ValueError, match="'zoe', who is not a configured reviewer"):
        SlackSettings.model_validate(base | {"users": {"U0ZOE": "zoe"}}).check(REVIEWERS)
    with pytest.raises(ValueError, match="no reviewer is in group 'legal'"):
        SlackSettings.model_validate(base | {"channels": {"legal": "C2"}}).check(REVIEWERS)
    with pytest.raises(ValueError, match="given twice"):
        SlackSettings.model_validate(base | {"users": {"a@x.io": "alice", "A@X.io": "bob"}}
                                     ).check(REVIEWERS)
    SlackSettings.model_validate(base | {"users": {"U0ALICE": "alice"}}).check(REVIEWERS)
