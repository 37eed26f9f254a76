"""Deciding many at once (POST /api/approvals/decide, review_api.bulk) and the single-approval
routes through the same routing: each id is checked on its own, on a real store of each
backend, through the real Starlette app."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from review_api import Decision, Proposal, ReviewApp, Reviewer, Reviewers, Status
from review_api.bulk import decide_many
from review_api.models import Context, utcnow
from tests.test_web_sessions import StoreFactory, open_store  # noqa: F401 (a fixture)

SAM = Reviewer(name="sam", token="sam-token-000000000001", groups=["support"])
ADA = Reviewer(name="ada", token="ada-token-000000000002", groups=["support"])
FIN = Reviewer(name="fin", token="fin-token-000000000003", groups=["finance"])
REVIEWERS = Reviewers([SAM, ADA, FIN])
OWNERS = {"helpdesk-bot": "ada"}


def proposal(index: int, groups: list[str], **extra: Any) -> Proposal:
    return Proposal(method="PUT", url=f"https://x.test/tickets/{index}", fingerprint=f"{index}" * 8,
                    system="Zendesk", object_type="ticket", record_id=str(index),
                    reviewer_groups=groups, **extra)


def api(app: ReviewApp, reviewer: Reviewer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://review",
                             headers={"Authorization": f"Bearer {reviewer.token}"})


async def test_bulk_decides_each_on_its_own_and_says_which_went_through(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    app = ReviewApp(store, REVIEWERS, owners=OWNERS)
    first, second = [await store.create(proposal(i, ["support"])) for i in (1, 2)]
    finance = await store.create(proposal(3, ["finance"]))  # fails sam's routing check
    done = await store.create(proposal(4, ["support"]))
    await store.decide(done.id, Decision.reject, "ada", "no")  # already decided
    pair = await store.create(proposal(5, ["support"], quorum=2))  # sam's vote is not enough
    ids = [first.id, finance.id, done.id, second.id, pair.id, "no-such-id"]
    async with api(app, SAM) as client:
        answer = await client.post("/api/approvals/decide", json={
            "ids": ids, "decision": "approve", "note": "batch ok"})
    assert answer.status_code == 200
    results = {r["id"]: r for r in answer.json()["results"]}
    assert list(results) == ids
    assert results[first.id] == {"id": first.id, "ok": True, "status": "approved", "error": None}
    assert results[second.id]["ok"] and results[second.id]["status"] == "approved"
    assert results[pair.id] == {"id": pair.id, "ok": True, "status": "pending", "error": None}
    # Routed elsewhere: as absent as on GET /api/approvals/{id}, and nothing decided.
    assert results[finance.id] == {"id": finance.id, "ok": False, "status": None,
                                   "error": f"no approval {finance.id}"}
    assert results[done.id]["ok"] is False and results[done.id]["status"] == "rejected"
    assert "already rejected" in results[done.id]["error"]
    assert results["no-such-id"]["ok"] is False
    assert (await store.get(finance.id)).status is Status.pending
    decided = await store.get(first.id)
    assert decided.note == "batch ok" and decided.decided_by == "sam"
    via = [e.detail.get("via") for e in await store.audit_entries(first.id)
           if e.event == "approved"]
    assert via == ["api"]


async def test_bulk_checks_the_owner_rule_and_fingerprints_per_id(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    own = await store.create(proposal(1, ["support"], context=Context(agent="helpdesk-bot")))
    other = await store.create(proposal(2, ["support"]))
    results = await decide_many(store, ADA, [own.id, other.id, other.id], Decision.approve,
                                None, via="cli", reviewers=REVIEWERS, owners=OWNERS,
                                fingerprints={other.id: other.fingerprint})
    assert [(r.id, r.ok) for r in results] == [(own.id, False), (other.id, True)]
    assert "owns the agent 'helpdesk-bot'" in (results[0].error or "")
    stale = await store.create(proposal(3, ["support"]))
    [refused] = await decide_many(store, SAM, [stale.id], Decision.reject, "no", via="page",
                                  reviewers=REVIEWERS, owners=OWNERS,
                                  fingerprints={stale.id: "0" * 64})
    assert not refused.ok and "edited or replaced" in (refused.error or "")
    assert (await store.get(stale.id)).status is Status.pending
    # The owner may still stop their own agent's write.
    [stopped] = await decide_many(store, ADA, [own.id], Decision.reject, "not this",
                                  via="api", reviewers=REVIEWERS, owners=OWNERS)
    assert stopped.ok and stopped.status == "rejected"


async def test_bulk_request_validation(open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    app = ReviewApp(store, REVIEWERS)
    async with api(app, SAM) as client:
        for body, says in [
            ({"ids": [], "decision": "approve"}, "non-empty list"),
            ({"ids": ["a"], "decision": "maybe"}, "approve"),
            ({"ids": ["a"], "decision": "approve", "edits": []}, "unknown field"),
            ({"ids": "a", "decision": "approve"}, "non-empty list"),
            ({"ids": ["a"], "decision": "reject", "note": 5}, "note must be"),
            ({"ids": ["a"] * 501, "decision": "reject"}, "at most 500"),
        ]:
            answer = await client.post("/api/approvals/decide", json=body)
            assert answer.status_code == 400 and says in answer.json()["error"], body
        assert (await client.post("/api/approvals/decide", content=b"[")).status_code == 400
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app),
                                 base_url="http://review") as anonymous:
        answer = await anonymous.post("/api/approvals/decide",
                                      json={"ids": ["a"], "decision": "approve"})
    assert answer.status_code == 401


async def test_single_routes_use_routing_escalation_and_delegation(
        open_store: StoreFactory) -> None:  # noqa: F811
    store = await open_store()
    app = ReviewApp(store, REVIEWERS, owners=OWNERS)
    routed = await store.create(proposal(1, ["finance"], escalate_after=0.5,
                                         escalate_to=["support"]))
    async with api(app, SAM) as sam:
        assert (await sam.get(f"/api/approvals/{routed.id}")).status_code == 404
        early = await sam.post(f"/api/approvals/{routed.id}/approve")
        assert early.status_code == 403 and "after 0.5 s pending" in early.json()["error"]
        await store.set_away("fin", utcnow() + timedelta(hours=1), "sam")
        listed = (await sam.get("/api/approvals?status=pending")).json()["approvals"]
        assert [a["id"] for a in listed] == [routed.id]  # delegated: sam sees fin's queue
        answer = await sam.post(f"/api/approvals/{routed.id}/approve", json={"note": "for fin"})
        assert answer.status_code == 200 and answer.json()["status"] == "approved"
        trail = await sam.get(f"/api/audit?approval_id={routed.id}")  # fin's, sam acts for fin
        assert trail.status_code == 200 and "delegated_vote" in trail.text
        await store.set_away("fin", None, None)
        assert (await sam.get(f"/api/audit?approval_id={routed.id}")).status_code == 404
    delegated = [e for e in await store.audit_entries(routed.id) if e.event == "delegated_vote"]
    assert [(e.actor, e.detail["on_behalf_of"]) for e in delegated] == [("sam", "fin")]

    later = await store.create(proposal(2, ["finance"], escalate_after=0.5,
                                        escalate_to=["support"],
                                        context=Context(agent="helpdesk-bot")))
    async with api(app, ADA) as ada, api(app, SAM) as sam:
        assert (await sam.get(f"/api/approvals/{later.id}")).status_code == 404
        assert (await sam.get(f"/api/audit?approval_id={later.id}")).status_code == 404
        await asyncio.sleep(0.6)  # past escalate_after: support may decide it now
        assert (await sam.get(f"/api/approvals/{later.id}")).status_code == 200  # escalated
        assert (await sam.get(f"/api/audit?approval_id={later.id}")).status_code == 200
        own = await ada.post(f"/api/approvals/{later.id}/approve")
        assert own.status_code == 403 and "owns the agent" in own.json()["error"]
        answer = await sam.post(f"/api/approvals/{later.id}/approve")
    assert answer.status_code == 200 and answer.json()["status"] == "approved"
