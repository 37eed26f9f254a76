"""A held MCP tool call: the proposal a reviewer sees, and the JSON-RPC answers the agent gets.

An MCP client reads an HTTP error (or a 202) as a broken transport, so every answer the proxy
makes itself about a tool call is an HTTP 200 JSON-RPC result with `isError: true`, carrying the
request's own id: the model reads it as a tool failure and can adapt.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from mitmproxy import http

from connectors_schemas.mcp_tools import ReadRest, ReadTool, ToolMapping, fill
from connectors_schemas.models import Operation
from proxy_addon import redact
from proxy_addon.answers import STATUS_URL
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.diff import compute_diff
from proxy_addon.mcp import (
    Classified,
    KeptResults,
    McpRules,
    ToolCall,
    ToolInfo,
    Unreadable,
    answer_messages,
    body_call,
    call_fingerprint,
    parse_json,
)
from proxy_addon.policy import Policy, WriteFacts
from proxy_addon.proposals import Built, WriteRequest, fingerprint, summarise_request
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import HeldRequest
from review_api.models import (
    Approval,
    Change,
    Context,
    OldValues,
    Parameter,
    Proposal,
    RecordRef,
    RequestSummary,
    Risk,
    RiskLevel,
)

if TYPE_CHECKING:
    from proxy_addon.upstream import UpstreamClient

logger = logging.getLogger("hitl_proxy")

REASON_META_KEYS = ("reason", "hitl/reason", "x-hitl-reason")
# Never copied from the agent's write onto the proxy's own read call.
_READ_DROP = frozenset({"mcp-method", "mcp-name", "content-type", "accept", "content-length",
                        "content-encoding", "idempotency-key"})
MAX_READ_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Mapped:
    """A mapped tool call: its mapping, and the record as it stands (None: unknown, why)."""

    mapping: ToolMapping
    current: dict[str, Any] | None
    problem: str | None


def _at(record: Any, path: str | None) -> Any:
    for part in (path.split(".") if path else []):
        record = record.get(part) if isinstance(record, dict) else None
    return record


def record_of_result(result: Any, spec: ReadTool) -> dict[str, Any] | None:
    """The record in a read tool's result: its JSON text (or structured content), or, for a
    tool that answers with a file, that text as the one field `text_as`."""
    if not isinstance(result, dict):
        return None
    content = result.get("content") if isinstance(result.get("content"), list) else []
    texts = [part.get("text") for part in content
             if isinstance(part, dict) and part.get("type") == "text"]
    if spec.text_as is not None:
        resources = [part["resource"].get("text") for part in content
                     if isinstance(part, dict) and part.get("type") == "resource"
                     and isinstance(part.get("resource"), dict)]
        found = [text for text in [*resources, *texts] if isinstance(text, str)]
        return {spec.text_as: found[0]} if found else None
    for text in texts:
        if not isinstance(text, str):
            continue
        try:
            parsed = _at(parse_json(text.encode()), spec.record_path)
        except Unreadable:
            continue
        if isinstance(parsed, dict):
            return parsed
    structured = result.get("structuredContent")
    if isinstance(structured, dict) and set(structured) == {"result"}:
        structured = structured["result"]  # the SDK's wrapping of a tool's plain return
    structured = _at(structured, spec.record_path)
    return structured if isinstance(structured, dict) else None


def own_request(method: str, params: dict[str, Any], call: ToolCall,
                headers: list[tuple[str, str]],
                name: str | None = None) -> tuple[bytes, list[tuple[str, str]], str]:
    """A JSON-RPC request the proxy sends itself (a read tool's call, tools/list) with the
    agent's headers (credentials, session, protocol version) and its `_meta` protocol keys."""
    request_id = f"hitl-proxy-{uuid.uuid4().hex[:12]}"
    protocol_meta = {k: v for k, v in call.meta.items() if k.startswith("io.modelcontextprotocol/")}
    if protocol_meta:
        params = {**params, "_meta": protocol_meta}
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                       "params": params}).encode()
    from proxy_addon.upstream import forwardable

    modern = any(header.lower() == "mcp-method" for header, _ in headers)
    sent = [(header, value) for header, value in forwardable(headers)
            if header.lower() not in _READ_DROP and not header.lower().startswith("mcp-param")]
    sent += [("Content-Type", "application/json"),
             ("Accept", "application/json, text/event-stream")]
    if modern:  # 2026-07-28: the routing headers must agree with the body
        sent += [("Mcp-Method", method), *([("Mcp-Name", name)] if name else [])]
    return body, sent, request_id


