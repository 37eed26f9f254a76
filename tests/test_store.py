import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from review_api import Conflict, Context, Decision, Full, NotFound, Proposal, Status, Store
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


def by(agent: str | None, **fields: object) -> Proposal:
    return proposal(context=Context(agent=agent), **fields)


async def test_one_agent_filling_its_bound_leaves_room_for_the_others(store: Store) -> None:
    for _ in range(2):
        await store.create(by("flooder"), max_pending=10, max_pending_per_agent=2)
    with pytest.raises(Full, match=r"agent 'flooder' already has 2 writes waiting for review "
                                   r"\(limits.max_pending_per_agent is 2\)"):
        await store.create(by("flooder"), max_pending=10, max_pending_per_agent=2)
    other = await store.create(by("steady"), max_pending=10, max_pending_per_agent=2)
    assert other.status is Status.pending
    # Writes naming no agent share one anonymous bound.
    await store.create(by(None), max_pending_per_agent=1)
    with pytest.raises(Full, match="the anonymous agent already has 1"):
        await store.create(by(None), max_pending_per_agent=1)
    # A decision frees the slot; denied writes and the global bound are counted as before.
    [first, *_] = await store.list(Status.pending)
    await store.decide(first.id, Decision.reject, "alice", None)
    await store.create(by("flooder"), max_pending_per_agent=2)
    await store.create(by("flooder"), status=Status.denied, max_pending_per_agent=2)
    with pytest.raises(Full, match=r"limits\.max_pending is 4"):
        await store.create(by("new"), max_pending=4, max_pending_per_agent=2)


async def test_the_per_agent_count_uses_an_index(store: Store) -> None:
    with sqlite3.connect(store.path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM approvals WHERE status = ?"
                          " AND agent IS ?", ("pending", "a")).fetchall()
        keyed = db.execute("EXPLAIN QUERY PLAN SELECT * FROM approvals WHERE agent IS ? AND"
                           " idempotency_key = ? AND created_at >= ?", ("a", "k", "0")).fetchall()
    assert "approvals_agent" in str(plan)
    assert "approvals_key" in str(keyed)


async def test_an_older_data_dir_gains_the_new_columns_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "hitl.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's approvals table
        db.executescript("""
            CREATE TABLE approvals (id TEXT PRIMARY KEY, status TEXT NOT NULL,
                created_at TEXT NOT NULL, expires_at TEXT, decided_at TEXT, decided_by TEXT,
                note TEXT, result TEXT, fingerprint TEXT NOT NULL, proposal TEXT NOT NULL);
            CREATE INDEX approvals_status ON approvals (status, created_at);""")
    old = Store(path)
    await old.open()
    try:
        created = await old.create(by("a"), idempotency_key="k", max_pending_per_agent=1)
        assert (await old.key_in_use("a", "k")).id == created.id
        with pytest.raises(Full):
            await old.create(by("a"), max_pending_per_agent=1)
    finally:
        await old.close()
    with sqlite3.connect(path) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type ="
                                                " 'index'")}
    assert {"approvals_agent", "approvals_key", "approvals_retry"} <= indexes


async def test_a_retry_joins_only_when_key_and_fingerprint_agree(store: Store) -> None:
    keyed = await store.create(by("bot"), idempotency_key="k1")
    assert (await store.find_pending("f" * 64, "bot", "k1")).id == keyed.id
    # The same key with another body: no join; key_in_use shows the key is taken (409).
    assert await store.find_pending("e" * 64, "bot", "k1") is None
    taken = await store.key_in_use("bot", "k1")
    assert taken is not None and taken.id == keyed.id and taken.fingerprint != "e" * 64
    # The same body under another key, or without one, is a second write.
    assert await store.find_pending("f" * 64, "bot", "k2") is None
    assert await store.find_pending("f" * 64, "bot", None) is None
    assert await store.find_pending("f" * 64, "other-bot", "k1") is None
    unkeyed = await store.create(by("bot"))
    assert (await store.find_pending("f" * 64, "bot", None)).id == unkeyed.id
    # A decided approval keeps its key for the window, but never for another agent.
    await store.decide(keyed.id, Decision.reject, "alice", None)
    assert await store.find_pending("f" * 64, "bot", "k1") is None
    assert (await store.key_in_use("bot", "k1")).status is Status.rejected
    assert await store.key_in_use("other-bot", "k1") is None
    assert await store.key_in_use("bot", "k1", within=-1) is None


async def test_no_approved_write_stays_unsent_unnoticed(store: Store) -> None:
    unsent = await store.create(proposal(), sealed_request=b"sealed")
    await store.decide(unsent.id, Decision.approve, "alice", None)
    in_flight = await store.create(proposal(), sealed_request=b"sealed")
    await store.decide(in_flight.id, Decision.approve, "alice", None)
    assert await store.claim_for_sending(in_flight.id)
    assert await store.approved_older_than(3600) == []
    assert await store.approved_older_than(0) == [unsent.id]
    assert await store.approved_older_than(0, claimed=True) == [in_flight.id]

    with pytest.raises(Conflict):  # claimed: it may be on its way, it cannot just fail
        await store.fail_unsent(in_flight.id, "x")
    with pytest.raises(Conflict):  # unclaimed: nothing was sent, its outcome is known
        await store.mark_outcome_unknown(unsent.id, "x")
    failed = await store.fail_unsent(unsent.id, "the held request no longer matches the review")
    assert failed.status is Status.failed
    assert failed.result.error == "the held request no longer matches the review"
    assert await store.claim_for_sending(unsent.id) is False
    assert await store.sealed_request(unsent.id) is None
    unknown = await store.mark_outcome_unknown(in_flight.id, "no answer within 600 s")
    assert unknown.status is Status.outcome_unknown
    assert await store.approved_older_than(0) == await store.approved_older_than(
        0, claimed=True) == []
    events = [e.event for e in await store.audit_entries(unsent.id)]
    assert events == ["held", "approved", "failed"]


async def test_the_audit_head_is_told_after_each_commit(store: Store) -> None:
    assert store.head is None and await store.audit_head() is None
    told: list[tuple[int, str]] = []
    store.subscribe_head(lambda seq, digest: told.append((seq, digest)))
    store.subscribe_head(lambda seq, digest: 1 / 0)  # a failing witness undoes nothing
    created = await store.create(proposal(reviewer_groups=["finance"]))
    await store.log_event("allowed", None, "proxy", {})
    entries = await store.audit_entries()
    assert told == [(e.seq, e.hash) for e in entries]
    assert store.head == await store.audit_head() == (entries[-1].seq, entries[-1].hash)
    reopened = Store(store.path)
    await reopened.open()
    assert reopened.head == store.head
    await reopened.close()
    assert await store.reviewer_groups() == {created.id: ["finance"]}
