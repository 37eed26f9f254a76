"""The change feed: every committed change, in order, even when wake-ups are lost."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from review_api.feed import ChangeFeed
from review_api.models import Decision, Proposal, Status
from review_api.store import ApprovalStore, PostgresStore, SqliteStore, StatusChange


def proposal() -> Proposal:
    return Proposal(method="POST", url="https://acme.zendesk.com/api/v2/tickets.json",
                    fingerprint="f" * 64)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApprovalStore]:
    if request.param == "sqlite":
        store: ApprovalStore = SqliteStore(tmp_path / "hitl.sqlite3")
    else:
        store = PostgresStore(request.getfixturevalue("postgres_url"))
    await store.open()
    yield store
    await store.close()


class DeafStore:
    """The real store, but its wake-ups never come: only the feed's poll finds changes."""

    def __init__(self, store: ApprovalStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def wait_for_change(self, after: int, timeout: float) -> None:
        await asyncio.sleep(timeout)


async def take(changes: AsyncIterator[StatusChange], count: int) -> list[StatusChange]:
    return [await anext(changes) for _ in range(count)]


async def test_follow_yields_every_change_in_order_from_now_on(store: ApprovalStore) -> None:
    before = await store.create(proposal())
    changes = ChangeFeed(store, poll=30).follow()
    reading = asyncio.create_task(take(changes, 3))
    await asyncio.sleep(0.1)  # the reader starts from the newest seq: `before` is not new
    created = await store.create(proposal())
    await store.decide(created.id, Decision.approve, "alice", None)
    await store.decide(before.id, Decision.reject, "alice", None)
    got = await asyncio.wait_for(reading, 5)  # woken by the store, not the 30 s poll
    assert [(c.approval_id, c.status) for c in got] == [
        (created.id, Status.pending), (created.id, Status.approved),
        (before.id, Status.rejected)]
    assert [c.seq for c in got] == sorted(c.seq for c in got)


async def test_a_reader_catches_up_after_missed_wake_ups(store: ApprovalStore) -> None:
    created = [await store.create(proposal()) for _ in range(3)]
    # From seq 0: everything committed before the reader started, then new changes found by
    # polling alone, the wake-ups lost.
    changes = ChangeFeed(DeafStore(store), poll=0.05).follow(after=0)  # type: ignore[arg-type]
    assert [c.approval_id for c in await take(changes, 3)] == [a.id for a in created]
    await store.decide(created[0].id, Decision.approve, "alice", None)
    await store.decide(created[1].id, Decision.reject, "alice", None)
    got = await asyncio.wait_for(take(changes, 2), 5)
    assert [(c.approval_id, c.status) for c in got] == [(created[0].id, Status.approved),
                                                        (created[1].id, Status.rejected)]


async def test_more_changes_than_one_batch_arrive_whole(store: ApprovalStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("review_api.feed.BATCH", 2)
    created = [await store.create(proposal()) for _ in range(5)]
    changes = ChangeFeed(store, poll=30).follow(after=0)
    got = await asyncio.wait_for(take(changes, 5), 5)
    assert [c.approval_id for c in got] == [a.id for a in created]


async def test_the_feed_outlives_the_store_being_unreachable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    changes = ChangeFeed(store, poll=0.05).follow(after=await store.last_change())
    first = asyncio.create_task(anext(changes))
    await asyncio.sleep(0.1)
    await store.close()  # every read now raises StoreError; the feed keeps trying
    await asyncio.sleep(0.2)
    assert not first.done()
    await store.open()
    created = await store.create(proposal())
    assert (await asyncio.wait_for(first, 5)).approval_id == created.id
    await store.close()


class CountingStore:
    """The real store, counting the feed's reads and the approvals fetched."""

    def __init__(self, store: ApprovalStore) -> None:
        self._store = store
        self.reads = 0
        self.gets = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def changes_after(self, seq: int, limit: int = 500) -> list[StatusChange]:
        self.reads += 1
        return await self._store.changes_after(seq, limit)

    async def get(self, approval_id: str) -> object:
        self.gets += 1
        return await self._store.get(approval_id)


async def test_followers_of_one_feed_share_its_reads_and_fetches(store: ApprovalStore) -> None:
    counting = CountingStore(store)
    feed = ChangeFeed(counting, poll=30)  # type: ignore[arg-type]
    start = await store.last_change()
    followers = [feed.follow(after=start) for _ in range(6)]
    fetched: list[list[str]] = [[] for _ in followers]
    progress = asyncio.Condition()

    async def follow(index: int) -> None:
        async for change in followers[index]:
            fetched[index].append((await feed.approval(change)).id)
            async with progress:
                progress.notify_all()
            if len(fetched[index]) == 10:
                return

    reading = [asyncio.create_task(follow(i)) for i in range(len(followers))]
    await asyncio.sleep(0.1)
    created = []
    for count in range(1, 11):  # one at a time: each change is read on its own
        created.append(await store.create(proposal()))
        async with progress:
            await asyncio.wait_for(progress.wait_for(
                lambda n=count: min(len(f) for f in fetched) >= n), 5)
    await asyncio.wait_for(asyncio.gather(*reading), 10)
    assert fetched == [[a.id for a in created]] * len(followers)
    # One reader for six followers: one read per change (a follower each would make six),
    # and one fetch per change.
    assert counting.reads <= 10 + 2, counting.reads
    assert counting.gets == 10


async def test_a_follower_behind_the_window_misses_nothing(store: ApprovalStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("review_api.feed.BATCH", 3)
    monkeypatch.setattr("review_api.feed.WINDOW", 3)
    feed = ChangeFeed(store, poll=0.05)
    start = await store.last_change()
    fast = feed.follow(after=start)
    slow = feed.follow(after=start)
    created = [await store.create(proposal()) for _ in range(4)]
    assert [c.approval_id for c in await take(slow, 1)] == [created[0].id]
    # The fast one reads on while the slow one sits: the window drops what the slow one has
    # not taken yet, so it reads those from the store itself.
    created += [await store.create(proposal()) for _ in range(12)]
    got = await asyncio.wait_for(take(fast, 16), 5)
    assert [c.approval_id for c in got] == [a.id for a in created]
    assert feed._base is not None and feed._base > got[1].seq  # dropped from the window
    rest = await asyncio.wait_for(take(slow, 15), 5)
    assert [c.approval_id for c in rest] == [a.id for a in created[1:]]
    # A newcomer from the beginning gets the whole history, in order, then the new ones.
    late = feed.follow(after=start)
    assert [c.approval_id for c in await asyncio.wait_for(take(late, 16), 5)] == [
        a.id for a in created]
    newest = await store.create(proposal())
    for changes in (fast, slow, late):
        assert (await asyncio.wait_for(anext(changes), 5)).approval_id == newest.id


async def test_followers_sharing_a_feed_outlive_an_outage(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3")
    await store.open()
    feed = ChangeFeed(store, poll=0.05)
    start = await store.last_change()
    waiting = [asyncio.create_task(anext(feed.follow(after=start))) for _ in range(3)]
    await asyncio.sleep(0.1)
    await store.close()
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in waiting)
    await store.open()
    created = await store.create(proposal())
    got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert [c.approval_id for c in got] == [created.id] * 3
    await store.close()