def read_call(spec: ReadTool, call: ToolCall,
              headers: list[tuple[str, str]]) -> tuple[bytes, list[tuple[str, str]], str]:
    """The JSON-RPC tools/call of the read tool."""
    return own_request("tools/call", {"name": spec.tool, "arguments": {
        name: fill(value, call.arguments) for name, value in spec.arguments.items()}}, call,
        headers, spec.tool)


async def fetch_tools(rules: McpRules, classified: Classified, url: str,
                      headers: list[tuple[str, str]], upstream: UpstreamClient,
                      max_pages: int = 20) -> str | None:
    """Learn a server's tools by sending its tools/list (every page) ourselves, with the
    agent's credentials; why it failed, or None."""
    call, endpoint = classified.call, classified.endpoint
    assert call is not None
    cursor: str | None = None
    for _ in range(max_pages):
        body, sent, request_id = own_request(
            "tools/list", {"cursor": cursor} if cursor else {}, call, headers)
        try:
            response = await upstream.post(url, sent, body)
        except httpx.HTTPError as exc:
            return f"tools/list could not be sent: {exc}"
        if response.status_code != 200 or len(response.content) > MAX_READ_BYTES:
            return f"the server answered {response.status_code} to tools/list"
        answers = [m for m in answer_messages(response.content,
                                              response.headers.get("content-type"))
                   if isinstance(m, dict) and m.get("id") == request_id]
        result = answers[0].get("result") if answers else None
        if not isinstance(result, dict) or not rules.catalog.record(endpoint, answers[0]):
            return "the server's answer to tools/list lists no tools"
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            return None
    return None


async def _read_by_tool(spec: ReadTool, call: ToolCall, url: str, headers: list[tuple[str, str]],
                        upstream: UpstreamClient) -> tuple[dict[str, Any] | None, str | None]:
    body, sent, request_id = read_call(spec, call, headers)
    try:
        response = await upstream.post(url, sent, body)
    except httpx.HTTPError as exc:
        return None, f"the read tool {spec.tool} could not be called: {exc}"
    if response.status_code != 200:
        return None, f"the server answered {response.status_code} to the read tool {spec.tool}"
    if len(response.content) > MAX_READ_BYTES:
        return None, f"the read tool {spec.tool} answered more than {MAX_READ_BYTES} bytes"
    for message in answer_messages(response.content, response.headers.get("content-type")):
        if not isinstance(message, dict) or message.get("id") != request_id:
            continue
        if "error" in message:
            error = message["error"] if isinstance(message["error"], dict) else {}
            return None, (f"the read tool {spec.tool} failed: "
                          f"{redact.clip(str(error.get('message'))[:300])}")
        result = message.get("result")
        if isinstance(result, dict) and result.get("isError"):
            texts = " ".join(str(part.get("text", "")) for part in result.get("content", [])
                             if isinstance(part, dict))
            return None, f"the read tool {spec.tool} answered an error: {texts[:300]}"
        record = record_of_result(result, spec)
        if record is None:
            return None, f"the read tool {spec.tool} answered no record the proxy can read"
        return record, None
    return None, f"the server's answer to the read tool {spec.tool} holds no result"


async def _read_by_rest(spec: ReadRest, call: ToolCall, headers: list[tuple[str, str]],
                        upstream: UpstreamClient) -> tuple[dict[str, Any] | None, str | None]:
    from urllib.parse import quote

    url = fill(spec.url, {name: quote(str(value), safe="")
                          for name, value in call.arguments.items()})
    credentials = [(name, value) for name, value in headers if name.lower() == "authorization"]
    fetched = await upstream.fetch_json(url, credentials)
    record = _at(fetched.record, spec.record_path)
    if fetched.problem is not None or not isinstance(record, dict):
        return None, fetched.problem or f"GET {url} answered no record"
    return record, None


