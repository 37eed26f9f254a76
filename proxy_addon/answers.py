"""What the proxy itself answers an agent whose write did not (yet) go upstream."""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http

from review_api.models import Approval

# Tell SDKs that retry on their own not to: a retry would only create another approval.
_NO_RETRY = {"Stripe-Should-Retry": "false", "X-Should-Retry": "false"}


STATUS_URL = "http://hitl-proxy.status/approvals/{}"


def _json(status_code: int, body: dict[str, Any], approval_id: str | None = None) -> http.Response:
    # SDKs that read {"error": {"message"}} (Stripe's, among others) then show the reason.
    body["error"] = {"type": "hitl_proxy", "code": f"approval_{body['status']}",
                     "message": body["message"]}
    if approval_id is not None:
        body["status_url"] = STATUS_URL.format(approval_id)
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **_NO_RETRY}
    if approval_id is not None:
        headers["X-HITL-Approval-Id"] = approval_id
    return http.Response.make(status_code, json.dumps(body).encode(), headers)


def pending(approval: Approval, review_url: str) -> http.Response:
    return _json(202, {
        "status": "pending",
        "approval_id": approval.id,
        "message": "this write is waiting for a reviewer; if approved, the proxy sends it itself",
        "review_url": f"{review_url}/api/approvals/{approval.id}",
    }, approval.id)


def approved_later(approval: Approval, review_url: str) -> http.Response:
    """202: approved, but the proxy cannot send it now; it sends it itself once it can."""
    return _json(202, {
        "status": "approved",
        "approval_id": approval.id,
        "message": "this write was approved but cannot be sent while the proxy's traffic record "
                   "cannot be written; the proxy sends it itself once it can",
        "review_url": f"{review_url}/api/approvals/{approval.id}",
    }, approval.id)


def handled_elsewhere(approval: Approval) -> http.Response:
    """202: approved, and past `approved` by the time this connection heard of it (a newer
    retry claimed the send, perhaps on another replica); the status URL tells the outcome."""
    return _json(202, {
        "status": approval.status.value,
        "approval_id": approval.id,
        "message": "this write was approved and is handled through another connection of it "
                   "(a newer retry) or by the proxy itself, never twice; its status_url tells "
                   "the outcome",
    }, approval.id)


def _closed(approval: Approval, status: str, message: str, **extra: Any) -> http.Response:
    """403: the write was decided against (or expired, or denied) and nothing went upstream."""
    return _json(403, {"status": status, "approval_id": approval.id, **extra,
                       "message": message}, approval.id)


def rejected(approval: Approval) -> http.Response:
    return _closed(approval, "rejected",
                   "a reviewer rejected this write; nothing was sent upstream",
                   note=approval.note, decided_by=approval.decided_by)


def expired(approval: Approval) -> http.Response:
    return _closed(approval, "expired",
                   "nobody decided on this write in time; it will never be sent")


def denied(approval: Approval) -> http.Response:
    return _closed(approval, "denied", "policy forbids this write; nothing was sent upstream",
                   rule=approval.rule)


def agent_view(approval: Approval) -> http.Response:
    """What an agent may know of its own write: where it stands, never how to decide it."""
    body = {"approval_id": approval.id, "status": approval.status.value, "note": approval.note,
            "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
            "result": approval.result.model_dump(mode="json") if approval.result else None}
    return http.Response.make(200, json.dumps(body).encode(),
                              {"Content-Type": "application/json", "Cache-Control": "no-store"})


def refused(status_code: int, message: str, approval_id: str | None = None) -> http.Response:
    """The proxy could not hold the write safely, so it refuses it (fail closed)."""
    return _json(status_code, {"status": "refused", "message": message,
                               "approval_id": approval_id}, approval_id)
