"""The background sweep that brings every approval to an end, on every replica.

Each sweep: due approvals expire; `sending` writes of a replica whose lease ran out become
outcome_unknown (never resent); approved writes no live replica holds an agent for are handed
to the executor (the claim decides who sends them); and nothing stays approved past
limits.send_within.

The lease is renewed by a timer of its own, every lease/3, never by the sweep: a sweep waits
on the store's pool and write lock, and under a burst of decisions one sweep can outlast the
lease; a live replica whose lease lapsed would see the others send the writes its agents
still wait for, and mark its in-flight sends outcome_unknown.
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
        self._task: asyncio.Task[None] | None = None
        self._beating: asyncio.Task[None] | None = None

    # -- mitmproxy hooks --------------------------------------------------------------------

    async def running(self) -> None:
        self._started = time.monotonic()
        with contextlib.suppress(StoreError):
            await self.store.heartbeat()
        self._beating = asyncio.ensure_future(self._beat_forever())
        try:
            await self._recover()
        except StoreError as exc:
            logger.error("recovery of in-flight writes failed: %s", exc)
        self._task = asyncio.ensure_future(self._sweep_forever())

    async def done(self) -> None:
        tasks = [task for task in (self._task, self._beating) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the lease --------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        """Renew the lease every lease/3 whatever the sweep is waiting for: the lease outlives
        two missed beats. A failed beat is tried again after a tenth of the lease."""
        every = self.store.lease / 3
        while True:
            started = time.monotonic()
            try:
                await self.store.heartbeat()
            except StoreError as exc:
                logger.error("renewing this replica's lease failed: %s", exc)
                await asyncio.sleep(self.store.lease / 10)
                continue
            except Exception:
                logger.exception("renewing this replica's lease failed")
                await asyncio.sleep(self.store.lease / 10)
                continue
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

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
        await self._expire()
        await self._recover()
        for approval_id in await self.store.sendable():
            self.executor.send_later(approval_id)
        await self.finish_stuck()

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
