"""Posts each held write to its routed group's Slack channel and keeps the message in step
with the approval: votes, the outcome, who decided and where, and what upstream answered.

Driven by the store's change feed (`follow`), so a decision taken on the page, through the
API or on another replica updates the message as one taken in Slack does.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from review_api.models import Approval, Status
from review_api.slack.api import MessageRef, SlackApi, SlackError
from review_api.slack.blocks import Message, held_message, outcome_message
from review_api.slack.settings import SlackSettings
from review_api.store.base import ApprovalStore, NotFound, StatusChange

logger = logging.getLogger("hitl_proxy")


class MessageRefs(ABC):
    """Which Slack messages show an approval. For replicas this is a table in the store:
    `slack_messages(approval_id, channel, ts, PRIMARY KEY (approval_id, channel))`."""

    @abstractmethod
    async def add(self, approval_id: str, ref: MessageRef) -> None: ...

    @abstractmethod
    async def of(self, approval_id: str) -> list[MessageRef]: ...


class InMemoryMessageRefs(MessageRefs):
    def __init__(self) -> None:
        self._refs: dict[str, list[MessageRef]] = {}

    async def add(self, approval_id: str, ref: MessageRef) -> None:
        self._refs.setdefault(approval_id, []).append(ref)

    async def of(self, approval_id: str) -> list[MessageRef]:
        return list(self._refs.get(approval_id, []))


class DecisionOrigins(ABC):
    """Where each decision was taken ("slack", "page", "api", "cli"), so the message can say.

    Meant to move into the store with the vote itself (a `via` on each vote); until then the
    Slack endpoint records its own decisions here and the others are read from the decision's
    audit detail `via` when the app writes one.
    """

    @abstractmethod
    async def record(self, approval_id: str, reviewer: str, via: str) -> None: ...

    @abstractmethod
    async def of(self, approval_id: str, reviewer: str) -> str | None: ...


class InMemoryDecisionOrigins(DecisionOrigins):
    def __init__(self) -> None:
        self._via: dict[tuple[str, str], str] = {}

    async def record(self, approval_id: str, reviewer: str, via: str) -> None:
        self._via[(approval_id, reviewer)] = via

    async def of(self, approval_id: str, reviewer: str) -> str | None:
        return self._via.get((approval_id, reviewer))


class Follows(Protocol):
    """`review_api.feed.ChangeFeed`'s reading side."""

    def follow(self, after: int | None = None) -> AsyncIterator[StatusChange]: ...


Claim = Callable[[int], Awaitable[bool]]  # e.g. store.claim_delivery: one replica per change


def channels_for(approval: Approval, settings: SlackSettings) -> list[str]:
    """Each routed group's channel, once; the default channel when none of them has one."""
    found = list(dict.fromkeys(settings.channels[group] for group in approval.reviewer_groups
                               if group in settings.channels))
    if not found and settings.default_channel is not None:
        found = [settings.default_channel]
    return found


class SlackPoster:
    def __init__(self, api: SlackApi, settings: SlackSettings, review_url: str,
                 store: ApprovalStore, *, refs: MessageRefs | None = None,
                 origins: DecisionOrigins | None = None) -> None:
        self._api = api
        self._settings = settings
        self._review_url = review_url.rstrip("/")
        self._store = store
        self.refs = refs or InMemoryMessageRefs()
        self.origins = origins or InMemoryDecisionOrigins()
        self._lock = asyncio.Lock()  # the feed and the endpoint both show; post once
        self.failures = 0

    def link(self, approval_id: str) -> str:
        return f"{self._review_url}/approvals/{approval_id}"

    async def via(self, approval: Approval) -> str | None:
        """Where the deciding vote was cast: our record, else the decision's audit entry."""
        if approval.decided_by is None:
            return None
        if (found := await self.origins.of(approval.id, approval.decided_by)) is not None:
            return found
        for entry in reversed(await self._store.audit_entries(approval.id)):
            if entry.actor == approval.decided_by and isinstance(entry.detail.get("via"), str):
                return str(entry.detail["via"])
        return None

    async def show(self, approval: Approval) -> None:
        """Post a newly held write; update every message of one already posted. A write
        decided before it was ever posted is not posted: there is nothing left to decide."""
        async with self._lock:
            refs = await self.refs.of(approval.id)
            if not refs:
                if approval.status is Status.pending:
                    await self._post(approval)
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

    async def _post(self, approval: Approval) -> None:
        channels = channels_for(approval, self._settings)
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
        await self.show(approval)

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
