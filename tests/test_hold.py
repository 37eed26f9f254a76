"""The addon's hooks on made-up flows (mitmproxy's taddons/tflow), with a real store."""

import asyncio
import json
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from mitmproxy import io as mitmproxy_io
from mitmproxy.test import taddons, tflow, tutils

from connectors_schemas import Matcher, load_connectors
from proxy_addon.config import TrafficSettings
from proxy_addon.hold import APPROVAL_KEY, HoldSettings, HoldWrites
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import Sealer
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.upstream import UpstreamClient
from review_api import Approval, Decision, Status, Store
from review_api.traffic import TrafficStore


@pytest.fixture
async def hold(tmp_path: Path):
    store = Store(tmp_path / "hitl.sqlite3")
    await store.open()
    # Nothing listens on port 9 of loopback: every current-record fetch fails fast.
    upstream = UpstreamClient({"acme.zendesk.com": ("127.0.0.1", 9)}, None, timeout=2)
    addon = HoldWrites(
        store, ProposalBuilder(Matcher(load_connectors()), upstream, Policy([])),
        Sealer(Fernet.generate_key()), upstream, Resolve({}),
        HoldSettings(hold_timeout=2, expire_after=3600, review_url="http://127.0.0.1:8081"),
    )
    with taddons.context(addon):
        yield addon
    await upstream.close()
    await store.close()


async def run_hook(hold: HoldWrites, flow) -> None:  # type: ignore[no-untyped-def]
    """As mitmproxy does: await what the hook returns, if anything."""
    result = hold.request(flow)
    if result is not None:
        await result


async def first_pending(store: Store) -> Approval:
    """Waits for the hook under test to commit its approval."""
    for _ in range(500):
        if pending := await store.list(Status.pending):
            return pending[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no approval was held")


def write_flow(method: bytes = b"PUT", body: bytes = b'{"ticket": {"status": "solved"}}'):
    request = tutils.treq(method=method, scheme=b"https", host="acme.zendesk.com", port=443,
                          path=b"/api/v2/tickets/1.json", content=body,
                          headers=((b"content-type", b"application/json"),
                                   (b"x-hitl-reason", b"customer asked")))
    return tflow.tflow(req=request)


async def test_reads_pass_untouched_and_lose_only_our_headers(hold: HoldWrites) -> None:
    flow = write_flow(method=b"GET", body=b"")
    await run_hook(hold, flow)
    assert flow.response is None
    assert "x-hitl-reason" not in flow.request.headers
    assert await hold.store.list() == []


async def test_method_override_makes_a_post_a_held_delete(hold: HoldWrites) -> None:
    flow = write_flow(method=b"POST", body=b"")
    flow.request.headers["X-HTTP-Method-Override"] = "DELETE"
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    assert (approval.method, approval.operation) == ("DELETE", "delete")
    await hold.store.decide(approval.id, Decision.reject, "alice", "no")
    await task
    assert flow.response is not None and flow.response.status_code == 403
    # What we leave in flow.metadata must not break mitmproxy's own flow files.
    mitmproxy_io.FlowWriter(BytesIO()).add(flow)


async def test_approved_write_is_released_once_and_its_result_recorded(hold: HoldWrites) -> None:
    flow = write_flow()
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    assert approval.context.reason == "customer asked"
    assert "connect" in (approval.old_values.reason or "")
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    await task
    assert flow.response is None  # mitmproxy now sends the agent's own request upstream
    assert flow.metadata[APPROVAL_KEY] == approval.id
    flow.response = tutils.tresp(status_code=200)
    hold.response(flow)
    for _ in range(100):
        if (await hold.store.get(approval.id)).status is Status.executed:
            break
        await asyncio.sleep(0.01)
    assert (await hold.store.get(approval.id)).status is Status.executed


async def test_undecided_write_answers_202_after_the_hold_window(hold: HoldWrites) -> None:
    flow = write_flow()
    await run_hook(hold, flow)
    assert flow.response is not None and flow.response.status_code == 202
    body = json.loads(flow.response.content or b"")
    assert body["status"] == "pending"
    assert (await hold.store.get(body["approval_id"])).status is Status.pending
    assert flow.response.headers["Stripe-Should-Retry"] == "false"


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
    await first_pending(hold.store)
    hold.client_disconnected(flow.client_conn)
    await task
    assert flow.response is not None and flow.response.status_code == 202
    assert APPROVAL_KEY not in flow.metadata


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
    assert APPROVAL_KEY not in flow.metadata


async def test_an_approval_waits_while_the_traffic_record_cannot_be_written(
        hold: HoldWrites, tmp_path: Path) -> None:
    """A write is on the record or it does not happen: approved, it waits for the record."""
    record = TrafficStore(tmp_path / "traffic.sqlite3")
    hold.recorder = TrafficRecorder(record, Matcher(load_connectors()), TrafficSettings())
    flow = write_flow()
    task = asyncio.ensure_future(run_hook(hold, flow))
    approval = await first_pending(hold.store)
    hold.recorder.response(write_flow(method=b"GET", body=b""))
    await hold.recorder.flush()  # the record is not open: this batch fails
    assert hold.recorder.failure is not None
    await hold.store.decide(approval.id, Decision.approve, "alice", None)
    await task
    assert flow.response is not None and flow.response.status_code == 202
    assert json.loads(flow.response.content or b"")["status"] == "approved"
    assert APPROVAL_KEY not in flow.metadata  # the agent's request does not go upstream
    await asyncio.sleep(1.5)
    assert (await hold.store.get(approval.id)).status is Status.approved  # still waiting
    await record.open()
    await hold.recorder.flush()  # the record is back: the proxy sends it itself
    for _ in range(300):
        if (await hold.store.get(approval.id)).status is not Status.approved:
            break
        await asyncio.sleep(0.02)
    # Nothing listens upstream in these tests: sent, and failed, once the record was back.
    assert (await hold.store.get(approval.id)).status is Status.failed
    await record.close()


async def test_no_approval_stays_approved_past_send_within(hold: HoldWrites) -> None:
    """Unsent approvals become failed, sent ones without an answer outcome_unknown."""
    hold.settings = HoldSettings(hold_timeout=2, expire_after=3600,
                                 review_url="http://127.0.0.1:8081", send_within=0.2)
    hold._started -= 10  # the process has run longer than send_within
    ids = []
    for body in (b'{"ticket": {"status": "solved"}}', b'{"ticket": {"status": "pending"}}'):
        flow = write_flow(body=body)
        task = asyncio.ensure_future(run_hook(hold, flow))
        for _ in range(500):
            pending = [a for a in await hold.store.list(Status.pending) if a.id not in ids]
            if pending:
                break
            await asyncio.sleep(0.01)
        ids.append(pending[0].id)
        hold.client_disconnected(flow.client_conn)  # the agent left: the proxy would send it
        await task
    never_sent, in_flight = ids
    hold.store._listeners.clear()  # nobody sends them: they are stuck as the bug left them
    for approval_id in ids:
        await hold.store.decide(approval_id, Decision.approve, "alice", None)
    assert await hold.store.claim_for_sending(in_flight)
    await asyncio.sleep(0.3)
    await hold._finish_stuck()
    assert (await hold.store.get(never_sent)).status is Status.failed
    assert "send_within" in ((await hold.store.get(never_sent)).result.error or "")
    assert (await hold.store.get(in_flight)).status is Status.outcome_unknown


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
