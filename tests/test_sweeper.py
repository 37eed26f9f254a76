"""The sweeper brings every approval to an end: expiry, sends nobody else makes, the lease."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from proxy_addon.hold import HoldAddons
from review_api import Decision, Status
from review_api.store import SqliteStore
from tests.holding import (
    Upstream,
    build,
    first_pending,
    run_hook,
    settings,
    status_becomes,
    write_flow,
)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream().running() as running:
        yield running


@pytest.fixture
async def parts(tmp_path: Path, upstream: Upstream) -> AsyncIterator[HoldAddons]:
    addons, store, client = await build(tmp_path / "hitl.sqlite3", upstream.port,
                                        settings(send_within=0.2))
    with taddons.context(*addons.addons):
        yield addons
    await addons.sweeper.done()
    await addons.executor.close()
    await client.close()
    await store.close()


async def left(addons: HoldAddons, body: bytes = b'{"ticket": {"status": "solved"}}') -> str:
    """A write held here whose agent hung up: only a sender can still take it out."""
    store = addons.hold.store
    before = tuple(a.id for a in await store.list())
    flow = write_flow(scheme=b"http", body=body)
    task = asyncio.ensure_future(run_hook(addons.hold, flow))
    approval = await first_pending(store, besides=before)
    addons.hold.client_disconnected(flow.client_conn)
    await task
    return approval.id


async def test_an_approval_decided_while_no_hold_followed_the_feed_is_sent_by_the_sweep(
        parts: HoldAddons, upstream: Upstream) -> None:
    approval_id = await left(parts)
    await parts.hold.store.decide(approval_id, Decision.approve, "alice", None)
    await parts.sweeper.sweep()  # the hold is not running: only the sweep finds it
    assert await status_becomes(parts.hold.store, approval_id, Status.executed) is (
        Status.executed)
    assert len(upstream.writes) == 1


async def test_due_approvals_expire(tmp_path: Path) -> None:
    addons, store, client = await build(tmp_path / "expiring.sqlite3",
                                        hold_settings=settings(expire_after=0.2))
    with taddons.context(*addons.addons):
        approval_id = await left(addons)
        await asyncio.sleep(0.3)
        await addons.sweeper.sweep()
        assert (await store.get(approval_id)).status is Status.expired
    await client.close()
    await store.close()


async def test_no_approval_stays_approved_past_send_within(
        parts: HoldAddons, upstream: Upstream) -> None:
    """Unsent approvals become failed, sent ones without an answer outcome_unknown."""
    store = parts.hold.store
    never_sent = await left(parts)
    in_flight = await left(parts, b'{"ticket": {"status": "pending"}}')
    for approval_id in (never_sent, in_flight):
        await store.decide(approval_id, Decision.approve, "alice", None)
    assert await store.claim_for_sending(in_flight)  # a sender claimed it and never answered
    parts.sweeper._started -= 10  # the process has run longer than send_within
    await asyncio.sleep(0.3)
    await parts.sweeper.finish_stuck()
    assert (await store.get(never_sent)).status is Status.failed
    assert "send_within" in ((await store.get(never_sent)).result.error or "")
    assert (await store.get(in_flight)).status is Status.outcome_unknown
    assert upstream.writes == []


async def test_running_renews_the_lease_and_starts_sweeping(parts: HoldAddons,
                                                            upstream: Upstream) -> None:
    approval_id = await left(parts)
    await parts.hold.store.decide(approval_id, Decision.approve, "alice", None)
    await parts.sweeper.running()
    assert await status_becomes(parts.hold.store, approval_id, Status.executed) is (
        Status.executed)
    await parts.sweeper.done()
    assert len(upstream.writes) == 1


async def test_a_slow_sweep_keeps_the_lease_and_no_other_replica_takes_over(
        tmp_path: Path, upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lease has a timer of its own: while A's sweep is stuck behind the store for four
    leases, B never sends the write A's agent waits for, nor ends A's in-flight send."""
    path = tmp_path / "replicas.sqlite3"
    # Two stores on one file share its write lock: a loaded machine must not turn waits into
    # "database is locked".
    store_a, store_b = (SqliteStore(path, lease=0.6, busy_timeout=30),
                        SqliteStore(path, lease=0.6, busy_timeout=30))
    await store_a.open()
    await store_b.open()  # a second process on the file: A's lease row is reset until it beats
    a, _, client = await build(path, upstream.port, settings(hold_timeout=10), store_a)
    stuck = asyncio.Event()

    async def slow_expiry(now: object) -> list[str]:
        stuck.set()
        await asyncio.sleep(3.0)
        return []

    monkeypatch.setattr(store_a, "due_for_expiry", slow_expiry)
    with taddons.context(*a.addons):
        waiting_flow, sending_flow = write_flow(scheme=b"http"), write_flow(
            scheme=b"http", body=b'{"ticket": {"status": "pending"}}')
        agents = [asyncio.ensure_future(run_hook(a.hold, flow))
                  for flow in (waiting_flow, sending_flow)]
        waiting = await first_pending(store_a)
        sending = await first_pending(store_a, besides=(waiting.id,))
        for approval_id in (waiting.id, sending.id):
            await store_b.decide(approval_id, Decision.approve, "bob", None)
        assert await store_a.claim_for_sending(sending.id, agent_here=True)  # A's send, under way
        await a.sweeper.running()
        await stuck.wait()
        for _ in range(12):  # 2.4 s, four leases, all inside one sweep
            assert await store_b.sendable() == []
            assert await store_b.recover_in_flight() == []
            await asyncio.sleep(0.2)
        await a.sweeper.done()
        await asyncio.sleep(0.8)  # no timer any more: now the lease runs out
        assert await store_b.sendable() == [waiting.id]
        assert await store_b.recover_in_flight() == [sending.id]
        for flow in (waiting_flow, sending_flow):
            a.hold.client_disconnected(flow.client_conn)
        await asyncio.gather(*agents)
    assert upstream.writes == []
    await a.executor.close()
    await client.close()
    for store in (store_a, store_b):
        await store.close()
