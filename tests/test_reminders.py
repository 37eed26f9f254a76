"""Reminders and escalation (review_api.reminders): due at the rule's times, noted once across
replicas on one database, and each sent once as a webhook (approval.reminder,
approval.escalated). Real stores of each backend, a real HTTP receiver, short durations."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from review_api import Decision, Proposal, ReviewApp, Reviewer, Reviewers, Status
from review_api.feed import ChangeFeed
from review_api.models import utcnow
from review_api.notify import Webhook, notified, payload
from review_api.reminders import Reminders, due
from review_api.store import StatusChange
from tests.test_notify import Receiver, notifier, receiver  # noqa: F401 (a fixture)
from tests.test_web_sessions import StoreFactory, open_store  # noqa: F401 (a fixture)

SAM = Reviewer(name="sam", token="sam-token-000000000001", groups=["support"])


def proposal(index: int, **extra: object) -> Proposal:
    return Proposal(method="PUT", url=f"https://x.test/tickets/{index}", fingerprint="f" * 64,
                    system="Zendesk", object_type="ticket", record_id=str(index),
                    reviewer_groups=["support"], **extra)


TIMED = {"remind_after": 1.0, "escalate_after": 2.0, "escalate_to": ["leads"]}


async def test_due_at_the_rules_times_and_only_while_pending(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    held = await store.create(proposal(1, **TIMED))
    start = held.created_at
    assert due(held, start + timedelta(seconds=0.9)) == []
    assert [event for event, _ in due(held, start + timedelta(seconds=1))] == ["reminded"]
    assert due(held, start + timedelta(seconds=2)) == [
        ("reminded", {"groups": ["support"], "after": 1.0}),
        ("escalated", {"groups": ["leads"], "after": 2.0})]
    plain = await store.create(proposal(2))  # no rule asked for reminders
    assert due(plain, start + timedelta(days=30)) == []
    decided = await store.decide(held.id, Decision.reject, "sam", None)
    assert due(decided, start + timedelta(seconds=5)) == []


async def test_two_replicas_note_each_reminder_and_escalation_once(
        open_store: StoreFactory) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()
    replicas = [Reminders(first), Reminders(second)]
    held = await first.create(proposal(1, **TIMED))
    later = held.created_at + timedelta(seconds=1.5)
    # Both sweep at once, twice: one reminder between them, no escalation yet.
    swept = await asyncio.gather(*(r.sweep(later) for r in replicas * 2))
    assert sorted(pair for found in swept for pair in found) == [(held.id, "reminded")]
    swept = await asyncio.gather(*(r.sweep(later + timedelta(seconds=1)) for r in replicas))
    assert [pair for found in swept for pair in found] == [(held.id, "escalated")]
    # A fresh replica (a restart) asks the store again, and the store says it was done.
    assert await Reminders(second).sweep(later + timedelta(seconds=9)) == []
    events = [(e.event, e.detail) for e in await second.audit_entries(held.id)]
    assert events[1:] == [("reminded", {"groups": ["support"], "after": 1.0}),
                          ("escalated", {"groups": ["leads"], "after": 2.0})]
    feed = [(c.event, c.status.value) for c in await first.changes_after(0)
            if c.approval_id == held.id]
    assert feed == [("held", "pending"), ("reminded", "pending"), ("escalated", "pending")]


async def test_reminder_and_escalation_webhooks_arrive_once_in_real_time(
        open_store: StoreFactory, receiver: Receiver) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()
    hooks = [Webhook(f"{receiver.url}/ok")]
    apps = [ReviewApp(store, Reviewers([SAM]), remind_every=0.1, feed=ChangeFeed(store, poll=0.05))
            for store in (first, second)]
    notifiers = [notifier(store, hooks) for store in (first, second)]
    for component in (*apps, *notifiers):
        await component.running()
    try:
        held = await first.create(proposal(1, **TIMED))
        quiet = await second.create(proposal(2, **TIMED))
        await second.decide(quiet.id, Decision.approve, "sam", None)  # decided: no reminder
        await receiver.wait(3)  # pending, approved (quiet) and pending (held) first
        await receiver.wait(4)
        reminded_at = utcnow()
        await receiver.wait(5)
        escalated_at = utcnow()
        await asyncio.sleep(0.6)  # several sweeps on both replicas: a duplicate would arrive
        mine = [event for event, approval_id in receiver.events() if approval_id == held.id]
        assert mine == ["approval.pending", "approval.reminder", "approval.escalated"]
        # Each event once; webhooks of different events go out concurrently, in any order.
        assert sorted(e for e, i in receiver.events() if i == quiet.id) == [
            "approval.approved", "approval.pending"]
        # On time: the reminder at 1 s, the escalation at 2 s (plus a sweep and a delivery).
        assert held.created_at + timedelta(seconds=1) <= reminded_at
        assert reminded_at - held.created_at < timedelta(seconds=4)  # generous: a loaded CI
        assert held.created_at + timedelta(seconds=2) <= escalated_at
        assert escalated_at - held.created_at < timedelta(seconds=5)
        bodies = {body["event"]: body for _, body in receiver.received
                  if body["approval"]["id"] == held.id}
        assert bodies["approval.reminder"]["groups"] == ["support"]
        assert bodies["approval.escalated"]["groups"] == ["leads"]
        assert bodies["approval.reminder"]["approval"]["status"] == "pending"
        assert bodies["approval.reminder"]["url"] == f"http://review.test/approvals/{held.id}"
        assert "identity" in bodies["approval.reminder"]["approval"]
    finally:
        for component in (*notifiers, *apps):
            await component.done()


async def test_nudge_payloads_name_the_event_and_whom_it_is_for(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    held = await store.create(proposal(1, **TIMED))
    json_hook, slack_hook = Webhook("https://hooks.test"), Webhook("https://hooks.test", "slack")
    reminder = payload(json_hook, held, "http://r/1", nudge="reminded")
    assert (reminder["event"], reminder["groups"]) == ("approval.reminder", ["support"])
    escalation = payload(json_hook, held, "http://r/1", nudge="escalated")
    assert (escalation["event"], escalation["groups"]) == ("approval.escalated", ["leads"])
    assert "groups" not in payload(json_hook, held, "http://r/1")  # a hold's payload as before
    assert payload(slack_hook, held, "http://r/1", nudge="reminded")["text"].startswith(
        "*Still waiting for review*")
    assert payload(slack_hook, held, "http://r/1", nudge="escalated")["text"].startswith(
        "*Escalated to leads*")
    assert notified(StatusChange(9, held.id, Status.pending, "reminded", None))
    assert notified(StatusChange(9, held.id, Status.pending, "escalated", None))
