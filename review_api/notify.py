"""Webhooks on each new pending approval and each decision, generic JSON or Slack's format.

The notifier reads the store's change feed, so a hold or decision committed by any replica is
notified; before sending, it claims the change in the store (`claim_delivery`), and only the
replica that wins sends it: each event goes out once, whichever replica committed it (at most
once: a replica that dies mid-retry does not hand the event to another). A replica that starts
notifies only what commits from then on, never the history.

Sending happens in background tasks with retries: a slow or failing webhook is logged and never
delays or blocks a hold. JSON payloads carry the audit chain's head when the event is sent, so
the receiver keeps a witness of the log that the data dir's owner cannot rewrite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from review_api.feed import ChangeFeed
from review_api.models import Approval, Status
from review_api.store import ApprovalStore, AuditHead, NotFound, StatusChange, StoreError

logger = logging.getLogger("hitl_proxy")
NOTIFIED = {Status.pending, Status.approved, Status.rejected, Status.expired, Status.denied}
# Feed events of a pending approval that are sent (review_api.reminders), and their names.
NUDGES = {"reminded": "approval.reminder", "escalated": "approval.escalated"}
RETRY_DELAYS = (0.5, 2.0, 8.0)  # after the first attempt fails
RESUME_AFTER = 1.0  # seconds before following the feed again after the store failed


def notified(change: StatusChange) -> bool:
    """A new hold, a reminder or escalation of a pending one, or a decision; not a vote short
    of the quorum, not the sending that follows."""
    if change.status is Status.pending:
        return change.event == "held" or change.event in NUDGES
    return change.status in NOTIFIED and change.event != "vote"


def as_of(approval: Approval, change: StatusChange) -> Approval:
    """The approval as the change left it: read later, it may have moved on (a hold approved
    before its notice was sent still announces the hold, not the decision twice)."""
    if approval.status is change.status:
        return approval
    undecided = ({"decided_at": None, "decided_by": None, "note": None}
                 if change.status is Status.pending else {})
    return approval.model_copy(update={"status": change.status, **undecided})


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


def _told(approval: Approval, nudge: str | None) -> list[str]:
    """Whom a reminder or escalation is for: the routed groups, or the escalate_to groups."""
    return list(approval.escalate_to if nudge == "escalated" else approval.reviewer_groups)


def payload(hook: Webhook, approval: Approval, link: str,
            audit_head: AuditHead | None = None, *, nudge: str | None = None
            ) -> dict[str, Any]:
    """`nudge`: the feed event "reminded" or "escalated" of a pending approval, else None."""
    event = NUDGES[nudge] if nudge in NUDGES else f"approval.{approval.status.value}"
    if hook.format == "slack":
        verb = {Status.pending: "Held for review", Status.approved: "Approved",
                Status.rejected: "Rejected", Status.expired: "Expired",
                Status.denied: "Denied by policy"}[approval.status]
        if nudge == "reminded":
            verb = "Still waiting for review"
        elif nudge == "escalated":
            verb = f"Escalated to {', '.join(_told(approval, nudge))}"
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
            "note", "quorum", "reviewer_groups", "identity"}),
        "changes": [c.model_dump(mode="json") for c in approval.changes[:50]],
        "parameters": [p.model_dump(mode="json") for p in approval.parameters[:50]],
    }
    if nudge in NUDGES:
        body["groups"] = _told(approval, nudge)
    if audit_head is not None:
        body["audit_head"] = {"seq": audit_head[0], "hash": audit_head[1]}
    return body


class Notifier:
    """An addon: from `running` to `done` it follows the change feed and sends webhooks."""

    def __init__(self, store: ApprovalStore, hooks: list[Webhook], review_url: str, *,
                 feed: ChangeFeed | None = None, queue_size: int = 1000,
                 on_failure: Callable[[], None] | None = None) -> None:
        self.store = store
        self.feed = feed or ChangeFeed(store)
        self._on_failure = on_failure
        self.hooks = hooks
        self.review_url = review_url.rstrip("/")
        self._queue: asyncio.Queue[tuple[Webhook, dict[str, Any]]] = asyncio.Queue(queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self.failures = 0

    async def publish(self, change: StatusChange) -> None:
        """Queue the messages of one change if this replica wins its delivery; never waits
        for a webhook. The approval is read before the claim, so a store failure here leaves
        the change unclaimed for the retry (or another replica) instead of lost."""
        if not self.hooks or not notified(change):
            return
        try:
            approval = as_of(await self.store.get(change.approval_id), change)
        except NotFound:
            logger.warning("change %d names approval %s, which is gone: not notified",
                           change.seq, change.approval_id)
            return
        head = await self.store.audit_head()
        if not await self.store.claim_delivery(change.seq):
            return  # another replica sends this one
        link = f"{self.review_url}/approvals/{approval.id}"
        for hook in self.hooks:
            try:
                body = payload(hook, approval, link, head,
                               nudge=change.event if change.event in NUDGES else None)
                self._queue.put_nowait((hook, body))
            except asyncio.QueueFull:
                self.failures += 1
                logger.warning("notification to %s dropped: the queue is full", hook.url)

    async def running(self) -> None:
        """Start following the feed from its newest change: history is never re-sent."""
        if self._tasks or not self.hooks:
            return
        try:
            after = await self.store.last_change()
        except StoreError as exc:
            logger.warning("webhooks: the change feed cannot be read yet: %s", exc)
            after = None  # the follower asks again when it can
        self._tasks = [asyncio.create_task(self._follow(after)),
                       asyncio.create_task(self._deliver_forever())]

    async def done(self) -> None:
        tasks, self._tasks = [*self._tasks, *self._sending], []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, after: int | None) -> None:
        """Every change after `after`, in order; a store failure pauses the reading, and it
        resumes after the last change handled, so nothing is skipped."""
        while True:
            try:
                if after is None:
                    after = await self.store.last_change()
                async for change in self.feed.follow(after):
                    await self.publish(change)
                    after = change.seq
            except Exception as exc:  # the store is down: the feed resumes where it stopped
                logger.warning("webhooks: reading the change feed failed (%r); resuming", exc)
                await asyncio.sleep(RESUME_AFTER)

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