async def old_values(classified: Classified, rules: McpRules, url: str,
                     headers: list[tuple[str, str]], upstream: UpstreamClient) -> Mapped | None:
    """The mapping of a held tool call and, for a record that exists, its current values: read
    through the mapped read tool of the same server (never a write tool), else the vendor's
    REST API. None when no mapping names this tool."""
    call, endpoint = classified.call, classified.endpoint
    found = rules.mappings.for_server(endpoint.host, endpoint.path) if call else None
    mapping = found.mapping(call.tool, call.arguments) if found and call else None
    if mapping is None or call is None:
        return None
    if mapping.operation is Operation.create:
        return Mapped(mapping, None, None)
    if mapping.read is None:
        return Mapped(mapping, None, f"no read is mapped for {call.tool}")
    problem = None
    if (spec := mapping.read.tool) is not None:
        info = rules.catalog.get(endpoint, spec.tool)
        if info is not None and info.read_only is not True and spec.tool not in (
                endpoint.read_tools):
            problem = (f"{endpoint.name} does not annotate {spec.tool} read-only, so the proxy "
                       "did not call it")
        else:
            record, problem = await _read_by_tool(spec, call, url, headers, upstream)
            if record is not None:
                return Mapped(mapping, record, None)
    if mapping.read.rest is not None:
        record, rest_problem = await _read_by_rest(mapping.read.rest, call, headers, upstream)
        if record is not None:
            return Mapped(mapping, record, None)
        problem = "; ".join(p for p in (problem, rest_problem) if p)
    return Mapped(mapping, None, problem)


def meta_reason(call: ToolCall) -> str | None:
    """The agent's reason from the request's `_meta`, when it sent one."""
    for key in REASON_META_KEYS:
        if isinstance(value := call.meta.get(key), str) and value.strip():
            return value[:2000]
    return None


def tool_risk(classified: Classified, info: ToolInfo | None) -> Risk:
    call = classified.call
    tool = call.tool if call else "a message"
    reasons = [classified.reason]
    if info is not None and info.description:
        reasons.append(f"{tool}: {redact.clip(info.description[:300])}")
    if info is not None and info.destructive is False:
        return Risk(level=RiskLevel.medium, reasons=[
            *reasons, f"{classified.endpoint.name} says {tool} is not destructive"])
    why = ("the server annotates it destructiveHint" if info is not None and info.destructive
           else "the server does not say it is not destructive (MCP's default is destructive)")
    return Risk(level=RiskLevel.high, destructive=True, reasons=[*reasons, why])


def _summary(write: WriteRequest, problem: str | None) -> RequestSummary:
    return summarise_request(
        write, redact.mask_request_body(write.content, write.content_type), problem)


def _shown(name: str, value: Any) -> Any:
    if redact.field_is_secret(name) and value is not None:
        return redact.MASK
    return redact.clip(redact.mask_body(value))


def _mapped_changes(mapped: Mapped, call: ToolCall) -> tuple[list[Change], list[Parameter],
                                                              list[tuple[str, Any, Any]]]:
    mapping = mapped.mapping
    record_id = mapping.record_id(call.arguments)
    operation = Operation.update if mapping.operation is Operation.action else mapping.operation
    diff = compute_diff(operation, mapped.current, mapping.proposed(call.arguments))
    changes = [Change(field=c.field, old=_shown(c.field, c.old), new=_shown(c.field, c.new),
                      kind=c.kind, record_id=record_id) for c in diff.changes]
    parameters = [Parameter(name=name, value=_shown(name, value), record_id=record_id)
                  for name, value in mapping.options(call.arguments).items()]
    return changes, parameters, [(c.field, c.old, c.new) for c in diff.changes]


