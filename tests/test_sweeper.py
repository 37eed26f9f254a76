"""The sweeper brings every approval to an end: expiry, sends nobody else makes, the lease."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons

from proxy_addon.hold import HoldAddons
from review_api import Decision, Status
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
