"""The one executor: both ways out (agent still held, agent gone) share its checks and claim.

Two replicas are two stores on one SQLite file (each has its own replica id and lease), each
with its own hold and executor, as two processes would have."""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from mitmproxy.test import taddons

from proxy_addon.flow_note import note
from proxy_addon.hold import HoldAddons
from proxy_addon.sealing import HeldRequest
from review_api import Decision, Status
from review_api.store import SqliteStore, Store
from review_api.store.postgres import PostgresStore
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


async def open_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    if backend == "postgresql":
        store: Store = PostgresStore(request.getfixturevalue("postgres_url"), pool_size=2)
    else:
        store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    return store


@pytest.fixture(params=["sqlite", "postgresql"])
async def replicas(request: pytest.FixtureRequest, tmp_path: Path,
                   upstream: Upstream) -> AsyncIterator[tuple[HoldAddons, HoldAddons]]:
    """Replica A and B on one database; neither follows the feed unless a test starts it."""
    store_a = await open_store(request.param, tmp_path, request)
    store_b = await open_store(request.param, tmp_path, request)
    a, _, client_a = await build(tmp_path, upstream.port, settings(hold_timeout=5), store_a)
    b, _, client_b = await build(tmp_path, upstream.port, settings(hold_timeout=5), store_b)
    # A SQLite file has one process: opening it ends earlier leases; A's sweeper renews its own.
    await store_a.heartbeat()
    assert store_a.replica != store_b.replica
    with taddons.context(*a.addons):
        yield a, b
    for client in (client_a, client_b):
        await client.close()
    for store in (store_a, store_b):
        await store.close()


async def tamper(store: Store, sql: str, params: tuple[object, ...], tmp_path: Path) -> None:
    """Change a row behind the store's back, as only an operator's mistake would."""
    if isinstance(store, PostgresStore):
        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as db:
            await db.execute(sql.format("%s", "%s").encode(), params)  # type: ignore[arg-type]
    else:
        with sqlite3.connect(tmp_path / "hitl.sqlite3") as db:
            db.execute(sql.format("?", "?"), params)


async def held_then_gone(addons: HoldAddons) -> str:
    """A write held on this replica whose agent then went away (answered 202, unheld)."""
    flow = write_flow(scheme=b"http")
    task = asyncio.ensure_future(run_hook(addons.hold, flow))
    approval = await first_pending(addons.hold.store)
    addons.hold.client_disconnected(flow.client_conn)
    await task
    assert flow.response is not None and flow.response.status_code == 202
    return approval.id


async def test_an_approved_write_whose_agent_left_is_sent_exactly_once_by_two_replicas(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream) -> None:
    a, b = replicas
    approval_id = await held_then_gone(a)
    await b.hold.store.decide(approval_id, Decision.approve, "alice", None)
    assert await a.hold.store.sendable() == [approval_id]
    await asyncio.gather(a.executor.send(approval_id), b.executor.send(approval_id),
                         a.executor.send(approval_id))
    assert upstream.writes == [("PUT", b'{"ticket": {"status": "solved"}}')]
    approval = await a.hold.store.get(approval_id)
    assert approval.status is Status.executed and approval.result is not None
    assert approval.result.status_code == 200


async def test_an_approval_held_by_a_live_replica_is_left_to_it(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream) -> None:
    """B's sender never takes the write A's agent waits for: A releases the agent's own."""
    a, b = replicas
    flow = write_flow(scheme=b"http")
    task = asyncio.ensure_future(run_hook(a.hold, flow))
    approval = await first_pending(a.hold.store)
    await b.hold.store.decide(approval.id, Decision.approve, "bob", None)
    assert await b.hold.store.sendable() == []
    await b.executor.send(approval.id)
    assert upstream.writes == [] and (await b.hold.store.get(approval.id)).status is (
        Status.approved)
    assert a.hold.waiters.settle(await a.hold.store.get(approval.id))  # as A's feed does
    await task
    assert flow.response is None and note(flow).released == approval.id
    assert (await a.hold.store.get(approval.id)).status is Status.sending


async def test_a_record_changed_since_review_is_not_sent(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream) -> None:
    a, _ = replicas
    approval_id = await held_then_gone(a)
    store: Store = a.hold.store
    assert (await store.get(approval_id)).old_values.known  # fetched from the upstream
    await store.decide(approval_id, Decision.approve, "alice", None)
    upstream.ticket["status"] = "pending"  # someone else changed it after the review
    await a.executor.send(approval_id)
    approval = await store.get(approval_id)
    assert approval.status is Status.stale and upstream.writes == []
    stale = [e for e in await store.audit_entries(approval_id) if e.event == "stale"]
    assert "status changed since review" in json.dumps(stale[0].detail)


async def test_the_reviewers_edits_are_sent_whichever_way_it_goes_out(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream) -> None:
    a, _ = replicas
    store = a.hold.store
    # The agent left: the sealed request is sent with the edit.
    gone = await held_then_gone(a)
    await store.decide(gone, Decision.approve, "alice", None,
                       edits=[{"field": "status", "new": "pending"}])
    await a.executor.send(gone)
    assert [json.loads(body) for _, body in upstream.writes] == [
        {"ticket": {"status": "pending"}}]
    # The agent is still held: its own flow goes upstream with the edit.
    await a.hold.running()
    flow = write_flow(scheme=b"http", body=b'{"ticket": {"status": "closed"}}')
    task = asyncio.ensure_future(run_hook(a.hold, flow))
    approval = await first_pending(store, besides=(gone,))
    await store.decide(approval.id, Decision.approve, "alice", None,
                       edits=[{"field": "status", "new": "hold"}])
    await task
    assert note(flow).released == approval.id
    assert json.loads(flow.request.content or b"") == {"ticket": {"status": "hold"}}
    assert any(e.event == "edited" for e in await store.audit_entries(approval.id))
    await a.hold.done()


