"""hitl-proxy.status: an agent reads its own approvals there, answered by the proxy itself."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mitmproxy.test import taddons, tflow, tutils

from proxy_addon.agent_auth import AgentAuth
from proxy_addon.config import Agent
from proxy_addon.flow_note import note
from proxy_addon.status_host import STATUS_HOST, StatusHost
from review_api.models import Context, Proposal
from review_api.store import SqliteStore, Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = SqliteStore(tmp_path / "hitl.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def status_flow(path: str, agent: str | None, method: bytes = b"GET") -> tflow.http.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(method=method, scheme=b"http", host=STATUS_HOST,
                                       port=80, path=path.encode(), content=b""))
    if agent is not None:
        note(flow).agent = agent  # as AgentAuth does for a proxy user
    return flow


async def answer(host: StatusHost, flow: tflow.http.HTTPFlow) -> dict[str, object]:
    pending = host.request(flow)
    assert pending is not None
    await pending
    assert flow.response is not None and note(flow).decision == "proxy"
    return {"status_code": flow.response.status_code,
            **json.loads(flow.response.content or b"{}")}


async def test_an_agent_sees_its_own_approval_and_nobody_elses(store: Store) -> None:
    auth = AgentAuth([Agent(name="bot-a", secret="a" * 16), Agent(name="bot-b", secret="b" * 16)])
    host = StatusHost(store, auth)
    created = await store.create(Proposal(method="PUT", url="https://x.test/1", fingerprint="f",
                                          context=Context(agent="bot-a")))
    with taddons.context(host):
        mine = await answer(host, status_flow(f"/approvals/{created.id}", "bot-a"))
        assert (mine["status_code"], mine["status"]) == (200, "pending")
        theirs = await answer(host, status_flow(f"/approvals/{created.id}", "bot-b"))
        assert theirs["status_code"] == 404
        # A header is a claim, not an identity, once agents are configured.
        claimed = status_flow(f"/approvals/{created.id}", None)
        claimed.request.headers["X-HITL-Agent"] = "bot-a"
        assert (await answer(host, claimed))["status_code"] == 404
        assert (await answer(host, status_flow("/approvals", "bot-a")))["status_code"] == 404
        assert (await answer(host, status_flow(f"/approvals/{created.id}", "bot-a",
                                               b"POST")))["status_code"] == 405


async def test_every_other_host_passes_with_no_work(store: Store) -> None:
    host = StatusHost(store)
    flow = tflow.tflow()
    assert host.request(flow) is None and flow.response is None


async def test_a_store_that_fails_still_answers_here_never_upstream(store: Store) -> None:
    host = StatusHost(store)
    await store.close()
    flow = status_flow("/approvals/x", None)
    result = await answer(host, flow)
    assert result["status_code"] == 404  # unknown to this agent: nothing reaches the host
