"""The approvals store, each test against both backends: SQLite and a real PostgreSQL.

Tests that need two replicas on one database, or a server going away, are PostgreSQL's; the
ones about an old SQLite data dir or SQLite's query plans are SQLite's.
"""

import asyncio
import functools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from review_api import Conflict, Context, Decision, Full, NotFound, Proposal, Status
from review_api.audit import Row, verify
from review_api.models import utcnow
from review_api.store import (
    DEFAULT_AUDIT_KEY,
    GENESIS_HASH,
    ApprovalStore,
    Away,
    PostgresStore,
    ReviewerSession,
    SqliteStore,
    StoreError,
    entry_hash,
    store_from_url,
)
from review_api.store.postgres import WRITE_LOCK
from tests.postgres_server import PostgresServer

Opener = Callable[..., Awaitable[ApprovalStore]]


def proposal(**fields: object) -> Proposal:
    return Proposal(method="PUT", url="https://acme.zendesk.com/api/v2/tickets/1.json",
                    system="Zendesk", object_type="ticket", record_id="1",
                    fingerprint="f" * 64, **fields)


def by(agent: str | None, **fields: object) -> Proposal:
    return proposal(context=Context(agent=agent), **fields)


async def opening(make: Callable[..., ApprovalStore]) -> AsyncIterator[Opener]:
    """Opens stores (replicas) on one database with `make`; closes them all after the test."""
    opened: list[ApprovalStore] = []

    async def open_replica(**options: object) -> ApprovalStore:
        store = make(**options)
        await store.open()
        opened.append(store)
        return store

    yield open_replica
    for store in reversed(opened):
        await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Replicas on one database of the parametrised backend."""
    if request.param == "sqlite":
        path = tmp_path / "data" / "hitl.sqlite3"
        make = functools.partial(SqliteStore, path)
    else:
        make = functools.partial(PostgresStore, request.getfixturevalue("postgres_url"))
    async for open_replica in opening(make):
        yield open_replica


@pytest.fixture
async def store(replicas: Opener) -> ApprovalStore:
    return await replicas()


@pytest.fixture
async def pg_replicas(postgres_url: str) -> AsyncIterator[Opener]:
    """PostgresStore instances on one database: replicas of the proxy."""
    async for open_replica in opening(functools.partial(PostgresStore, postgres_url)):
        yield open_replica


async def approved(store: ApprovalStore, **options: object) -> str:
    created = await store.create(proposal(), sealed_request=b"sealed", **options)  # type: ignore[arg-type]
    await store.decide(created.id, Decision.approve, "alice", None)
    return created.id


def rows_of(store_rows: list) -> list[Row]:
    return [Row(r.seq, r.at, r.event, r.approval_id, r.actor, r.detail, r.prev_hash, r.hash)
            for r in store_rows]


# -- approvals on either backend ----------------------------------------------------------------

async def test_create_is_durable_and_decision_is_recorded_once(store: ApprovalStore,
                                                               replicas: Opener) -> None:
    created = await store.create(proposal(), sealed_request=b"sealed")
    assert created.status is Status.pending
    other = await replicas()
    assert (await other.get(created.id)).status is Status.pending

    approved_ = await store.decide(created.id, Decision.approve, "alice", "ok")
    assert (approved_.status, approved_.decided_by, approved_.note) == (Status.approved,
                                                                        "alice", "ok")
    with pytest.raises(Conflict):
        await store.decide(created.id, Decision.reject, "bob", None)
    assert await store.claim_for_sending(created.id) is True
    assert (await store.get(created.id)).status is Status.sending
    assert await store.claim_for_sending(created.id) is False
    executed = await store.record_result(created.id, status_code=200)
    assert executed.status is Status.executed and executed.result.status_code == 200
    assert await store.sealed_request(created.id) == b"sealed"  # kept, sealed, for a revert
    dropped = await store.create(proposal(), sealed_request=b"sealed", sealed_before=b"b")
    await store.decide(dropped.id, Decision.reject, "alice", None)
    assert await store.sealed_request(dropped.id) is None  # a write that did not happen
    assert await store.sealed_before(dropped.id) is None
    events = [entry.event for entry in await store.audit_entries(created.id)]
    assert events == ["held", "approved", "sending", "executed"]


async def test_racing_decisions_leave_exactly_one(store: ApprovalStore) -> None:
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


async def test_expired_approval_can_no_longer_be_decided(store: ApprovalStore) -> None:
    created = await store.create(proposal(), expires_at=utcnow() - timedelta(seconds=1))
    assert await store.due_for_expiry(utcnow()) == [created.id]
    with pytest.raises(Conflict) as caught:
        await store.decide(created.id, Decision.approve, "alice", None)
    assert caught.value.approval.status is Status.expired
    assert caught.value.approval.decided_by == "proxy"
    assert await store.claim_for_sending(created.id) is False
    assert await store.due_for_expiry(utcnow()) == []


async def test_unknown_id_and_listing_order(store: ApprovalStore) -> None:
    with pytest.raises(NotFound):
        await store.get("nope")
    with pytest.raises(NotFound):
        await store.decide("nope", Decision.approve, "alice", None)
    with pytest.raises(NotFound):
        await store.sealed_request("nope")
    first = await store.create(proposal())
    second = await store.create(proposal())
    await store.decide(second.id, Decision.reject, "alice", None)
    assert [a.id for a in await store.list()] == [first.id, second.id]
    assert [a.id for a in await store.list(Status.pending)] == [first.id]
    assert [a.id for a in await store.list(limit=1, offset=1)] == [second.id]
    assert await store.count(Status.pending) == 1 and await store.count(Status.rejected) == 1


async def test_audit_log_is_hash_chained_and_verifies(store: ApprovalStore) -> None:
    created = await store.create(proposal())
    await store.decide(created.id, Decision.reject, "alice", "no")
    await store.log_event("allowed", None, "proxy", {"rule": "policy[0]"})
    entries = await store.audit_entries()
    rows = await store.audit_rows()
    assert [row.seq for row in rows] == [1, 2, 3]
    previous = GENESIS_HASH
    for entry, row in zip(entries, rows, strict=True):
        assert entry.prev_hash == previous == row.prev_hash
        assert entry.hash == entry_hash(DEFAULT_AUDIT_KEY, previous, row.at, row.event,
                                        row.approval_id, row.actor, row.detail)
        previous = entry.hash
    assert verify(rows_of(rows), DEFAULT_AUDIT_KEY, (rows[-1].seq, rows[-1].hash)) is None


async def test_quorum_counts_distinct_reviewers_and_any_rejection_rejects(
        store: ApprovalStore) -> None:
    created = await store.create(proposal(quorum=2))
    first = await store.decide(created.id, Decision.approve, "sam", "ok")
    assert first.status is Status.pending and [v.reviewer for v in first.votes] == ["sam"]
    with pytest.raises(Conflict, match="already approved"):
        await store.decide(created.id, Decision.approve, "sam", None)
    done = await store.decide(created.id, Decision.approve, "sue", None)
    assert (done.status, done.decided_by) == (Status.approved, "sue")
    assert [v.reviewer for v in done.votes] == ["sam", "sue"]

    split = await store.create(proposal(quorum=3))
    await store.decide(split.id, Decision.approve, "sam", None)
    rejected = await store.decide(split.id, Decision.reject, "sue", "no")
    assert rejected.status is Status.rejected
    events = [entry.event for entry in await store.audit_entries(split.id)]
    assert events == ["held", "vote", "rejected"]


async def test_edits_and_partial_approval_are_kept(store: ApprovalStore) -> None:
    created = await store.create(proposal())
    done = await store.decide(created.id, Decision.approve, "alice", None,
                              edits=[{"field": "status", "new": "open"}],
                              approve_fields=["status"])
    assert [(e.field, e.new) for e in done.edits] == [("status", "open")]
    assert done.approve_fields == ["status"]
    [*_, decided] = await store.audit_entries(created.id)
    assert decided.detail["edits"] == [{"field": "status", "new": "open"}]


async def test_approve_racing_expiry_leaves_one_outcome(store: ApprovalStore) -> None:
    for _ in range(10):
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


async def test_one_agent_filling_its_bound_leaves_room_for_the_others(
        store: ApprovalStore) -> None:
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


async def test_a_retry_joins_only_when_key_and_fingerprint_agree(store: ApprovalStore) -> None:
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
    anonymous = await store.create(by(None))
    assert (await store.find_pending("f" * 64, None, None)).id == anonymous.id
    # A decided approval keeps its key for the window, but never for another agent.
    await store.decide(keyed.id, Decision.reject, "alice", None)
    assert await store.find_pending("f" * 64, "bot", "k1") is None
    assert (await store.key_in_use("bot", "k1")).status is Status.rejected
    assert await store.key_in_use("other-bot", "k1") is None
    assert await store.key_in_use("bot", "k1", within=-1) is None


async def test_no_approved_write_stays_unsent_unnoticed(store: ApprovalStore) -> None:
    unsent = await approved(store)
    in_flight = await approved(store)
    assert await store.claim_for_sending(in_flight)
    assert await store.approved_older_than(3600) == []
    assert await store.approved_older_than(0) == [unsent]
    assert await store.approved_older_than(0, claimed=True) == [in_flight]

    with pytest.raises(Conflict):  # claimed: it may be on its way, it cannot just fail
        await store.fail_unsent(in_flight, "x")
    with pytest.raises(Conflict):  # unclaimed: nothing was sent, its outcome is known
        await store.mark_outcome_unknown(unsent, "x")
    with pytest.raises(Conflict):  # an answer is recorded only for a write on its way
        await store.record_result(unsent, status_code=200)
    failed = await store.fail_unsent(unsent, "the held request no longer matches the review")
    assert failed.status is Status.failed
    assert failed.result.error == "the held request no longer matches the review"
    assert await store.claim_for_sending(unsent) is False
    assert await store.sealed_request(unsent) is None
    unknown = await store.mark_outcome_unknown(in_flight, "no answer within 600 s")
    assert unknown.status is Status.outcome_unknown
    assert await store.sealed_request(in_flight) == b"sealed"  # until a reviewer resolves it
    assert await store.approved_older_than(0) == await store.approved_older_than(
        0, claimed=True) == []
    resolved = await store.resolve(in_flight, False, "alice", "not there upstream")
    assert (resolved.status, resolved.result.error) == (Status.failed, "not there upstream")
    assert await store.sealed_request(in_flight) is None
    assert [e.event for e in await store.audit_entries(unsent)] == ["held", "approved",
                                                                    "failed"]


async def test_a_stale_write_was_claimed_but_never_sent(store: ApprovalStore) -> None:
    approval_id = await approved(store)
    with pytest.raises(Conflict):  # not claimed yet: the sender checks after claiming
        await store.mark_stale(approval_id, "changed upstream")
    assert await store.claim_for_sending(approval_id)
    stale = await store.mark_stale(approval_id, "changed upstream")
    assert stale.status is Status.stale
    assert await store.sealed_request(approval_id) is None
    assert [c.event for c in await store.changes_after(0)][-2:] == ["sending", "stale"]


async def test_the_audit_head_is_told_after_each_commit(store: ApprovalStore,
                                                        replicas: Opener) -> None:
    assert store.head is None and await store.audit_head() is None
    told: list[tuple[int, str]] = []
    store.subscribe_head(lambda seq, digest: told.append((seq, digest)))
    store.subscribe_head(lambda seq, digest: 1 / 0)  # a failing witness undoes nothing
    created = await store.create(proposal(reviewer_groups=["finance"]))
    await store.log_event("allowed", None, "proxy", {})
    entries = await store.audit_entries()
    assert told == [(e.seq, e.hash) for e in entries]
    assert store.head == await store.audit_head() == (entries[-1].seq, entries[-1].hash)
    reopened = await replicas()
    assert reopened.head == store.head
    assert await store.reviewer_groups() == {created.id: ["finance"]}


async def test_every_change_is_in_the_feed_in_order(store: ApprovalStore) -> None:
    start = await store.last_change()
    assert start == 0
    created = await store.create(proposal(quorum=2))
    await store.decide(created.id, Decision.approve, "sam", None)
    await store.decide(created.id, Decision.approve, "sue", None)
    await store.log_event("allowed", None, "proxy", {})  # an audit entry, not a change
    assert await store.claim_for_sending(created.id)
    await store.record_result(created.id, status_code=201)
    changes = await store.changes_after(start)
    assert [(c.status, c.event) for c in changes] == [
        (Status.pending, "held"), (Status.pending, "vote"), (Status.approved, "approved"),
        (Status.sending, "sending"), (Status.executed, "executed")]
    assert {c.approval_id for c in changes} == {created.id}
    assert {c.replica for c in changes} == {store.replica}
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and await store.last_change() == seqs[-1]
    assert [c.seq for c in await store.changes_after(seqs[1], limit=2)] == seqs[2:4]


async def test_a_commit_wakes_a_waiting_reader(store: ApprovalStore) -> None:
    last = await store.last_change()
    waiter = asyncio.create_task(store.wait_for_change(last, timeout=30))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    await store.create(proposal())
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 5
    # Already behind: it returns at once; nothing new: it returns after the timeout.
    await asyncio.wait_for(store.wait_for_change(last, timeout=30), 1)
    await store.wait_for_change(await store.last_change(), timeout=0.05)


async def test_a_change_is_delivered_once(store: ApprovalStore) -> None:
    await store.create(proposal())
    seq = await store.last_change()
    claims = await asyncio.gather(*[store.claim_delivery(seq) for _ in range(10)])
    assert claims.count(True) == 1


async def test_each_consumer_claims_a_change_once_across_instances(replicas: Opener) -> None:
    a, b = await replicas(), await replicas()
    await a.create(proposal())
    seq = await b.last_change()
    claims = await asyncio.gather(*[(a if i % 2 else b).claim_delivery(seq, consumer)
                                    for i in range(20) for consumer in ("webhooks", "slack")])
    assert claims.count(True) == 2  # one for the webhooks, one for Slack
    assert await a.claim_delivery(seq) is False  # "webhooks" is the default consumer
    assert await b.claim_delivery(seq, "slack") is False


async def test_a_reminder_and_an_escalation_are_noted_once_across_instances(
        replicas: Opener) -> None:
    a, b = await replicas(), await replicas()
    held = await a.create(proposal())
    before = await a.last_change()
    noted = await asyncio.gather(*[(a if i % 2 else b).note_escalation(
        held.id, event, {"after": 60.0}) for i in range(10)
        for event in ("reminded", "escalated")])
    assert noted.count(True) == 2
    changes = await b.changes_after(before)
    assert sorted((c.approval_id, c.status, c.event) for c in changes) == [
        (held.id, Status.pending, "escalated"), (held.id, Status.pending, "reminded")]
    entries = [e for e in await b.audit_entries(held.id) if e.event in ("reminded", "escalated")]
    assert sorted((e.event, e.actor, e.detail["after"]) for e in entries) == [
        ("escalated", "proxy", 60.0), ("reminded", "proxy", 60.0)]
    rows = await a.audit_rows()
    assert verify(rows_of(rows), DEFAULT_AUDIT_KEY, (rows[-1].seq, rows[-1].hash)) is None
    # A decided write is not reminded of; an unknown event or approval is an error.
    done = await a.create(proposal())
    await a.decide(done.id, Decision.reject, "alice", None)
    assert await b.note_escalation(done.id, "reminded", {}) is False
    with pytest.raises(ValueError, match="not one of"):
        await a.note_escalation(held.id, "nagged", {})
    with pytest.raises(NotFound):
        await a.note_escalation("nope", "reminded", {})


async def test_reviewers_away_and_back(replicas: Opener) -> None:
    a, b = await replicas(), await replicas()
    until = utcnow() + timedelta(days=3)
    await a.set_away("alice", until, "bob")
    await a.set_away("carol", utcnow() - timedelta(seconds=1), None)  # already over
    assert await b.away() == [Away("alice", until, "bob")]
    later = until + timedelta(days=1)
    await b.set_away("alice", later, None)  # extended, nobody named
    assert await a.away() == [Away("alice", later, None)]
    await a.set_away("alice", None, None)
    assert await b.away() == []
    entries = [(e.event, e.actor, e.detail.get("delegate")) for e in await a.audit_entries()]
    assert entries == [("away", "alice", "bob"), ("away", "carol", None),
                       ("away", "alice", None), ("back", "alice", None)]


async def test_a_decision_records_where_it_was_taken(store: ApprovalStore) -> None:
    quorum = await store.create(proposal(quorum=2))
    await store.decide(quorum.id, Decision.approve, "sam", None, via="slack")
    decided = await store.decide(quorum.id, Decision.approve, "sue", "ok", via="page")
    plain = await store.create(proposal())
    await store.decide(plain.id, Decision.reject, "sam", None)
    vias = [(e.event, e.actor, e.detail.get("via")) for e in await store.audit_entries()
            if e.event in ("vote", "approved", "rejected")]
    assert vias == [("vote", "sam", "slack"), ("approved", "sue", "page"),
                    ("rejected", "sam", None)]
    assert [v.reviewer for v in decided.votes] == ["sam", "sue"]
    assert [v.via for v in decided.votes] == ["slack", "page"]


async def test_slack_message_refs_are_shared(replicas: Opener) -> None:
    a, b = await replicas(), await replicas()
    held = await a.create(proposal())
    assert await b.slack_refs(held.id) == []
    await a.save_slack_ref(held.id, "C1", "1700000000.000100")
    await b.save_slack_ref(held.id, "C2", "1700000000.000200")
    await b.save_slack_ref(held.id, "C1", "1700000000.000300")  # reposted in C1
    assert await a.slack_refs(held.id) == [("C1", "1700000000.000300"),
                                           ("C2", "1700000000.000200")]


async def test_a_slack_signature_is_accepted_once_across_instances(replicas: Opener) -> None:
    a, b = await replicas(), await replicas()
    seen = await asyncio.gather(*[(a if i % 2 else b).seen_signature("v0=abc", time.time() + 300)
                                  for i in range(10)])
    assert seen.count(False) == 1  # the first use; every other one is a replay
    assert await a.seen_signature("v0=other", time.time() + 300) is False
    # Once expired it is forgotten (Slack's timestamp window refuses such a request anyway).
    assert await a.seen_signature("v0=old", time.time() - 1) is False
    assert await b.seen_signature("v0=old", time.time() + 300) is False


async def test_reviewer_sessions(store: ApprovalStore, replicas: Opener) -> None:
    session = ReviewerSession("h" * 64, "alice", "csrf-1", time.time() + 60)
    await store.save_session(session)
    assert await store.load_session("h" * 64) == session
    renewed = ReviewerSession("h" * 64, "alice", "csrf-2", time.time() + 120)
    await store.save_session(renewed)
    assert await (await replicas()).load_session("h" * 64) == renewed
    await store.save_session(ReviewerSession("e" * 64, "bob", "c", time.time() - 1))
    assert await store.load_session("e" * 64) is None  # expired
    assert await store.load_session("unknown") is None
    await store.drop_session("h" * 64)
    assert await store.load_session("h" * 64) is None


async def test_a_held_write_is_released_here_not_sent_by_the_sweeper(
        store: ApprovalStore) -> None:
    held = await store.create(proposal(), held_here=True)
    await store.decide(held.id, Decision.approve, "alice", None)
    agent_gone = await approved(store)
    # The agent waits on this replica: the sender leaves it to the hold.
    assert await store.sendable() == [agent_gone]
    await store.unhold(held.id)
    assert await store.sendable() == [held.id, agent_gone]
    await store.hold(held.id)
    assert await store.claim_for_sending(held.id, agent_here=True)
    assert await store.sendable() == [agent_gone]


async def test_an_earlier_instance_in_flight_write_becomes_outcome_unknown(
        replicas: Opener) -> None:
    first = await replicas()
    approval_id = await approved(first)
    assert await first.claim_for_sending(approval_id)
    assert await first.recover_in_flight() == []  # its own sender is alive
    await first.close()  # stopped without recording an answer
    second = await replicas()
    assert second.replica != first.replica
    assert await second.recover_in_flight() == [approval_id]
    recovered = await second.get(approval_id)
    assert recovered.status is Status.outcome_unknown
    assert await second.claim_for_sending(approval_id) is False  # never resent
    [*_, entry] = await second.audit_entries(approval_id)
    assert entry.event == "outcome_unknown" and entry.detail["replica"] == first.replica


async def test_store_from_url_picks_the_backend(tmp_path: Path) -> None:
    default = store_from_url(None, tmp_path)
    assert isinstance(default, SqliteStore) and default.path == tmp_path / "hitl.sqlite3"
    assert isinstance(store_from_url(str(tmp_path / "x.db"), tmp_path), SqliteStore)
    assert store_from_url(f"sqlite:///{tmp_path}/y.db", tmp_path).path == tmp_path / "y.db"
    assert store_from_url("sqlite:///rel.db", tmp_path).path == Path("rel.db")
    postgres = store_from_url("postgresql://u:secret@db.example:5433/hitl", tmp_path, lease=9)
    assert isinstance(postgres, PostgresStore) and postgres.lease == 9
    assert postgres.location == "postgresql://u:***@db.example:5433/hitl"
    assert isinstance(store_from_url("postgres://db/hitl", tmp_path), PostgresStore)
    with pytest.raises(StoreError, match="unknown store scheme 'mysql'"):
        store_from_url("mysql://db/hitl", tmp_path)


# -- SQLite: old data dirs and query plans ------------------------------------------------------

# The schema of the last release before versioning (ff05b82's review_api/store/sqlite.py).
UNVERSIONED_SCHEMA = """
CREATE TABLE approvals (id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
    expires_at TEXT, decided_at TEXT, decided_by TEXT, note TEXT, result TEXT, sent_at TEXT,
    votes TEXT NOT NULL DEFAULT '[]', edits TEXT NOT NULL DEFAULT '[]', approve_fields TEXT,
    agent TEXT, idempotency_key TEXT, fingerprint TEXT NOT NULL, proposal TEXT NOT NULL,
    sealed_request BLOB, sealed_before BLOB);
CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL,
    event TEXT NOT NULL, approval_id TEXT, actor TEXT NOT NULL, detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX approvals_status ON approvals (status, created_at);
CREATE INDEX approvals_retry ON approvals (status, fingerprint);
CREATE INDEX approvals_expiry ON approvals (status, expires_at);
CREATE INDEX approvals_agent ON approvals (status, agent);
CREATE INDEX approvals_key ON approvals (agent, idempotency_key, created_at)
    WHERE idempotency_key IS NOT NULL;
"""


def old_row(db: sqlite3.Connection, approval_id: str, status: str, *, sent_at: str | None = None,
            result: str | None = None, quorum: int = 1) -> None:
    now = "2026-12-01T10:00:00.000000+00:00"
    db.execute("INSERT INTO approvals (id, status, created_at, decided_at, sent_at, result,"
               " fingerprint, proposal, sealed_request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (approval_id, status, now, now, sent_at, result, "f" * 64,
                proposal(quorum=quorum).model_dump_json(), b"sealed"))


async def test_a_data_dir_of_the_unversioned_schema_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "hitl.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(UNVERSIONED_SCHEMA)
        old_row(db, "in-flight", "approved", sent_at="2026-12-01T10:00:01.000000+00:00")
        old_row(db, "unsent", "approved")
        old_row(db, "done", "executed", sent_at="2026-12-01T10:00:01.000000+00:00",
                result=json.dumps({"status_code": 200}))
        old_row(db, "quorum", "pending", quorum=2)
    store = SqliteStore(path)
    await store.open()
    try:
        assert (await store.get("in-flight")).status is Status.sending
        assert (await store.get("unsent")).status is Status.approved
        assert (await store.get("done")).status is Status.executed
        assert await store.recover_in_flight() == ["in-flight"]
        assert (await store.get("in-flight")).status is Status.outcome_unknown
        assert await store.sendable() == ["unsent"]
        voted = await store.decide("quorum", Decision.approve, "sam", None)
        assert voted.status is Status.pending  # the quorum of 2 came along from the JSON
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 3
    again = SqliteStore(path)  # a second open applies nothing twice
    await again.open()
    await again.close()


async def test_the_first_release_data_dir_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "hitl.sqlite3"
    with sqlite3.connect(path) as db:  # the first release's approvals table
        db.executescript("""
            CREATE TABLE approvals (id TEXT PRIMARY KEY, status TEXT NOT NULL,
                created_at TEXT NOT NULL, expires_at TEXT, decided_at TEXT, decided_by TEXT,
                note TEXT, result TEXT, fingerprint TEXT NOT NULL, proposal TEXT NOT NULL);
            CREATE INDEX approvals_status ON approvals (status, created_at);""")
    old = SqliteStore(path)
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


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hitl.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StoreError, match=r"cannot open the store at .*: its schema version 99"):
        await SqliteStore(path).open()


async def test_the_per_agent_count_uses_an_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    await store.close()
    with sqlite3.connect(store.path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM approvals WHERE status = ?"
                          " AND agent IS NOT DISTINCT FROM ?", ("pending", "a")).fetchall()
        keyed = db.execute("EXPLAIN QUERY PLAN SELECT * FROM approvals WHERE agent IS NOT"
                           " DISTINCT FROM ? AND idempotency_key = ? AND created_at >= ?",
                           ("a", "k", "0")).fetchall()
    assert "approvals_agent" in str(plan)
    assert "approvals_key" in str(keyed)


# -- PostgreSQL: replicas on one database ---------------------------------------------------------

async def test_one_claim_wins_across_replicas(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    approval_id = await approved(a)
    claims = await asyncio.gather(*[(a if i % 2 else b).claim_for_sending(approval_id)
                                    for i in range(50)])
    assert claims.count(True) == 1
    sending = [e for e in await a.audit_entries(approval_id) if e.event == "sending"]
    assert len(sending) == 1


async def test_concurrent_decisions_across_replicas_leave_one(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    created = await a.create(proposal())
    outcomes = await asyncio.gather(
        *[(a if i % 2 else b).decide(created.id, Decision.approve, f"r{i}", None)
          for i in range(50)],
        *[(b if i % 2 else a).decide(created.id, Decision.reject, f"r{i}", None)
          for i in range(50)], return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, Exception))


async def test_max_pending_holds_across_replicas(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    outcomes = await asyncio.gather(*[(a if i % 2 else b).create(proposal(), max_pending=5)
                                      for i in range(30)], return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 5
    assert all(isinstance(o, Full) for o in outcomes if isinstance(o, Exception))
    assert await a.count(Status.pending) == 5


async def test_a_live_replica_in_flight_write_is_never_recovered(pg_replicas: Opener) -> None:
    a = await pg_replicas(lease=0.6)
    b = await pg_replicas()
    approval_id = await approved(a)
    assert await a.claim_for_sending(approval_id)
    for _ in range(4):  # A heartbeats: its send may still be on its way
        await asyncio.sleep(0.3)
        await a.heartbeat()
        assert await b.recover_in_flight() == []
    await asyncio.sleep(0.8)  # A stops heartbeating: its lease runs out
    assert await b.recover_in_flight() == [approval_id]
    assert (await b.get(approval_id)).status is Status.outcome_unknown
    with pytest.raises(Conflict):  # too late for A's answer: a reviewer resolves it
        await a.record_result(approval_id, status_code=200)
    assert await b.recover_in_flight() == []


async def test_a_write_held_by_another_replica_is_left_to_it(pg_replicas: Opener) -> None:
    a = await pg_replicas(lease=0.6)
    b = await pg_replicas()
    created = await a.create(proposal(), held_here=True)
    await b.decide(created.id, Decision.approve, "alice", None)
    assert await b.sendable() == []
    assert await b.claim_for_sending(created.id) is False  # A releases the agent's request
    await asyncio.sleep(0.8)  # A died holding it: its lease ran out
    assert await b.sendable() == [created.id]
    assert await b.claim_for_sending(created.id) is True

    again = await a.create(proposal(), held_here=True)
    await a.heartbeat()
    await b.decide(again.id, Decision.approve, "alice", None)
    assert await b.claim_for_sending(again.id) is False
    assert await a.claim_for_sending(again.id, agent_here=True) is True


async def test_a_change_is_delivered_once_across_replicas(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    await a.create(proposal())
    seq = await b.last_change()
    claims = await asyncio.gather(*[(a if i % 2 else b).claim_delivery(seq) for i in range(20)])
    assert claims.count(True) == 1


async def test_the_audit_chain_verifies_after_concurrent_appends(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    await asyncio.gather(
        *[(a if i % 2 else b).log_event("allowed", None, "proxy", {"i": i}) for i in range(40)],
        *[(b if i % 2 else a).create(proposal()) for i in range(20)])
    rows = await b.audit_rows()
    assert [row.seq for row in rows] == list(range(1, 61))
    assert verify(rows_of(rows), DEFAULT_AUDIT_KEY, (rows[-1].seq, rows[-1].hash)) is None
    assert a.head is not None and b.head is not None


async def test_sessions_are_shared_by_replicas(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    session = ReviewerSession("h" * 64, "alice", "csrf", time.time() + 60)
    await a.save_session(session)
    assert await b.load_session("h" * 64) == session
    await b.drop_session("h" * 64)
    assert await a.load_session("h" * 64) is None


async def test_a_decision_on_one_replica_wakes_the_other(pg_replicas: Opener) -> None:
    a, b = await pg_replicas(), await pg_replicas()
    created = await a.create(proposal())
    seen = await a.last_change()
    waiter = asyncio.create_task(a.wait_for_change(seen, timeout=30))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await b.decide(created.id, Decision.approve, "alice", None)
    await asyncio.wait_for(waiter, 5)
    assert time.monotonic() - started < 1  # NOTIFY, not the poll
    [change] = await a.changes_after(seen)
    assert (change.approval_id, change.status, change.replica) == (created.id, Status.approved,
                                                                   b.replica)


async def test_two_replicas_migrating_together_apply_each_version_once(
        postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(4)]
    await asyncio.gather(*[store.open() for store in stores])
    try:
        with psycopg.connect(postgres_url) as conn:
            versions = conn.execute("SELECT version FROM schema_version").fetchall()
        assert versions == [(1,), (2,)]
    finally:
        for store in stores:
            await store.close()


async def test_losing_the_server_raises_store_error_then_recovers(
        pg_replicas: Opener, postgres_server: PostgresServer) -> None:
    store = await pg_replicas()
    created = await store.create(proposal())
    postgres_server.stop("fast")  # "immediate" would lose commits: the test server runs
    # with synchronous_commit off
    try:
        started = time.monotonic()
        with pytest.raises(StoreError):
            await store.get(created.id)
        with pytest.raises(StoreError):
            await store.decide(created.id, Decision.approve, "alice", None)
        assert time.monotonic() - started < 30
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 20
    while True:
        try:
            decided = await store.decide(created.id, Decision.approve, "alice", None)
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    assert decided.status is Status.approved
    # The LISTEN connection came back too: another replica's commit wakes a waiter at once.
    other = await pg_replicas()
    deadline, woken = time.monotonic() + 20, False
    while not woken and time.monotonic() < deadline:
        waiter = asyncio.create_task(store.wait_for_change(await store.last_change(), 30))
        await asyncio.sleep(0.05)
        await other.create(proposal())
        try:
            await asyncio.wait_for(waiter, 1)
            woken = True
        except TimeoutError:
            pass
    assert woken


async def test_a_store_that_cannot_connect_says_so(postgres_server: PostgresServer) -> None:
    store = PostgresStore(postgres_server.url("no_such_database"))
    with pytest.raises(StoreError, match=r"cannot reach the store.*does not exist"):
        await store.open()


async def test_a_heartbeat_never_waits_behind_queued_writers(pg_replicas: Opener,
                                                             postgres_url: str) -> None:
    store = await pg_replicas(pool_size=2)
    created = await store.create(proposal())
    with psycopg.connect(postgres_url, autocommit=True) as blocker:
        blocker.execute(f"SELECT pg_advisory_lock({WRITE_LOCK})")  # a long write elsewhere
        queued = [asyncio.create_task(store.decide(created.id, Decision.approve, f"r{i}", None))
                  for i in range(4)]  # every pooled connection waits for the lock
        await asyncio.sleep(0.3)
        await asyncio.wait_for(store.heartbeat(), 2)
        assert not any(task.done() for task in queued)
        blocker.execute(f"SELECT pg_advisory_unlock({WRITE_LOCK})")
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1


async def test_a_write_waits_for_a_pooled_connection_only_as_long_as_the_store_timeout(
        postgres_url: str, tmp_path: Path) -> None:
    """limits.store_timeout bounds PostgreSQL as it bounds SQLite's busy wait: a write that
    cannot get a connection is refused (StoreError, so 503) after it, not after a fixed 5 s."""
    configured = store_from_url(postgres_url, tmp_path, busy_timeout=0.5)
    assert isinstance(configured, PostgresStore) and configured._checkout_timeout == 0.5
    store = PostgresStore(postgres_url, pool_size=1, checkout_timeout=0.5)
    await store.open()
    try:
        assert store._pool is not None
        async with store._pool.connection():  # the only connection, held elsewhere
            started = time.monotonic()
            with pytest.raises(StoreError):
                await store.create(proposal())
            waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0, waited
        assert (await store.create(proposal())).status is Status.pending  # free again
    finally:
        await store.close()
