"""Reminders and escalation for writes nobody decided: a timer on every replica.

A rule's `remind_after` reminds the routed groups once; its `escalate_after` lets the
`escalate_to` groups decide from then on (review_api.routing reads the time itself, so
escalation holds even if no timer ran) and tells them once. `store.note_escalation` records
each reminder and escalation exactly once across replicas and puts it on the change feed,
where the notifier (webhooks `approval.reminder`, `approval.escalated`) and the Slack poster
pick it up. Nothing here sends anything itself.

Each replica keeps a schedule of what falls due, derived from the store: the pending
approvals when it starts, then each new hold from the change feed (a decision drops it). The
schedule is a cache that saves decoding every pending approval at every tick; which replica
records a reminder, and that it is recorded once, is the store's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from review_api.feed import ChangeFeed
from review_api.models import Approval, Status, utcnow
from review_api.store.base import ApprovalStore, NotFound, StatusChange

logger = logging.getLogger("hitl_proxy")
SWEEP_EVERY = 1.0  # seconds between looks at the schedule: a reminder is at most this late
RESUME_AFTER = 1.0  # seconds before trying the store again after it failed
REMINDED, ESCALATED = "reminded", "escalated"


@dataclass(frozen=True, slots=True)
class Due:
    at: datetime
    event: str  # "reminded" | "escalated"
    detail: dict[str, Any]  # the groups told and after how long, for the audit entry


def dues(approval: Approval) -> list[Due]:
    """What this approval will fall due for, if nobody decides it first."""
    found = []
    if approval.remind_after is not None:
        found.append(Due(approval.created_at + timedelta(seconds=approval.remind_after),
                         REMINDED, {"groups": approval.reviewer_groups,
                                    "after": approval.remind_after}))
    if approval.escalate_after is not None and approval.escalate_to:
        found.append(Due(approval.created_at + timedelta(seconds=approval.escalate_after),
                         ESCALATED, {"groups": approval.escalate_to,
                                     "after": approval.escalate_after}))
    return found


def due(approval: Approval, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The (event, detail) pairs this approval has reached by `now`, while pending."""
    if approval.status is not Status.pending:
        return []
    return [(d.event, d.detail) for d in dues(approval) if d.at <= now]


class Reminders:
    """From `running` to `done`, notes what falls due; started by ReviewApp.running."""

    def __init__(self, store: ApprovalStore, *, feed: ChangeFeed | None = None,
                 every: float = SWEEP_EVERY) -> None:
        self.store = store
        self.feed = feed or ChangeFeed(store)
        self.every = every
        self._schedule: dict[str, list[Due]] = {}  # approval id -> what is still to come
        self._seeded = False
        self._tasks: list[asyncio.Task[None]] = []

    def _plan(self, approval: Approval) -> None:
        if approval.status is Status.pending and (found := dues(approval)):
            self._schedule[approval.id] = found

    async def _seed(self) -> None:
        """Every pending approval once: what was held before this replica started."""
        for approval in await self.store.list(Status.pending, limit=10_000_000):
            self._plan(approval)
        self._seeded = True

    async def on_change(self, change: StatusChange) -> None:
        """A new hold is planned; a decided approval is dropped."""
        if change.status is not Status.pending:
            self._schedule.pop(change.approval_id, None)
        elif change.event == "held" and change.approval_id not in self._schedule:
            try:
                self._plan(await self.store.get(change.approval_id))
            except NotFound:
                pass

    async def sweep(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Note what is due by `now`; returns the (approval id, event) pairs this replica
        recorded (another replica, or a decision, may have come first)."""
        if not self._seeded:
            await self._seed()
        now = now or utcnow()
        recorded = []
        for approval_id, planned in list(self._schedule.items()):
            for item in [d for d in planned if d.at <= now]:
                try:
                    if await self.store.note_escalation(approval_id, item.event, item.detail):
                        recorded.append((approval_id, item.event))
                except NotFound:
                    pass  # gone: nothing to remind of
                planned.remove(item)  # asked once: the store said whether it was new
            if not planned:
                self._schedule.pop(approval_id, None)
        return recorded

    async def running(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run())]

    async def done(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        """Seed after noting where the feed is, so no hold falls between the two; then
        follow the feed and look at the schedule every `every` seconds."""
        while True:
            try:
                after = await self.store.last_change()
                await self._seed()
                break
            except Exception as exc:  # the store is down: try again
                logger.warning("reminders: cannot read the pending writes (%r); retrying", exc)
                await asyncio.sleep(RESUME_AFTER)
        self._tasks.append(asyncio.create_task(self._follow(after)))
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the store is down: the next look tries again
                logger.warning("reminders: noting what is due failed (%r); retrying", exc)
            await asyncio.sleep(self.every)

    async def _follow(self, after: int) -> None:
        while True:
            try:
                async for change in self.feed.follow(after):
                    await self.on_change(change)
                    after = change.seq
            except Exception as exc:  # the store is down: resume after the last change
                logger.warning("reminders: reading the change feed failed (%r); resuming", exc)
                await asyncio.sleep(RESUME_AFTER)
