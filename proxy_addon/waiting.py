"""Agents held here, each waiting for the decision on its approval.

One waiter per approval id: a retry of the same write on a new connection is the live one, so
the older connection's wait ends DETACHED (it is answered 202; nothing is sent for it). A
waiter ends when a decision arrives, when its agent hangs up, or when the hold window passes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from review_api.models import Approval


class Detached:
    """The agent hung up (or retried elsewhere) while its write was held; a later approval is
    sent by the proxy itself."""


DETACHED = Detached()
Outcome = Approval | Detached


@dataclass
class Waiter:
    client_id: str
    outcome: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, outcome: Outcome) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


class Waiters:
    def __init__(self) -> None:
        self._waiting: dict[str, Waiter] = {}

    def register(self, approval_id: str, client_id: str) -> Waiter:
        """A new wait for this approval; an older one (a retried write) ends DETACHED."""
        if (earlier := self._waiting.get(approval_id)) is not None:
            earlier.settle(DETACHED)
        waiter = self._waiting[approval_id] = Waiter(client_id)
        return waiter

    def settle(self, approval: Approval) -> bool:
        """Hand a decision to the agent waiting on it; False when none waits here."""
        waiter = self._waiting.get(approval.id)
        if waiter is None or waiter.outcome.done():
            return False
        waiter.settle(approval)
        return True

    def waiting(self, approval_id: str) -> bool:
        waiter = self._waiting.get(approval_id)
        return waiter is not None and not waiter.outcome.done()

    def detach(self, client_id: str) -> None:
        """The agent's connection closed: its waits end at once."""
        for waiter in self._waiting.values():
            if waiter.client_id == client_id:
                waiter.settle(DETACHED)

    def end(self, approval_id: str, waiter: Waiter) -> None:
        """From here on a decision finds no waiter and is sent by the proxy itself."""
        if self._waiting.get(approval_id) is waiter:
            del self._waiting[approval_id]

    async def wait(self, waiter: Waiter, timeout: float) -> Outcome | None:
        """The outcome, or None when the hold window passed first."""
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.outcome), timeout)
        except TimeoutError:
            return waiter.outcome.result() if waiter.outcome.done() else None

    def __len__(self) -> int:
        return len(self._waiting)
