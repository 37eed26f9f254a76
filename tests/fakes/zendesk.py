"""A fake Zendesk Support API (tickets), following the documented request and response shapes.

https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/
- bodies wrap the record: {"ticket": {...}}; responses of create/update carry {"ticket", "audit"}
- `.json` suffixes are optional; authentication is Basic `{email}/token:{token}` or Bearer
- errors: 401 {"error": "Couldn't authenticate you"}, 404 {"error": "RecordNotFound", ...},
  422 {"error": "RecordInvalid", "description": "Record validation errors", "details": {...}}
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import threading
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, status_code=404)


def _invalid(details: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"error": "RecordInvalid", "description": "Record validation errors",
                         "details": details}, status_code=422)


class FakeZendesk:
    def __init__(self, subdomain: str = "acme", email: str = "agent@acme.test",
                 api_token: str = "zd-api-token-123") -> None:
        self.subdomain = subdomain
        self.log = RequestLog()
        self._credentials = {
            "Basic " + base64.b64encode(f"{email}/token:{api_token}".encode()).decode(),
        }
        self._lock = threading.Lock()
        self._ids = itertools.count(100)
        self._audit_ids = itertools.count(9000)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.app = Starlette(routes=[
            Route("/api/v2/tickets", self.create, methods=["POST"]),
            Route("/api/v2/tickets.json", self.create, methods=["POST"]),
            Route("/api/v2/tickets/{ticket_id:int}", self.one, methods=["GET", "PUT", "DELETE"]),
            Route("/api/v2/tickets/{ticket_id:int}.json", self.one,
                  methods=["GET", "PUT", "DELETE"]),
            Route("/{path:path}", self.unknown,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    def seed(self, ticket_id: int, **fields: Any) -> dict[str, Any]:
        ticket = {
            "id": ticket_id,
            "url": f"https://{self.subdomain}.zendesk.com/api/v2/tickets/{ticket_id}.json",
            "external_id": None, "type": "question", "subject": "Printer on fire",
            "raw_subject": "Printer on fire", "description": "The printer is on fire.",
            "priority": "normal", "status": "open", "recipient": None,
            "requester_id": 20978392, "submitter_id": 20978392, "assignee_id": None,
            "organization_id": None, "group_id": 3, "collaborator_ids": [],
            "follower_ids": [], "email_cc_ids": [], "has_incidents": False, "is_public": True,
            "due_at": None, "tags": ["printer"], "custom_fields": [], "brand_id": 1,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": _now(), "updated_at": _now(),
        }
        ticket.update(fields)
        with self._lock:
            self.tickets[ticket_id] = ticket
            self.comments[ticket_id] = []
        return copy.deepcopy(ticket)

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
    def _parse(request: Request, body: bytes) -> dict[str, Any] | JSONResponse:
        if "application/json" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "Unsupported Media Type",
                                 "description": "Content-Type must be application/json"},
                                status_code=415)
        try:
            parsed = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "InvalidJSON",
                                 "description": "The request body is not valid JSON"},
                                status_code=400)
        if not isinstance(parsed, dict) or not isinstance(parsed.get("ticket"), dict):
            return JSONResponse({"error": "InvalidEndpoint",
                                 "description": "Missing ticket parameter"}, status_code=400)
        return parsed["ticket"]

    @staticmethod
    def _validate(fields: dict[str, Any]) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if "status" in fields and fields["status"] not in STATUSES:
            details["status"] = [{"description": f"Status: {fields['status']} is not valid"}]
        if "priority" in fields and fields["priority"] not in PRIORITIES:
            details["priority"] = [{"description": "Priority: is not valid"}]
        if "tags" in fields and not isinstance(fields["tags"], list):
            details["tags"] = [{"description": "Tags: must be a list"}]
        return details

    def _audit(self, ticket_id: int, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": next(self._audit_ids), "ticket_id": ticket_id, "created_at": _now(),
                "author_id": 20978392, "events": events, "via": {"channel": "api"}}

    def _apply(self, ticket: dict[str, Any], fields: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        comment = fields.pop("comment", None)
        for name, value in fields.items():
            if name in READ_ONLY:
                continue
            if ticket.get(name) != value:
                events.append({"type": "Change", "field_name": name, "value": value,
                               "previous_value": ticket.get(name)})
            ticket[name] = value
        if isinstance(comment, dict):
            body = comment.get("body") or comment.get("html_body") or ""
            public = comment.get("public", True)
            self.comments[ticket["id"]].append({"body": body, "public": public})
            events.append({"type": "Comment", "body": body, "public": public})
        ticket["updated_at"] = _now()
        return events

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
        if not fields.get("comment") and not fields.get("description"):
            return _invalid({"base": [{"description": "Description: cannot be blank"}]})
        if details := self._validate(fields):
            return _invalid(details)
        ticket_id = next(self._ids)
        comment = fields.get("comment") or {}
        ticket = self.seed(ticket_id, status="new", tags=[], subject=fields.get("subject", ""),
                           description=comment.get("body", fields.get("description", "")))
        with self._lock:
            stored = self.tickets[ticket_id]
            events = self._apply(stored, dict(fields))
            ticket = copy.deepcopy(stored)
        return JSONResponse({"ticket": ticket, "audit": self._audit(ticket_id, events)},
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
                del self.tickets[ticket_id]
            return Response(status_code=204)
        fields = self._parse(request, body)
        if isinstance(fields, JSONResponse):
            return fields
        if details := self._validate(fields):
            return _invalid(details)
        with self._lock:
            stored = self.tickets[ticket_id]
            events = self._apply(stored, dict(fields))
            ticket = copy.deepcopy(stored)
        return JSONResponse({"ticket": ticket, "audit": self._audit(ticket_id, events)})
