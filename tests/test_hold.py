"""The hold's hooks on made-up flows (mitmproxy's taddons/tflow), with a real store and feed."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tutils

from proxy_addon.config import TrafficSettings
from proxy_addon.flow_note import note, peek
from proxy_addon.hold import HoldAddons, HoldWrites
from proxy_addon.traffic import TrafficRecorder
from review_api import Decision, Status
from review_api.traffic_sqlite import SqliteTrafficStore
from tests.holding import (
    Upstream,
    build,
    first_pending,
    matcher,
    run_hook,
    settings,
    status_becomes,
    write_flow,
)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[HoldAddons]:
    """The hold's addons, not yet running (no decision reaches a waiter)."""
    addons, store, upstream = await build(tmp_path / "hitl.sqlite3")
    with taddons.context(*addons.addons):
        yield addons
    await upstream.close()
    await store.close()


@pytest.fixture
async def hold(parts: HoldAddons) -> AsyncIterator[HoldWrites]:
    """The hold, following the change feed as it does in mitmproxy's `running`."""
    await parts.hold.running()
    yield parts.hold
    await parts.hold.done()


async def test_reads_pass_untouched_and_lose_only_our_headers(hold: HoldWrites) -> None:
    flow = write_flow(method=b"GET", body=b"")
    await run_hook(hold, flow)
    assert flow.response is None
    assert "x-hitl-reason" not in flow.request.headers
    assert await hold.store.list() == []
    assert peek(flow) is None  # a read leaves nothing behind (no recorder reads it)


async def test_method_override_makes_a_post_a_held_delete(hold: HoldWrites) -> None:
    flow = write_flow(method=b"POST", body=b"")
    flow.request.headers["X-HTTP-Method-Override"] = "DELETE"
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    assert (approval.method, approval.operation) == ("DELETE", "delete")
    await hold.store.decide(approval.id, Decision.reject, "alice", "no")
    await task
    assert flow.response is not None and flow.response.status_code == 403
    assert (note(flow).decision, note(flow).held) == ("held", approval.id)


async def test_approved_write_is_released_once_and_its_result_recorded(hold: HoldWrites) -> None:
    flow = write_flow()
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    assert approval.context.reason == "customer asked"
    assert "connect" in (approval.old_values.reason or "")
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    await task
    assert flow.response is None  # mitmproxy now sends the agent's own request upstream
    assert note(flow).released == approval.id
    assert (await hold.store.get(approval.id)).status is Status.sending  # claimed, once
    flow.response = tutils.tresp(status_code=200)
    hold.response(flow)
    assert await status_becomes(hold.store, approval.id, Status.executed) is Status.executed


async def test_undecided_write_answers_202_and_is_sent_by_the_proxy_once_approved(
        tmp_path: Path) -> None:
    """After the hold window the agent is answered; the approval, unheld, is sent later."""
    async with Upstream().running() as upstream:
        addons, store, client = await build(tmp_path / "hitl.sqlite3", upstream.port,
                                            settings(hold_timeout=0.3))
        with taddons.context(*addons.addons):
            await addons.hold.running()
            flow = write_flow(scheme=b"http")
            await run_hook(addons.hold, flow)
            assert flow.response is not None and flow.response.status_code == 202
            body = json.loads(flow.response.content or b"")
            assert body["status"] == "pending"
            assert flow.response.headers["Stripe-Should-Retry"] == "false"
            assert await store.sendable() == []  # pending: nothing to send yet
            await store.decide(body["approval_id"], Decision.approve, "alice", None)
            assert await status_becomes(store, body["approval_id"],
                                        Status.executed) is Status.executed
            assert upstream.writes == [("PUT", b'{"ticket": {"status": "solved"}}')]
            await addons.hold.done()
        await client.close()
        await store.close()


