"""The review API: every route in one list, plain async endpoints, JSON in and out.

Everything it shows is read from the store, so any replica answers the same; the live page and
the metrics follow the store's change feed from the app's lifecycle (`running` to `done`, or the
Starlette lifespan when served on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from review_api.auth import Reviewer, Reviewers
from review_api.bulk import MAX_IDS, decide_many, record_decision
from review_api.edits import edit_problem
from review_api.feed import ChangeFeed
from review_api.metrics import Metrics
from review_api.models import Approval, Decision, Status, utcnow
from review_api.openapi import openapi
from review_api.reminders import SWEEP_EVERY, Reminders
from review_api.routing import delegators, permission, visible
from review_api.stats import LooseningCriteria, compute_stats
from review_api.store import Away, Conflict, NotFound, Store, StoreError
from review_api.traffic import (
    FILTERS,
    PAGING,
    REPEATABLE,
    TrafficError,
    TrafficQuery,
    TrafficStore,
    parse_query,
)
from review_api.traffic_export import EXPORT_TYPES, download
from review_api.web import AUDITOR_GROUP, Broadcaster, ReviewPages, Simulator, away_until

logger = logging.getLogger("hitl_proxy")
MAX_NOTE_CHARS = 4000
RESUME_AFTER = 1.0  # seconds before following the feed again after the store failed
Reverter = Callable[[str, str], Awaitable[Approval]]  # (approval id, reviewer) -> new approval
Endpoint = Callable[[Request], Awaitable[Response]]
# Rule YAML -> what it would have let through (review_api.simulate); for the stats page.


def _error(status_code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status_code)


def _unknown_query(request: Request, *allowed: str) -> Response | None:
    """A misspelt filter must not silently widen what is returned."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        return _error(400, f"unknown query parameter(s) {unknown}; allowed: {list(allowed)}")
    return None


def _approval_json(approval: Approval) -> dict[str, Any]:
    return approval.model_dump(mode="json")


def audit_visible(reviewer: Reviewer, approval_id: str | None,
                  routing: dict[str, list[str]], acting_for: Sequence[Reviewer] = ()) -> bool:
    """Who reads an audit entry: the auditor group reads all; others the entries of approvals
    routed to them or to someone away they act for (an unrouted approval: anyone). Entries of
    no approval (writes a rule allowed) belong to no group that decided them: auditors only."""
    if AUDITOR_GROUP in reviewer.groups:
        return True
    if approval_id is None or approval_id not in routing:
        return False
    return any(who.may_decide(routing[approval_id]) for who in (reviewer, *acting_for))


async def _newest(store: Store) -> int | None:
    """Where a follower starts: the newest change now (None: the store is down, the follower
    asks again when it can). Read before the follower starts, so nothing after is missed."""
    try:
        return await store.last_change()
    except StoreError as exc:
        logger.warning("the change feed cannot be read yet: %s", exc)
        return None


