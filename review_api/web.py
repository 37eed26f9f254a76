"""The reviewer's web page: sign in with a token, a live queue, old beside new, decide, history.

Every decision on the page (one write, or many at once) is checked by `review_api.routing`, as
the API's and Slack's are: routed groups, escalation, a delegate acting for an away reviewer,
and nobody approving their own agent's write.

Sessions live in the store (keyed by a hash, never a usable cookie), so a reviewer signed in
through one replica is signed in on every replica and a restart signs nobody out; signing out
drops the session everywhere. A session is bound to the reviewer's token as configured: a
reviewer removed from the config, or given a new token, is signed out everywhere. The cookie is
HttpOnly and SameSite=Strict, and every form carries the session's CSRF token as well. The live
queue follows the store's change feed, so it shows the holds and decisions of every replica.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import difflib
import html
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.templating import Jinja2Templates

from review_api.auth import Reviewer, Reviewers
from review_api.bulk import decide_many, record_decision
from review_api.edits import edit_problem
from review_api.models import Approval, Decision, Status, utcnow
from review_api.routing import Permission, permission, visible
from review_api.stats import LooseningCriteria, compute_stats
from review_api.store import (
    Conflict,
    NotFound,
    ReviewerSession,
    StatusChange,
    Store,
    session_key_hash,
)
from review_api.traffic import (
    DECISIONS,
    FILTERS,
    REPEATABLE,
    TrafficError,
    TrafficQuery,
    TrafficStore,
    parse_query,
)
from review_api.traffic_export import csv_line, download

COOKIE = "hitl_session"
SESSION_SECONDS = 12 * 3600
MAX_SHOWN = 2000  # characters of one value before it is cut for the page
AUDITOR_GROUP = "auditor"  # reviewers who may read the traffic record
TRAFFIC_PAGE = 200
MAX_SELECTED = 500  # writes decided by one form
LOOKED_AT_SECONDS = 900  # "what the agent looked at": its reads this long before the write
MAX_RULE_CHARS = 20_000  # a simulated rule's YAML
# A trigger is a link only when it is plainly a web address: no whitespace or control
# characters a browser would strip to reveal another scheme (javascript:, data:).
_WEB_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)
# (rule YAML, which approvals may be counted) -> review_api.simulate.Simulation
Simulator = Callable[[str, Callable[[Approval], bool]], Awaitable[Any]]


def approvals_csv(chosen: list[Approval]) -> str:
    """The history export: one row per approval, its changes and parameters as JSON."""
    lines = [csv_line(["id", "created_at", "status", "system", "object_type", "record_id",
                       "operation", "risk", "agent", "task", "decided_by", "decided_at",
                       "note", "changes", "reason", "parameters"])]
    lines += [csv_line([a.id, a.created_at.isoformat(), a.status.value, a.system,
                        a.object_type, a.record_id, a.operation, a.risk.level.value,
                        a.context.agent, a.context.task, a.decided_by,
                        a.decided_at.isoformat() if a.decided_at else "", a.note,
                        json.dumps([c.model_dump() for c in a.changes]), a.context.reason,
                        json.dumps([p.model_dump() for p in a.parameters])])
              for a in chosen]
    return "".join(lines)


def _session_key(secret: str, reviewer: Reviewer) -> str:
    """The store's key for a session: the cookie's secret bound to the reviewer's current
    token, so replacing a leaked token ends the sessions it opened (they no longer match)."""
    return session_key_hash(f"{secret}:{reviewer.digest.hex()}")


def _cookie(reviewer: Reviewer, secret: str) -> str:
    """`<name, base64url>.<secret>`: the name says whose token the key is bound to."""
    name = base64.urlsafe_b64encode(reviewer.name.encode()).decode().rstrip("=")
    return f"{name}.{secret}"


def _cookie_parts(cookie: str) -> tuple[str, str] | None:
    """(reviewer name, secret) of a cookie this app set; None for anything else."""
    name, dot, secret = cookie.partition(".")
    if not dot or not name or not secret:
        return None
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode(), secret
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Session:
    """A stored session joined with the reviewer as the config names them now."""

    key_hash: str
    reviewer: Reviewer
    csrf: str
    expires: float


@dataclass
class Broadcaster:
    """Fans the change feed out to every open event stream of this replica."""

    queues: set[asyncio.Queue[dict[str, str]]] = field(default_factory=set)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, change: StatusChange) -> None:
        message = {"id": change.approval_id, "status": change.status.value}
        for queue in list(self.queues):
            if queue.qsize() < 100:  # a stalled page misses updates, never grows memory
                queue.put_nowait(message)


def _age(moment: datetime) -> str:
    seconds = max(0, int((utcnow() - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _through(until: datetime) -> str:
    """The last day an away lasts, as the form asked for it (it ends at the next midnight)."""
    return (until.astimezone(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d")


def _approvals_of(approval: Approval) -> int:
    return len({v.reviewer for v in approval.votes if v.decision is Decision.approve})


def _shown(value: Any) -> str:
    if value is None:
        return '<span class="none">empty</span>'
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if len(text) > MAX_SHOWN:
        text = text[:MAX_SHOWN] + "…"
    return f"<pre>{html.escape(text)}</pre>"


def _marked(old: str, new: str) -> tuple[str, str]:
    """Both texts with the words that differ marked, so a reviewer sees what moved."""
    a, b = old.split(" "), new.split(" ")
    left, right = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
        before, after = html.escape(" ".join(a[i1:i2])), html.escape(" ".join(b[j1:j2]))
        if tag == "equal":
            left.append(before)
            right.append(after)
        else:
            if before:
                left.append(f"<del>{before}</del>")
            if after:
                right.append(f"<ins>{after}</ins>")
    return f"<pre>{' '.join(left)}</pre>", f"<pre>{' '.join(right)}</pre>"


def _marked_lines(old: Any, new: Any) -> tuple[str, str]:
    """Nested values as indented JSON with the lines that differ marked on each side."""
    a = json.dumps(old, indent=2, ensure_ascii=False).splitlines()
    b = json.dumps(new, indent=2, ensure_ascii=False).splitlines()
    left, right = [], []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b).get_opcodes():
        for line in a[i1:i2]:
            left.append(html.escape(line) if tag == "equal" else f"<del>{html.escape(line)}</del>")
        for line in b[j1:j2]:
            right.append(html.escape(line) if tag == "equal" else f"<ins>{html.escape(line)}</ins>")
    return "<pre>" + "\n".join(left) + "</pre>", "<pre>" + "\n".join(right) + "</pre>"


def change_rows(approval: Approval) -> list[dict[str, str]]:
    bulk = len(approval.records) > 1
    rows = []
    for change in approval.changes:
        if (isinstance(change.old, str) and isinstance(change.new, str)
                and max(len(change.old), len(change.new)) <= MAX_SHOWN):
            old, new = _marked(change.old, change.new)
        elif (isinstance(change.old, dict | list) and isinstance(change.new, dict | list)
              and len(json.dumps(change.old)) + len(json.dumps(change.new)) <= 4 * MAX_SHOWN):
            old, new = _marked_lines(change.old, change.new)
        else:
            old, new = _shown(change.old), _shown(change.new)
        rows.append({"field": change.field, "old": old, "new": new, "kind": change.kind,
                     "kind_label": {"add": "added", "remove": "removed"}.get(change.kind, ""),
                     "record": change.record_id if bulk else ""})
    return rows


def headline(approval: Approval) -> str:
    what = {"create": "Creates a new record", "delete": "Deletes this record",
            "update": "Changes this record", "upsert": "Creates or changes a record",
            "action": f"Runs '{approval.action}'"}.get(approval.operation or "", "A write")
    if len(approval.records) > 1:
        what += f" ({len(approval.records)} records)"
    return what


def trigger_link(trigger: str | None) -> str | None:
    """The trigger as an href when it is an http(s) URL; anything else is shown as text."""
    return trigger if trigger and _WEB_URL.fullmatch(trigger) else None


def away_until(text: str) -> datetime:
    """The away form's date: away through that whole day (UTC), back the next morning; a full
    ISO date and time is taken as it is (UTC when it names no zone)."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text) + timedelta(days=1),
                                datetime.min.time(), UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _before(moment: datetime, earlier: str) -> str:
    """How long before `moment` a traffic entry's ISO time was, e.g. "3m 5s"."""
    try:
        then = datetime.fromisoformat(earlier)
    except ValueError:
        return ""
    seconds = max(0, int((moment - (then if then.tzinfo else then.replace(tzinfo=UTC)))
                         .total_seconds()))
    return f"{seconds // 60}m {seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def _edits_from(form: dict[str, str]) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Changed values become edits; unticked fields leave the approval partial."""
    edits, included, fields = [], [], []
    index = 0
    while f"field_{index}" in form:
        field_name = form[f"field_{index}"]
        fields.append(field_name)
        text = form.get(f"value_{index}", "")
        if text != form.get(f"original_{index}", text):
            try:
                value = json.loads(text)
            except ValueError:
                value = text  # a plain word is meant as text
            edits.append({"field": field_name, "new": value})
        if f"include_{index}" in form:
            included.append(field_name)
        index += 1
    approve_fields = included if "partial" in form and len(included) < len(fields) else None
    return edits, approve_fields


