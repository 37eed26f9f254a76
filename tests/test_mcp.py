"""Which MCP messages pass and which are held: an allow-list, edge cases first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy_addon.mcp import (
    Endpoint,
    McpRules,
    ToolCall,
    body_call,
    call_fingerprint,
    sse_messages,
)

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


def test_an_unknown_host_is_never_mcp_whatever_its_headers() -> None:
    other = "api.example.com"
    assert verdict(request("tools/list"), {"content-type": "application/json"},
                   host=other) is None  # the usual rules hold it as a POST
    assert verdict(request("tools/list"), {"mcp-protocol-version": "2025-06-18"},
                   host=other) is None
    assert verdict({"name": "x"}, HEADERS, host=other) is None
    call = request("tools/call", {"name": "get"})
    assert verdict(call, {"mcp-protocol-version": "2025-06-18"}, host=other) is None


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
        "params": {"arguments": {"b": [2], "a": 1}, "name": "put",
                   "_meta": {"progressToken": 1}}}).encode())
    assert first and retry and first.call and retry.call
    url = f"https://{HOST}{PATH}"
    assert call_fingerprint(url, first.call) == call_fingerprint(url, retry.call)
    assert retry.request_id == 99


def test_event_stream_answers_are_read() -> None:
    body = b'event: message\ndata: {"jsonrpc": "2.0", "id": 1,\ndata: "result": {}}\n\n'
    assert sse_messages(body) == [{"jsonrpc": "2.0", "id": 1, "result": {}}]


# -- tool mappings (connectors_schemas/mcp/*.yaml) ---------------------------------------------


def test_shipped_mappings_load_and_are_found_by_the_servers_url() -> None:
    from connectors_schemas.mcp_tools import load_mcp_mappings

    mappings = load_mcp_mappings()
    github = mappings.for_server("api.githubcopilot.com", "/mcp/")
    assert github is not None and github.server == "GitHub MCP"
    update = github.mapping("issue_write", {"method": "update", "issue_number": 1})
    assert update is not None and update.operation == "update"
    assert github.mapping("issue_write", {"method": "create"}).operation == "create"
    arguments = {"method": "update", "owner": "o", "repo": "r", "issue_number": 3,
                 "title": "T"}
    assert update.record_id(arguments) == "o/r/3" and update.proposed(arguments) == {"title": "T"}
    stripe = mappings.for_server("mcp.stripe.com", "/")
    assert stripe is not None and stripe.mapping("update_subscription", {}).parameters == [
        "proration_behavior"]
    assert mappings.for_server("mcp.acme.test", "/mcp") is None


@pytest.mark.parametrize(("text", "field"), [
    ("server: X\nurls: [http://x.test/mcp]\ntools: {}\n", "urls.0"),
    ("server: X\nurls: [https://x.test/mcp]\ntools: {t: {object: o, operation: read}}\n",
     "tools.t"),
    ("server: X\nurls: [https://x.test/mcp]\ntools:\n  t: {object: o, operation: update, "
     "read: {tool: {tool: g, arguments: {id: '{nope}'}}}}\n", "tools.t"),
    ("server: X\nurls: [https://x.test/mcp]\ntools:\n  t: {object: o, operation: update, "
     "read: {tool: {tool: t2}}}\n  t2: {object: o, operation: create}\n", "(top level)"),
])
def test_a_bad_mapping_file_stops_the_start_naming_file_and_field(
        tmp_path: Any, text: str, field: str) -> None:
    from connectors_schemas.loader import ConnectorFileError
    from connectors_schemas.mcp_tools import load_mcp_mappings

    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConnectorFileError) as error:
        load_mcp_mappings(tmp_path)
    assert "bad.yaml" in str(error.value) and f"field {field}" in str(error.value)


def test_a_read_tool_result_is_read_as_json_text_structured_content_or_a_file() -> None:
    from connectors_schemas.mcp_tools import ReadTool
    from proxy_addon.mcp_hold import record_of_result

    spec = ReadTool(tool="get")
    assert record_of_result({"content": [{"type": "text", "text": '{"a": 1}'}]}, spec) == {
        "a": 1}
    assert record_of_result({"content": [{"type": "text", "text": "no json"}],
                             "structuredContent": {"result": {"b": 2}}}, spec) == {"b": 2}
    assert record_of_result({"content": [{"type": "text", "text": "[1]"}]}, spec) is None
    file = ReadTool(tool="get_file_contents", text_as="content")
    assert record_of_result({"content": [
        {"type": "text", "text": "successfully downloaded text file"},
        {"type": "resource", "resource": {"uri": "repo://o/r/f", "text": "hello\n"}}]},
        file) == {"content": "hello\n"}


def test_the_read_call_carries_the_agents_credentials_and_session_under_its_own_name() -> None:
    from connectors_schemas.mcp_tools import ReadTool
    from proxy_addon.mcp_hold import read_call

    call = ToolCall("update_issue", {"owner": "o", "repo": "r", "issue_number": 3}, 9,
                    {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "reason": "x"})
    body, headers, request_id = read_call(
        ReadTool(tool="get_issue", arguments={"owner": "{owner}", "issue_number": "{issue_number}",
                                              "method": "get"}), call,
        [("Authorization", "Bearer t"), ("Mcp-Session-Id", "s1"), ("Mcp-Method", "tools/call"),
         ("Mcp-Name", "update_issue"), ("Mcp-Param-Owner", "o"), ("X-HITL-Reason", "r"),
         ("Content-Length", "99"), ("MCP-Protocol-Version", "2026-07-28")])
    sent = json.loads(body)
    assert sent["id"] == request_id and sent["method"] == "tools/call"
    assert sent["params"] == {"name": "get_issue", "arguments": {
        "owner": "o", "issue_number": 3, "method": "get"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}
    names = {name.lower(): value for name, value in headers}
    assert names["authorization"] == "Bearer t" and names["mcp-session-id"] == "s1"
    assert names["mcp-name"] == "get_issue" and names["mcp-method"] == "tools/call"
    assert "mcp-param-owner" not in names and "x-hitl-reason" not in names


def test_the_legacy_http_sse_transport_is_told_apart_from_streamable_http() -> None:
    found = rules()
    sse = {"accept": "text/event-stream"}
    assert found.legacy("GET", HOST, "/sse", sse, b"") is not None
    assert found.legacy("GET", HOST, "/v1/sse/", sse, b"") is not None
    assert found.legacy("GET", "api.elsewhere.test", "/sse", sse, b"") is None  # any SSE API
    assert found.legacy("GET", HOST, PATH, sse, b"") is None  # the streamable GET stream
    assert found.legacy("GET", HOST, "/sse", {**sse, "mcp-session-id": "s"}, b"") is None
    body = json.dumps(request("tools/call", {"name": "put"})).encode()
    for path in ("/messages?sessionId=1", "/messages/?session_id=1", "/x/message?sessionId=2"):
        assert found.legacy("POST", "any.test", path, HEADERS, body) is not None
    assert found.legacy("POST", "any.test", "/messages", HEADERS, body) is None  # no session
    assert found.legacy("POST", "any.test", "/messages?sessionId=1", HEADERS, b"{}") is None


def test_the_proxys_own_tools_list_follows_cursors_and_a_failure_learns_nothing() -> None:
    import asyncio

    import httpx

    from proxy_addon.mcp_hold import fetch_tools

    class Upstream:
        def __init__(self, pages: list[Any]) -> None:
            self.pages, self.sent = pages, []

        async def post(self, url: str, headers: list[tuple[str, str]],
                       content: bytes) -> httpx.Response:
            sent = json.loads(content)
            self.sent.append(sent)
            page = self.pages.pop(0)
            if isinstance(page, Exception):
                raise page
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": sent["id"],
                                             "result": page})

    found = McpRules([Endpoint("Acme", HOST, PATH, True)])
    call = request("tools/call", {"name": "late"})
    classified = found.classify("POST", HOST, PATH, HEADERS, json.dumps(call).encode())
    assert classified is not None and classified.verdict == "write"
    upstream = Upstream([
        {"tools": [{"name": "a"}], "nextCursor": "p2"},
        {"tools": [{"name": "late", "annotations": {"readOnlyHint": True}}]}])
    assert asyncio.run(fetch_tools(found, classified, "https://x", [], upstream)) is None
    assert [s["method"] for s in upstream.sent] == ["tools/list", "tools/list"]
    assert upstream.sent[1]["params"] == {"cursor": "p2"}
    again = found.classify("POST", HOST, PATH, HEADERS, json.dumps(call).encode())
    assert again is not None and again.verdict == "pass"

    fresh = McpRules([Endpoint("Acme", HOST, PATH, True)])
    failing = Upstream([httpx.ConnectError("down")])
    assert "could not be sent" in asyncio.run(fetch_tools(fresh, classified, "https://x", [],
                                                          failing))
    assert fresh.classify("POST", HOST, PATH, HEADERS,
                          json.dumps(call).encode()).verdict == "write"


def test_old_values_never_call_a_read_tool_listed_as_a_write_and_fall_back_to_rest() -> None:
    import asyncio

    from connectors_schemas.mcp_tools import McpMappings, McpToolMap
    from proxy_addon.mcp_hold import old_values
    from proxy_addon.upstream import Fetched

    mapping = McpToolMap.model_validate({
        "server": "Acme", "urls": [f"https://{HOST}{PATH}"], "tools": {
            "put": {"object": "ticket", "operation": "update", "record": ["id"],
                    "read": {"tool": {"tool": "peek", "arguments": {"id": "{id}"}},
                             "rest": {"url": "https://api.acme.test/tickets/{id}"}}}}})

    class Upstream:
        def __init__(self) -> None:
            self.posts: list[bytes] = []
            self.gets: list[tuple[str, list[tuple[str, str]]]] = []

        async def post(self, url: str, headers: Any, content: bytes) -> Any:
            self.posts.append(content)
            raise AssertionError("the read tool must not be called")

        async def fetch_json(self, url: str, headers: list[tuple[str, str]]) -> Fetched:
            self.gets.append((url, headers))
            return Fetched({"id": "a/b", "status": "open"}, 200, None)

    found = McpRules([Endpoint("Acme", HOST, PATH, True)], McpMappings({"acme": mapping}))
    found.catalog.record(found.endpoint(HOST, PATH), {"result": {"tools": [
        {"name": "put"}, {"name": "peek", "annotations": {"readOnlyHint": False}}]}})
    body = json.dumps(request("tools/call", {"name": "put", "arguments": {
        "id": "a/b", "status": "closed"}})).encode()
    classified = found.classify("POST", HOST, PATH, HEADERS, body)
    upstream = Upstream()
    mapped = asyncio.run(old_values(classified, found, f"https://{HOST}{PATH}", [
        ("Authorization", "Bearer k"), ("Mcp-Session-Id", "s")], upstream))
    assert upstream.posts == []
    assert upstream.gets == [("https://api.acme.test/tickets/a%2Fb",
                              [("Authorization", "Bearer k")])]
    assert mapped is not None and mapped.current == {"id": "a/b", "status": "open"}


def test_mcp_headers_never_loosen_a_write_to_a_host_not_configured_as_mcp() -> None:
    # Path routing ignores the body: Zendesk would create the ticket whatever `method` says.
    body = {"jsonrpc": "2.0", "method": "ping", "id": 1, "ticket": {"subject": "x"}}
    for headers in ({"mcp-method": "ping", "mcp-protocol-version": "2025-06-18"},
                    {"mcp-session-id": "s1"}, HEADERS):
        found = rules().classify("POST", "acme.zendesk.com", "/api/v2/tickets", headers,
                                 json.dumps(body).encode())
        assert found is None or found.verdict == "write"
    # Nor another path of a known server's host.
    assert verdict(request("ping"), host=HOST) == "pass"
    assert rules().classify("POST", HOST, "/api/tickets", HEADERS,
                            json.dumps(request("ping")).encode()) is None


@pytest.mark.parametrize("params", [[1], "x", 7, True])
def test_params_that_are_no_object_are_a_write_never_an_error(params: Any) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}
    assert verdict(body, {"accept": "application/json, text/event-stream"}) == "write"
    assert verdict([body], {"accept": "application/json, text/event-stream"}) == "write"


@pytest.mark.parametrize("a, b", [(b"1e400", b"2e400"), (b"0.1", b"0.10000000000000000001")])
def test_numbers_a_float_cannot_hold_exactly_never_share_a_fingerprint(a: bytes, b: bytes) -> None:
    def call(number: bytes) -> Any:
        raw = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"put",'
               b'"arguments":{"amount":' + number + b"}}}")
        return body_call(raw)
    first, second = call(a), call(b)
    assert first is None or second is None or (
        call_fingerprint("u", first) != call_fingerprint("u", second))


@pytest.mark.parametrize("extra", [
    {"task": {"ttl": 1}},  # an extra params member the server may act on
])
def test_a_call_with_members_the_fingerprint_leaves_out_is_read_by_its_bytes(
        extra: dict[str, Any]) -> None:
    plain = request("tools/call", {"name": "put", "arguments": {"a": 1}})
    more = request("tools/call", {"name": "put", "arguments": {"a": 1}, **extra})
    top = {**plain, "dry_run": False}
    for other in (more, top):
        call = body_call(json.dumps(other).encode())
        assert call is None or call_fingerprint("u", call) != call_fingerprint(
            "u", body_call(json.dumps(plain).encode()))


@pytest.mark.parametrize("method", ["notifications/tools/execute", "notifications/message",
                                    "notifications/Initialized"])
def test_only_the_specs_client_notifications_pass(method: str) -> None:
    assert verdict({"jsonrpc": "2.0", "method": method}) == "write"
    for known in ("notifications/initialized", "notifications/cancelled",
                  "notifications/progress", "notifications/roots/list_changed"):
        assert verdict({"jsonrpc": "2.0", "method": known}) == "pass"


def test_a_retry_whose_meta_a_server_may_act_on_differs_is_another_call() -> None:
    def fingerprint_of(meta: dict[str, Any]) -> str:
        call = body_call(json.dumps(request("tools/call", {
            "name": "put", "arguments": {"a": 1}, "_meta": meta})).encode())
        assert call is not None
        return call_fingerprint("u", call)
    plain = fingerprint_of({})
    assert fingerprint_of({"progressToken": 7, "reason": "why"}) == plain
    assert fingerprint_of({"dryRun": False}) != plain


@pytest.mark.parametrize("body", [
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "method": "tools/call"}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": NaN}}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": 0.10000000000000000001}}',
    b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": ' + b"[" * 100_000
    + b"]" * 100_000 + b"}",
    b'\xff{"jsonrpc": "2.0"}',
])
def test_a_body_with_more_than_one_reading_is_unreadable(body: bytes) -> None:
    """One strict reader for every body (connectors_schemas.bodies.strict_json), with exact
    numbers for fingerprints; nesting too deep to read is unreadable, never an error."""
    from proxy_addon.mcp import Unreadable, parse_json

    with pytest.raises(Unreadable):
        parse_json(body)
