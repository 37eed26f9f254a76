"""Posts each held write to its routed group's Slack channel and keeps the message in step
with the approval: votes, the outcome, who decided and where, and what upstream answered.

Driven by the store's change feed (`follow`), so a decision taken on the page, through the
API or on another replica updates the message as one taken in Slack does. Reminders and
escalations (feed rows "reminded" / "escalated", from `review_api.reminders`) become a reply
in the message's thread, and an escalation also a message in the escalate_to groups' channels.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from review_api.models import Approval, Status
from review_api.slack.api import MessageRef, SlackApi, SlackError
from review_api.slack.blocks import Message, held_message, nudge_text, outcome_message
from review_api.slack.settings import SlackSettings
from review_api.store.base import ApprovalStore, NotFound, StatusChange, StoreError

logger = logging.getLogger("hitl_proxy")


class MessageRefs:
    """Which Slack messages show an approval: the store's, so whichever replica takes the
    next change of an approval updates the message another replica posted."""

    def __init__(self, store: ApprovalStore) -> None:
        self._store = store

    async def add(self, approval_id: str, ref: MessageRef) -> None:
        await self._store.save_slack_ref(approval_id, ref.channel, ref.ts)

    async def of(self, approval_id: str) -> list[MessageRef]:
        return [MessageRef(channel, ts) for channel, ts in
                await self._store.slack_refs(approval_id)]


class Follows(Protocol):
    """`review_api.feed.ChangeFeed`'s reading side."""

    def follow(self, after: int | None = None) -> AsyncIterator[StatusChange]: ...


Claim = Callable[[int], Awaitable[bool]]  # store.claim_delivery(seq, "slack"): one replica
NUDGES = ("reminded", "escalated")  # change-feed events that are no status change


def channels_for(approval: Approval, settings: SlackSettings) -> list[str]:
    """Each routed group's channel, once; the default channel when none of them has one."""
    found = group_channels(approval.reviewer_groups, settings)
    if not found and settings.default_channel is not None:
        found = [settings.default_channel]
    return found


def group_channels(groups: list[str], settings: SlackSettings) -> list[str]:
    return list(dict.fromkeys(settings.channels[group] for group in groups
                              if group in settings.channels))


class SlackPoster:
    def __init__(self, api: SlackApi, settings: SlackSettings, review_url: str,
                 store: ApprovalStore) -> None:
        self._api = api
        self._settings = settings
        self._review_url = review_url.rstrip("/")
        self._store = store
        self.refs = MessageRefs(store)
        # Across replicas a message is posted once because one replica claims each change;
        # within this one, the feed and the endpoint both show, and this keeps that to one.
        self._lock = asyncio.Lock()
        self.failures = 0

    def link(self, approval_id: str) -> str:
        return f"{self._review_url}/approvals/{approval_id}"

    async def via(self, approval: Approval) -> str | None:
        """Where the deciding vote was cast, from the decision's audit entry (`via`)."""
        if approval.decided_by is None:
            return None
        for entry in reversed(await self._store.audit_entries(approval.id)):
            if entry.actor == approval.decided_by and isinstance(entry.detail.get("via"), str):
                return str(entry.detail["via"])
        return None

    async def show(self, approval: Approval, *, post: bool = True) -> None:
        """Post a newly held write (unless `post` is False); update every message of one
        already posted. A write decided before it was ever posted is not posted: there is
        nothing left to decide."""
        async with self._lock:
            refs = await self.refs.of(approval.id)
            if not refs:
                if post and approval.status is Status.pending:
                    await self._post(approval, channels_for(approval, self._settings))
                return
            message = self._message(approval, await self.via(approval))
            for ref in refs:
                try:
                    await self._api.update(ref, message["text"], message["blocks"])
                except SlackError as exc:
                    self.failures += 1
                    logger.warning("Slack message of %s not updated: %s", approval.id, exc)

    def _message(self, approval: Approval, via: str | None) -> Message:
        if approval.status is Status.pending:
            limit = self._settings.decide_in_slack_up_to
            return held_message(approval, self.link(approval.id),
                                decide_here=limit.allows(approval.risk),
                                page_only_because=limit.why_not(approval.risk))
        return outcome_message(approval, self.link(approval.id), via=via)

    async def _post(self, approval: Approval, channels: list[str]) -> None:
        if not channels:
            logger.info("approval %s routed to %s: no Slack channel for it", approval.id,
                        approval.reviewer_groups)
            return
        message = self._message(approval, None)
        for channel in channels:
            try:
                ref = await self._api.post_message(channel, message["text"], message["blocks"])
            except SlackError as exc:
                self.failures += 1
                logger.warning("approval %s not posted to Slack %s: %s", approval.id, channel,
                               exc)
                continue
            await self.refs.add(approval.id, ref)

    async def on_change(self, change: StatusChange) -> None:
        try:
            approval = await self._store.get(change.approval_id)
        except NotFound:
            return
        if change.event in NUDGES:
            await self.nudge(approval, change.event)
        else:
            await self.show(approval)

    async def nudge(self, approval: Approval, event: str) -> None:
        """A reminder: a reply in each message's thread. An escalation: that reply, and the
        held message posted to the escalate_to groups' channels, whose reviewers may now
        decide it. Nothing for a write decided meanwhile."""
        if approval.status is not Status.pending:
            return
        text = nudge_text(approval, event)
        async with self._lock:
            refs = await self.refs.of(approval.id)
            for ref in refs:
                try:
                    await self._api.post_message(ref.channel, text, [], thread_ts=ref.ts)
                except SlackError as exc:
                    self.failures += 1
                    logger.warning("Slack %s of %s not posted: %s", event, approval.id, exc)
            if event == "escalated":
                posted = {ref.channel for ref in refs}
                fresh = [channel for channel in group_channels(approval.escalate_to,
                                                               self._settings)
                         if channel not in posted]
                await self._post(approval, fresh)

    async def follow(self, feed: Follows, claim: Claim | None = None,
                     after: int | None = None) -> None:
        """Forever: every change, in order. With `claim`, only the changes this replica wins
        (one replica posts each message). A failure is logged; the next change goes on."""
        async for change in feed.follow(after):
            if claim is not None and not await claim(change.seq):
                continue
            try:
                await self.on_change(change)
            except Exception:  # one approval's failure must not stop the rest
                self.failures += 1
                logger.exception("Slack update for %s failed", change.approval_id)


class SlackFollower:
    """An addon for its running/done hooks: the poster follows the feed on every replica,
    from the newest change (history is never re-posted), each change claimed for "slack" so
    one replica posts or updates per change."""

    def __init__(self, poster: SlackPoster, store: ApprovalStore, feed: Follows) -> None:
        self.poster = poster
        self._store = store
        self._feed = feed
        self._task: asyncio.Task[None] | None = None

    async def _claim(self, seq: int) -> bool:
        return await self._store.claim_delivery(seq, consumer="slack")

    async def running(self) -> None:
        if self._task is not None:
            return
        try:
            after = await self._store.last_change()
        except StoreError as exc:  # the feed follower catches up once the store is back
            logger.warning("Slack poster starts without the newest change: %s", exc)
            after = None
        self._task = asyncio.create_task(self.poster.follow(self._feed, self._claim, after),
                                         name="hitl-slack-poster")

    async def done(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
