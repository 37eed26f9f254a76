"""MCP agents through the real proxy: the official SDK's streamable HTTP client as the agent
(configured only with the proxy and its CA), real MCP servers built with the same SDK."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.conftest import CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess, held
from tests.fakes.mcp_server import FakeGitHubMCP, FakeMCPServer
from tests.fakes.server import HTTPSFake

ACME = "https://mcp.acme.test/mcp"  # trusted annotations, JSON answers
OTHER = "https://mcp.other.test/mcp"  # untrusted annotations, answers as event streams
GITHUB = "https://api.githubcopilot.com/mcp"  # GitHub's own URL: shipped, its tools mapped
HOLD = 4
MCP_CONFIG = CONFIG + """
mcp:
  servers:
    Acme Tickets: {url: "https://mcp.acme.test/mcp", trust_annotations: true}
    Other Tickets: {url: "https://mcp.other.test/mcp", read_tools: [count_tickets]}
"""


@pytest.fixture(scope="module")
def servers(upstream_tls: UpstreamTLS) -> Iterator[dict[str, tuple[Any, HTTPSFake]]]:
    acme, other = FakeMCPServer("acme-tickets"), FakeMCPServer("other", json_response=False)
    github = FakeGitHubMCP()
    with (HTTPSFake(acme.app, upstream_tls.cert_pem, upstream_tls.key_pem, lifespan="on") as a,
          HTTPSFake(other.app, upstream_tls.cert_pem, upstream_tls.key_pem,
                    lifespan="on") as o,
          HTTPSFake(github.app, upstream_tls.cert_pem, upstream_tls.key_pem,
                    lifespan="on") as g):
        yield {"acme": (acme, a), "other": (other, o), "github": (github, g)}


@pytest.fixture(scope="module")
def mcp_proxy(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
              vendors: dict[str, Vendor],
              servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> Iterator[ProxyProcess]:
    process = start_proxy(
        tmp_path_factory.mktemp("mcp-proxy"), upstream_tls, vendors, "--hold-timeout", str(HOLD),
        "--resolve", f"mcp.acme.test=127.0.0.1:{servers['acme'][1].port}",
        "--resolve", f"mcp.other.test=127.0.0.1:{servers['other'][1].port}",
        "--resolve", f"api.githubcopilot.com=127.0.0.1:{servers['github'][1].port}",
        config=MCP_CONFIG)
    yield process
    assert process.stop() == 0, process.log()


def agent(proxy: ProxyProcess, url: str,
          work: Callable[[Client], Awaitable[Any]]) -> Callable[[], Any]:
    """A blocking call running the SDK client, configured only with the proxy and its CA."""

    async def run() -> Any:
        trust = ssl.create_default_context(cafile=str(Path(proxy.ca_cert)))
        async with (httpx2.AsyncClient(proxy=proxy.proxy_url, verify=trust,
                                       timeout=httpx2.Timeout(30, read=60)) as http,
                    Client(streamable_http_client(url, http_client=http)) as client):
            return await work(client)

    return lambda: asyncio.run(run())


def listed_then(tool: str, arguments: dict[str, Any]) -> Callable[[Client], Awaitable[Any]]:
    async def work(client: Client) -> Any:
        await client.list_tools()  # as agents do: the proxy sees the annotations pass
        return await client.call_tool(tool, arguments)
    return work


def text(result: Any) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


def test_handshake_listing_and_a_read_only_tool_pass(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> None:
    before = len(mcp_proxy.approvals())

    async def work(client: Client) -> Any:
        tools = await client.list_tools()
        return client.protocol_version, [t.name for t in tools.tools], await client.call_tool(
            "get_ticket", {"ticket_id": "1"})

    version, names, result = agent(mcp_proxy, ACME, work)()
    assert version == "2026-07-28"
    assert "update_ticket" in names
    assert not result.is_error and "Printer on fire" in text(result)
    assert len(mcp_proxy.approvals()) == before  # nothing was held
    assert servers["acme"][0].called("get_ticket") == [{"ticket_id": "1"}]


def test_a_write_tool_is_held_with_its_arguments_and_approve_returns_its_result(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> None:
    call, approval = held(mcp_proxy, agent(mcp_proxy, ACME, listed_then(
        "update_ticket", {"ticket_id": "1", "status": "closed"})))
    assert (approval["system"], approval["object_type"], approval["operation"],
            approval["action"]) == ("Acme Tickets", "update_ticket", "action", "update_ticket")
    assert {c["field"]: c["new"] for c in approval["changes"]} == {"ticket_id": "1",
                                                                    "status": "closed"}
    assert approval["risk"]["level"] == "medium"
    assert any("Change a ticket" in reason for reason in approval["risk"]["reasons"])
    assert servers["acme"][0].called("update_ticket") == []
    assert mcp_proxy.decide(approval["id"], "approve").status_code == 200
    result = call.join().result
    assert call.error is None and not result.is_error
    assert text(result) == "ticket 1 is now closed"
    assert len(servers["acme"][0].called("update_ticket")) == 1


def test_a_rejected_call_is_an_error_result_carrying_the_note_and_reaches_nothing(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> None:
    call, approval = held(mcp_proxy, agent(mcp_proxy, ACME, listed_then(
        "delete_ticket", {"ticket_id": "1"})))
    assert approval["risk"]["level"] == "high" and approval["risk"]["destructive"]
    mcp_proxy.decide(approval["id"], "reject", note="keep it, it is evidence")
    result = call.join().result
    assert call.error is None and result.is_error
    assert "alice" in text(result) and "keep it, it is evidence" in text(result)
    assert servers["acme"][0].called("delete_ticket") == []


def test_untrusted_read_only_annotations_are_held_and_event_stream_answers_work(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> None:
    other = servers["other"][0]
    counted = agent(mcp_proxy, OTHER, listed_then("count_tickets", {}))()  # a read in config
    assert not counted.is_error and text(counted) == "1"
    call, approval = held(mcp_proxy, agent(mcp_proxy, OTHER, listed_then(
        "peek_and_purge", {"ticket_id": "1"})))
    assert "not trusted" in " ".join(approval["risk"]["reasons"])
    mcp_proxy.decide(approval["id"], "reject", note="that one deletes")
    assert call.join().result.is_error and other.called("peek_and_purge") == []
    call, approval = held(mcp_proxy, agent(mcp_proxy, OTHER, listed_then(
        "update_ticket", {"ticket_id": "1", "title": "Streamed"})))
    mcp_proxy.decide(approval["id"], "approve")
    result = call.join().result
    assert not result.is_error and text(result) == "ticket 1 is now open"


def test_a_retry_joins_the_pending_call_and_a_call_run_later_is_not_run_twice(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[FakeMCPServer, HTTPSFake]]) -> None:
    acme = servers["acme"][0]
    arguments = {"ticket_id": "7", "title": "Retried"}
    first = agent(mcp_proxy, ACME, listed_then("update_ticket", arguments))
    call, approval = held(mcp_proxy, first)
    waited = call.join(HOLD + 10).result
    assert waited.is_error and "awaits" in text(waited) and approval["id"] in text(waited)
    # The same call again (a new JSON-RPC id, a new connection) joins the same approval.
    again = Background(first)
    time.sleep(1)
    assert [a["id"] for a in mcp_proxy.approvals("pending")] == [approval["id"]]
    mcp_proxy.decide(approval["id"], "approve")
    assert not again.join().result.is_error
    assert [c for c in acme.called("update_ticket") if c["ticket_id"] == "7"] == [
        {"ticket_id": "7", "status": None, "title": "Retried"}]

    # Undecided past the hold window, approved later: the proxy runs it once, keeps the result.
    later = agent(mcp_proxy, ACME, listed_then("update_ticket", {"ticket_id": "8",
                                                                 "title": "Later"}))
    call, approval = held(mcp_proxy, later)
    assert call.join(HOLD + 10).result.is_error
    mcp_proxy.decide(approval["id"], "approve")
    mcp_proxy.wait_for_status(approval["id"], "executed")
    result = later()
    assert not result.is_error and "ticket 8" in text(result)
    assert len([c for c in acme.called("update_ticket") if c["ticket_id"] == "8"]) == 1


def test_a_mapped_github_tool_is_held_with_old_values_read_through_its_read_tool(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[Any, HTTPSFake]]) -> None:
    github: FakeGitHubMCP = servers["github"][0]
    arguments = {"method": "update", "owner": "octo", "repo": "hello", "issue_number": 7,
                 "title": "Crash on start-up", "state": "closed"}
    call, approval = held(mcp_proxy, agent(mcp_proxy, GITHUB, listed_then("issue_write",
                                                                          arguments)))
    assert (approval["system"], approval["object_type"], approval["operation"],
            approval["record_id"], approval["action"]) == (
        "GitHub MCP", "issue", "update", "octo/hello/7", "issue_write")
    assert approval["old_values"]["known"] is True
    assert {c["field"]: (c["old"], c["new"]) for c in approval["changes"]} == {
        "title": ("Crash on start", "Crash on start-up"), "state": ("open", "closed")}
    # The proxy read the issue through the server's read tool, with the agent's session.
    assert github.called("issue_read") == [
        {"method": "get", "owner": "octo", "repo": "hello", "issue_number": 7}]
    assert github.called("issue_write") == []
    mcp_proxy.decide(approval["id"], "approve")
    result = call.join().result
    assert call.error is None and not result.is_error and "issues/7" in text(result)
    assert len(github.called("issue_write")) == 1
    assert github.issues[("octo", "hello", 7)]["state"] == "closed"

    # The older tool names: update_issue, old values through get_issue; a reject runs nothing.
    call, approval = held(mcp_proxy, agent(mcp_proxy, GITHUB, listed_then("update_issue", {
        "owner": "octo", "repo": "hello", "issue_number": 7, "body": "It crashes twice."})))
    assert {c["field"]: (c["old"], c["new"]) for c in approval["changes"]} == {
        "body": ("It crashes.", "It crashes twice.")}
    assert len(github.called("get_issue")) == 1
    mcp_proxy.decide(approval["id"], "reject", note="not yet")
    assert call.join().result.is_error and github.called("update_issue") == []


def test_the_legacy_http_sse_transport_is_refused_at_once_with_a_clear_answer(
        mcp_proxy: ProxyProcess) -> None:
    from mcp.client.sse import sse_client

    async def legacy() -> Any:
        trust = ssl.create_default_context(cafile=str(Path(mcp_proxy.ca_cert)))

        def factory(**kwargs: Any) -> httpx2.AsyncClient:
            return httpx2.AsyncClient(proxy=mcp_proxy.proxy_url, verify=trust, **kwargs)

        async with sse_client("https://mcp.acme.test/sse", httpx_client_factory=factory) as _:
            pass

    started = time.monotonic()
    with pytest.raises(BaseException) as error:
        asyncio.run(asyncio.wait_for(legacy(), 20))
    assert time.monotonic() - started < 10
    assert "400" in repr(error.value) or "400" in str(error.value.__cause__)
    # The messages POST of that transport: refused too, naming what to use instead.
    trust = ssl.create_default_context(cafile=str(Path(mcp_proxy.ca_cert)))
    with httpx2.Client(proxy=mcp_proxy.proxy_url, verify=trust, timeout=10) as http:
        answer = http.get("https://mcp.acme.test/sse", headers={"Accept": "text/event-stream"})
        assert answer.status_code == 400 and "streamable HTTP" in answer.json()["message"]
        answer = http.post("https://mcp.other.test/messages/?session_id=abc", json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}})
        assert answer.status_code == 400 and "2024-11-05" in answer.json()["message"]
    assert not mcp_proxy.approvals("pending") or all(
        "messages" not in a["url"] for a in mcp_proxy.approvals("pending"))


def test_the_servers_get_stream_is_streamed_as_it_comes(mcp_proxy: ProxyProcess) -> None:
    trust = ssl.create_default_context(cafile=str(Path(mcp_proxy.ca_cert)))
    with (httpx2.Client(proxy=mcp_proxy.proxy_url, verify=trust,
                        timeout=httpx2.Timeout(10, read=5)) as http,
          http.stream("GET", GITHUB, headers={
              "Accept": "text/event-stream", "MCP-Protocol-Version": "2025-06-18",
              "Mcp-Session-Id": "s-1", "X-Fake-Get-Stream": "1"}) as stream):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "event: message"  # while the stream is still open upstream
        assert "notifications/tools/list_changed" in next(lines)


def test_a_tool_not_seen_listed_is_looked_up_in_the_servers_own_tools_list(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[Any, HTTPSFake]]) -> None:
    from tests.fakes.mcp_server import READ

    github: FakeGitHubMCP = servers["github"][0]

    # A tool the server started to offer after the agent listed: never seen by the proxy.
    @github.server.tool(description="Get details of the authenticated GitHub user.",
                        annotations=READ)
    def get_me() -> str:
        github._log("get_me")
        return '{"login": "octocat"}'

    before = len(mcp_proxy.approvals())

    async def call_only(client: Client) -> Any:  # no tools/list of its own
        return await client.call_tool("get_me", {})

    result = agent(mcp_proxy, GITHUB, call_only)()
    assert not result.is_error and "octocat" in text(result)
    assert len(mcp_proxy.approvals()) == before and github.called("get_me") == [{}]
    # A tool the server does not list at all is still held (and the server never called).
    call, approval = held(mcp_proxy, agent(mcp_proxy, GITHUB, lambda client: client.call_tool(
        "delete_everything", {"owner": "octo"})))
    assert "has not seen" in " ".join(approval["risk"]["reasons"])
    mcp_proxy.decide(approval["id"], "reject", note="no")
    assert call.join().result.is_error


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26"])
def test_older_revisions_with_a_session_pass_and_hold_alike(
        mcp_proxy: ProxyProcess, servers: dict[str, tuple[Any, HTTPSFake]],
        monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The SDK's initialize handshake (mode="legacy": Mcp-Session-Id, MCP-Protocol-Version on
    every request, the session DELETE at the end), pinned to each handshake-era revision."""
    import mcp.client.session

    monkeypatch.setattr(mcp.client.session, "LATEST_HANDSHAKE_VERSION", version)
    acme = servers["acme"][0]
    ticket = f"v{version}"

    async def run() -> Any:
        trust = ssl.create_default_context(cafile=str(Path(mcp_proxy.ca_cert)))
        async with (httpx2.AsyncClient(proxy=mcp_proxy.proxy_url, verify=trust,
                                       timeout=httpx2.Timeout(30, read=60)) as http,
                    Client(streamable_http_client(ACME, http_client=http),
                           mode="legacy") as client):
            await client.list_tools()
            read = await client.call_tool("get_ticket", {"ticket_id": "1"})
            written = await client.call_tool("update_ticket", {"ticket_id": ticket,
                                                               "title": version})
            return client.protocol_version, read, written

    before = {a["id"] for a in mcp_proxy.approvals()}
    call, approval = held(mcp_proxy, lambda: asyncio.run(run()))
    assert approval["action"] == "update_ticket"
    mcp_proxy.decide(approval["id"], "approve")
    negotiated, read, written = call.join().result
    assert call.error is None and negotiated == version
    assert not read.is_error and not written.is_error and f"ticket {ticket}" in text(written)
    assert [c for c in acme.called("update_ticket") if c["ticket_id"] == ticket] == [
        {"ticket_id": ticket, "status": None, "title": version}]
    # The handshake, notifications/initialized, the listing, the read and the session DELETE
    # all passed: the one write is the only approval.
    assert {a["id"] for a in mcp_proxy.approvals()} - before == {approval["id"]}