def build(classified: Classified, info: ToolInfo | None, write: WriteRequest, context: Context,
          policy: Policy, raw_fingerprint: str, mapped: Mapped | None = None) -> Built:
    """What the reviewer sees of an MCP message held as a write, and the policy's verdict."""
    call, endpoint = classified.call, classified.endpoint
    if call is not None and context.reason is None and (reason := meta_reason(call)):
        context = context.model_copy(update={"reason": reason})
    tool = call.tool if call else None
    changes = [Change(field=name, new=_shown(name, value))
               for name, value in (call.arguments.items() if call else [])]
    facts_changes: list[tuple[str, Any, Any]] = [
        (name, None, value) for name, value in (call.arguments.items() if call else [])]
    parameters: list[Parameter] = []
    object_type, operation, record_id = tool, "action", None
    old = OldValues(known=False, reason="an MCP tool call: its arguments are shown as sent; no "
                                        "record is mapped to this tool")
    if mapped is not None and call is not None:
        changes, parameters, facts_changes = _mapped_changes(mapped, call)
        object_type, operation = mapped.mapping.object, mapped.mapping.operation.value
        record_id = mapped.mapping.record_id(call.arguments)
        if mapped.current is not None:
            old = OldValues(known=True, reason=f"read through {endpoint.name} just now")
        elif mapped.mapping.operation is Operation.create:
            old = OldValues(known=True, reason="a new record: there are no old values")
        else:
            old = OldValues(known=False, reason=mapped.problem or "not fetched")
    risk = tool_risk(classified, info)
    # A message the proxy read as a tool call with arguments is bound to them; anything else
    # (a batch, an unknown method, a header that disagrees) to its exact bytes.
    readable = call is not None and classified.methods == ("tools/call",) and (
        "disagrees" not in classified.reason)
    problem = None if readable else classified.reason
    verdict = policy.decide(WriteFacts(
        system=endpoint.name, object_type=object_type, operation=operation, host=write.host,
        fields=sorted({name for name, _, _ in facts_changes}), agent=context.agent,
        task=context.task, action=tool, risk=risk.level, changes=facts_changes))
    proposal = Proposal(
        system=endpoint.name, object_type=object_type, operation=operation,
        record_id=record_id, action=tool,
        records=[RecordRef(object_type=object_type, operation=operation, record_id=record_id,
                           action=tool)],
        method=write.method, url=redact.mask_url(write.url), changes=changes,
        parameters=parameters, old_values=old, risk=risk, context=context,
        request=_summary(write, problem),
        reviewer_groups=verdict.reviewer_groups, quorum=verdict.quorum, rule=verdict.rule,
        remind_after=verdict.remind_after, escalate_after=verdict.escalate_after,
        escalate_to=verdict.escalate_to,
        fingerprint=call_fingerprint(write.url, call) if readable and call else raw_fingerprint)
    return Built(proposal, verdict, {})


# -- answers -------------------------------------------------------------------------------------


def tool_error(request_id: Any, text: str, protocol_version: str | None,
               approval_id: str | None = None) -> http.Response:
    """HTTP 200, a JSON-RPC result with isError and the request's own id."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if (protocol_version or "") >= "2026-07-28":
        result["resultType"] = "complete"
    if approval_id is not None:
        result["_meta"] = {"hitl-proxy/approval_id": approval_id,
                           "hitl-proxy/status_url": STATUS_URL.format(approval_id)}
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if approval_id is not None:
        headers["X-HITL-Approval-Id"] = approval_id
    return http.Response.make(200, json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "result": result}).encode(), headers)


def _text(answer: dict[str, Any]) -> str:
    status, approval_id = answer.get("status"), answer.get("approval_id")
    note = answer.get("note")
    if status == "rejected":
        text = (f"Rejected by {answer.get('decided_by') or 'a reviewer'}"
                f"{f': {note}' if note else ' (no note)'}. The tool was not called.")
    elif status == "pending":
        text = ("This tool call awaits a reviewer's approval; it was not run yet. If it is "
                "approved, the proxy runs it once; call it again with the same arguments to "
                "get its result.")
    elif status == "expired":
        text = "Nobody approved this tool call in time; it was not run and never will be."
    elif status == "denied":
        text = f"Policy forbids this tool call (rule {answer.get('rule')}); it was not run."
    else:
        text = f"The proxy refused this tool call: {answer.get('message')}"
    if approval_id:
        text += f" Approval {approval_id}, status at {STATUS_URL.format(approval_id)}."
    return text


def as_tool_result(response: http.Response, classified: Classified) -> http.Response:
    """An answer the proxy made (403 rejected, 202 pending, 503 refused...) as the JSON-RPC
    result an MCP client reads as a tool failure; a JSON-RPC answer already is one."""
    try:
        answer = json.loads(response.content or b"{}")
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if answer.get("jsonrpc") == "2.0":
        return response
    made = tool_error(classified.request_id, _text(answer), classified.protocol_version,
                      answer.get("approval_id"))
    if retry := response.headers.get("Retry-After"):
        made.headers["Retry-After"] = retry
    return made


def kept_answer(answer: Any, request_id: Any) -> http.Response:
    """The result of a call the proxy ran after its agent left, with this request's own id."""
    body = dict(answer) if isinstance(answer, dict) else {"jsonrpc": "2.0", "result": answer}
    body["id"] = request_id
    return http.Response.make(200, json.dumps(body).encode(),
                              {"Content-Type": "application/json", "Cache-Control": "no-store"})


