"""A fake Zendesk Support API (tickets, comments, users, organizations, job statuses, search).

It follows the documented request and response shapes, https://developer.zendesk.com/api-reference/:
- bodies wrap the record: {"ticket": {...}}; responses of ticket create/update carry
  {"ticket", "audit"}; users and organizations answer {"user": ...} / {"organization": ...}
- `.json` suffixes are optional; authentication is Basic `{email}/token:{token}` or Bearer
- bulk endpoints (create_many, update_many, destroy_many) answer 200 {"job_status": {...}}; the fake
  applies the change at once, so the job status is already "completed" with per-item results
- errors: 401 {"error": "Couldn't authenticate you"}, 404 {"error": "RecordNotFound", ...},
  422 {"error": "RecordInvalid", "description": "Record validation errors", "details": {...}}
"""

from __future__ import annotations

import asyncio
import base64
import copy
import html
import itertools
import json
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

STATUSES = {"new", "open", "pending", "hold", "solved", "closed"}
PRIORITIES = {None, "urgent", "high", "normal", "low"}
READ_ONLY = {"id", "url", "created_at", "updated_at", "via", "satisfaction_rating",
             "has_incidents", "is_public", "description"}
USER_READ_ONLY = {"id", "url", "created_at", "updated_at", "last_login_at", "shared",
                  "shared_agent", "two_factor_auth_enabled", "role_type"}
ORGANIZATION_READ_ONLY = {"id", "url", "created_at", "updated_at"}
ROLES = {"end-user", "agent", "admin"}
AGENT_ID = 20978392  # the author of audits and comments made through the API
BULK_LIMIT = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Record = dict[str, Any]
Handler = Callable[[Request], Awaitable[Response]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, status_code=404)


def _invalid(details: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"error": "RecordInvalid", "description": "Record validation errors",
                         "details": details}, status_code=422)


def _bad_request(error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "description": description}, status_code=400)


def _detail(description: str, error: str) -> list[dict[str, str]]:
    return [{"description": description, "error": error}]