async def test_a_sealed_request_that_is_not_what_was_reviewed_is_never_sent(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream, tmp_path: Path) -> None:
    """The fingerprint is checked on the agent-gone path too (a key or a store went wrong)."""
    a, _ = replicas
    approval_id = await held_then_gone(a)
    store = a.hold.store
    await store.decide(approval_id, Decision.approve, "alice", None)
    other = a.executor.sealer.seal(HeldRequest("PUT", "http://acme.zendesk.com/api/v2/tickets/"
                                               "1.json", [], b'{"ticket": {"status": "x"}}'))
    # What a broken restore could leave: another request sealed under this approval.
    await tamper(store, "UPDATE approvals SET sealed_request = {} WHERE id = {}",
                 (other, approval_id), tmp_path)
    await a.executor.send(approval_id)
    assert upstream.writes == []
    assert await status_becomes(store, approval_id, Status.failed) is Status.failed


@dataclass
class HangingUp(Upstream):
    """Closes the connection of the next `hang_ups` GETs without answering, as an upstream
    does to a pooled connection it closed while idle ("Server disconnected without sending
    a response")."""

    hang_ups: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            if self.hang_ups and head.startswith(b"GET "):
                self.hang_ups -= 1
                writer.close()
                return
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            replay = asyncio.StreamReader()  # the request again, for the usual answer
            replay.feed_data(head + (await reader.readexactly(length) if length else b""))
            replay.feed_eof()
            await super()._serve(replay, writer)


@pytest.fixture
async def hanging(tmp_path: Path) -> AsyncIterator[tuple[HoldAddons, HangingUp]]:
    async with HangingUp().running() as running:
        addons, store, client = await build(tmp_path / "hitl.sqlite3", running.port)
        with taddons.context(*addons.addons):
            yield addons, running
        await addons.executor.close()
        await client.close()
        await store.close()


async def test_a_fetch_the_upstream_hung_up_on_is_tried_once_more_and_the_write_sent(
        hanging: tuple[HoldAddons, HangingUp]) -> None:
    a, upstream = hanging
    approval_id = await held_then_gone(a)
    await a.hold.store.decide(approval_id, Decision.approve, "alice", None)
    upstream.hang_ups = 1
    await a.executor.send(approval_id)
    assert upstream.hang_ups == 0  # the staleness check's first GET met a closed connection
    assert (await a.hold.store.get(approval_id)).status is Status.executed
    assert upstream.writes == [("PUT", b'{"ticket": {"status": "solved"}}')]


async def test_a_record_that_cannot_be_fetched_again_is_not_stale_and_is_tried_again(
        hanging: tuple[HoldAddons, HangingUp]) -> None:
    """Stale means the record changed; a fetch that failed twice says nothing about that.
    The write stays approved (limits.send_within still bounds how long), nothing is sent."""
    a, upstream = hanging
    store = a.hold.store
    approval_id = await held_then_gone(a)
    await store.decide(approval_id, Decision.approve, "alice", None)
    upstream.hang_ups = 1000
    await a.executor.send(approval_id)
    approval = await store.get(approval_id)
    assert approval.status is Status.approved and upstream.writes == []
    [deferred] = [e for e in await store.audit_entries(approval_id)
                  if e.event == "send_deferred"]
    assert "could not be fetched again" in deferred.detail["reason"]
    assert "Server disconnected" in deferred.detail["reason"]
    hung_up = upstream.hang_ups
    a.executor.send_later(approval_id)  # the sweep's next offer, too soon: no new fetch
    await asyncio.sleep(0.1)
    assert upstream.hang_ups == hung_up
    upstream.hang_ups = 0  # the upstream is back
    await a.executor.send(approval_id)
    assert (await store.get(approval_id)).status is Status.executed
    assert upstream.writes == [("PUT", b'{"ticket": {"status": "solved"}}')]


async def test_a_retry_joined_on_b_is_the_live_connection_and_a_older_one_is_answered_pending(
        replicas: tuple[HoldAddons, HoldAddons], upstream: Upstream) -> None:
    """Both replicas hear the approval; only the newest connection (B's) goes upstream, A's
    older one is answered 202 as a retry on one replica's own connections is."""
    a, b = replicas
    first = write_flow(scheme=b"http")
    first_task = asyncio.ensure_future(run_hook(a.hold, first))
    approval = await first_pending(a.hold.store)
    retry = write_flow(scheme=b"http")
    retry_task = asyncio.ensure_future(run_hook(b.hold, retry))
    for _ in range(250):
        if any(e.event == "retry_joined" for e in await a.hold.store.audit_entries(approval.id)):
            break
        await asyncio.sleep(0.02)
    await a.hold.running()
    await b.hold.running()
    await a.hold.store.decide(approval.id, Decision.approve, "alice", None)
    await asyncio.gather(first_task, retry_task)
    assert retry.response is None and note(retry).released == approval.id
    assert first.response is not None and first.response.status_code == 202, (
        first.response.content)
    assert json.loads(first.response.content or b"")["approval_id"] == approval.id
    assert note(first).released is None
    assert (await a.hold.store.get(approval.id)).status is Status.sending  # claimed once, by B
    for addons in (a, b):
        await addons.hold.done()