# -- the hold's MCP steps ------------------------------------------------------------------------


class McpHold:
    """What the hold asks of MCP: the legacy transport's refusal, the reading of a message, the
    proxy's own tools/list before deciding on an unlisted tool, a held call's proposal, and the
    results of calls run after their agent left. One per process, beside HoldWrites."""

    def __init__(self, rules: McpRules, resolve: Resolve, upstream: UpstreamClient,
                 max_body: int) -> None:
        self.rules = rules
        self.resolve = resolve
        self.upstream = upstream
        self.max_body = max_body
        self.kept = KeptResults()  # results of calls executed after their agent left
        self._listed: dict[tuple[str, str], float] = {}  # when the proxy last asked tools/list

    def legacy(self, flow: http.HTTPFlow, method: str) -> str | None:
        """Why this is the legacy MCP HTTP+SSE transport, refused with a clear answer."""
        if method not in ("GET", "POST") or method != flow.request.data.method.decode(
                "utf-8", "surrogateescape"):
            return None
        if ("sse" if method == "GET" else "message") not in flow.request.path:
            return None  # the cheap test first: nearly every request stops here
        body = b""
        if method == "POST":
            try:
                body = decoded(flow.request.raw_content or b"", flow.request.headers.get(
                    "content-encoding"), self.max_body)
            except DecodingError:
                return None
        host, _ = self.resolve.requested_url(flow)
        return self.rules.legacy(method, host, flow.request.path, flow.request.headers, body)

    def message(self, flow: http.HTTPFlow, method: str) -> Classified | None:
        """The MCP reading of a POST or DELETE sent as such (no override), if it is MCP."""
        if method not in ("POST", "DELETE") or method != flow.request.data.method.decode(
                "utf-8", "surrogateescape"):
            return None
        try:
            body = decoded(flow.request.raw_content or b"",
                           flow.request.headers.get("content-encoding"), self.max_body)
        except DecodingError:
            return None  # the write path refuses it
        host, _ = self.resolve.requested_url(flow)
        return self.rules.classify(method, host, flow.request.path, flow.request.headers, body)

    def unlisted(self, found: Classified) -> bool:
        """A tool call naming a tool the proxy has not seen listed, on a server whose
        annotations are trusted: worth asking the server for its tools/list first."""
        call = found.call
        if call is None or not found.endpoint.trust_annotations or found.methods != (
                "tools/call",) or self.rules.catalog.get(found.endpoint, call.tool) is not None:
            return False
        key, now = (found.endpoint.key, call.tool), time.monotonic()
        if now - self._listed.get(key, -1e9) < 60:
            return False  # asked a minute ago and not listed: held without asking again
        self._listed[key] = now
        while len(self._listed) > 1000:
            self._listed.pop(next(iter(self._listed)))
        return True

    async def list_tools(self, flow: http.HTTPFlow, found: Classified) -> None:
        """The server's tools/list, fetched with the agent's credentials; a failure is logged
        and leaves the call held."""
        _, url = self.resolve.requested_url(flow)
        headers = list(flow.request.headers.items(multi=True))
        problem = await fetch_tools(self.rules, found, url, headers, self.upstream)
        if problem is not None:
            logger.info("MCP %s: the proxy's own tools/list failed: %s", found.endpoint.name,
                        problem)

    async def built(self, found: Classified, write: WriteRequest, context: Context,
                    policy: Policy) -> Built:
        """A held message's proposal, with the mapped record's values read first."""
        call = found.call
        mapped = (await old_values(found, self.rules, write.url, write.headers, self.upstream)
                  if call is not None and found.methods == ("tools/call",) else None)
        info = self.rules.catalog.get(found.endpoint, call.tool) if call else None
        return build(found, info, write, context, policy,
                     fingerprint(write.method, write.url, write.raw_content), mapped)

    def keep_result(self, approval: Approval, held: HeldRequest,
                    response: httpx.Response) -> None:
        """An MCP call's result, for its agent's same call (it had gone when it was sent)."""
        call = body_call(held.content)
        if call is None or call_fingerprint(held.url, call) != approval.fingerprint:
            return
        found = [message for message in answer_messages(
            response.content, response.headers.get("content-type"))
            if isinstance(message, dict) and ("result" in message or "error" in message)]
        if found:
            self.kept.keep(approval.context.agent, approval.fingerprint, approval.id, found[-1])