class Invalid(Exception):
    """A record failed validation; carries the `details` of the vendor's 422 body."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(json.dumps(details))
        self.details = details


@dataclass(frozen=True)
class Kind:
    """What the generic handlers need to know about one record type."""

    singular: str
    plural: str
    table: dict[int, Record]
    create: Callable[[Record], Record]  # called with the lock held; raises Invalid
    update: Callable[[Record, Record], None]  # likewise
    delete: Callable[[int], Record | None]  # likewise; answers the record to echo, if any
    by_external_id: bool


def _routes(path: str, endpoint: Handler, methods: list[str]) -> list[Route]:
    """Zendesk accepts every path with and without the `.json` suffix."""
    return [Route(path, endpoint, methods=methods),
            Route(path + ".json", endpoint, methods=methods)]


def _plain(html_body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_body)).strip()


class FakeZendesk:
    def __init__(self, subdomain: str = "acme", email: str = "agent@acme.test",
                 api_token: str = "zd-api-token-123") -> None:
        self.subdomain = subdomain
        self.log = RequestLog()
        # Test levers: tickets whose updates answer slowly, or fail as Zendesk does under load.
        self.slow_updates: dict[int, float] = {}
        self.failing_updates: set[int] = set()
        self._credentials = {
            "Basic " + base64.b64encode(f"{email}/token:{api_token}".encode()).decode(),
        }
        self._lock = threading.Lock()
        self._ids = itertools.count(100)
        self._audit_ids = itertools.count(9000)
        self._user_ids = itertools.count(360000)
        self._organization_ids = itertools.count(57000)
        self._comment_ids = itertools.count(700000)
        self._job_ids = itertools.count(1)
        self.tickets: dict[int, Record] = {}
        self.comments: dict[int, list[Record]] = {}
        self.users: dict[int, Record] = {}
        self.organizations: dict[int, Record] = {}
        self.job_statuses: dict[str, Record] = {}
        kinds = {
            "tickets": Kind("ticket", "tickets", self.tickets, self._create_ticket,
                            self._update_ticket_quietly, self._delete_ticket, False),
            "users": Kind("user", "users", self.users, self._create_user, self._update_user,
                          self._delete_user, True),
            "organizations": Kind("organization", "organizations", self.organizations,
                                  self._create_organization, self._update_organization,
                                  self._delete_organization, True),
        }
        routes: list[Route] = []
        for name, kind in kinds.items():
            base = f"/api/v2/{name}"
            routes += _routes(f"{base}/show_many", self._bind(self.show_many, kind), ["GET"])
            routes += _routes(f"{base}/update_many", self._bind(self.update_many, kind), ["PUT"])
            routes += _routes(f"{base}/destroy_many", self._bind(self.destroy_many, kind),
                              ["DELETE"])
            routes += _routes(f"{base}/create_many", self._bind(self.create_many, kind),
                              ["POST"])
            routes += _routes(base, self._bind(self.listing, kind), ["GET"])
        routes += _routes("/api/v2/tickets", self.create, ["POST"])
        routes += _routes("/api/v2/tickets/{ticket_id:int}", self.one, ["GET", "PUT", "DELETE"])
        routes += _routes("/api/v2/tickets/{ticket_id:int}/comments", self.ticket_comments,
                          ["GET"])
        for name in ("users", "organizations"):
            kind, base = kinds[name], f"/api/v2/{name}"
            routes += _routes(base, self._bind(self.create_record, kind), ["POST"])
            routes += _routes(f"{base}/create_or_update",
                              self._bind(self.create_or_update, kind), ["POST"])
            routes += _routes(f"{base}/{{record_id:int}}", self._bind(self.record, kind),
                              ["GET", "PUT", "DELETE"])
        routes += [
            Route("/api/v2/job_statuses/{job_id}", self.job_status, methods=["GET"]),
            *_routes("/api/v2/search", self.search, ["GET"]),
            Route("/{path:path}", self.unknown,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ]
        self.app = Starlette(routes=routes)

    # -- seeding and inspection ----------------------------------------------------------------

    def _url(self, plural: str, record_id: int | str) -> str:
        return f"https://{self.subdomain}.zendesk.com/api/v2/{plural}/{record_id}.json"

    def _ticket_defaults(self, ticket_id: int) -> Record:
        return {
            "id": ticket_id, "url": self._url("tickets", ticket_id),
            "external_id": None, "type": "question", "subject": "Printer on fire",
            "raw_subject": "Printer on fire", "description": "The printer is on fire.",
            "priority": "normal", "status": "open", "recipient": None,
            "requester_id": AGENT_ID, "submitter_id": AGENT_ID, "assignee_id": None,
            "organization_id": None, "group_id": 3, "collaborator_ids": [],
            "follower_ids": [], "email_cc_ids": [], "has_incidents": False, "is_public": True,
            "due_at": None, "tags": ["printer"], "custom_fields": [], "brand_id": 1,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": _now(), "updated_at": _now(),
        }

    def seed(self, ticket_id: int, **fields: Any) -> Record:
        """Stores a ticket as it would already exist upstream (no comments)."""
        ticket = self._ticket_defaults(ticket_id)
        ticket.update(fields)
        with self._lock:
            self.tickets[ticket_id] = ticket
            self.comments[ticket_id] = []
        return copy.deepcopy(ticket)

    def seed_comment(self, ticket_id: int, body: str, **fields: Any) -> Record:
        """Appends a comment to a seeded ticket; `fields` override the comment's defaults."""
        with self._lock:
            comment = self._comment(ticket_id, {"body": body, **fields}, next(self._audit_ids))
            comment.update({k: v for k, v in fields.items() if k not in ("body", "html_body")})
            return copy.deepcopy(comment)

    def _user_defaults(self, user_id: int) -> Record:
        return {
            "id": user_id, "url": self._url("users", user_id), "name": "Jane Doe",
            "email": f"user{user_id}@example.com", "created_at": _now(), "updated_at": _now(),
            "time_zone": "Eastern Time (US & Canada)", "iana_time_zone": "America/New_York",
            "phone": None, "shared_phone_number": None, "photo": None, "locale_id": 1,
            "locale": "en-US", "organization_id": None, "role": "end-user", "verified": True,
            "external_id": None, "tags": [], "alias": None, "active": True, "shared": False,
            "shared_agent": False, "last_login_at": None, "two_factor_auth_enabled": False,
            "signature": None, "details": None, "notes": None, "role_type": None,
            "custom_role_id": None, "moderator": False, "ticket_restriction": "requested",
            "only_private_comments": False, "restricted_agent": True, "suspended": False,
            "default_group_id": None, "report_csv": False, "user_fields": {},
        }

    def seed_user(self, user_id: int, **fields: Any) -> Record:
        """Stores an active end-user; `fields` override the defaults."""
        user = self._user_defaults(user_id)
        user.update(fields)
        with self._lock:
            self.users[user_id] = user
        return copy.deepcopy(user)

    def _organization_defaults(self, organization_id: int) -> Record:
        return {
            "id": organization_id, "url": self._url("organizations", organization_id),
            "name": f"Organization {organization_id}", "details": None, "notes": None,
            "domain_names": [], "external_id": None, "group_id": None,
            "organization_fields": {}, "shared_comments": False, "shared_tickets": False,
            "tags": [], "created_at": _now(), "updated_at": _now(),
        }

    def seed_organization(self, organization_id: int, **fields: Any) -> Record:
        """Stores an organization; `fields` override the defaults (names must stay unique)."""
        organization = self._organization_defaults(organization_id)
        organization.update(fields)
        with self._lock:
            self.organizations[organization_id] = organization
        return copy.deepcopy(organization)

    # -- plumbing ------------------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header in self._credentials or header.startswith("Bearer zd-oauth-")

    @staticmethod
    def _unauthorized() -> JSONResponse:
        return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)

    @staticmethod
    def _json(request: Request, body: bytes) -> dict[str, Any] | JSONResponse:
        if "application/json" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "Unsupported Media Type",
                                 "description": "Content-Type must be application/json"},
                                status_code=415)
        try:
            parsed = json.loads(body)
        except ValueError:
            return _bad_request("InvalidJSON", "The request body is not valid JSON")
        if not isinstance(parsed, dict):
            return _bad_request("InvalidJSON", "The request body must be a JSON object")
        return parsed

    @classmethod
    def _parse(cls, request: Request, body: bytes, key: str = "ticket") -> Record | JSONResponse:
        parsed = cls._json(request, body)
        if isinstance(parsed, JSONResponse):
            return parsed
        if not isinstance(parsed.get(key), dict):
            return _bad_request("InvalidEndpoint", f"Missing {key} parameter")
        return parsed[key]

    def _bind(self, handler: Callable[[Kind, Request], Awaitable[Response]],
              kind: Kind) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await handler(kind, request)
        return endpoint

    @staticmethod
    def _next_id(counter: Iterator[int], table: dict[int, Record]) -> int:
        while (candidate := next(counter)) in table:
            pass
        return candidate

    def _page(self, request: Request, key: str, items: list[Record]) -> Record:
        """One page holding everything, in the pagination style the client asked for."""
        if any(name.startswith("page[") for name in request.query_params):
            return {key: items, "meta": {"has_more": False, "after_cursor": None,
                                         "before_cursor": None},
                    "links": {"next": None, "prev": None}}
        return {key: items, "next_page": None, "previous_page": None, "count": len(items)}

    def _job(self, results: list[Record]) -> JSONResponse:
        """Stores a completed job status and answers it the way bulk endpoints do."""
        with self._lock:
            job_id = f"{next(self._job_ids):032x}"
            job = {"id": job_id, "url": self._url("job_statuses", job_id),
                   "total": len(results), "progress": len(results), "status": "completed",
                   "message": "Completed at "
                              + datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S +0000"),
                   "results": results}
            self.job_statuses[job_id] = copy.deepcopy(job)
        return JSONResponse({"job_status": job})

    def _selected_ids(self, kind: Kind, request: Request,
                      required: bool = True) -> list[int] | JSONResponse:
        """The records named by `ids` (or `external_ids`, where the type has them)."""
        params = request.query_params
        if params.get("ids"):
            raw = [part.strip() for part in params["ids"].split(",") if part.strip()]
            if not all(part.isdigit() for part in raw):
                return _bad_request("InvalidValue", "ids must be a list of integers")
            ids = [int(part) for part in raw]
        elif kind.by_external_id and params.get("external_ids"):
            wanted = [part.strip() for part in params["external_ids"].split(",")]
            with self._lock:
                ids = [record_id for external in wanted
                       for record_id, record in kind.table.items()
                       if str(record.get("external_id") or "").lower() == external.lower()]
        elif required:
            names = "ids or external_ids" if kind.by_external_id else "ids"
            return _bad_request("InvalidEndpoint", f"Missing {names} parameter")
        else:
            return []
        if len(ids) > BULK_LIMIT:
            return _bad_request("TooManyValues",
                                f"Too many values specified, maximum is {BULK_LIMIT}")
        return ids

    # -- tickets -------------------------------------------------------------------------------

    @staticmethod
    def _validate(fields: Record) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if "status" in fields and fields["status"] not in STATUSES:
            details["status"] = _detail(f"Status: {fields['status']} is not valid",
                                        "InvalidValue")
        if "priority" in fields and fields["priority"] not in PRIORITIES:
            details["priority"] = _detail("Priority: is not valid", "InvalidValue")
        for name in ("tags", "additional_tags", "remove_tags"):
            if name in fields and not isinstance(fields[name], list):
                details[name] = _detail("Tags: must be a list", "InvalidValue")
        comment = fields.get("comment")
        if comment is not None and not isinstance(comment, dict):
            details["comment"] = _detail("Comment: must be an object", "InvalidValue")
        return details

    def _audit(self, ticket_id: int, events: list[Record], audit_id: int) -> Record:
        return {"id": audit_id, "ticket_id": ticket_id, "created_at": _now(),
                "author_id": AGENT_ID, "events": events, "via": {"channel": "api"},
                "metadata": {"system": {}, "custom": {}}}

    def _comment(self, ticket_id: int, comment: Record, audit_id: int) -> Record:
        """Appends a comment as Zendesk stores it: body, html_body and plain_body agree."""
        if comment.get("html_body"):
            html_body = str(comment["html_body"])
            body = _plain(html_body)
        else:
            body = str(comment.get("body") or "")
            paragraphs = "<br>".join(html.escape(line) for line in body.split("\n"))
            html_body = f'<div class="zd-comment" dir="auto"><p dir="auto">{paragraphs}</p></div>'
        record = {"id": next(self._comment_ids), "type": "Comment",
                  "author_id": comment.get("author_id", AGENT_ID), "body": body,
                  "html_body": html_body, "plain_body": body,
                  "public": bool(comment.get("public", True)), "attachments": [],
                  "audit_id": audit_id, "via": {"channel": "api", "source": {
                      "from": {}, "to": {}, "rel": None}},
                  "created_at": _now(), "metadata": {"system": {}, "custom": {}}}
        self.comments.setdefault(ticket_id, []).append(record)
        return record

    def _apply(self, ticket: Record, fields: Record, audit_id: int) -> list[Record]:
        """Applies an update (lock held) and answers the audit events it caused."""
        if details := self._validate(fields):
            raise Invalid(details)
        if ticket.get("status") == "closed":
            raise Invalid({"status": _detail("Status: closed prevents ticket update",
                                             "InvalidValue")})
        fields = dict(fields)
        comment = fields.pop("comment", None)
        tags = list(fields.pop("tags", ticket.get("tags") or []))
        tags += [tag for tag in fields.pop("additional_tags", []) if tag not in tags]
        removed = set(fields.pop("remove_tags", []))
        fields["tags"] = [tag for tag in tags if tag not in removed]
        events = []
        for name, value in fields.items():
            if name in READ_ONLY:
                continue
            if ticket.get(name) != value:
                events.append({"id": next(self._audit_ids), "type": "Change",
                               "field_name": name, "value": value,
                               "previous_value": ticket.get(name)})
            ticket[name] = value
        if isinstance(comment, dict):
            events.append(self._comment(ticket["id"], comment, audit_id))
        ticket["updated_at"] = _now()
        return events

    def _create_ticket_with_events(self, fields: Record) -> tuple[Record, list[Record], int]:
        if not fields.get("comment") and not fields.get("description"):
            raise Invalid({"base": _detail("Description: cannot be blank", "BlankValue")})
        if details := self._validate(fields):
            raise Invalid(details)
        fields = dict(fields)
        comment = fields.get("comment") or {"body": fields.get("description", "")}
        fields["comment"] = comment
        ticket_id = self._next_id(self._ids, self.tickets)
        ticket = self._ticket_defaults(ticket_id)
        ticket.update(status="new", tags=[], subject=fields.get("subject", ""),
                      raw_subject=fields.get("subject", ""),
                      description=comment.get("body") or _plain(comment.get("html_body", "")))
        self.tickets[ticket_id] = ticket
        self.comments[ticket_id] = []
        audit_id = next(self._audit_ids)
        events = self._apply(ticket, fields, audit_id)
        return ticket, events, audit_id

    def _create_ticket(self, fields: Record) -> Record:
        return self._create_ticket_with_events(fields)[0]

    def _update_ticket_quietly(self, ticket: Record, fields: Record) -> None:
        self._apply(ticket, fields, next(self._audit_ids))

    def _delete_ticket(self, ticket_id: int) -> Record | None:
        del self.tickets[ticket_id]
        return None

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"error": "InvalidEndpoint", "description": "Not found"},
                            status_code=404)

    async def create(self, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        fields = self._parse(request, body)
        if isinstance(fields, JSONResponse):
            return fields
        try:
            with self._lock:
                stored, events, audit_id = self._create_ticket_with_events(fields)
                ticket = copy.deepcopy(stored)
                events = copy.deepcopy(events)
        except Invalid as exc:
            return _invalid(exc.details)
        return JSONResponse({"ticket": ticket, "audit": self._audit(ticket["id"], events,
                                                                    audit_id)},
                            status_code=201, headers={"Location": ticket["url"]})

    async def one(self, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        ticket_id = request.path_params["ticket_id"]
        with self._lock:
            exists = ticket_id in self.tickets
        if not exists:
            return _not_found()
        if request.method == "GET":
            with self._lock:
                return JSONResponse({"ticket": copy.deepcopy(self.tickets[ticket_id])})
        if request.method == "DELETE":
            with self._lock:
                self.tickets.pop(ticket_id, None)
            return Response(status_code=204)
        if ticket_id in self.slow_updates:
            await asyncio.sleep(self.slow_updates[ticket_id])
        if ticket_id in self.failing_updates:
            return JSONResponse({"error": "InternalError",
                                 "description": "Something went wrong, please try again"},
                                status_code=500)
        fields = self._parse(request, body)
        if isinstance(fields, JSONResponse):
            return fields
        try:
            with self._lock:
                stored = self.tickets[ticket_id]
                audit_id = next(self._audit_ids)
                events = copy.deepcopy(self._apply(stored, fields, audit_id))
                ticket = copy.deepcopy(stored)
        except Invalid as exc:
            return _invalid(exc.details)
        return JSONResponse({"ticket": ticket, "audit": self._audit(ticket_id, events,
                                                                    audit_id)})

    async def ticket_comments(self, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        ticket_id = request.path_params["ticket_id"]
        with self._lock:
            if ticket_id not in self.tickets:
                return _not_found()
            comments = copy.deepcopy(self.comments.get(ticket_id, []))
        if request.query_params.get("sort_order") == "desc":
            comments.reverse()
        return JSONResponse(self._page(request, "comments", comments))

    # -- users ---------------------------------------------------------------------------------

    def _user_problems(self, fields: Record, user_id: int | None) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if ("name" in fields or user_id is None) and not str(fields.get("name") or "").strip():
            details["name"] = _detail("Name: cannot be blank", "BlankValue")
        email = fields.get("email")
        if email is not None:
            if not isinstance(email, str) or not EMAIL.match(email):
                details["email"] = _detail(f"Email: {email} is not properly formatted",
                                           "InvalidFormat")
            elif any(str(other.get("email") or "").lower() == email.lower()
                     for other_id, other in self.users.items() if other_id != user_id):
                details["email"] = _detail(
                    f"Email: {email} is already being used by another user", "DuplicateValue")
        if "role" in fields and fields["role"] not in ROLES:
            details["role"] = _detail(f"Role: {fields['role']} is not valid", "InvalidValue")
        if "tags" in fields and not isinstance(fields["tags"], list):
            details["tags"] = _detail("Tags: must be a list", "InvalidValue")
        if "organization_id" in fields and fields["organization_id"] is not None \
                and fields["organization_id"] not in self.organizations:
            details["organization_id"] = _detail("Organization: is invalid", "InvalidValue")
        return details

    @staticmethod
    def _merge(record: Record, fields: Record, read_only: set[str], custom: str) -> None:
        for name, value in fields.items():
            if name in read_only:
                continue
            if name == custom and isinstance(value, dict):
                record[name] = {**(record.get(name) or {}), **value}
            else:
                record[name] = value
        record["updated_at"] = _now()

    def _create_user(self, fields: Record) -> Record:
        if details := self._user_problems(fields, None):
            raise Invalid(details)
        user_id = self._next_id(self._user_ids, self.users)
        user = self._user_defaults(user_id)
        user.update(email=None, verified=False)
        self._merge(user, fields, USER_READ_ONLY, "user_fields")
        self.users[user_id] = user
        return user

    def _update_user(self, user: Record, fields: Record) -> None:
        if details := self._user_problems(fields, user["id"]):
            raise Invalid(details)
        self._merge(user, fields, USER_READ_ONLY, "user_fields")

    def _delete_user(self, user_id: int) -> Record | None:
        """Zendesk soft-deletes users: the record stays, inactive."""
        user = self.users[user_id]
        user["active"] = False
        user["updated_at"] = _now()
        return user

    # -- organizations -------------------------------------------------------------------------

    def _organization_problems(self, fields: Record, organization_id: int | None
                               ) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if "name" in fields or organization_id is None:
            name = str(fields.get("name") or "").strip()
            if not name:
                details["name"] = _detail("Name: cannot be blank", "BlankValue")
            elif any(str(other.get("name", "")).lower() == name.lower()
                     for other_id, other in self.organizations.items()
                     if other_id != organization_id):
                details["name"] = _detail("Name: has already been taken", "DuplicateValue")
        for name in ("tags", "domain_names"):
            if name in fields and not isinstance(fields[name], list):
                details[name] = _detail(f"{name.replace('_', ' ').capitalize()}: must be a list",
                                        "InvalidValue")
        return details

    def _create_organization(self, fields: Record) -> Record:
        if details := self._organization_problems(fields, None):
            raise Invalid(details)
        organization_id = self._next_id(self._organization_ids, self.organizations)
        organization = self._organization_defaults(organization_id)
        self._merge(organization, fields, ORGANIZATION_READ_ONLY, "organization_fields")
        self.organizations[organization_id] = organization
        return organization

    def _update_organization(self, organization: Record, fields: Record) -> None:
        if details := self._organization_problems(fields, organization["id"]):
            raise Invalid(details)
        self._merge(organization, fields, ORGANIZATION_READ_ONLY, "organization_fields")

    def _delete_organization(self, organization_id: int) -> Record | None:
        del self.organizations[organization_id]
        return None

    # -- users and organizations: single records -----------------------------------------------

    async def create_record(self, kind: Kind, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        fields = self._parse(request, body, kind.singular)
        if isinstance(fields, JSONResponse):
            return fields
        try:
            with self._lock:
                record = copy.deepcopy(kind.create(fields))
        except Invalid as exc:
            return _invalid(exc.details)
        return JSONResponse({kind.singular: record}, status_code=201,
                            headers={"Location": record["url"]})

    def _match(self, kind: Kind, fields: Record) -> Record | None:
        """The record create_or_update would update: users by external_id or email,
        organizations by id or external_id (the name is not a matching criterion)."""
        external = fields.get("external_id")
        for record in kind.table.values():
            if external is not None and \
                    str(record.get("external_id") or "").lower() == str(external).lower():
                return record
        if kind.singular == "user":
            email = str(fields.get("email") or "").lower()
            return next((r for r in kind.table.values()
                         if email and str(r.get("email") or "").lower() == email), None)
        return kind.table.get(fields["id"]) if isinstance(fields.get("id"), int) else None

    async def create_or_update(self, kind: Kind, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        fields = self._parse(request, body, kind.singular)
        if isinstance(fields, JSONResponse):
            return fields
        try:
            with self._lock:
                existing = self._match(kind, fields)
                if existing is not None:
                    kind.update(existing, fields)
                    return JSONResponse({kind.singular: copy.deepcopy(existing)})
                record = copy.deepcopy(kind.create(fields))
        except Invalid as exc:
            return _invalid(exc.details)
        return JSONResponse({kind.singular: record}, status_code=201,
                            headers={"Location": record["url"]})

    async def record(self, kind: Kind, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        record_id = request.path_params["record_id"]
        with self._lock:
            exists = record_id in kind.table
        if not exists:
            return _not_found()
        if request.method == "GET":
            with self._lock:
                return JSONResponse({kind.singular: copy.deepcopy(kind.table[record_id])})
        if request.method == "DELETE":
            with self._lock:
                echoed = copy.deepcopy(kind.delete(record_id))
            if echoed is None:
                return Response(status_code=204)
            return JSONResponse({kind.singular: echoed})
        fields = self._parse(request, body, kind.singular)
        if isinstance(fields, JSONResponse):
            return fields
        try:
            with self._lock:
                stored = kind.table[record_id]
                kind.update(stored, fields)
                record = copy.deepcopy(stored)
        except Invalid as exc:
            return _invalid(exc.details)
        return JSONResponse({kind.singular: record})

    # -- every type: lists and bulk endpoints --------------------------------------------------

    async def listing(self, kind: Kind, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        with self._lock:
            records = [copy.deepcopy(kind.table[key]) for key in sorted(kind.table)]
        return JSONResponse(self._page(request, kind.plural, records))

    async def show_many(self, kind: Kind, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        ids = self._selected_ids(kind, request)
        if isinstance(ids, JSONResponse):
            return ids
        with self._lock:
            records = [copy.deepcopy(kind.table[i]) for i in ids if i in kind.table]
        return JSONResponse({kind.plural: records})

    async def update_many(self, kind: Kind, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        parsed = self._json(request, body)
        if isinstance(parsed, JSONResponse):
            return parsed
        changes: list[tuple[Any, Record]]
        if isinstance(parsed.get(kind.singular), dict):
            ids = self._selected_ids(kind, request)
            if isinstance(ids, JSONResponse):
                return ids
            changes = [(record_id, parsed[kind.singular]) for record_id in ids]
        elif isinstance(parsed.get(kind.plural), list):
            items = parsed[kind.plural]
            if len(items) > BULK_LIMIT:
                return _bad_request("TooManyValues",
                                    f"Too many values specified, maximum is {BULK_LIMIT}")
            if not all(isinstance(item, dict) for item in items):
                return _bad_request("InvalidValue", f"{kind.plural} must be a list of objects")
            changes = [(item.get("id"), {k: v for k, v in item.items() if k != "id"})
                       for item in items]
        else:
            return _bad_request("InvalidEndpoint",
                                f"Missing {kind.singular} or {kind.plural} parameter")
        results = []
        with self._lock:
            for record_id, fields in changes:
                result: Record = {"id": record_id, "action": "update"}
                if record_id not in kind.table:
                    results.append({**result, "success": False, "status": "Failed",
                                    "errors": f"{kind.singular.capitalize()} not found"})
                    continue
                try:
                    kind.update(kind.table[record_id], dict(fields))
                except Invalid as exc:
                    errors = "; ".join(item["description"] for problems in exc.details.values()
                                       for item in problems)
                    results.append({**result, "success": False, "status": "Failed",
                                    "errors": errors})
                    continue
                results.append({**result, "success": True, "status": "Updated"})
        return self._job(results)

    async def destroy_many(self, kind: Kind, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        ids = self._selected_ids(kind, request)
        if isinstance(ids, JSONResponse):
            return ids
        results = []
        with self._lock:
            for record_id in ids:
                if record_id in kind.table:
                    kind.delete(record_id)
                    results.append({"id": record_id, "action": "delete", "success": True,
                                    "status": "Deleted"})
                else:
                    results.append({"id": record_id, "action": "delete", "success": False,
                                    "status": "Failed",
                                    "errors": f"{kind.singular.capitalize()} not found"})
        return self._job(results)

    async def create_many(self, kind: Kind, request: Request) -> Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        parsed = self._json(request, body)
        if isinstance(parsed, JSONResponse):
            return parsed
        items = parsed.get(kind.plural)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return _bad_request("InvalidEndpoint", f"Missing {kind.plural} parameter")
        if len(items) > BULK_LIMIT:
            return _bad_request("TooManyValues",
                                f"Too many values specified, maximum is {BULK_LIMIT}")
        results: list[Record] = []
        with self._lock:
            for index, fields in enumerate(items):
                try:
                    results.append({"id": kind.create(dict(fields))["id"], "index": index})
                except Invalid as exc:
                    results.append({"index": index, "error": "RecordInvalid",
                                    "details": exc.details})
        return self._job(results)

    # -- job statuses and search ---------------------------------------------------------------

    async def job_status(self, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        job_id = request.path_params["job_id"].removesuffix(".json")
        with self._lock:
            job = copy.deepcopy(self.job_statuses.get(job_id))
        if job is None:
            return _not_found()
        return JSONResponse({"job_status": job})

    async def search(self, request: Request) -> Response:
        await self._record(request)
        if not self._authenticated(request):
            return self._unauthorized()
        query = request.query_params.get("query", "").strip()
        if not query:
            return _bad_request("invalid", "The query parameter is required")
        types = {"ticket", "user", "organization"}
        filters: dict[str, str] = {}
        words: list[str] = []
        for token in re.findall(r'"[^"]*"|\S+', query):
            name, colon, value = token.partition(":")
            if colon and name == "type":
                types &= {value.lower()}
            elif colon and name and value:
                filters[name.lower()] = value.strip('"').lower()
            else:
                words.append(token.strip('"'))
        text = " ".join(words).lower()

        def matches(record: Record, result_type: str) -> bool:
            for name, wanted in filters.items():
                if name in ("tags", "tag"):
                    if wanted not in [str(t).lower() for t in record.get("tags") or []]:
                        return False
                elif str(record.get(name)).lower() != wanted:
                    return False
            if not text:
                return True
            if text.isdigit() and int(text) == record["id"]:
                return True
            fields = ("subject",) if result_type == "ticket" else ("name", "email")
            return any(text in str(record.get(f) or "").lower() for f in fields)

        results = []
        with self._lock:
            for result_type, table in (("ticket", self.tickets), ("user", self.users),
                                       ("organization", self.organizations)):
                if result_type in types:
                    results += [{**copy.deepcopy(table[key]), "result_type": result_type}
                                for key in sorted(table) if matches(table[key], result_type)]
        return JSONResponse({"results": results, "facets": None, "next_page": None,
                             "previous_page": None, "count": len(results)})
