"""MCP (JSON-RPC 2.0 over streamable HTTP): which messages are protocol traffic or reads, which
tool calls are writes.

Allow-lists only: a message passes when it is protocol traffic named in PROTOCOL_METHODS (or a
notification, or the client's answer to a server request), or a `tools/call` of a tool known to
be read-only (listed in config, or annotated `readOnlyHint: true` in a `tools/list` answer the
proxy saw from a server whose annotations config trusts). Everything else is a write: an
unparseable body, a repeated key, a batch holding a `tools/call`, an unknown method, an
`Mcp-Method`/`Mcp-Name` header that disagrees with the body.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mitmproxy import http

from connectors_schemas.bodies import BodyError, strict_json
from connectors_schemas.mcp_tools import McpMappings, load_mcp_mappings
from proxy_addon.flow_note import peek

PROTOCOL_METHODS = frozenset({
    "server/discover", "initialize", "ping", "tools/list", "resources/list", "resources/read",
    "resources/templates/list", "prompts/list", "prompts/get", "completion/complete",
})
TOOL_CALL = "tools/call"
# The notifications a client sends (the spec's, exactly): any other may be a server's own verb.
CLIENT_NOTIFICATIONS = frozenset({
    "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "notifications/roots/list_changed",
})
# `_meta` keys that differ between a client's retries and no server acts on as an input.
RETRY_META_KEYS = frozenset({"progressToken", "reason", "hitl/reason", "x-hitl-reason"})
# `Mcp-Method` values that are JSON-RPC method names, not HTTP method overrides.
MCP_METHOD_NAMES = PROTOCOL_METHODS | {TOOL_CALL}
MCP_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-session-id")
# The vendors' own remote MCP servers: known by their URL, their annotations trusted.
SHIPPED_SERVERS: dict[str, tuple[str, str]] = {
    "GitHub MCP": ("api.githubcopilot.com", "/mcp"),
    "Stripe MCP": ("mcp.stripe.com", "/"),
}
LEGACY_SSE = ("the legacy MCP HTTP+SSE transport (protocol 2024-11-05: GET /sse, then POST "
              "/messages?sessionId=) is not supported through hitl-proxy; use the streamable "
              "HTTP transport (protocol 2025-03-26 or later: one MCP endpoint URL, POST with "
              "Accept: application/json, text/event-stream)")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An MCP server: where it lives, what reviewers call it, which of its tools read."""

    name: str
    host: str
    path: str
    trust_annotations: bool = False
    read_tools: frozenset[str] = frozenset()
    configured: bool = True

    @property
    def key(self) -> str:
        return f"{self.host}{self.path}"


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    description: str | None = None
    read_only: bool | None = None
    destructive: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A `tools/call` as the reviewer sees it."""

    tool: str
    arguments: dict[str, Any]
    request_id: str | int | None
    meta: dict[str, Any]
    # Members beyond name, arguments, _meta (in params) and jsonrpc, id, method, params (in the
    # message): a server may act on them, so they are part of what was reviewed.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Classified:
    endpoint: Endpoint
    verdict: Literal["pass", "write"]
    reason: str  # why it passes, or why it is a write
    methods: tuple[str, ...] = ()
    call: ToolCall | None = None
    request_id: str | int | None = None  # of a single request (for answers the proxy makes)
    protocol_version: str | None = None


class Unreadable(ValueError):
    """A body that is not one JSON reading: held, never guessed."""


def parse_json(body: bytes) -> Any:
    """Strict JSON: one reading or Unreadable (repeated keys, NaN, bad UTF-8, inexact
    numbers...)."""
    try:
        return strict_json(body.decode("utf-8"), exact_numbers=True)
    except (UnicodeDecodeError, BodyError) as exc:  # the one strict reader (bodies.py)
        raise Unreadable(str(exc)) from exc


def looks_like_jsonrpc(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(item, dict) and "jsonrpc" in item for item in items)


def _method_of(message: Any) -> str:
    """The message's method, "" for a client's response; Unreadable for anything else."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise Unreadable("not a JSON-RPC 2.0 message")
    if "method" not in message:
        if "id" in message and ("result" in message) != ("error" in message):
            return ""  # the client's answer to a server request (sampling, elicitation)
        raise Unreadable("a JSON-RPC message with neither method nor result")
    method, params = message["method"], message.get("params")
    if not isinstance(method, str) or (params is not None and not isinstance(params, dict)):
        raise Unreadable("a JSON-RPC method must be a string and its params an object")
    if "id" in message and (isinstance(message["id"], bool)
                            or not isinstance(message["id"], str | int)):
        raise Unreadable("a JSON-RPC id must be a string or a number")
    return method


