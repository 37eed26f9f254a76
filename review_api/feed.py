"""Reading the store's change feed: every committed status change, in seq order, for ever.

Components (the hold addon, notifier, metrics, the live page) run one `follow()` each instead
of registering callbacks with the store, so a decision committed by any replica reaches them.
A wake-up from the store is only a hint: the feed reads `changes_after` the last seq it
yielded, and polls at least every `poll` seconds, so a lost wake-up costs at most that long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from review_api.store.base import ApprovalStore, StatusChange, StoreError

logger = logging.getLogger("hitl_proxy")
BATCH = 500


class ChangeFeed:
    def __init__(self, store: ApprovalStore, *, poll: float = 1.0) -> None:
        self.store = store
        self.poll = poll

    async def follow(self, after: int | None = None) -> AsyncIterator[StatusChange]:
        """Every change with a seq greater than `after` (None: only changes from now on).

        The store being unreachable does not end the feed: it logs once, retries every
        `poll` seconds and resumes from the last seq it yielded, so nothing is skipped.
        """
        seq = await self._start(after)
        failing = False
        while True:
            try:
                batch = await self.store.changes_after(seq, BATCH)
            except StoreError as exc:
                if not failing:
                    logger.warning("change feed: %s; retrying every %.1f s", exc, self.poll)
                failing = True
                await asyncio.sleep(self.poll)
                continue
            failing = False
            for change in batch:
                seq = change.seq
                yield change
            if len(batch) < BATCH:
                await self.store.wait_for_change(seq, self.poll)

    async def _start(self, after: int | None) -> int:
        while after is None:
            try:
                after = await self.store.last_change()
            except StoreError as exc:
                logger.warning("change feed: %s; retrying every %.1f s", exc, self.poll)
                await asyncio.sleep(self.poll)
        return after
