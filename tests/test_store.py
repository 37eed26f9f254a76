import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from review_api import Conflict, Decision, NotFound, Proposal, Status, Store
from review_api.models import utcnow
from review_api.store import DEFAULT_AUDIT_KEY, GENESIS_HASH, entry_hash


def proposal(**fields: object) -> Proposal:
    return Proposal(method="PUT", url="https://acme.zendesk.com/api/v2/tickets/1.json",
                    system="Zendesk", object_type="ticket", record_id="1",
                    fingerprint="f" * 64, **fields)


@pytest.fixture
async def store(tmp_path: Path):
    store = Store(tmp_path / "data" / "hitl.sqlite3")
    await store.open()
    yield store
    await store.close()


async def test_create_is_durable_and_decision_is_recorded_once(store: Store) -> None:
    created = await store.create(proposal(), sealed_request=b"sealed")
    assert created.status is Status.pending
    reopened = Store(store.path)
    await reopened.open()
    assert (await reopened.get(created.id)).status is Status.pending
    await reopened.close()

    approved = await store.decide(created.id, Decision.approve, "alice", "ok")
    assert (approved.status, approved.decided_by, approved.note) == (Status.approved, "alice", "ok")
    with pytest.raises(Conflict):
        await store.decide(created.id, Decision.reject, "bob", None)
    assert await store.claim_for_sending(created.id) is True
    assert await store.claim_for_sending(created.id) is False
    executed = await store.record_result(created.id, status_code=200)
    assert executed.status is Status.executed and executed.result.status_code == 200
    assert await store.sealed_request(created.id) == b"sealed"  # kept, sealed, for a revert
    dropped = await store.create(proposal(), sealed_request=b"sealed")
    await store.decide(dropped.id, Decision.reject, "alice", None)
    assert await store.sealed_request(dropped.id) is None  # a write that did not happen
    events = [entry.event for entry in await store.audit_entries(created.id)]
    assert events == ["held", "approved", "sending", "executed"]


async def test_racing_decisions_leave_exactly_one(store: Store) -> None:
    created = await store.create(proposal())
    outcomes = await asyncio.gather(
        *[store.decide(created.id, Decision.approve, f"r{i}", None) for i in range(20)],
        *[store.decide(created.id, Decision.reject, f"r{i}", None) for i in range(20)],
        return_exceptions=True,
    )
    assert sum(not isinstance(outcome, Exception) for outcome in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, Exception))
    decisions = [e for e in await store.audit_entries(created.id) if e.event != "held"]
    assert len(decisions) == 1


async def test_expired_approval_can_no_longer_be_decided(store: Store) -> None:
    created = await store.create(proposal(), expires_at=utcnow() - timedelta(seconds=1))
    assert await store.due_for_expiry(utcnow()) == [created.id]
    with pytest.raises(Conflict) as caught:
        await store.decide(created.id, Decision.approve, "alice", None)
    assert caught.value.approval.status is Status.expired
    assert await store.claim_for_sending(created.id) is False


async def test_unknown_id_and_listing_order(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get("nope")
    first = await store.create(proposal())
    second = await store.create(proposal())
    await store.decide(second.id, Decision.reject, "alice", None)
    assert [a.id for a in await store.list()] == [first.id, second.id]
    assert [a.id for a in await store.list(Status.pending)] == [first.id]


async def test_audit_log_is_hash_chained(store: Store) -> None:
    created = await store.create(proposal())
    await store.decide(created.id, Decision.reject, "alice", "no")
    await store.log_event("allowed", None, "proxy", {"rule": "policy[0]"})
    entries = await store.audit_entries()
    previous = GENESIS_HASH
    with sqlite3.connect(store.path) as db:
        rows = db.execute("SELECT at, event, approval_id, actor, detail FROM audit ORDER BY seq")
        for entry, row in zip(entries, rows, strict=True):
            assert entry.prev_hash == previous
            assert entry.hash == entry_hash(DEFAULT_AUDIT_KEY, previous, *row)
            previous = entry.hash


async def test_quorum_counts_distinct_reviewers_and_any_rejection_rejects(store: Store) -> None:
    created = await store.create(proposal(quorum=2))
    first = await store.decide(created.id, Decision.approve, "sam", "ok")
    assert first.status is Status.pending and [v.reviewer for v in first.votes] == ["sam"]
    with pytest.raises(Conflict, match="already approved"):
        await store.decide(created.id, Decision.approve, "sam", None)
    done = await store.decide(created.id, Decision.approve, "sue", None)
    assert (done.status, done.decided_by) == (Status.approved, "sue")

    split = await store.create(proposal(quorum=3))
    await store.decide(split.id, Decision.approve, "sam", None)
    rejected = await store.decide(split.id, Decision.reject, "sue", "no")
    assert rejected.status is Status.rejected
    events = [entry.event for entry in await store.audit_entries(split.id)]
    assert events == ["held", "vote", "rejected"]


async def test_approve_racing_expiry_leaves_one_outcome(store: Store) -> None:
    for _ in range(20):
        created = await store.create(proposal(), expires_at=utcnow() + timedelta(milliseconds=5))
        await asyncio.sleep(0.005)
        outcomes = await asyncio.gather(store.decide(created.id, Decision.approve, "a", None),
                                        store.expire(created.id), return_exceptions=True)
        final = await store.get(created.id)
        assert final.status in (Status.approved, Status.expired)
        assert sum(not isinstance(o, Exception) for o in outcomes) <= 1
        if final.status is Status.expired:
            assert await store.claim_for_sending(created.id) is False
        terminal = [e.event for e in await store.audit_entries(created.id) if e.event != "held"]
        assert len(terminal) == 1