Posted = tuple[Session, dict[str, str], Approval]


def _form_filters(request: Request) -> QueryParams:
    """The filter form's fields as the API takes them: blanks mean any, a To date counts."""
    kept = []
    for name, value in request.query_params.multi_items():
        if not value or name not in (*REPEATABLE, *FILTERS, "cursor"):
            continue
        if name == "until" and len(value) == 10:
            try:
                value = (date.fromisoformat(value) + timedelta(days=1)).isoformat()
            except ValueError:
                pass  # parse_query says what is wrong with it
        kept.append((name, value))
    return QueryParams(kept)


def _back(where: str, flash: str, error: bool = False) -> RedirectResponse:
    """Post/redirect/get with a message for the next page."""
    params = {"flash": flash, **({"kind": "error"} if error else {})}
    return RedirectResponse(where + urlencode(params), 303)


@dataclass(frozen=True, slots=True)
class Mine:
    """An approval a reviewer sees, with what routing says they may do with it now."""

    approval: Approval
    permission: Permission


class ReviewPages:
    def __init__(self, store: Store, reviewers: Reviewers, broadcaster: Broadcaster,
                 reverter: Any = None, traffic: TrafficStore | None = None, *,
                 criteria: LooseningCriteria | None = None,
                 simulator: Simulator | None = None,
                 owners: dict[str, str] | None = None) -> None:
        self.traffic = traffic
        self.reverter = reverter
        self.store = store
        self.reviewers = reviewers
        self.broadcaster = broadcaster
        self.criteria = criteria or LooseningCriteria()
        self.simulator = simulator
        self.owners = dict(owners or {})  # agent name -> the reviewer who owns it
        # Sessions name their reviewer; the config's entry (groups may have changed) decides.
        # Reviewers has no lookup by name yet (requested in auth.py): read its list once.
        self._by_name = {reviewer.name: reviewer for reviewer in reviewers}
        self.templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
        self.templates.env.globals.update(age=_age, approvals_of=_approvals_of,
                                          through=_through)

    # -- sessions -------------------------------------------------------------------------------

    async def _session(self, request: Request) -> Session | None:
        """The signed-in reviewer, from the store: any replica may have signed them in. A
        reviewer no longer configured, or whose token changed, is signed out whatever their
        cookie says (the old row finds no key and lapses at its expiry)."""
        parts = _cookie_parts(request.cookies.get(COOKIE, ""))
        reviewer = self._by_name.get(parts[0]) if parts else None
        if parts is None or reviewer is None:
            return None
        key_hash = _session_key(parts[1], reviewer)
        stored = await self.store.load_session(key_hash)
        if stored is None or stored.expires < time.time() or stored.reviewer != reviewer.name:
            return None
        return Session(key_hash, reviewer, stored.csrf, stored.expires)

    def _render(self, request: Request, template: str, session: Session | None,
                status_code: int = 200, **context: Any) -> HTMLResponse:
        context.update(reviewer=session.reviewer if session else None,
                       csrf=session.csrf if session else "")
        context.setdefault("flash", request.query_params.get("flash"))
        context.setdefault("flash_kind", request.query_params.get("kind"))
        response = self.templates.TemplateResponse(request, template, context,
                                                   status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def _form(self, request: Request, session: Session) -> dict[str, str] | Response:
        form = await request.form()
        if not secrets.compare_digest(str(form.get("csrf", "")), session.csrf):
            return HTMLResponse("The form expired. Reload the page and try again.", 403)
        return {key: str(value) for key, value in form.items()}

    async def login_page(self, request: Request) -> Response:
        if await self._session(request):
            return RedirectResponse("/", 303)
        return self._render(request, "login.html", None)

    async def login(self, request: Request) -> Response:
        form = await request.form()
        reviewer = self.reviewers.authenticate(f"Bearer {form.get('token', '')}")
        if reviewer is None:
            return RedirectResponse("/login?" + urlencode(
                {"flash": "That token is not a reviewer's token.", "kind": "error"}), 303)
        secret = secrets.token_urlsafe(32)
        await self.store.save_session(ReviewerSession(
            key_hash=_session_key(secret, reviewer), reviewer=reviewer.name,
            csrf=secrets.token_urlsafe(24), expires=time.time() + SESSION_SECONDS))
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, _cookie(reviewer, secret), max_age=SESSION_SECONDS,
                            httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    async def logout(self, request: Request) -> Response:
        session = await self._session(request)
        if session is not None:
            form = await self._form(request, session)
            if isinstance(form, Response):
                return form
            await self.store.drop_session(session.key_hash)  # on every replica at once
        response = RedirectResponse("/login?flash=Signed+out.", 303)
        response.delete_cookie(COOKIE)
        return response

    # -- pages ----------------------------------------------------------------------------------

    async def _routing(self, reviewer: Reviewer, approvals: list[Approval]) -> list[Mine]:
        """The approvals routed to this reviewer now (their groups, escalation, a delegation),
        each with whether routing lets them approve it (an agent's owner may only reject)."""
        away, now = await self.store.away(), utcnow()
        return [Mine(approval, permission(reviewer, approval, now=now, away=away,
                                          reviewers=self.reviewers, owners=self.owners))
                for approval in approvals
                if visible(reviewer, approval, now=now, away=away, reviewers=self.reviewers)]

    async def _mine(self, session: Session, status: Status | None = None) -> list[Mine]:
        return await self._routing(session.reviewer,
                                   await self.store.list(status, limit=100_000))

    async def _queue_context(self, session: Session) -> dict[str, Any]:
        """The queue and the away form: who this reviewer acts for, and whether they are away."""
        away = await self.store.away()
        name = session.reviewer.name
        return {
            "items": await self._mine(session, Status.pending),
            "my_away": next((entry for entry in away if entry.reviewer == name), None),
            "acting_for": [entry for entry in away if entry.delegate == name],
            "delegates": [r.name for r in self.reviewers if r.name != name],
        }

    async def queue(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        return self._render(request, "queue.html", session, page="queue",
                            **await self._queue_context(session))

    async def queue_fragment(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return HTMLResponse("", 401)
        return self._render(request, "_queue.html", session,
                            items=await self._mine(session, Status.pending))

    async def _looked_at(self, approval: Approval) -> dict[str, Any]:
        """The agent's reads in the minutes before this write, from the traffic record."""
        if self.traffic is None:
            return {"off": True, "reads": []}
        try:
            reads = await self.traffic.recent_reads(
                approval.context.agent, before=approval.created_at.isoformat(),
                within=LOOKED_AT_SECONDS)
        except TrafficError as exc:
            return {"problem": str(exc), "reads": []}
        return {"reads": [{"entry": read, "before": _before(approval.created_at, read.at)}
                          for read in reads]}

    async def detail(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        try:
            approval = await self.store.get(request.path_params["approval_id"])
        except NotFound:
            approval = None
        seen = await self._routing(session.reviewer, [approval]) if approval else []
        if approval is None or not seen:
            return self._render(request, "queue.html", session, 404, page="queue",
                                items=[], flash="No such approval for you.",
                                flash_kind="error")
        body = approval.request.body
        request_text = "\n".join(f"{k}: {v}" for k, v in approval.request.headers.items())
        if body is not None:
            shown = body if isinstance(body, str) else json.dumps(body, indent=2)
            request_text += "\n\n" + shown[:20_000]
        editable = [{"field": c.field, "value": json.dumps(c.new, ensure_ascii=False)}
                    for c in approval.changes if c.kind == "set"]
        return self._render(request, "detail.html", session, page="queue", a=approval,
                            rows=change_rows(approval), headline=headline(approval),
                            request_text=request_text, editable=editable,
                            may=seen[0].permission,
                            trigger_url=trigger_link(approval.context.trigger),
                            looked_at=await self._looked_at(approval),
                            looked_minutes=LOOKED_AT_SECONDS // 60)

    async def _posted(self, request: Request) -> Posted | Response:
        """A signed-in reviewer's form about an approval routing lets them decide now, or
        where to go instead."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        try:
            found = await self.store.get(request.path_params["approval_id"])
        except NotFound:
            return _back("/?", "No such approval.", error=True)
        if not await self._routing(session.reviewer, [found]):
            return _back("/?", "That approval is not routed to you.", error=True)
        return session, form, found

    async def _may(self, reviewer: Reviewer, approval: Approval,
                   decision: Decision) -> Permission:
        return permission(reviewer, approval, now=utcnow(), away=await self.store.away(),
                          reviewers=self.reviewers, owners=self.owners, decision=decision)

    async def decide(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, form, found = posted
        where = f"/approvals/{found.id}?"
        try:
            decision = Decision(form.get("decision", ""))
        except ValueError:
            return _back(where, "Choose approve or reject.", error=True)
        note = form.get("note", "").strip()[:4000] or None
        edits, approve_fields = _edits_from(form) if decision is Decision.approve else ([], None)
        if approve_fields == []:
            return _back(where, "Tick at least one field to approve, or reject.", error=True)
        if edits or approve_fields is not None:
            problem = edit_problem(found, edits, approve_fields)
            if problem:
                return _back(where, problem, error=True)
        allowed = await self._may(session.reviewer, found, decision)
        if not allowed.allowed:
            return _back(where, allowed.reason or "You may not decide this write.", error=True)
        try:
            decided = await record_decision(self.store, session.reviewer, found, decision,
                                            note, allowed, via="page", edits=edits or None,
                                            approve_fields=approve_fields)
        except Conflict as exc:
            return _back(where, exc.reason, error=True)
        text = (f"{decided.status.value.capitalize()}." if decided.status is not Status.pending
                else "Your approval is counted; it waits for more reviewers.")
        return _back(where, text)

    async def decide_selected(self, request: Request) -> Response:
        """Many writes at once, one note: each is checked on its own (routing, quorum) by
        review_api.bulk, and the page says which went through and why the others did not."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        # Each ticked box is "<id>:<fingerprint>", the write as this page showed it: one
        # edited or replaced since is not decided unseen.
        picked: dict[str, str] = {}
        for value in (await request.form()).getlist("picked"):
            approval_id, _, fingerprint = str(value).partition(":")
            picked.setdefault(approval_id, fingerprint)
        ids = list(picked)
        try:
            decision = Decision(form.get("decision", ""))
        except ValueError:
            return _back("/?", "Choose approve or reject.", error=True)
        if not ids:
            return _back("/?", "Select at least one write first.", error=True)
        note = form.get("note", "").strip()[:4000] or None
        fingerprints = {key: value for key, value in picked.items() if value}
        results = await decide_many(self.store, session.reviewer, ids[:MAX_SELECTED],
                                    decision, note, via="page", reviewers=self.reviewers,
                                    owners=self.owners, fingerprints=fingerprints)
        shown = {mine.approval.id: mine.approval for mine in await self._routing(
            session.reviewer, [a for a in [await self._get(r.id) for r in results] if a])}
        outcomes = [{"result": result, "a": shown.get(result.id),
                     # Unknown or no longer routed to them: say both, reveal nothing more.
                     "error": result.error if result.status is not None or result.ok
                     else "not routed to you (any more), or no such write"}
                    for result in results]
        went = sum(result.ok for result in results)
        summary = (f"{went} of {len(results)} went through"
                   + (f" ({decision.value}d)." if went else "."))
        return self._render(request, "queue.html", session, page="queue", outcomes=outcomes,
                            summary=summary, **await self._queue_context(session))

    async def _get(self, approval_id: str) -> Approval | None:
        try:
            return await self.store.get(approval_id)
        except NotFound:
            return None

    async def set_away(self, request: Request) -> Response:
        """Away until a date with a delegate who decides for you meanwhile, or back."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        name = session.reviewer.name
        if form.get("action") == "back":
            await self.store.set_away(name, None, None)
            return _back("/?", "Welcome back: writes routed to you are yours again.")
        try:
            until = away_until(form.get("until", "").strip())
        except ValueError:
            return _back("/?", "Give the date you are away until (YYYY-MM-DD).", error=True)
        if until <= utcnow():
            return _back("/?", "That date has passed: give a day from today on.", error=True)
        delegate = form.get("delegate", "").strip() or None
        if delegate is not None and (delegate == name or self.reviewers.named(delegate) is None):
            return _back("/?", "The delegate must be another configured reviewer.", error=True)
        await self.store.set_away(name, until, delegate)
        return _back("/?", f"You are away through {_through(until)}"
                     + (f"; {delegate} decides for you." if delegate else "."))

    async def revert(self, request: Request) -> Response:
        posted = await self._posted(request)
        if isinstance(posted, Response):
            return posted
        session, _, found = posted
        where = f"/approvals/{found.id}?"
        if self.reverter is None:
            return _back(where, "Reverts need the proxy running.", error=True)
        try:
            created = await self.reverter(found.id, session.reviewer.name)
        except ValueError as exc:
            return _back(where, f"Cannot revert: {exc}", error=True)
        return _back(f"/approvals/{created.id}?", "The revert waits for review like any write.")

    # -- history and export ---------------------------------------------------------------------

    def _filtered(self, approvals: list[Approval], params: dict[str, str]) -> list[Approval]:
        def keep(a: Approval) -> bool:
            day = a.created_at.astimezone(UTC).date().isoformat()
            return ((not params.get("system") or a.system == params["system"])
                    and (not params.get("status") or a.status.value == params["status"])
                    and (not params.get("reviewer") or a.decided_by == params["reviewer"]
                         or any(v.reviewer == params["reviewer"] for v in a.votes))
                    and (not params.get("agent") or a.context.agent == params["agent"])
                    and (not params.get("since") or day >= params["since"])
                    and (not params.get("until") or day <= params["until"]))
        return [a for a in reversed(approvals) if keep(a)]

    async def history(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        everything = [mine.approval for mine in await self._mine(session)]
        params = dict(request.query_params)
        return self._render(
            request, "history.html", session, page="history", f=params,
            approvals=self._filtered(everything, params)[:500],
            systems=sorted({a.system for a in everything if a.system}),
            statuses=[s.value for s in Status], query=urlencode(params))

    async def export(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        chosen = self._filtered([mine.approval for mine in await self._mine(session)],
                                dict(request.query_params))
        if request.url.path.endswith(".jsonl"):
            text = "".join(a.model_dump_json() + "\n" for a in chosen)
            return Response(text, media_type="application/x-ndjson", headers={
                "Content-Disposition": 'attachment; filename="approvals.jsonl"'})
        return Response(approvals_csv(chosen), media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="approvals.csv"'})

    # -- stats and "what if this rule were allow" ------------------------------------------------

    async def _stats_context(self, session: Session) -> dict[str, Any]:
        approvals = [mine.approval for mine in await self._mine(session)]
        return {"stats": compute_stats(approvals, self.criteria),
                "simulating": self.simulator is not None}

    async def stats_page(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        return self._render(request, "stats.html", session, page="stats", rule="",
                            **await self._stats_context(session))

    async def simulate(self, request: Request) -> Response:
        """Runs the posted rule over the decided history and shows what it would have let
        through; a rule that does not parse is shown back with the problem."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        form = await self._form(request, session)
        if isinstance(form, Response):
            return form
        rule = form.get("rule", "")[:MAX_RULE_CHARS]
        context = await self._stats_context(session)
        if self.simulator is None:
            return self._render(request, "stats.html", session, 503, page="stats", rule=rule,
                                flash="Simulation needs the proxy running.", flash_kind="error",
                                **context)
        try:
            # Counted and named only among the writes this reviewer is shown.
            seen = {mine.approval.id for mine in await self._mine(session)}
            simulation = await self.simulator(rule, lambda approval: approval.id in seen)
        except ValueError as exc:
            return self._render(request, "stats.html", session, 400, page="stats", rule=rule,
                                flash=f"Cannot simulate that rule: {exc}", flash_kind="error",
                                **context)
        return self._render(request, "stats.html", session, page="stats", rule=rule,
                            simulation=simulation, **context)

    # -- the traffic record, for auditors -------------------------------------------------------

    async def _traffic_query(self, request: Request
                             ) -> tuple[Session, TrafficStore, TrafficQuery] | Response:
        """The signed-in auditor, the record and the filters; or the page saying why not."""
        session = await self._session(request)
        if session is None:
            return RedirectResponse("/login", 303)
        if AUDITOR_GROUP not in session.reviewer.groups or self.traffic is None:
            return self._render(request, "traffic.html", session, status_code=403,
                                page="traffic", refused=True, f={}, entries=[])
        try:
            return session, self.traffic, parse_query(_form_filters(request))
        except ValueError as exc:
            return self._render(request, "traffic.html", session, status_code=400,
                                page="traffic", f=dict(request.query_params), entries=[],
                                flash=f"Cannot filter: {exc}", flash_kind="error")

    async def traffic_page(self, request: Request) -> Response:
        found = await self._traffic_query(request)
        if isinstance(found, Response):
            return found
        session, traffic, (where, _, cursor, _) = found
        entries = await traffic.query(where, limit=TRAFFIC_PAGE, after=cursor)
        params = {k: v for k, v in request.query_params.items() if v and k != "cursor"}
        older = (urlencode({**params, "cursor": entries[-1]["id"]})
                 if len(entries) == TRAFFIC_PAGE else None)
        return self._render(request, "traffic.html", session, page="traffic", f=params,
                            entries=entries, decisions=DECISIONS, older=older,
                            query=urlencode(params))

    async def traffic_export(self, request: Request) -> Response:
        found = await self._traffic_query(request)
        if isinstance(found, Response):
            return found
        _, traffic, (where, *_) = found
        return download(request.url.path.rsplit(".", 1)[1], traffic.iterate(where))

    # -- live events ----------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        session = await self._session(request)
        if session is None:
            return Response(status_code=401)
        queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.broadcaster.queues.add(queue)

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                while not self.broadcaster.closing.is_set():
                    try:
                        message = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(message)}\n\n"
            finally:
                self.broadcaster.queues.discard(queue)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})
