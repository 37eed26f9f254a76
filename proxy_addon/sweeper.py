"""The background sweep that brings every approval to an end, on every replica.

Each sweep: due approvals expire; this replica's lease is renewed (every lease/3); `sending`
writes of a replica whose lease ran out become outcome_unknown (never resent); approved
writes no live replica holds an agent for are handed to the executor (the claim decides who
sends them); and nothing stays approved past limits.send_within.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from proxy_addon.executor import Executor
from review_api.models import utcnow
from review_api.store import Conflict, Store, StoreError

logger = logging.getLogger("hitl_proxy")


class Sweeper:
    def __init__(self, store: Store, executor: Executor, send_within: float,
                 every: float = 1.0) -> None:
        self.store = store
        self.executor = executor
        self.send_within = send_within
        self.every = every
        self._started = time.monotonic()
        self._beat_at = 0.0
        self._task: asyncio.Task[None] | None = None

    # -- mitmproxy hooks --------------------------------------------------------------------

    async def running(self) -> None:
        self._started = time.monotonic()
        with contextlib.suppress(StoreError):
            await self._heartbeat()
        try:
            await self._recover()
        except StoreError as exc:
            logger.error("recovery of in-flight writes failed: %s", exc)
        self._task = asyncio.ensure_future(self._sweep_forever())

    async def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- one sweep ----------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except StoreError as exc:
                logger.error("expiry sweep failed: %s", exc)
            except Exception:
                logger.exception("expiry sweep failed")
            await asyncio.sleep(self.every)

    async def sweep(self) -> None:
        await self._heartbeat()
        await self._expire()
        await self._recover()
        for approval_id in await self.store.sendable():
            self.executor.send_later(approval_id)
        await self.finish_stuck()

    async def _heartbeat(self) -> None:
        """The lease outlives a missed beat or two: renewed every third of it."""
        now = time.monotonic()
        if now - self._beat_at >= self.store.lease / 3:
            await self.store.heartbeat()
            self._beat_at = now

    async def _expire(self) -> None:
        for approval_id in await self.store.due_for_expiry(utcnow()):
            try:
                await self.store.expire(approval_id)
                logger.info("approval %s expired", approval_id)
            except Conflict:
                pass

    async def _recover(self) -> None:
        # A write that was on its way upstream when its sender died may or may not have
        # landed: never resent on our own; a reviewer checks and resolves it.
        for approval_id in await self.store.recover_in_flight():
            logger.warning("approval %s was being sent when its proxy stopped: outcome unknown",
                           approval_id)

    async def finish_stuck(self) -> None:
        """No approval stays `approved` past limits.send_within: every one reaches an end."""
        within = self.send_within
        if time.monotonic() - self._started < within:
            return  # approvals decided while no proxy ran get their chance to be sent first
        ends = (
            (False, self.store.fail_unsent, f"approved but not sent within {within:g} s "
                                            "(limits.send_within); it was never sent"),
            (True, self.store.mark_outcome_unknown, f"sent, but no answer was recorded within "
                                                    f"{within:g} s; check upstream, then "
                                                    "resolve it"),
        )
        for claimed, end, reason in ends:
            for approval_id in await self.store.approved_older_than(within, claimed=claimed):
                with contextlib.suppress(Conflict):
                    await end(approval_id, reason)
                    logger.error("approval %s: %s", approval_id, reason)
