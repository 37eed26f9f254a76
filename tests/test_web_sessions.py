"""The review side across replicas, on one database (a SQLite file, or PostgreSQL): a reviewer
signed in through one replica is signed in on the others and signing out ends it everywhere; a
session whose reviewer left the config, or got a new token, is refused; the live queue and the
metrics follow the change feed, so a hold or decision committed by another replica reaches
this replica's page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from review_api import Decision, Proposal, ReviewApp, Reviewer, Reviewers, Status
from review_api.feed import ChangeFeed
from review_api.store import ApprovalStore, SqliteStore
from review_api.web import COOKIE, _cookie, _cookie_parts, _session_key

KEY = b"k" * 32
SAM = Reviewer(name="sam", token="sam-token-000000000001", groups=["support"])
ADA = Reviewer(name="ada", token="ada-token-000000000002", groups=["support"])
StoreFactory = Callable[[], Awaitable[ApprovalStore]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path
                     ) -> AsyncIterator[StoreFactory]:
    """Opens stores on one database, as replicas do; each store is one replica."""
    if request.param == "sqlite":
        def build() -> ApprovalStore:
            return SqliteStore(tmp_path / "hitl.sqlite3", audit_key=KEY)
    else:
        from review_api.store.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")

        def build() -> ApprovalStore:
            return PostgresStore(url, audit_key=KEY, pool_size=2)
    opened: list[ApprovalStore] = []

    async def factory() -> ApprovalStore:
        store = build()
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


def proposal(url: str = "https://x.test/tickets/1", **extra: object) -> Proposal:
    return Proposal(method="PUT", url=url, fingerprint="f" * 64, system="Zendesk",
                    object_type="ticket", record_id="1", **extra)


def client(app: ReviewApp, cookie: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app),
                             base_url="http://review", follow_redirects=False,
                             cookies={COOKIE: cookie} if cookie is not None else None)


async def sign_in(app: ReviewApp, token: str) -> str:
    async with client(app) as browser:
        answer = await browser.post("/login", data={"token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    return answer.cookies[COOKIE]


def stored_key(cookie: str, reviewer: Reviewer) -> str:
    """The key the store holds the cookie's session under (bound to the reviewer's token)."""
    parts = _cookie_parts(cookie)
    assert parts is not None and parts[0] == reviewer.name
    return _session_key(parts[1], reviewer)


async def queue_page(app: ReviewApp, cookie: str) -> httpx.Response:
    async with client(app, cookie) as browser:
        return await browser.get("/")


async def test_a_session_from_one_replica_holds_on_another_and_sign_out_ends_it_everywhere(
        open_store: StoreFactory) -> None:
    first, second = await open_store(), await open_store()
    held = await first.create(proposal())
    one, other = ReviewApp(first, Reviewers([SAM, ADA])), ReviewApp(second, Reviewers([SAM, ADA]))
    cookie = await sign_in(one, SAM.token or "")
    stored = await second.load_session(stored_key(cookie, SAM))
    assert stored is not None and stored.reviewer == "sam"
    assert cookie.split(".")[1] not in repr(stored)  # the database holds a hash only

    page = await queue_page(other, cookie)
    assert page.status_code == 200 and held.id in page.text and "sam" in page.text

    csrf = stored.csrf
    async with client(other, cookie) as browser:  # the form works on the other replica
        decided = await browser.post(f"/approvals/{held.id}/decide",
                                     data={"csrf": csrf, "decision": "approve"})
    assert decided.status_code == 303 and "flash=Approved" in decided.headers["location"]
    assert (await first.get(held.id)).decided_by == "sam"

    async with client(other, cookie) as browser:
        forged = await browser.post("/logout", data={"csrf": "x"})
        assert forged.status_code == 403
        out = await browser.post("/logout", data={"csrf": csrf})
    assert out.status_code == 303
    assert await first.load_session(stored_key(cookie, SAM)) is None
    for app in (one, other):
        page = await queue_page(app, cookie)
        assert page.status_code == 303 and page.headers["location"] == "/login"


async def test_a_session_survives_a_restart_but_not_its_reviewer_leaving_or_a_new_token(
        open_store: StoreFactory) -> None:
    first = await open_store()
    cookie = await sign_in(ReviewApp(first, Reviewers([SAM, ADA])), ADA.token or "")
    await first.close()
    restarted = await open_store()
    assert (await queue_page(ReviewApp(restarted, Reviewers([SAM, ADA])), cookie)
            ).status_code == 200
    rotated = Reviewer(name="ada", token="ada-new-token-00000003", groups=["support"])
    for config in ([SAM], [SAM, rotated]):
        refusing = ReviewApp(restarted, Reviewers(config))
        refused = await queue_page(refusing, cookie)
        assert refused.status_code == 303 and refused.headers["location"] == "/login"
        async with client(refusing, cookie) as browser:
            assert (await browser.get("/events")).status_code == 401
            assert (await browser.get("/fragments/queue")).status_code == 401
    assert (await queue_page(ReviewApp(restarted, Reviewers([SAM, ADA])), cookie)
            ).status_code == 200  # the old token back: the same session again


async def test_an_unknown_or_made_up_cookie_is_not_a_session(open_store: StoreFactory) -> None:
    app = ReviewApp(await open_store(), Reviewers([SAM]))
    signed = await sign_in(app, SAM.token or "")
    assert (await queue_page(app, signed)).status_code == 200
    secret = signed.split(".")[1]
    for cookie in ("", "made-up", secret, _cookie(SAM, "made-up"), _cookie(ADA, secret),
                   "%%%." + secret, "." + secret, signed.split(".")[0] + "."):
        page = await queue_page(app, cookie)
        assert page.status_code == 303 and page.headers["location"] == "/login"


async def next_message(queue: asyncio.Queue[dict[str, str]]) -> dict[str, str]:
    return await asyncio.wait_for(queue.get(), timeout=10)


async def test_the_live_queue_and_the_metrics_follow_every_replicas_changes(
        open_store: StoreFactory) -> None:
    here, there = await open_store(), await open_store()
    before = await there.create(proposal("https://x.test/tickets/0"))  # history: not replayed
    app = ReviewApp(here, Reviewers([SAM]), feed=ChangeFeed(here, poll=0.05))
    page: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    app.broadcaster.queues.add(page)
    await app.running()
    try:
        held = await there.create(proposal())
        assert await next_message(page) == {"id": held.id, "status": "pending"}
        await there.decide(held.id, Decision.approve, "sam", None)
        assert await next_message(page) == {"id": held.id, "status": "approved"}
        voted = await there.create(proposal("https://x.test/tickets/2", quorum=2))
        assert await next_message(page) == {"id": voted.id, "status": "pending"}
        await here.decide(voted.id, Decision.approve, "sam", None)  # a vote: the count shows
        assert await next_message(page) == {"id": voted.id, "status": "pending"}
        await here.decide(voted.id, Decision.reject, "ada", "no")
        assert await next_message(page) == {"id": voted.id, "status": "rejected"}
        assert page.empty() and before.id not in {held.id, voted.id}

        # Each replica's counters count its own commits: summed over replicas, once each.
        # The feed hands a change to the page and to the metrics in turn, and the metrics
        # read the approval first: the count may show a moment after the page's message.
        metrics = ""
        for _ in range(200):
            async with client(app) as browser:
                metrics = (await browser.get("/metrics")).text
            if "hitl_time_to_decision_seconds_count 1.0" in metrics:
                break
            await asyncio.sleep(0.05)
        assert "hitl_time_to_decision_seconds_count 1.0" in metrics  # the rejection, here
        assert f"hitl_holds_pending {await here.count(Status.pending)}" in metrics
        assert "hitl_holds_pending 1.0" in metrics  # `before`, created on the other replica
    finally:
        await app.done()
    assert app._follower is None
    await there.create(proposal("https://x.test/tickets/3"))
    await asyncio.sleep(0.3)
    assert page.empty()  # stopped: nothing follows the feed any more


async def test_the_app_lifespan_starts_and_stops_following(open_store: StoreFactory) -> None:
    store = await open_store()
    app = ReviewApp(store, Reviewers([SAM]), feed=ChangeFeed(store, poll=0.05))
    page: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    app.broadcaster.queues.add(page)
    async with app._lifespan(app.app):
        held = await store.create(proposal())
        assert await next_message(page) == {"id": held.id, "status": "pending"}
    assert app._follower is None


async def test_a_write_being_sent_reads_approved_and_on_its_way(open_store: StoreFactory
                                                                ) -> None:
    store = await open_store()
    held = await store.create(proposal())
    await store.decide(held.id, Decision.approve, "sam", None)
    assert await store.claim_for_sending(held.id, agent_here=True)
    app = ReviewApp(store, Reviewers([SAM]))
    async with client(app, await sign_in(app, SAM.token or "")) as browser:
        page = (await browser.get(f"/approvals/{held.id}")).text
        history = (await browser.get("/history", params={"status": "sending"})).text
    assert "Approved by <strong>sam</strong>" in page and "Being sent upstream now" in page
    assert 'class="decide"' not in page  # nothing left to decide
    assert f"/approvals/{held.id}" in history and "<option selected>sending</option>" in history