def _tool_call(message: dict[str, Any]) -> ToolCall:
    params = message.get("params") or {}
    name, arguments = params.get("name"), params.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise Unreadable("a tools/call must name its tool")
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise Unreadable("a tools/call's arguments must be an object")
    meta = params.get("_meta")
    extra = {f"params.{key}": value for key, value in params.items()
             if key not in ("name", "arguments", "_meta")}
    if isinstance(meta, dict) and (kept := {key: value for key, value in meta.items()
                                            if key not in RETRY_META_KEYS}):
        extra["params._meta"] = kept
    extra |= {key: value for key, value in message.items()
              if key not in ("jsonrpc", "id", "method", "params")}
    return ToolCall(name, arguments, message.get("id"), meta if isinstance(meta, dict) else {},
                    extra)


def _protocol_version(headers: Mapping[str, str], message: Any) -> str | None:
    if version := headers.get("mcp-protocol-version"):
        return version
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    found = meta.get("io.modelcontextprotocol/protocolVersion") if isinstance(meta, dict) else None
    return found if isinstance(found, str) else None


class ToolCatalog:
    """What each server's `tools/list` answers said of its tools, as seen passing (bounded)."""

    def __init__(self, max_servers: int = 256, max_tools: int = 2000) -> None:
        self._servers: OrderedDict[str, dict[str, ToolInfo]] = OrderedDict()
        self.max_servers, self.max_tools = max_servers, max_tools

    def get(self, endpoint: Endpoint, tool: str) -> ToolInfo | None:
        return self._servers.get(endpoint.key, {}).get(tool)

    def record(self, endpoint: Endpoint, answer: Any) -> int:
        """Learn the tools of one JSON-RPC answer to tools/list; how many it named."""
        result = answer.get("result") if isinstance(answer, dict) else None
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(tools, list):
            return 0
        known = self._servers.setdefault(endpoint.key, {})
        self._servers.move_to_end(endpoint.key)
        while len(self._servers) > self.max_servers:
            self._servers.popitem(last=False)
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue
            hints = tool.get("annotations") if isinstance(tool.get("annotations"), dict) else {}
            description = tool.get("description")

            def _flag(value: Any) -> bool | None:
                return value if isinstance(value, bool) else None

            if len(known) < self.max_tools or tool["name"] in known:
                known[tool["name"]] = ToolInfo(
                    tool["name"], description if isinstance(description, str) else None,
                    _flag(hints.get("readOnlyHint")), _flag(hints.get("destructiveHint")))
        return len(tools)


def sse_messages(body: bytes) -> list[Any]:
    """The JSON messages in an event stream's `data:` lines (unparseable events skipped)."""
    found, data = [], []
    for line in [*body.decode("utf-8", "replace").splitlines(), ""]:
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            try:
                found.append(parse_json("\n".join(data).encode()))
            except Unreadable:
                pass
            data = []
    return found


def answer_messages(body: bytes, content_type: str | None) -> list[Any]:
    """The JSON-RPC messages of a server's answer, JSON or event stream."""
    if (content_type or "").lower().startswith("text/event-stream"):
        return sse_messages(body)
    try:
        found = parse_json(body)
    except Unreadable:
        return []
    return found if isinstance(found, list) else [found]


def _accepts_mcp(headers: Mapping[str, str]) -> bool:
    accept = headers.get("accept", "").lower()
    return "application/json" in accept and "text/event-stream" in accept


def endpoints_from_config(servers: Mapping[str, Any]) -> list[Endpoint]:
    """config.mcp.servers as endpoints; a shipped server's URL keeps its trust unless set."""
    from urllib.parse import urlsplit

    shipped = {where: name for name, where in SHIPPED_SERVERS.items()}
    found = []
    for name, server in servers.items():
        parts = urlsplit(server.url)
        host, path = (parts.hostname or "").lower(), parts.path or "/"
        trust = server.trust_annotations
        if trust is None:
            trust = (host, path) in shipped
        found.append(Endpoint(name, host, path, trust, frozenset(server.read_tools)))
    return found