async def test_a_store_that_cannot_record_refuses_the_write(hold: HoldWrites) -> None:
    await hold.store.close()
    flow = write_flow()
    await run_hook(hold, flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert json.loads(flow.response.content or b"")["status"] == "refused"


async def test_an_agent_that_hangs_up_leaves_the_approval_to_be_sent_later(
        hold: HoldWrites) -> None:
    flow = write_flow()
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    hold.client_disconnected(flow.client_conn)
    await task
    assert flow.response is not None and flow.response.status_code == 202
    assert note(flow).released is None
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    # Unheld when the agent left: the proxy sends it itself (nothing listens here: failed).
    assert await status_becomes(hold.store, approval.id, Status.failed) is Status.failed


async def test_a_retry_on_a_new_connection_joins_and_the_older_one_is_detached(
        hold: HoldWrites) -> None:
    first, retry = write_flow(), write_flow()
    first_task = asyncio.ensure_future(run_hook(hold, first))
    approval = await first_pending(hold.store)
    retry_task = asyncio.ensure_future(run_hook(hold, retry))
    await first_task  # the newest connection is the live one
    assert first.response is not None and first.response.status_code == 202
    assert [a.id for a in await hold.store.list()] == [approval.id]
    assert await hold.store.sendable() == []
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    await retry_task
    assert retry.response is None and note(retry).released == approval.id


async def test_a_request_changed_after_review_is_not_released(hold: HoldWrites) -> None:
    """What executes is what was reviewed: the fingerprint is checked as late as possible."""
    flow = write_flow()
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    flow.request.content = b'{"ticket": {"status": "closed"}}'  # e.g. another addon rewrote it
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    await task
    assert flow.response is not None and flow.response.status_code == 409
    assert "changed after review" in json.loads(flow.response.content or b"")["message"]
    assert note(flow).released is None
    # The proxy sends the sealed (reviewed) request itself; nothing listens here: failed.
    assert await status_becomes(hold.store, approval.id, Status.failed) is Status.failed


async def test_an_approval_waits_while_the_traffic_record_cannot_be_written(
        tmp_path: Path) -> None:
    """A write is on the record or it does not happen: approved, it waits for the record."""
    record = SqliteTrafficStore(tmp_path / "traffic.sqlite3")
    recorder = TrafficRecorder(record, matcher(), TrafficSettings())
    addons, store, upstream = await build(tmp_path / "hitl.sqlite3")
    addons.executor.recorder = addons.hold.recorder = recorder
    with taddons.context(*addons.addons):
        await addons.hold.running()
        flow = write_flow()
        task = asyncio.ensure_future(run_hook(addons.hold, flow))
        approval = await first_pending(store)
        recorder.response(write_flow(method=b"GET", body=b""))
        await recorder.flush()  # the record is not open: this batch fails
        assert recorder.failure is not None
        await store.decide(approval.id, Decision.approve, "alice", None)
        await task
        assert flow.response is not None and flow.response.status_code == 202
        assert json.loads(flow.response.content or b"")["status"] == "approved"
        assert note(flow).released is None  # the agent's request does not go upstream
        await asyncio.sleep(1.0)
        assert (await store.get(approval.id)).status is Status.approved  # still waiting
        await record.open()
        await recorder.flush()  # the record is back: the proxy sends it itself
        # Nothing listens upstream in these tests: sent, and failed, once the record was back.
        assert await status_becomes(store, approval.id, Status.failed) is Status.failed
        await addons.hold.done()
    await record.close()
    await upstream.close()
    await store.close()


async def test_an_error_while_deciding_refuses_the_request_instead_of_passing_it(
        hold: HoldWrites, monkeypatch: pytest.MonkeyPatch) -> None:
    """mitmproxy logs an addon's exception and sends the request on: the hook must not raise.
    (Fault injection: no known input raises here any more; the next bug must fail closed.)"""
    def broken(request: object) -> str:
        raise RuntimeError("a bug in deciding")

    monkeypatch.setattr("proxy_addon.hold.effective_method", broken)
    flow = write_flow(method=b"GET", body=b"")
    await run_hook(hold, flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert json.loads(flow.response.content or b"")["status"] == "refused"


async def test_an_error_in_a_held_writes_coroutine_refuses_it(
        hold: HoldWrites, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(flow: object, method: str, context: object) -> None:
        raise RuntimeError("a bug while holding")

    monkeypatch.setattr(hold, "_request_write", broken)
    flow = write_flow()
    await run_hook(hold, flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert await hold.store.list() == []


async def test_the_status_host_runs_before_the_hold(parts: HoldAddons) -> None:
    """It answers hitl-proxy.status itself, so the hold sees a flow with its response; the
    sweeper stops (done) before the hold closes the executor."""
    assert [type(addon).__name__ for addon in parts.addons] == [
        "StatusHost", "Sweeper", "HoldWrites"]


async def test_a_full_queue_and_a_reused_idempotency_key_are_refused(tmp_path: Path) -> None:
    addons, store, upstream = await build(tmp_path / "hitl.sqlite3",
                                          hold_settings=settings(max_pending=1, hold_timeout=0.2))
    with taddons.context(*addons.addons):
        first = write_flow()
        first.request.headers["Idempotency-Key"] = "k1"
        await run_hook(addons.hold, first)
        assert first.response is not None and first.response.status_code == 202
        other_body = write_flow(body=b'{"ticket": {"status": "closed"}}')
        other_body.request.headers["Idempotency-Key"] = "k1"
        await run_hook(addons.hold, other_body)
        assert other_body.response is not None and other_body.response.status_code == 409
        assert "different request" in json.loads(other_body.response.content or b"")["message"]
        full = write_flow(body=b'{"ticket": {"status": "hold"}}')
        await run_hook(addons.hold, full)
        assert full.response is not None and full.response.status_code == 429
        assert full.response.headers["Retry-After"] == "60"
        assert note(full).decision == "refused" and len(await store.list()) == 1
    await upstream.close()
    await store.close()
