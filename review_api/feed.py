"""Reading the store's change feed: every committed status change, in seq order, for ever.

Components (the hold addon, notifier, metrics, the live page, Slack) run one `follow()` each
instead of registering callbacks with the store, so a decision committed by any replica
reaches them. One `ChangeFeed` per process reads the store for all of them: the followers
of one feed share its reads (one `changes_after` query per change, or per `poll` seconds
when nothing changes, however many follow) through an in-memory window of recent changes,
and `approval(change)` shares the fetch of the approval a change is about.

A wake-up from the store is only a hint: the reader reads `changes_after` the newest seq it
holds and polls at least every `poll` seconds, so a lost wake-up costs at most that long. A
follower behind the window (it started from an older seq, or it was slow while more than
`WINDOW` changes came) reads the store itself until it is back inside: none is missed.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator

from review_api.models import Approval
from review_api.store.base import ApprovalStore, StatusChange, StoreError

logger = logging.getLogger("hitl_proxy")
BATCH = 500
WINDOW = 2000  # recent changes kept for the followers, at least one BATCH
APPROVALS = 64  # approvals kept for `approval()`: the followers of one change ask together


class ChangeFeed:
    def __init__(self, store: ApprovalStore, *, poll: float = 1.0) -> None:
        self.store = store
        self.poll = poll
        self._changes: list[StatusChange] = []  # every change in (_base, _head], in order
        self._seqs: list[int] = []
        self._base: int | None = None  # None: nothing read yet
        self._head = 0
        self._reads = 0  # bumped by every read attempt: a follower that waited reads no more
        self._reading = asyncio.Lock()
        self._failing = False
        self._caught_up = False
        self._approvals: OrderedDict[tuple[str, int], asyncio.Future[Approval]] = OrderedDict()

    async def follow(self, after: int | None = None) -> AsyncIterator[StatusChange]:
        """Every change with a seq greater than `after` (None: only changes from now on).

        The store being unreachable does not end the feed: it logs once, retries every
        `poll` seconds and resumes from the last seq it yielded, so nothing is skipped.
        """
        seq = await self._start(after)
        while True:
            held = self._after(seq)
            if held is None:  # behind the window: read the store for this follower alone
                held = await self._catch_up(seq)
            elif not held:
                await self._read(seq)
                continue
            for change in held:
                seq = change.seq
                yield change

    async def approval(self, change: StatusChange) -> Approval:
        """The approval `change` is about, read once after that change for every follower
        that asks (NotFound and StoreError as `store.get` raises them)."""
        key = (change.approval_id, change.seq)
        future = self._approvals.get(key)
        if future is None or (future.done() and (future.cancelled()
                                                  or future.exception() is not None)):
            future = asyncio.ensure_future(self.store.get(change.approval_id))
            self._approvals[key] = future
            while len(self._approvals) > APPROVALS:
                self._approvals.popitem(last=False)
        return await asyncio.shield(future)

    def _after(self, seq: int) -> list[StatusChange] | None:
        """The held changes after `seq`; None when some of them are no longer held."""
        if self._base is None or seq < self._base:
            return None if self._base is not None else []
        return self._changes[bisect.bisect_right(self._seqs, seq):]

    async def _read(self, seq: int) -> None:
        """Read the changes after the newest held, once for every follower waiting: a
        follower that waited while another read finds them held and returns."""
        reads = self._reads
        async with self._reading:
            if self._reads != reads:
                return
            try:
                if self._base is None:
                    self._base = self._head = seq
                if self._caught_up:  # the last read was short: wait for more first
                    await self.store.wait_for_change(self._head, self.poll)
                batch = await self.store.changes_after(self._head, BATCH)
            except StoreError as exc:
                self._caught_up = False
                self._failed(exc)
                await asyncio.sleep(self.poll)
                return
            finally:
                self._reads += 1
            self._failing = False
            self._caught_up = len(batch) < BATCH
            self._hold(batch)

    def _hold(self, batch: list[StatusChange]) -> None:
        if not batch:
            return
        self._changes.extend(batch)
        self._seqs.extend(change.seq for change in batch)
        self._head = batch[-1].seq
        if len(self._changes) > 2 * WINDOW:  # trimmed in bulk: a slice, not a pop per change
            drop = len(self._changes) - WINDOW
            self._base = self._seqs[drop - 1]
            del self._changes[:drop], self._seqs[:drop]

    async def _catch_up(self, seq: int) -> list[StatusChange]:
        while True:
            try:
                return await self.store.changes_after(seq, BATCH)
            except StoreError as exc:
                self._failed(exc)
                await asyncio.sleep(self.poll)

    def _failed(self, exc: StoreError) -> None:
        if not self._failing:
            logger.warning("change feed: %s; retrying every %.1f s", exc, self.poll)
        self._failing = True

    async def _start(self, after: int | None) -> int:
        while after is None:
            try:
                after = await self.store.last_change()
            except StoreError as exc:
                logger.warning("change feed: %s; retrying every %.1f s", exc, self.poll)
                await asyncio.sleep(self.poll)
        return after
