"""Webhooks on each new pending approval and each decision, generic JSON or Slack's format.

Sending happens in a background task with retries: a slow or failing webhook is logged and never
delays or blocks a hold. JSON payloads carry the audit chain's head at the time of the event, so
the receiver keeps a witness of the log that the data dir's owner cannot rewrite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from review_api.models import Approval, Status

logger = logging.getLogger("hitl_proxy")
AuditHead = tuple[int, str]
NOTIFIED = {Status.pending, Status.approved, Status.rejected, Status.expired, Status.denied}
RETRY_DELAYS = (0.5, 2.0, 8.0)  # after the first attempt fails


@dataclass(frozen=True)
class Webhook:
    url: str
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = field(default_factory=dict)


def _summary(approval: Approval) -> str:
    what = f"{approval.system or 'Unknown system'} {approval.object_type or 'request'}"
    if approval.record_id:
        what += f" {approval.record_id}"
    changes = ", ".join(f"{c.field}: {c.old!r} → {c.new!r}" for c in approval.changes[:3])
    if len(approval.changes) > 3:
        changes += f" (+{len(approval.changes) - 3} more)"
    return f"{what} — {approval.operation or approval.method}" + (f": {changes}" if changes else "")


def payload(hook: Webhook, approval: Approval, link: str,
            audit_head: AuditHead | None = None) -> dict[str, Any]:
    event = f"approval.{approval.status.value}"
    if hook.format == "slack":
        verb = {Status.pending: "Held for review", Status.approved: "Approved",
                Status.rejected: "Rejected", Status.expired: "Expired",
                Status.denied: "Denied by policy"}[approval.status]
        by = f" by {approval.decided_by}" if approval.decided_by else ""
        note = f" — “{approval.note}”" if approval.note else ""
        agent = approval.context.agent or "an agent"
        text = (f"*{verb}*{by}: {_summary(approval)} ({approval.risk.level.value} risk, "
                f"from {agent}){note} <{link}|Open>")
        return {"text": text, "blocks": [{"type": "section",
                                          "text": {"type": "mrkdwn", "text": text}}]}
    body: dict[str, Any] = {
        "event": event,
        "url": link,
        "approval": approval.model_dump(mode="json", include={
            "id", "status", "system", "object_type", "record_id", "operation", "action",
            "method", "url", "risk", "context", "created_at", "decided_at", "decided_by",
            "note", "quorum", "reviewer_groups"}),
        "changes": [c.model_dump(mode="json") for c in approval.changes[:50]],
        "parameters": [p.model_dump(mode="json") for p in approval.parameters[:50]],
    }
    if audit_head is not None:
        body["audit_head"] = {"seq": audit_head[0], "hash": audit_head[1]}
    return body


class Notifier:
    def __init__(self, hooks: list[Webhook], review_url: str, queue_size: int = 1000,
                 on_failure: Callable[[], None] | None = None,
                 audit_head: Callable[[], AuditHead | None] | None = None) -> None:
        """`audit_head` gives the chain's newest (seq, hash), e.g. `lambda: store.head`."""
        self._on_failure = on_failure
        self._audit_head = audit_head
        self.hooks = hooks
        self.review_url = review_url.rstrip("/")
        self._queue: asyncio.Queue[tuple[Webhook, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def publish(self, approval: Approval) -> None:
        """Store listener: queue the messages, never wait for a webhook."""
        if approval.status not in NOTIFIED or not self.hooks:
            return
        if approval.status is Status.pending and approval.votes:
            return  # a vote short of the quorum is not a decision
        link = f"{self.review_url}/approvals/{approval.id}"
        head = self._audit_head() if self._audit_head is not None else None
        for hook in self.hooks:
            try:
                self._queue.put_nowait((hook, payload(hook, approval, link, head)))
            except asyncio.QueueFull:
                self.failures += 1
                logger.warning("notification to %s dropped: the queue is full", hook.url)

    async def running(self) -> None:
        self._task = asyncio.ensure_future(self._deliver_forever())

    async def done(self) -> None:
        for task in [self._task, *self._sending]:
            if task is not None:
                task.cancel()

    async def _deliver_forever(self) -> None:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            while True:
                hook, body = await self._queue.get()
                task = asyncio.ensure_future(self._deliver(client, hook, body))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    async def _deliver(self, client: httpx.AsyncClient, hook: Webhook,
                       body: dict[str, Any]) -> None:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS), start=1):
            await asyncio.sleep(delay)
            try:
                response = await client.post(hook.url, json=body, headers=hook.headers)
                if response.status_code < 300:
                    return
                problem = f"answered {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"failed: {exc!r}"
            logger.warning("webhook %s %s (attempt %d of %d)", hook.url, problem, attempt,
                           len(RETRY_DELAYS) + 1)
        self.failures += 1
        if self._on_failure is not None:
            self._on_failure()
        logger.error("webhook %s gave up after %d attempts", hook.url, len(RETRY_DELAYS) + 1)
