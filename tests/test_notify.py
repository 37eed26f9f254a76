"""Webhooks across replicas: two notifiers, each with its own store on one database, deliver
every hold and decision exactly once to a real HTTP receiver, whichever replica committed it;
neither re-sends what happened before it started, and a vote short of the quorum is no event.
Retries and the failure count hold as before."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from review_api import Decision, Proposal, Status
from review_api import notify as notify_module
from review_api.feed import ChangeFeed
from review_api.notify import Notifier, Webhook, as_of, notified, payload
from review_api.store import ApprovalStore, StatusChange
from tests.test_web_sessions import StoreFactory, open_store  # noqa: F401 (a fixture)


class Receiver:
    """A webhook endpoint on a loopback port: /ok accepts, /flaky fails twice first,
    /broken always answers 503. Records every body it accepted."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.calls: Counter[str] = Counter()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.calls[self.path] += 1
                failing = (self.path == "/broken"
                           or (self.path == "/flaky" and receiver.calls[self.path] <= 2))
                if not failing:
                    receiver.received.append((self.path, body))
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self, path: str = "/ok") -> list[tuple[str, str]]:
        return [(body["event"], body["approval"]["id"]) for hook, body in self.received
                if hook == path]

    async def wait(self, count: int, path: str = "/ok", timeout: float = 15) -> None:
        for _ in range(int(timeout / 0.05)):
            if len(self.events(path)) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path}: {self.received}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


def proposal(index: int, **extra: object) -> Proposal:
    return Proposal(method="PUT", url=f"https://x.test/tickets/{index}", fingerprint="f" * 64,
                    system="Zendesk", object_type="ticket", record_id=str(index), **extra)


def notifier(store: ApprovalStore, hooks: list[Webhook], **extra: object) -> Notifier:
    return Notifier(store, hooks, "http://review.test/", feed=ChangeFeed(store, poll=0.05),
                    **extra)


async def test_each_event_goes_out_once_whichever_replica_commits_it(
        open_store: StoreFactory, receiver: Receiver) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()
    before = await first.create(proposal(0))  # history: neither notifier sends it
    hooks = [Webhook(f"{receiver.url}/ok")]
    replicas = [notifier(first, hooks), notifier(second, hooks)]
    for replica in replicas:
        await replica.running()
    try:
        expected: list[tuple[str, str]] = []
        for index in range(1, 9):
            here, there = (first, second) if index % 2 else (second, first)
            held = await here.create(proposal(index))
            decision = Decision.approve if index % 3 else Decision.reject
            await there.decide(held.id, decision, "sam", None)
            expected += [("approval.pending", held.id), (f"approval.{decision.status}", held.id)]
        quorum = await first.create(proposal(9, quorum=2))
        await second.decide(quorum.id, Decision.approve, "sam", None)  # short of the quorum
        await first.decide(quorum.id, Decision.approve, "ada", None)
        expected += [("approval.pending", quorum.id), ("approval.approved", quorum.id)]
        denied = await second.create(proposal(10), status=Status.denied)
        expected.append(("approval.denied", denied.id))

        await receiver.wait(len(expected))
        await asyncio.sleep(0.5)  # time enough for a duplicate to arrive, were there one
        assert sorted(receiver.events()) == sorted(expected)  # each once, none twice
        assert before.id not in {approval_id for _, approval_id in receiver.events()}
    finally:
        for replica in replicas:
            await replica.done()
    assert sum(replica.failures for replica in replicas) == 0


async def test_a_hold_announced_after_its_decision_still_says_held(
        open_store: StoreFactory, receiver: Receiver) -> None:  # noqa: F811
    store = await open_store()
    held = await store.create(proposal(1))
    decided = await store.decide(held.id, Decision.reject, "sam", "no")
    [change, _] = await store.changes_after(await store.last_change() - 2)
    assert notified(change) and change.status is Status.pending
    body = payload(Webhook("https://hooks.test"), as_of(decided, change), "http://r/1")
    assert body["event"] == "approval.pending"
    assert body["approval"]["status"] == "pending" and body["approval"]["decided_by"] is None
    assert as_of(decided, StatusChange(9, held.id, Status.rejected, "rejected", None)) is decided
    assert not notified(StatusChange(9, held.id, Status.pending, "vote", None))
    assert not notified(StatusChange(9, held.id, Status.sending, "sending", None))


async def test_a_failing_webhook_is_retried_then_counted_and_never_blocks_others(
        open_store: StoreFactory, receiver: Receiver,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify_module, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    store = await open_store()
    failures: list[int] = []
    sender = notifier(store, [Webhook(f"{receiver.url}/{path}") for path in
                              ("broken", "flaky", "ok")], on_failure=lambda: failures.append(1))
    await sender.running()
    try:
        held = await store.create(proposal(1))
        await receiver.wait(1, "/flaky")
        await receiver.wait(1, "/ok")
        for _ in range(100):
            if failures:
                break
            await asyncio.sleep(0.05)
        assert failures == [1] and sender.failures == 1
        assert receiver.calls["/broken"] == 4 and receiver.calls["/flaky"] == 3
        assert receiver.events("/flaky") == [("approval.pending", held.id)]
    finally:
        await sender.done()


async def test_without_webhooks_nothing_follows_the_feed_and_nothing_is_claimed(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    idle = notifier(store, [])
    await idle.running()
    assert idle._tasks == []
    await store.create(proposal(1))
    [change] = await store.changes_after(0)
    await idle.publish(change)
    assert await store.claim_delivery(change.seq)  # still free for a replica that has hooks
    assert not await store.claim_delivery(change.seq)
    await idle.done()
