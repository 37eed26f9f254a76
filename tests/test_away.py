"""Marking oneself away with a delegate: PUT/DELETE /api/reviewers/me/away, GET
/api/reviewers/away, on a real store of each backend through the real app. What a delegate
may then decide is tests/test_review_routing.py and tests/test_bulk.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from review_api import ReviewApp, Reviewer, Reviewers
from review_api.models import utcnow
from tests.test_web_sessions import StoreFactory, open_store  # noqa: F401 (a fixture)

SAM = Reviewer(name="sam", token="sam-token-000000000001", groups=["support"])
ADA = Reviewer(name="ada", token="ada-token-000000000002", groups=["support"])
REVIEWERS = Reviewers([SAM, ADA])


def api(app: ReviewApp, reviewer: Reviewer | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {reviewer.token}"} if reviewer else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app), base_url="http://review",
                             headers=headers)


async def test_away_until_a_date_with_a_delegate_then_back(
        open_store: StoreFactory) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()  # two replicas, one database
    one, other = ReviewApp(first, REVIEWERS), ReviewApp(second, REVIEWERS)
    until = (utcnow() + timedelta(days=3)).date().isoformat()
    async with api(one, SAM) as sam, api(other, ADA) as ada:
        answer = await sam.put("/api/reviewers/me/away", json={"until": until, "delegate": "ada"})
        assert answer.status_code == 200
        # A date: away through that day, back at the next midnight (UTC), as on the page.
        expected = datetime.fromisoformat(until).replace(tzinfo=UTC) + timedelta(days=1)
        assert answer.json() == {"reviewer": "sam", "until": expected.isoformat(),
                                 "delegate": "ada"}
        listed = (await ada.get("/api/reviewers/away")).json()["away"]  # the other replica
        assert listed == [answer.json()]
        assert (await sam.delete("/api/reviewers/me/away")).status_code == 200
        assert (await ada.get("/api/reviewers/away")).json() == {"away": []}
        # A time, and no delegate: away, nobody acts for them.
        later = (utcnow() + timedelta(hours=2)).isoformat()
        answer = await ada.put("/api/reviewers/me/away", json={"until": later})
        assert answer.status_code == 200 and answer.json()["delegate"] is None
    events = [(e.event, e.actor, e.detail.get("delegate")) for e in await first.audit_entries()]
    assert events == [("away", "sam", "ada"), ("back", "sam", None), ("away", "ada", None)]


async def test_away_validation(open_store: StoreFactory) -> None:  # noqa: F811
    app = ReviewApp(await open_store(), REVIEWERS)
    future = (utcnow() + timedelta(days=1)).isoformat()
    async with api(app, SAM) as sam:
        for body, status, says in [
            ({"until": future, "delegate": "sam"}, 422, "cannot delegate to themselves"),
            ({"until": future, "delegate": "nobody"}, 422, "not a configured reviewer"),
            ({"until": "next tuesday", "delegate": "ada"}, 422, "ISO 8601"),
            ({"until": "9999-12-31", "delegate": "ada"}, 422, "ISO 8601"),  # no next day
            ({"until": "2020-01-01", "delegate": "ada"}, 422, "not in the future"),
            ({"until": future, "delegate": 7}, 400, "delegate must be a reviewer's name"),
            ({"delegate": "ada"}, 400, "until is required"),
            ({"until": future, "delegate": "ada", "why": "holiday"}, 400, "unknown field"),
        ]:
            answer = await sam.put("/api/reviewers/me/away", json=body)
            assert answer.status_code == status and says in answer.json()["error"], body
        assert (await sam.put("/api/reviewers/me/away", content=b"{")).status_code == 400
        assert (await sam.get("/api/reviewers/away")).json() == {"away": []}
    async with api(app, None) as anonymous:
        assert (await anonymous.get("/api/reviewers/away")).status_code == 401
        assert (await anonymous.delete("/api/reviewers/me/away")).status_code == 401
        answer = await anonymous.put("/api/reviewers/me/away",
                                     json={"until": future, "delegate": "ada"})
        assert answer.status_code == 401