class ReviewApp:
    """Holds what the endpoints share; `app` is the Starlette application to serve.

    Also an addon: `running` starts following the change feed (the live page, the metrics) and
    `done` stops it. Served on its own, the app's lifespan does the same.
    """

    def __init__(self, store: Store, reviewers: Reviewers,
                 criteria: LooseningCriteria | None = None,
                 reverter: Reverter | None = None, metrics: Metrics | None = None,
                 traffic: TrafficStore | None = None, *,
                 feed: ChangeFeed | None = None,
                 slack_endpoint: Endpoint | None = None,
                 simulator: Simulator | None = None,
                 owners: dict[str, str] | None = None,
                 remind_every: float = SWEEP_EVERY) -> None:
        self.traffic = traffic
        self.simulator = simulator
        self.owners = dict(owners or {})  # agent name -> the reviewer who owns it
        self.metrics = metrics or Metrics()
        self.store = store
        self.feed = feed or ChangeFeed(store)
        self.reverter = reverter
        self.reviewers = reviewers
        self.criteria = criteria or LooseningCriteria()
        self.broadcaster = Broadcaster()
        # Every replica sweeps; the store records each reminder once (review_api.reminders).
        self.reminders = Reminders(store, feed=self.feed, every=remind_every)
        self._follower: asyncio.Task[None] | None = None
        pages = ReviewPages(store, reviewers, self.broadcaster, reverter, traffic,
                            criteria=self.criteria, simulator=simulator, owners=self.owners)
        self.app = Starlette(
            routes=[
                # The reviewer's web page (session cookie, CSRF-protected forms).
                Route("/", pages.queue, methods=["GET"]),
                Route("/login", pages.login_page, methods=["GET"]),
                Route("/login", pages.login, methods=["POST"]),
                Route("/logout", pages.logout, methods=["POST"]),
                Route("/approvals/decide", pages.decide_selected, methods=["POST"]),
                Route("/approvals/{approval_id}", pages.detail, methods=["GET"]),
                Route("/approvals/{approval_id}/decide", pages.decide, methods=["POST"]),
                Route("/approvals/{approval_id}/revert", pages.revert, methods=["POST"]),
                Route("/away", pages.set_away, methods=["POST"]),
                Route("/stats", pages.stats_page, methods=["GET"]),
                Route("/stats/simulate", pages.simulate, methods=["POST"]),
                Route("/history", pages.history, methods=["GET"]),
                Route("/history.csv", pages.export, methods=["GET"]),
                Route("/history.jsonl", pages.export, methods=["GET"]),
                Route("/fragments/queue", pages.queue_fragment, methods=["GET"]),
                Route("/events", pages.events, methods=["GET"]),
                Route("/traffic", pages.traffic_page, methods=["GET"]),
                *(Route(f"/traffic.{fmt}", pages.traffic_export, methods=["GET"])
                  for fmt in EXPORT_TYPES),
                # The JSON API (bearer tokens).
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/openapi.json", self.openapi, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
                Route("/api/approvals", self.list_approvals, methods=["GET"]),
                Route("/api/approvals/decide", self.decide_many, methods=["POST"]),
                Route("/api/approvals/{approval_id}", self.get_approval, methods=["GET"]),
                Route("/api/approvals/{approval_id}/approve", self.approve, methods=["POST"]),
                Route("/api/approvals/{approval_id}/reject", self.reject, methods=["POST"]),
                Route("/api/approvals/{approval_id}/resolve", self.resolve, methods=["POST"]),
                Route("/api/approvals/{approval_id}/revert", self.revert, methods=["POST"]),
                Route("/api/reviewers/me/away", self.away_me, methods=["PUT", "DELETE"]),
                Route("/api/reviewers/away", self.list_away, methods=["GET"]),
                Route("/api/audit", self.audit, methods=["GET"]),
                Route("/api/stats", self.stats, methods=["GET"]),
                Route("/api/traffic", self.list_traffic, methods=["GET"]),
                Route("/api/traffic/export", self.export_traffic, methods=["GET"]),
                # Slack verifies its own requests (signing secret): no bearer token here.
                *([Route("/slack/interactions", slack_endpoint, methods=["POST"])]
                  if slack_endpoint is not None else []),
            ],
            exception_handlers={StoreError: self._store_error, TrafficError: self._store_error,
                                404: self._not_found,
                                405: self._not_allowed},
            lifespan=self._lifespan,
        )

    # -- life: following the change feed ------------------------------------------------------

    async def running(self) -> None:
        """Follow the feed from its newest change (the page shows what happens from now on)
        and sweep for reminders and escalations due."""
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(await _newest(self.store)))
        await self.reminders.running()

    async def done(self) -> None:
        await self.reminders.done()
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.running()
        try:
            yield
        finally:
            await self.done()

    async def _follow(self, after: int | None) -> None:
        """Every change of every replica after `after`, in order, to the open pages and the
        metrics; a store failure pauses the reading and it resumes after the last change
        handled."""
        while True:
            try:
                if after is None:
                    after = await self.store.last_change()
                async for change in self.feed.follow(after):
                    await self.broadcaster.publish(change)
                    await self.metrics.on_change(change, self.store)
                    after = change.seq
            except Exception as exc:  # the store is down: the feed resumes where it stopped
                logger.warning("live page: reading the change feed failed (%r); resuming", exc)
                await asyncio.sleep(RESUME_AFTER)

    async def _store_error(self, request: Request, exc: Exception) -> Response:
        return _error(503, f"the store is unavailable: {exc}")

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        return _error(404, f"no route {request.url.path}")

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        response = _error(405, f"{request.method} is not allowed on {request.url.path}")
        response.headers.update(getattr(exc, "headers", None) or {})  # keeps Allow (RFC 9110)
        return response

    def _reviewer(self, request: Request) -> Reviewer | None:
        return self.reviewers.authenticate(request.headers.get("authorization"))

    @staticmethod
    def _unauthorized() -> JSONResponse:
        response = _error(401, "a reviewer's bearer token is required (Authorization: Bearer ...)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hitl-proxy"'
        return response

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def prometheus(self, request: Request) -> Response:
        pending = await self.store.count(Status.pending)
        return Response(self.metrics.render(pending, await self.store.audit_head()),
                        media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi())

    async def list_approvals(self, request: Request) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        if (bad := _unknown_query(request, "status", "limit", "offset")) is not None:
            return bad
        raw_status = request.query_params.get("status")
        try:
            status = Status(raw_status) if raw_status is not None else None
        except ValueError:
            return _error(400, f"unknown status {raw_status!r}",
                          allowed=[member.value for member in Status])
        raw_limit = request.query_params.get("limit", "1000")
        raw_offset = request.query_params.get("offset", "0")
        if not (raw_limit.isascii() and raw_limit.isdigit() and 1 <= int(raw_limit) <= 10_000
                and raw_offset.isascii() and raw_offset.isdigit()):
            return _error(400, "limit must be 1..10000 and offset a number of approvals")
        # Routing filters after paging would page unevenly: filter first, then page.
        seen = await self._seen_by(reviewer)
        approvals = [a for a in await self.store.list(status, limit=10_000_000) if seen(a)]
        page = approvals[int(raw_offset):int(raw_offset) + int(raw_limit)]
        return JSONResponse({"approvals": [_approval_json(a) for a in page],
                             "total": len(approvals)})

    async def _visible(self, request: Request, reviewer: Reviewer) -> Approval | Response:
        approval_id = request.path_params["approval_id"]
        try:
            approval = await self.store.get(approval_id)
        except NotFound:
            return _error(404, f"no approval {approval_id}")
        if not (await self._seen_by(reviewer))(approval):
            # Not routed to this reviewer: indistinguishable from absent.
            return _error(404, f"no approval {approval_id}")
        return approval

    async def get_approval(self, request: Request) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        found = await self._visible(request, reviewer)
        return found if isinstance(found, Response) else JSONResponse(_approval_json(found))

    async def approve(self, request: Request) -> Response:
        return await self._decide(request, Decision.approve)

    async def reject(self, request: Request) -> Response:
        return await self._decide(request, Decision.reject)

    async def _decide(self, request: Request, decision: Decision) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        body = await _read_decision(request, decision)
        if isinstance(body, Response):
            return body
        note, edits, approve_fields = body
        approval_id = request.path_params["approval_id"]
        try:
            found = await self.store.get(approval_id)
        except NotFound:
            return _error(404, f"no approval {approval_id}")
        allowed = permission(reviewer, found, now=utcnow(), away=await self.store.away(),
                             reviewers=self.reviewers, owners=self.owners, decision=decision)
        if not allowed.allowed:
            return _error(403, allowed.reason or "not allowed")
        if problem := edit_problem(found, edits, approve_fields):
            return _error(422, problem)
        try:
            decided = await record_decision(self.store, reviewer, found, decision, note,
                                            allowed, via="api", edits=edits,
                                            approve_fields=approve_fields)
        except Conflict as exc:
            return _error(409, exc.reason, approval=_approval_json(exc.approval))
        return JSONResponse(_approval_json(decided))

    async def _seen_by(self, reviewer: Reviewer) -> Callable[[Approval], bool]:
        """Which approvals this reviewer is shown: routed to them now, escalated to them, or
        routed to someone away who named them delegate (review_api.routing.visible)."""
        away, now = await self.store.away(), utcnow()
        return lambda approval: visible(reviewer, approval, now=now, away=away,
                                        reviewers=self.reviewers)

    async def decide_many(self, request: Request) -> Response:
        """`{"ids": [...], "decision": "approve"|"reject", "note": "..."}`: each id decided
        on its own (review_api.bulk), one result each; 200 even when some failed."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        body = await _read_bulk(request)
        if isinstance(body, Response):
            return body
        ids, decision, note, fingerprints = body
        results = await decide_many(self.store, reviewer, ids, decision, note, via="api",
                                    reviewers=self.reviewers, owners=self.owners,
                                    fingerprints=fingerprints)
        return JSONResponse({"results": [
            {"id": r.id, "ok": r.ok, "status": r.status, "error": r.error} for r in results]})

    async def away_me(self, request: Request) -> Response:
        """PUT: away (set_away); DELETE: back. One route, so a 405 lists both methods."""
        return await (self.set_away(request) if request.method == "PUT" else self.back(request))

    async def set_away(self, request: Request) -> Response:
        """`{"until": "<ISO date or time>", "delegate": "<reviewer>"}`: away until then;
        writes routed to this reviewer may be decided by the delegate meanwhile."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        parsed = await _read_away(request, reviewer, self.reviewers)
        if isinstance(parsed, Response):
            return parsed
        until, delegate = parsed
        await self.store.set_away(reviewer.name, until, delegate)
        return JSONResponse(_away_json(Away(reviewer.name, until, delegate)))

    async def back(self, request: Request) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        await self.store.set_away(reviewer.name, None, None)
        return JSONResponse({"reviewer": reviewer.name, "away": False})

    async def list_away(self, request: Request) -> Response:
        """Who is away now, until when, and who decides for them: any reviewer may ask."""
        if self._reviewer(request) is None:
            return self._unauthorized()
        return JSONResponse({"away": [_away_json(entry) for entry in await self.store.away()]})

    async def resolve(self, request: Request) -> Response:
        """Records what upstream did with a write whose outcome is unknown after a crash."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return _error(400, f"the body must be JSON: {exc}")
        outcome = body.get("outcome") if isinstance(body, dict) else None
        note = body.get("note") if isinstance(body, dict) else None
        if outcome not in ("executed", "failed") or not (note is None or isinstance(note, str)):
            return _error(400, 'the body must be {"outcome": "executed" | "failed", "note": "..."}')
        found = await self._visible(request, reviewer)
        if isinstance(found, Response):
            return found
        try:
            resolved = await self.store.resolve(found.id, outcome == "executed", reviewer.name,
                                                note)
        except Conflict as exc:
            return _error(409, f"only an approval whose outcome is unknown can be resolved; "
                               f"{found.id} is {exc.approval.status}")
        return JSONResponse(_approval_json(resolved))

    async def revert(self, request: Request) -> Response:
        """Proposes the inverse of an executed write as a new approval, reviewed as usual."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        found = await self._visible(request, reviewer)
        if isinstance(found, Response):
            return found
        if self.reverter is None:
            return _error(422, "reverts need the proxy running")
        try:
            created = await self.reverter(found.id, reviewer.name)
        except ValueError as exc:
            return _error(422, f"cannot revert {found.id}: {exc}")
        return JSONResponse(_approval_json(created), status_code=201)

    async def audit(self, request: Request) -> Response:
        """Entries of the approvals routed to this reviewer (see audit_visible); all of them
        for the auditor group. An approval not visible is answered 404, like a missing one."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        if (bad := _unknown_query(request, "approval_id")) is not None:
            return bad
        approval_id = request.query_params.get("approval_id")
        if approval_id is not None:
            # One approval: whoever it is shown to now (escalation too) reads its trail.
            try:
                found = await self.store.get(approval_id)
            except NotFound:
                return _error(404, f"no approval {approval_id}")
            if AUDITOR_GROUP not in reviewer.groups and not (await self._seen_by(reviewer))(found):
                return _error(404, f"no approval {approval_id}")
            entries = await self.store.audit_entries(approval_id)
            return JSONResponse({"entries": [e.model_dump(mode="json") for e in entries]})
        routing = await self.store.reviewer_groups()
        acting_for = delegators(reviewer, now=utcnow(), away=await self.store.away(),
                                reviewers=self.reviewers)
        entries = [entry for entry in await self.store.audit_entries(approval_id)
                   if audit_visible(reviewer, entry.approval_id, routing, acting_for)]
        return JSONResponse({"entries": [entry.model_dump(mode="json") for entry in entries]})

    async def stats(self, request: Request) -> Response:
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        seen = await self._seen_by(reviewer)
        approvals = [a for a in await self.store.list(limit=1_000_000) if seen(a)]
        return JSONResponse(compute_stats(approvals, self.criteria))

    def _auditor_query(self, request: Request, *allowed: str
                       ) -> tuple[TrafficStore, TrafficQuery] | Response:
        """The traffic record and the query, for a reviewer in `auditor`; else the error."""
        reviewer = self._reviewer(request)
        if reviewer is None:
            return self._unauthorized()
        if AUDITOR_GROUP not in reviewer.groups:
            return _error(403, f"the traffic record is for reviewers in the "
                               f"{AUDITOR_GROUP!r} group; {reviewer.name} is not")
        if (bad := _unknown_query(request, *REPEATABLE, *allowed)) is not None:
            return bad
        if self.traffic is None:
            return _error(503, "the traffic record is not open")
        try:
            return self.traffic, parse_query(request.query_params)
        except ValueError as exc:
            return _error(400, str(exc))

    async def list_traffic(self, request: Request) -> Response:
        """Every request through the proxy, newest first; for reviewers in `auditor` only."""
        found = self._auditor_query(request, *FILTERS, *PAGING)
        if isinstance(found, Response):
            return found
        traffic, (where, limit, cursor, newest_first) = found
        entries = await traffic.query(where, limit=limit, after=cursor,
                                      newest_first=newest_first)
        more = str(entries[-1]["id"]) if len(entries) == limit else None
        return JSONResponse({"entries": entries, "next": more})

    async def export_traffic(self, request: Request) -> Response:
        """The same filters, every match oldest first, streamed as JSONL, CSV or HAR."""
        found = self._auditor_query(request, *FILTERS, "format")
        if isinstance(found, Response):
            return found
        traffic, (where, *_) = found
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in EXPORT_TYPES:
            return _error(400, f"format must be one of {list(EXPORT_TYPES)}")
        return download(fmt, traffic.iterate(where))


Decided = tuple[str | None, list[dict[str, Any]] | None, list[str] | None]


async def _read_decision(request: Request, decision: Decision) -> Decided | Response:
    """`{"note"}`, and for approvals `edits` and `approve_fields`; an empty body is fine."""
    raw = await request.body()
    if not raw.strip():
        return None, None, None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"the body must be JSON like {{\"note\": \"...\"}}: {exc}")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object like {\"note\": \"...\"}")
    allowed = {"note"} | ({"edits", "approve_fields"} if decision is Decision.approve else set())
    unknown = sorted(set(body) - allowed)
    if unknown:
        return _error(400, f"unknown field(s) {unknown}; accepted: {sorted(allowed)}")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        return _error(400, f"note must be a string of at most {MAX_NOTE_CHARS} characters")
    edits = body.get("edits")
    if edits is not None and not (isinstance(edits, list) and all(
            isinstance(e, dict) and isinstance(e.get("field"), str) and set(e) <= {"field", "new"}
            for e in edits)):
        return _error(400, 'edits must be a list of {"field": "...", "new": ...}')
    fields = body.get("approve_fields")
    if fields is not None and not (isinstance(fields, list) and fields
                                   and all(isinstance(f, str) for f in fields)):
        return _error(400, "approve_fields must be a non-empty list of field names")
    return note, edits or None, fields


def _away_json(entry: Away) -> dict[str, Any]:
    return {"reviewer": entry.reviewer, "until": entry.until.isoformat(),
            "delegate": entry.delegate}


async def _json_object(request: Request, example: str) -> dict[str, Any] | Response:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"the body must be JSON like {example}: {exc}")
    if not isinstance(body, dict):
        return _error(400, f"the body must be a JSON object like {example}")
    return body


Bulk = tuple[list[str], Decision, str | None, dict[str, str] | None]
_BULK_EXAMPLE = '{"ids": ["..."], "decision": "approve", "note": "..."}'


async def _read_bulk(request: Request) -> Bulk | Response:
    """The ids, one decision, one optional note and optional fingerprints (id -> the
    fingerprint the reviewer saw: an approval edited or replaced since is not decided)."""
    body = await _json_object(request, _BULK_EXAMPLE)
    if isinstance(body, Response):
        return body
    unknown = sorted(set(body) - {"ids", "decision", "note", "fingerprints"})
    if unknown:
        return _error(400, f"unknown field(s) {unknown}; accepted: "
                           "['decision', 'fingerprints', 'ids', 'note']")
    ids = body.get("ids")
    if not (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)):
        return _error(400, f"ids must be a non-empty list of approval ids, like {_BULK_EXAMPLE}")
    if len(ids) > MAX_IDS:
        return _error(400, f"at most {MAX_IDS} ids at once, got {len(ids)}")
    try:
        decision = Decision(body.get("decision"))
    except ValueError:
        return _error(400, 'decision must be "approve" or "reject"')
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        return _error(400, f"note must be a string of at most {MAX_NOTE_CHARS} characters")
    fingerprints = body.get("fingerprints")
    if fingerprints is not None and not (isinstance(fingerprints, dict) and all(
            isinstance(v, str) for v in fingerprints.values())):
        return _error(400, "fingerprints must map approval ids to the fingerprints seen")
    return ids, decision, note, fingerprints


async def _read_away(request: Request, reviewer: Reviewer,
                     reviewers: Reviewers) -> tuple[datetime, str | None] | Response:
    """Until a future moment (a date: away through that day, back at the next midnight UTC,
    as on the page), and a delegate who
    is a configured reviewer other than oneself (or none). A body of the wrong shape is a
    400; well formed but unusable (a past or unreadable moment, an unknown delegate) a 422."""
    example = '{"until": "2026-12-24", "delegate": "bob"}'
    body = await _json_object(request, example)
    if isinstance(body, Response):
        return body
    unknown = sorted(set(body) - {"until", "delegate"})
    if unknown:
        return _error(400, f"unknown field(s) {unknown}; accepted: ['delegate', 'until']")
    raw_until, delegate = body.get("until"), body.get("delegate")
    if not isinstance(raw_until, str):
        return _error(400, f"until is required: an ISO 8601 date or time, like {example}")
    try:
        until = away_until(raw_until.strip())  # as the page's away form reads it
    except (ValueError, OverflowError):
        return _error(422, f"until must be an ISO 8601 date or time (2026-12-24, "
                           f"2026-12-24T09:00Z), got {raw_until!r}")
    if until <= utcnow():
        return _error(422, f"until {raw_until!r} is not in the future")
    if delegate is not None and not isinstance(delegate, str):
        return _error(400, f"delegate must be a reviewer's name or null, like {example}")
    if delegate is not None:
        if reviewers.named(delegate) is None:
            return _error(422, f"delegate {delegate!r} is not a configured reviewer")
        if delegate == reviewer.name:
            return _error(422, "a reviewer cannot delegate to themselves")
    return until, delegate
