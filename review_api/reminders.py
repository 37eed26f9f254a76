"""Reminders and escalation for writes nobody decided: a sweep on every replica.

A rule's `remind_after` reminds the routed groups once; its `escalate_after` lets the
`escalate_to` groups decide from then on (review_api.routing reads the time itself, so
escalation holds even if no sweep ran) and tells them once. Each replica sweeps the pending
approvals; `store.note_escalation` records each reminder and escalation exactly once across
replicas and puts it on the change feed, where the notifier (webhooks `approval.reminder`,
`approval.escalated`) and the Slack poster pick it up. Nothing here sends anything itself.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from review_api.models import Approval, Status, utcnow
from review_api.store.base import ApprovalStore, NotFound

logger = logging.getLogger("hitl_proxy")
SWEEP_EVERY = 2.0  # seconds between sweeps: a reminder is at most this late
REMINDED, ESCALATED = "reminded", "escalated"


def due(approval: Approval, now: datetime) -> list[tuple[str, dict[str, object]]]:
    """The (event, detail) pairs this pending approval has reached by `now`."""
    found: list[tuple[str, dict[str, object]]] = []
    if approval.status is not Status.pending:
        return found
    waited = now - approval.created_at
    if approval.remind_after is not None and waited >= timedelta(seconds=approval.remind_after):
        found.append((REMINDED, {"groups": approval.reviewer_groups,
                                 "after": approval.remind_after}))
    if (approval.escalate_after is not None and approval.escalate_to
            and waited >= timedelta(seconds=approval.escalate_after)):
        found.append((ESCALATED, {"groups": approval.escalate_to,
                                  "after": approval.escalate_after}))
    return found


class Reminders:
    """From `running` to `done`, sweeps every `every` seconds; started by ReviewApp.running."""

    def __init__(self, store: ApprovalStore, *, every: float = SWEEP_EVERY) -> None:
        self.store = store
        self.every = every
        self._done: set[tuple[str, str]] = set()  # noted already (by any replica): not asked again
        self._task: asyncio.Task[None] | None = None

    async def sweep(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Note what is due; returns the (approval id, event) pairs this replica recorded."""
        now = now or utcnow()
        recorded = []
        pending = await self.store.list(Status.pending, limit=1_000_000)
        live = {approval.id for approval in pending}
        self._done = {key for key in self._done if key[0] in live}  # bounded by pending
        for approval in pending:
            for event, detail in due(approval, now):
                if (approval.id, event) in self._done:
                    continue
                try:
                    if await self.store.note_escalation(approval.id, event, detail):
                        recorded.append((approval.id, event))
                except NotFound:
                    pass  # gone since the list was read: nothing to remind of
                self._done.add((approval.id, event))
        return recorded

    async def running(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sweep_forever())

    async def done(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the store is down: the next sweep tries again
                logger.warning("reminders: the sweep failed (%r); trying again", exc)
            await asyncio.sleep(self.every)