class McpRules:
    """The MCP servers the proxy knows (config and shipped) and what it saw of their tools."""

    def __init__(self, endpoints: Iterable[Endpoint] = (),
                 mappings: McpMappings | None = None) -> None:
        # The write tools mapped to records (connectors_schemas/mcp/*.yaml), read at start-up.
        self.mappings = mappings if mappings is not None else load_mcp_mappings()
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        for name, (host, path) in SHIPPED_SERVERS.items():
            self.endpoints[(host, path)] = Endpoint(name, host, path, trust_annotations=True)
        for endpoint in endpoints:
            self.endpoints[(endpoint.host, endpoint.path)] = endpoint
        self.catalog = ToolCatalog()

    def endpoint(self, host: str, path: str) -> Endpoint | None:
        return self.endpoints.get((host.lower(), path.split("?", 1)[0]))

    def legacy(self, method: str, host: str, path: str, headers: Mapping[str, str],
               body: bytes) -> str | None:
        """Why this request is the legacy HTTP+SSE transport, refused at once (its POSTs would
        be held as writes, answered 202 while the client waits on a stream for ever): the
        event-stream GET to an `/sse` path of a known MCP server's host, or a JSON-RPC POST to
        a `messages` path with a session query."""
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(path)
        if method == "GET":
            if (parts.path.rstrip("/").endswith("/sse")
                    and "text/event-stream" in headers.get("accept", "").lower()
                    and not any(name in headers for name in MCP_HEADERS)
                    and any(known == host.lower() for known, _ in self.endpoints)
                    and self.endpoint(host, parts.path) is None):
                return LEGACY_SSE
            return None
        query = parse_qs(parts.query)
        if (method == "POST" and parts.path.rstrip("/").rsplit("/", 1)[-1] in (
                "messages", "message") and ("sessionId" in query or "session_id" in query)
                and self.endpoint(host, parts.path) is None):
            try:
                if looks_like_jsonrpc(parse_json(body)):
                    return LEGACY_SSE
            except Unreadable:
                return None
        return None

    def is_endpoint(self, host: str, path: str, headers: Mapping[str, str]) -> bool:
        """An MCP endpoint by its URL or (for a request) by the headers only MCP clients send."""
        return (self.endpoint(host, path) is not None
                or any(name in headers for name in MCP_HEADERS) or _accepts_mcp(headers))

    def classify(self, method: str, host: str, path: str, headers: Mapping[str, str],
                 body: bytes) -> Classified | None:
        """The MCP reading of a request, or None when it is no MCP message (then the usual
        rules apply: a POST is a write)."""
        known = self.endpoint(host, path)
        if known is None:
            # Only a server configured (or shipped) by its URL: MCP headers and a JSON-RPC body
            # are the agent's to send anywhere, and a REST route ignores the body's `method`
            # (`POST /api/v2/tickets` with `Mcp-Method: ping` creates the ticket). Held as
            # the POST it is.
            return None
        endpoint = known
        if method == "DELETE":
            # Ending a session: only to a known MCP server's URL, with the session, no body.
            if "mcp-session-id" in headers and not body:
                return Classified(endpoint, "pass", "MCP session DELETE")
            return None
        if method != "POST":
            return None
        try:
            message = parse_json(body)
        except Unreadable as exc:
            return Classified(endpoint, "write", f"an MCP message the proxy cannot read: {exc}")
        if not looks_like_jsonrpc(message):
            return Classified(endpoint, "write", "a body to an MCP server that is not JSON-RPC")
        return self._classify_message(endpoint, headers, message)

    def _classify_message(self, endpoint: Endpoint, headers: Mapping[str, str],
                          message: Any) -> Classified:
        version = _protocol_version(headers, message[0] if isinstance(message, list)
                                    else message)
        items = message if isinstance(message, list) else [message]
        try:
            methods = tuple(_method_of(item) for item in items)
        except Unreadable as exc:
            return Classified(endpoint, "write", f"an MCP message the proxy cannot read: {exc}",
                              protocol_version=version)
        header = headers.get("mcp-method")
        single = None if isinstance(message, list) else message
        request_id = single.get("id") if single is not None else None

        def write(reason: str, call: ToolCall | None = None) -> Classified:
            return Classified(endpoint, "write", reason, methods, call, request_id, version)

        if header is not None and (single is None or header != methods[0]):
            return write(f"the Mcp-Method header ({header!r}) disagrees with the body's "
                         f"method ({', '.join(methods) or 'a response'})")
        if isinstance(message, list) and TOOL_CALL in methods:
            return write("a JSON-RPC batch holding a tools/call")
        unknown = [m for m in methods
                   if m and m not in MCP_METHOD_NAMES and m not in CLIENT_NOTIFICATIONS]
        if unknown:
            return write(f"an MCP method the proxy does not know: {unknown[0]!r}")
        if methods != (TOOL_CALL,):
            return Classified(endpoint, "pass", "MCP protocol traffic", methods, None,
                              request_id, version)
        assert single is not None
        try:
            call = _tool_call(single)
        except Unreadable as exc:
            return write(f"an MCP tools/call the proxy cannot read: {exc}")
        name_header = headers.get("mcp-name")
        if name_header is not None and name_header != call.tool:
            return write(f"the Mcp-Name header ({name_header!r}) disagrees with the tool "
                         f"called ({call.tool!r})", call)
        if call.tool in endpoint.read_tools:
            return Classified(endpoint, "pass", f"{call.tool} is a read in config", methods,
                              call, request_id, version)
        info = self.catalog.get(endpoint, call.tool)
        if info is None:
            return write(f"the proxy has not seen {endpoint.name} list the tool {call.tool}",
                         call)
        if info.read_only is True and endpoint.trust_annotations:
            return Classified(endpoint, "pass", f"{endpoint.name} annotates {call.tool} "
                              "readOnlyHint", methods, call, request_id, version)
        if info.read_only is True:
            return write(f"{endpoint.name} annotates {call.tool} read-only, but its "
                         "annotations are not trusted (mcp.servers.<name>.trust_annotations)",
                         call)
        return write(f"{call.tool} is not known to be read-only", call)

    # -- mitmproxy hooks: the answers that stream, and the tools/list answers to learn --------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not response.headers.get("content-type", "").lower(
                ).startswith("text/event-stream"):
            return
        noted = peek(flow)
        if noted is not None and noted.tools_list is not None:
            return  # a tools/list answer is read whole (bounded), to learn the tools
        request = flow.request
        if (noted is not None and noted.mcp is not None) or self.is_endpoint(
                request.pretty_host, request.path, request.headers):
            response.stream = True  # the GET stream and tool results, as they come

    def response(self, flow: http.HTTPFlow) -> None:
        noted = peek(flow)
        endpoint = noted.tools_list if noted is not None else None
        response = flow.response
        if endpoint is None or response is None or response.stream:
            return
        if response.status_code != 200 or not response.raw_content:
            return
        try:
            content = response.get_content(strict=False) or b""
        except ValueError:
            return
        for message in answer_messages(content, response.headers.get("content-type")):
            self.catalog.record(endpoint, message)


