"""A held MCP tool call: the proposal a reviewer sees, and the JSON-RPC answers the agent gets.

An MCP client reads an HTTP error (or a 202) as a broken transport, so every answer the proxy
makes itself about a tool call is an HTTP 200 JSON-RPC result with `isError: true`, carrying the
request's own id: the model reads it as a tool failure and can adapt.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mitmproxy import http

from proxy_addon import redact
from proxy_addon.answers import STATUS_URL
from proxy_addon.mcp import Classified, ToolCall, ToolInfo, call_fingerprint
from proxy_addon.policy import Policy, WriteFacts
from proxy_addon.proposals import Built, WriteRequest
from review_api.models import (
    Change,
    Context,
    OldValues,
    Proposal,
    RecordRef,
    RequestSummary,
    Risk,
    RiskLevel,
)

REASON_META_KEYS = ("reason", "hitl/reason", "x-hitl-reason")


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
    body = redact.mask_request_body(write.content, write.content_type)
    shown = body if isinstance(body, redact.ShownBody) else None
    return RequestSummary(
        headers=redact.mask_headers(write.headers),
        content_type=redact.shown_content_type(write.content_type)
        if write.content_type else None,
        body=redact.clip(shown.value) if shown else None,
        body_bytes=len(write.raw_content),
        body_sha256=hashlib.sha256(write.raw_content).hexdigest() if write.raw_content else None,
        body_form=shown.form if shown else None,
        body_withheld=body.reason if isinstance(body, redact.WithheldBody) else None,
        problem=redact.mask_problem(problem) if problem else None)


def _shown(name: str, value: Any) -> Any:
    if redact.field_is_secret(name) and value is not None:
        return redact.MASK
    return redact.clip(redact.mask_body(value))


def build(classified: Classified, info: ToolInfo | None, write: WriteRequest, context: Context,
          policy: Policy, raw_fingerprint: str) -> Built:
    """What the reviewer sees of an MCP message held as a write, and the policy's verdict."""
    call, endpoint = classified.call, classified.endpoint
    if call is not None and context.reason is None and (reason := meta_reason(call)):
        context = context.model_copy(update={"reason": reason})
    tool = call.tool if call else None
    changes = [Change(field=name, new=_shown(name, value))
               for name, value in (call.arguments.items() if call else [])]
    risk = tool_risk(classified, info)
    # A message the proxy read as a tool call with arguments is bound to them; anything else
    # (a batch, an unknown method, a header that disagrees) to its exact bytes.
    readable = call is not None and classified.methods == ("tools/call",) and (
        "disagrees" not in classified.reason)
    problem = None if readable else classified.reason
    verdict = policy.decide(WriteFacts(
        system=endpoint.name, object_type=tool, operation="action", host=write.host,
        fields=sorted(call.arguments) if call else [], agent=context.agent, task=context.task,
        action=tool, risk=risk.level,
        changes=[(name, None, value) for name, value in (call.arguments.items() if call else [])]))
    proposal = Proposal(
        system=endpoint.name, object_type=tool, operation="action", action=tool,
        records=[RecordRef(object_type=tool, operation="action", action=tool)],
        method=write.method, url=redact.mask_url(write.url), changes=changes,
        old_values=OldValues(known=False, reason="an MCP tool call: its arguments are shown as "
                                                 "sent; no record is mapped to this tool"),
        risk=risk, context=context, request=_summary(write, problem),
        reviewer_groups=verdict.reviewer_groups, quorum=verdict.quorum, rule=verdict.rule,
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
