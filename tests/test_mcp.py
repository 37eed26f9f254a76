"""Which MCP messages pass and which are held: an allow-list, edge cases first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy_addon.mcp import Endpoint, McpRules, call_fingerprint, sse_messages

HOST, PATH = "mcp.acme.test", "/mcp"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def rules(trust: bool = True, read_tools: frozenset[str] = frozenset()) -> McpRules:
    found = McpRules([Endpoint("Acme", HOST, PATH, trust, read_tools)])
    found.catalog.record(found.endpoint(HOST, PATH), {"result": {"tools": [
        {"name": "get", "annotations": {"readOnlyHint": True}},
        {"name": "put", "annotations": {"destructiveHint": True}}]}})
    return found


def request(method: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, **({"params": params} if params
                                                             else {}), **extra}


def verdict(body: Any, headers: dict[str, str] | None = None, found: McpRules | None = None,
            host: str = HOST) -> str | None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    classified = (found or rules()).classify("POST", host, PATH, headers or HEADERS, raw)
    return classified.verdict if classified else None


@pytest.mark.parametrize("method", ["server/discover", "initialize", "ping", "tools/list",
                                    "resources/read", "prompts/get", "completion/complete"])
def test_protocol_traffic_passes(method: str) -> None:
    assert verdict(request(method)) == "pass"


def test_notifications_and_client_responses_pass() -> None:
    assert verdict({"jsonrpc": "2.0", "method": "notifications/initialized"}) == "pass"
    assert verdict({"jsonrpc": "2.0", "id": 4, "result": {}}) == "pass"


def test_read_only_tools_pass_only_where_annotations_are_trusted_or_config_says() -> None:
    call = request("tools/call", {"name": "get", "arguments": {"id": "1"}})
    assert verdict(call) == "pass"
    assert verdict(call, found=rules(trust=False)) == "write"
    assert verdict(request("tools/call", {"name": "put"}), found=rules(
        trust=False, read_tools=frozenset({"put"}))) == "pass"


@pytest.mark.parametrize("body", [
    request("tools/call", {"name": "put", "arguments": {}}),  # a write tool
    request("tools/call", {"name": "never_listed"}),  # unknown tool
    request("tools/call", {"arguments": {}}),  # no tool named
    request("resources/subscribe"),  # a method not on the list
    request("sampling/createMessage"),
    [request("tools/list"), request("tools/call", {"name": "get"})],  # a batch with a call
    [],  # an empty batch
    {"jsonrpc": "2.0", "id": 1, "method": 7},
    {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "method": "tools/call"}',  # repeated key
    b'{"jsonrpc": "2.0", "id": NaN, "method": "ping"}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping"',  # truncated
    b"\xff\xfe",
])
def test_anything_else_to_an_mcp_server_is_a_write(body: Any) -> None:
    assert verdict(body) == "write"


def test_headers_that_disagree_with_the_body_make_it_a_write() -> None:
    listing = request("tools/list")
    assert verdict(listing, {**HEADERS, "mcp-method": "tools/list"}) == "pass"
    assert verdict(listing, {**HEADERS, "mcp-method": "tools/call"}) == "write"
    call = request("tools/call", {"name": "get"})
    assert verdict(call, {**HEADERS, "mcp-method": "tools/call", "mcp-name": "put"}) == "write"
    assert verdict([listing], {**HEADERS, "mcp-method": "tools/list"}) == "write"


def test_an_unknown_host_is_mcp_only_by_its_headers_and_a_json_rpc_body() -> None:
    other = "api.example.com"
    assert verdict(request("tools/list"), {"content-type": "application/json"},
                   host=other) is None  # no MCP header: the usual rules hold it as a POST
    assert verdict(request("tools/list"), {"mcp-protocol-version": "2025-06-18"},
                   host=other) == "pass"
    assert verdict({"name": "x"}, HEADERS, host=other) is None
    call = request("tools/call", {"name": "get"})
    assert verdict(call, {"mcp-protocol-version": "2025-06-18"}, host=other) == "write"


def test_session_delete_passes_only_to_a_known_server_with_its_session() -> None:
    found = rules()
    assert found.classify("DELETE", HOST, PATH, {"mcp-session-id": "s1"}, b"").verdict == "pass"
    assert found.classify("DELETE", HOST, PATH, {}, b"") is None
    assert found.classify("DELETE", "api.example.com", PATH, {"mcp-session-id": "s1"},
                          b"") is None


def test_a_retry_has_the_fingerprint_of_the_call_it_repeats() -> None:
    found = rules()
    first = found.classify("POST", HOST, PATH, HEADERS, json.dumps(request(
        "tools/call", {"name": "put", "arguments": {"a": 1, "b": [2]}})).encode())
    retry = found.classify("POST", HOST, PATH, HEADERS, json.dumps({
        "jsonrpc": "2.0", "id": 99, "method": "tools/call",
        "params": {"arguments": {"b": [2], "a": 1}, "name": "put", "_meta": {"x": 1}}}).encode())
    assert first and retry and first.call and retry.call
    url = f"https://{HOST}{PATH}"
    assert call_fingerprint(url, first.call) == call_fingerprint(url, retry.call)
    assert retry.request_id == 99


def test_event_stream_answers_are_read() -> None:
    body = b'event: message\ndata: {"jsonrpc": "2.0", "id": 1,\ndata: "result": {}}\n\n'
    assert sse_messages(body) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]
