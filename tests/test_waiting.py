"""Waiters: one live wait per approval, ended by a decision, a hang-up or a newer retry."""

import asyncio

from proxy_addon.waiting import DETACHED, Waiters
from review_api.models import Approval, Status, utcnow


def approval(status: Status = Status.approved) -> Approval:
    return Approval(id="a1", status=status, created_at=utcnow(), method="PUT",
                    url="https://acme.zendesk.com/api/v2/tickets/1.json", fingerprint="f")


async def test_a_decision_settles_the_agent_waiting_on_it() -> None:
    waiters = Waiters()
    waiter = waiters.register("a1", "client-1")
    assert waiters.waiting("a1")
    assert waiters.settle(approval())
    outcome = await waiters.wait(waiter, 1)
    assert isinstance(outcome, Approval) and outcome.status is Status.approved
    assert not waiters.settle(approval())  # settled once: a second decision finds nobody


async def test_a_retry_on_a_new_connection_detaches_the_older_wait() -> None:
    waiters = Waiters()
    older = waiters.register("a1", "client-1")
    newer = waiters.register("a1", "client-2")
    assert await waiters.wait(older, 1) is DETACHED
    waiters.end("a1", older)  # the older wait ending does not end the newer one
    assert waiters.waiting("a1")
    waiters.settle(approval(Status.rejected))
    outcome = await waiters.wait(newer, 1)
    assert isinstance(outcome, Approval) and outcome.status is Status.rejected


async def test_a_hang_up_detaches_only_that_connections_waits() -> None:
    waiters = Waiters()
    gone, staying = waiters.register("a1", "client-1"), waiters.register("a2", "client-2")
    waiters.detach("client-1")
    assert await waiters.wait(gone, 1) is DETACHED
    assert await waiters.wait(staying, 0.05) is None  # the hold window passed
    waiters.end("a2", staying)
    assert not waiters.waiting("a2") and len(waiters) == 1


async def test_the_window_passing_leaves_the_wait_to_be_ended() -> None:
    waiters = Waiters()
    waiter = waiters.register("a1", "client-1")
    started = asyncio.get_running_loop().time()
    assert await waiters.wait(waiter, 0.05) is None
    assert asyncio.get_running_loop().time() - started < 1
    waiters.end("a1", waiter)
    assert not waiters.waiting("a1") and len(waiters) == 0