def call_fingerprint(url: str, call: ToolCall) -> str:
    """Binds an approval to the server, the tool, its arguments and any other member a server
    may act on (not the JSON-RPC id, nor `_meta`'s progress token and reason): a client's retry
    of the same call has the same fingerprint."""
    digest = hashlib.sha256(b"MCP tools/call\n")
    digest.update(f"{url}\n{call.tool}\n".encode())
    digest.update(json.dumps(call.arguments, sort_keys=True, separators=(",", ":"),
                             ensure_ascii=False).encode("utf-8", "surrogatepass"))
    if call.extra:
        digest.update(b"\n" + json.dumps(call.extra, sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def body_call(body: bytes) -> ToolCall | None:
    """The single tools/call a body holds, read strictly; None for anything else."""
    try:
        message = parse_json(body)
        if isinstance(message, dict) and _method_of(message) == TOOL_CALL:
            return _tool_call(message)
    except Unreadable:
        return None
    return None


@dataclass
class KeptResults:
    """Results of tool calls the proxy executed after their agent had gone, for the same
    agent's same call (by fingerprint): handed out once, then forgotten. Bounded, in memory."""

    limit: int = 1000
    _kept: OrderedDict[tuple[str | None, str], tuple[str, Any]] = field(
        default_factory=OrderedDict)

    def keep(self, agent: str | None, fingerprint: str, approval_id: str, answer: Any) -> None:
        self._kept[(agent, fingerprint)] = (approval_id, answer)
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)

    def take(self, agent: str | None, fingerprint: str) -> tuple[str, Any] | None:
        return self._kept.pop((agent, fingerprint), None)
