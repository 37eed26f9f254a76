"""A fake HubSpot CRM API v3 (contacts, companies, deals, tickets) and v4 associations, following
the documented shapes.

https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/objects
- records are `{"id", "properties", "createdAt", "updatedAt", "archived"}`; property values are
  strings, unset ones come back as null; `hs_object_id`, `createdate` and the last-modified date
  are maintained by the fake
- auth is `Authorization: Bearer <private app token>`; failures answer 401 INVALID_AUTHENTICATION
- errors: `{"status": "error", "message", "correlationId", "category", ...}`; unknown or invalid
  property values answer 400 "Property values were not valid: [...]" (VALIDATION_ERROR), missing
  records 404 OBJECT_NOT_FOUND, batch reads/updates naming missing records 207 with `errors`
- v4 associations (`/crm/v4/objects/{type}/{id}/associations/...`: list, labelled create, default
  create, archive) answer as the shipped description documents them
  (connectors_schemas/descriptions/hubspot-public-api-specs.tar.gz, Associations v4); every
  association is stored once and read from both ends, each direction with its own type id
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

AUTH_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication "
                "and you can find more details at "
                "https://developers.hubspot.com/docs/methods/auth/oauth-overview")
NOT_FOUND_MESSAGE = "Object not found.  objectId are usually numeric."
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
BATCH_LIMIT = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LIFECYCLE = ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
             "customer", "evangelist", "other"]


@dataclass
class TypeSpec:
    """What HubSpot knows about one object type: its properties and which ones a GET returns."""

    name: str
    type_id: str
    label: str
    modified: str
    known: set[str]
    defaults: list[str]
    searchable: list[str]
    numeric: set[str] = field(default_factory=set)
    enums: dict[str, list[str]] = field(default_factory=dict)
    unique: set[str] = field(default_factory=set)
    create_defaults: dict[str, str] = field(default_factory=dict)

    @property
    def system(self) -> list[str]:
        return ["createdate", "hs_object_id", self.modified]


def _specs() -> dict[str, TypeSpec]:
    dates = {"createdate", "hs_object_id"}
    return {
        "contacts": TypeSpec(
            "contacts", "0-1", "CONTACT", "lastmodifieddate",
            known={"email", "firstname", "lastname", "phone", "mobilephone", "company", "website",
                   "jobtitle", "address", "city", "state", "zip", "country", "lifecyclestage",
                   "hs_lead_status", "hubspot_owner_id", "createdate", "lastmodifieddate",
                   "hs_object_id"},
            defaults=["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                      "lastname"],
            searchable=["firstname", "lastname", "email", "phone", "company"],
            numeric=dates | {"lastmodifieddate"},
            enums={"lifecyclestage": LIFECYCLE,
                   "hs_lead_status": ["NEW", "OPEN", "IN_PROGRESS", "OPEN_DEAL", "UNQUALIFIED",
                                      "ATTEMPTED_TO_CONTACT", "CONNECTED", "BAD_TIMING"]},
            unique={"email"}),
        "companies": TypeSpec(
            "companies", "0-2", "COMPANY", "hs_lastmodifieddate",
            known={"name", "domain", "industry", "phone", "website", "description", "city",
                   "state", "zip", "country", "numberofemployees", "annualrevenue",
                   "lifecyclestage", "hubspot_owner_id", "createdate", "hs_lastmodifieddate",
                   "hs_object_id"},
            defaults=["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
            searchable=["name", "domain", "website", "phone"],
            numeric=dates | {"hs_lastmodifieddate", "numberofemployees", "annualrevenue"},
            enums={"lifecyclestage": LIFECYCLE}),
        "deals": TypeSpec(
            "deals", "0-3", "DEAL", "hs_lastmodifieddate",
            known={"dealname", "amount", "dealstage", "pipeline", "closedate", "hubspot_owner_id",
                   "dealtype", "description", "createdate", "hs_lastmodifieddate",
                   "hs_object_id"},
            defaults=["amount", "closedate", "createdate", "dealname", "dealstage",
                      "hs_lastmodifieddate", "hs_object_id", "pipeline"],
            searchable=["dealname"],
            numeric=dates | {"hs_lastmodifieddate", "amount", "closedate"},
            enums={"dealstage": ["appointmentscheduled", "qualifiedtobuy",
                                 "presentationscheduled", "decisionmakerboughtin",
                                 "contractsent", "closedwon", "closedlost"],
                   "dealtype": ["newbusiness", "existingbusiness"]},
            create_defaults={"pipeline": "default"}),
        "tickets": TypeSpec(
            "tickets", "0-5", "TICKET", "hs_lastmodifieddate",
            known={"subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority",
                   "hs_ticket_category", "hubspot_owner_id", "source_type", "createdate",
                   "hs_lastmodifieddate", "hs_object_id"},
            defaults=["content", "createdate", "hs_lastmodifieddate", "hs_object_id",
                      "hs_pipeline", "hs_pipeline_stage", "hs_ticket_category",
                      "hs_ticket_priority", "subject"],
            searchable=["subject", "content"],
            numeric=dates | {"hs_lastmodifieddate"},
            enums={"hs_ticket_priority": ["LOW", "MEDIUM", "HIGH", "URGENT"]},
            create_defaults={"hs_pipeline": "0"}),
    }


# HUBSPOT_DEFINED association types: (from, to) -> {typeId: (label, the reverse typeId)}; the
# unlabeled type of a pair is its default
ASSOCIATION_TYPES: dict[tuple[str, str], dict[int, tuple[str | None, int]]] = {
    ("contacts", "companies"): {279: (None, 280), 1: ("Primary", 2)},
    ("companies", "contacts"): {280: (None, 279), 2: ("Primary", 1)},
    ("deals", "contacts"): {3: (None, 4)},
    ("contacts", "deals"): {4: (None, 3)},
    ("deals", "companies"): {341: (None, 342), 5: ("Primary", 6)},
    ("companies", "deals"): {342: (None, 341), 6: ("Primary", 5)},
    ("tickets", "contacts"): {16: (None, 15)},
    ("contacts", "tickets"): {15: (None, 16)},
    ("tickets", "companies"): {339: (None, 340), 26: ("Primary", 25)},
    ("companies", "tickets"): {340: (None, 339), 25: ("Primary", 26)},
    ("deals", "tickets"): {27: (None, 28)},
    ("tickets", "deals"): {28: (None, 27)},
}
CATEGORIES = {"HUBSPOT_DEFINED", "INTEGRATOR_DEFINED", "USER_DEFINED", "WORK"}

SEED_DEFAULTS: dict[str, dict[str, str]] = {
    "contacts": {"firstname": "Ada", "lastname": "Lovelace", "lifecyclestage": "lead"},
    "companies": {"name": "Acme Corp", "domain": "acme.example.com",
                  "industry": "COMPUTER_SOFTWARE"},
    "deals": {"dealname": "Acme renewal", "amount": "1000", "dealstage": "appointmentscheduled",
              "pipeline": "default"},
    "tickets": {"subject": "Printer on fire", "content": "The printer is on fire.",
                "hs_pipeline": "0", "hs_pipeline_stage": "1", "hs_ticket_priority": "MEDIUM"},
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str, category: str | None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"status": "error", "message": message,
                            "correlationId": str(uuid.uuid4())}
    body.update(extra)
    if category is not None:
        body["category"] = category
    return JSONResponse(body, status_code=status)


def _not_found(object_id: str) -> JSONResponse:
    return _error(404, NOT_FOUND_MESSAGE, "OBJECT_NOT_FOUND", context={"id": [object_id]})


def _bad_input(detail: str) -> JSONResponse:
    """HubSpot's answer to bodies its JSON binder rejects."""
    return _error(400, f"Invalid input JSON on line 1, column 1: {detail}", "VALIDATION_ERROR")


BatchResult = tuple[int, list[dict[str, Any]], list[dict[str, Any]]] | Response


class Invalid(Exception):
    """Property validation failures, carried up to the request handler."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__("invalid properties")
        self.problems = problems


class Conflict(Exception):
    """A contact write would duplicate another contact's email."""

    def __init__(self, existing_id: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


def _as_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _number(value: str | None) -> float | None:
    """Numbers and dates compare as numbers (dates as epoch milliseconds), as HubSpot does."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp() * 1000


def _tokens(text: str) -> set[str]:
    text = text.lower()
    return set(text.split()) | set(re.split(r"[^0-9a-z]+", text)) - {""}


def _query_list(request: Request, name: str) -> list[str] | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


class FakeHubSpot:
    def __init__(self, token: str = "pat-na1-fake-token", host: str = "api.hubapi.com",
                 portal_id: int = 1234567) -> None:
        self.host = host
        self.portal_id = portal_id
        self.log = RequestLog()
        self._token = token
        self._lock = threading.Lock()
        self._ids = itertools.count(101)
        self.specs = _specs()
        self._aliases: dict[str, str] = {}
        singular = {"contacts": "contact", "companies": "company", "deals": "deal",
                    "tickets": "ticket"}
        for name, spec in self.specs.items():
            for alias in (name, singular[name], spec.type_id):
                self._aliases[alias] = name
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.specs}
        self.associations: list[dict[str, Any]] = []
        self._history: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
        base = "/crm/v3/objects/{object_type}"
        v4 = "/crm/v4/objects/{object_type}/{object_id}/associations"
        self.app = Starlette(routes=[
            Route(v4 + "/default/{to_object_type}/{to_object_id}", self.associate_default,
                  methods=["PUT"]),
            Route(v4 + "/{to_object_type}", self.associations_of, methods=["GET"]),
            Route(v4 + "/{to_object_type}/{to_object_id}", self.association,
                  methods=["PUT", "DELETE"]),
            Route(base, self.collection, methods=["GET", "POST"]),
            Route(base + "/search", self.search, methods=["POST"]),
            Route(base + "/batch/{action}", self.batch, methods=["POST"]),
            Route(base + "/{object_id}", self.one, methods=["GET", "PATCH", "DELETE"]),
            Route("/{path:path}", self.unknown,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    # -- inspection and seeding -------------------------------------------------------------

    def add_property(self, object_type: str, name: str) -> None:
        """Defines a custom property, as a portal admin would in Settings > Properties."""
        with self._lock:
            self.specs[self._aliases[object_type.lower()]].known.add(name)

    def seed(self, object_type: str, **properties: Any) -> str:
        """Stores a record with realistic defaults (overridable), bypassing validation."""
        kind = self._aliases[object_type.lower()]
        with self._lock:
            object_id = str(next(self._ids))
            values = dict(SEED_DEFAULTS[kind])
            if kind == "contacts":
                values["email"] = f"ada.lovelace{object_id}@example.com"
            values.update({k: _as_value(v) for k, v in properties.items()})
            self._store(kind, object_id, values)
        return object_id

    def seed_association(self, from_type: str, from_id: str, to_type: str, to_id: str,
                         type_ids: list[int] | None = None) -> None:
        """Associates two stored records (the pair's default, unlabeled type if none given)."""
        kind, to_kind = self._aliases[from_type.lower()], self._aliases[to_type.lower()]
        types = type_ids or [self._default_type(kind, to_kind)]
        with self._lock:
            for type_id in types:
                self._associate(kind, from_id, to_kind, to_id,
                                {"associationCategory": "HUBSPOT_DEFINED",
                                 "associationTypeId": type_id})

    def associated(self, from_type: str, from_id: str, to_type: str) -> dict[str, list[int]]:
        """The records of `to_type` associated with one record: to id -> type ids, from its end."""
        kind, to_kind = self._aliases[from_type.lower()], self._aliases[to_type.lower()]
        with self._lock:
            return {to_id: [t["typeId"] for t in types]
                    for to_id, types in self._associations_from(kind, from_id, to_kind).items()}

    def get(self, object_type: str, object_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.objects[self._aliases[object_type.lower()]][object_id])

    # -- storage (callers hold the lock) ----------------------------------------------------

    def _store(self, kind: str, object_id: str, values: dict[str, str]) -> dict[str, Any]:
        spec = self.specs[kind]
        now = _now()
        props = dict(values)
        props.setdefault("createdate", now)
        props["hs_object_id"] = object_id
        props[spec.modified] = now
        record = {"id": object_id, "properties": props, "createdAt": props["createdate"],
                  "updatedAt": now, "archived": False}
        self.objects[kind][object_id] = record
        self._history[(kind, object_id)] = {}
        self._remember(kind, object_id, props, now)
        return record

    def _remember(self, kind: str, object_id: str, values: dict[str, str], now: str) -> None:
        history = self._history.setdefault((kind, object_id), {})
        for name, value in values.items():
            history.setdefault(name, []).insert(
                0, {"value": value, "timestamp": now, "sourceType": "API", "sourceId": None})

    def _update(self, kind: str, record: dict[str, Any], values: dict[str, str]) -> None:
        now = _now()
        record["properties"].update(values)
        record["properties"][self.specs[kind].modified] = now
        record["updatedAt"] = now
        self._remember(kind, record["id"], values, now)

    def _find(self, kind: str, object_id: str, id_property: str | None,
              archived: bool = False) -> dict[str, Any] | None:
        records = self.objects[kind]
        if not id_property or id_property == "hs_object_id":
            record = records.get(object_id)
            return record if record is not None and record["archived"] == archived else None
        wanted = object_id.lower()
        for record in records.values():
            value = record["properties"].get(id_property)
            if record["archived"] == archived and value and value.lower() == wanted:
                return record
        return None

    def _render(self, kind: str, record: dict[str, Any], names: list[str] | None,
                with_history: list[str] | None = None) -> dict[str, Any]:
        """Shapes a stored record; `names=None` means the type's default properties."""
        spec = self.specs[kind]
        if names is None:
            names = spec.defaults
        else:
            names = list(dict.fromkeys(spec.system + [n for n in names if n in spec.known]))
        props = record["properties"]
        out: dict[str, Any] = {"id": record["id"],
                               "properties": {n: props.get(n) for n in sorted(names)},
                               "createdAt": record["createdAt"], "updatedAt": record["updatedAt"],
                               "archived": record["archived"]}
        if record["archived"]:
            out["archivedAt"] = record.get("archivedAt")
        if with_history:
            history = self._history.get((kind, record["id"]), {})
            out["propertiesWithHistory"] = {
                n: copy.deepcopy(history.get(n, [])) for n in with_history if n in spec.known}
        return out

    def _written(self, kind: str, record: dict[str, Any], names: list[str]) -> dict[str, Any]:
        """Create and update responses echo the written properties plus the system ones."""
        return self._render(kind, record, list(names))

    def _validate(self, kind: str, raw: Any, exclude: str | None = None) -> dict[str, str]:
        """Checks names and values the way HubSpot's property validation does; raises Invalid."""
        spec = self.specs[kind]
        if not isinstance(raw, dict):
            raise Invalid([])
        problems: list[dict[str, Any]] = []
        values: dict[str, str] = {}

        def invalid(name: str, error: str, message: str) -> None:
            problems.append({"isValid": False, "message": message, "error": error, "name": name,
                             "localizedErrorMessage": message, "portalId": self.portal_id})

        for name, raw_value in raw.items():
            value = _as_value(raw_value)
            if name not in spec.known:
                invalid(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
            elif name in ("hs_object_id", spec.modified):
                invalid(name, "READ_ONLY_VALUE",
                        f'"{name}" is a read only property; its value cannot be set.')
            elif value == "":
                values[name] = value
            elif name in spec.enums and value not in spec.enums[name]:
                invalid(name, "INVALID_OPTION", f"{value} was not one of the allowed options: "
                        f"[{', '.join(spec.enums[name])}]")
            elif name == "email" and not EMAIL.match(value):
                invalid(name, "INVALID_EMAIL", f"Email address {value} is invalid")
            elif name in spec.numeric and name != "hs_object_id" and _number(value) is None:
                invalid(name, "INVALID_FLOAT" if name not in ("createdate", "closedate")
                        else "INVALID_DATE", f"{value} was not a valid number.")
            else:
                values[name] = value
        if problems:
            raise Invalid(problems)
        if kind == "contacts" and values.get("email"):
            values["email"] = values["email"].lower()
            clash = self._find(kind, values["email"], "email")
            if clash is not None and clash["id"] != exclude:
                raise Conflict(clash["id"])
        return values

    @staticmethod
    def _invalid_response(problems: list[dict[str, Any]]) -> JSONResponse:
        compact = json.dumps(problems, separators=(",", ":"))
        errors = [{"message": p["message"], "code": p["error"],
                   "context": {"propertyName": [p["name"]]}} for p in problems]
        return _error(400, f"Property values were not valid: {compact}", "VALIDATION_ERROR",
                      errors=errors)

    @staticmethod
    def _conflict_response(existing_id: str) -> JSONResponse:
        return _error(409, f"Contact already exists. Existing ID: {existing_id}", "CONFLICT")

    # -- request plumbing --------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _authenticated(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self._token}"

    async def _prelude(self, request: Request) -> tuple[bytes, str] | Response:
        """Records, authenticates and resolves the object type of every object-API request."""
        body = await self._record(request)
        if not self._authenticated(request):
            return _error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        raw_type = request.path_params["object_type"]
        kind = self._aliases.get(raw_type.lower())
        if kind is None:
            return _error(400, f"Unable to infer object type from: {raw_type}", None)
        return body, kind

    @staticmethod
    def _parse(request: Request, body: bytes, required: list[str],
               model: str) -> dict[str, Any] | JSONResponse:
        if "application/json" not in request.headers.get("content-type", ""):
            return _error(415, "HTTP 415 Unsupported Media Type", None)
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            line, column = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
            return _error(400, f"Invalid input JSON on line {line}, column {column}: {exc}",
                          "VALIDATION_ERROR")
        if not isinstance(parsed, dict):
            return _bad_input(f"Cannot deserialize value of type `{model}` from "
                              f"{type(parsed).__name__} value")
        missing = [name for name in required if parsed.get(name) is None]
        if missing:
            return _bad_input(f"Cannot build {model}, some of required attributes are not set "
                              f"[{', '.join(missing)}]")
        if "properties" in required and model.startswith("SimplePublic") and not isinstance(
                parsed["properties"], dict):
            return _bad_input("Cannot deserialize value of type `java.util.HashMap` from "
                              "non-object value (property `properties`)")
        return parsed

    def _archived_param(self, request: Request) -> bool:
        return request.query_params.get("archived", "false").lower() == "true"

    # -- handlers -----------------------------------------------------------------------------

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return _error(404, f"No route found for {request.method} {request.url.path}", None)

    async def collection(self, request: Request) -> Response:
        prelude = await self._prelude(request)
        if isinstance(prelude, Response):
            return prelude
        body, kind = prelude
        if request.method == "GET":
            return self._list(request, kind)
        parsed = self._parse(request, body, ["properties"], "SimplePublicObjectInputForCreate")
        if isinstance(parsed, Response):
            return parsed
        associations = parsed.get("associations") or []
        if not isinstance(associations, list):
            return _bad_input("Cannot deserialize `associations` from non-array value")
        with self._lock:
            try:
                values = self._validate(kind, parsed["properties"])
            except Invalid as exc:
                return self._invalid_response(exc.problems)
            except Conflict as exc:
                return self._conflict_response(exc.existing_id)
            record = self._create(kind, values, associations)
            out = self._written(kind, record, list(record["properties"]))
        return JSONResponse(out, status_code=201)

    def _create(self, kind: str, values: dict[str, str],
                associations: list[Any]) -> dict[str, Any]:
        spec = self.specs[kind]
        object_id = str(next(self._ids))
        full = {**spec.create_defaults, **{k: v for k, v in values.items() if v != ""}}
        record = self._store(kind, object_id, full)
        for association in associations:
            self.associations.append({"fromObjectType": kind, "fromObjectId": object_id,
                                      **copy.deepcopy(association)})
        return record

    def _list(self, request: Request, kind: str) -> Response:
        try:
            limit = min(int(request.query_params.get("limit", "10")), 100)
            after = int(request.query_params.get("after", "0") or "0")
        except ValueError:
            return _error(400, "Invalid input: limit and after must be numeric",
                          "VALIDATION_ERROR")
        archived = self._archived_param(request)
        names = _query_list(request, "properties")
        history = _query_list(request, "propertiesWithHistory")
        with self._lock:
            records = sorted((r for r in self.objects[kind].values()
                              if r["archived"] == archived and int(r["id"]) >= after),
                             key=lambda r: int(r["id"]))
            page = [self._render(kind, r, names, history) for r in records[:limit]]
        out: dict[str, Any] = {"results": page}
        if len(records) > limit:
            next_after = records[limit]["id"]
            query = dict(request.query_params)
            query["after"] = next_after
            out["paging"] = {"next": {
                "after": next_after,
                "link": f"https://{self.host}/crm/v3/objects/{kind}?{urlencode(query)}"}}
        return JSONResponse(out)

    async def one(self, request: Request) -> Response:
        prelude = await self._prelude(request)
        if isinstance(prelude, Response):
            return prelude
        body, kind = prelude
        object_id = request.path_params["object_id"]
        id_property = request.query_params.get("idProperty")
        spec = self.specs[kind]
        if id_property and id_property not in spec.unique | {"hs_object_id"}:
            return _error(400, f"Property {id_property} is not a unique identifier property",
                          "VALIDATION_ERROR")
        if request.method == "GET":
            archived = self._archived_param(request)
            with self._lock:
                record = self._find(kind, object_id, id_property, archived)
                if record is None:
                    return _not_found(object_id)
                return JSONResponse(self._render(kind, record, _query_list(request, "properties"),
                                                 _query_list(request, "propertiesWithHistory")))
        if request.method == "DELETE":
            with self._lock:
                record = self._find(kind, object_id, None)
                if record is None:
                    return _not_found(object_id)
                record["archived"] = True
                record["archivedAt"] = _now()
            return Response(status_code=204)
        parsed = self._parse(request, body, ["properties"], "SimplePublicObjectInput")
        if isinstance(parsed, Response):
            return parsed
        with self._lock:
            record = self._find(kind, object_id, id_property)
            if record is None:
                return _not_found(object_id)
            try:
                values = self._validate(kind, parsed["properties"], exclude=record["id"])
            except Invalid as exc:
                return self._invalid_response(exc.problems)
            except Conflict as exc:
                return self._conflict_response(exc.existing_id)
            self._update(kind, record, values)
            return JSONResponse(self._written(kind, record, list(values)))

    # -- v4 associations (callers of the helpers hold the lock) --------------------------------

    @staticmethod
    def _default_type(kind: str, to_kind: str) -> int:
        return next(t for t, (label, _) in ASSOCIATION_TYPES[(kind, to_kind)].items()
                    if label is None)

    def _associate(self, kind: str, object_id: str, to_kind: str, to_id: str,
                   spec: dict[str, Any]) -> None:
        """Stores one association (one direction's type; the other end reads the reverse)."""
        for existing in self.associations:
            if (existing.get("fromObjectType") == kind and existing["fromObjectId"] == object_id
                    and existing.get("toObjectType") == to_kind
                    and existing["to"]["id"] == to_id and existing["types"] == [spec]):
                return
        self.associations.append({"fromObjectType": kind, "fromObjectId": object_id,
                                  "toObjectType": to_kind, "to": {"id": to_id},
                                  "types": [copy.deepcopy(spec)]})

    def _to_kind(self, association: dict[str, Any]) -> str | None:
        """The far end's type: stored for v4 writes, else known from a HubSpot-defined type."""
        if association.get("toObjectType"):
            return association["toObjectType"]
        type_id = association["types"][0].get("associationTypeId") if association.get(
            "types") else None
        for (kind, to_kind), types in ASSOCIATION_TYPES.items():
            if kind == association["fromObjectType"] and type_id in types:
                return to_kind
        return None

    def _associations_from(self, kind: str, object_id: str,
                           to_kind: str) -> dict[str, list[dict[str, Any]]]:
        """to id -> [AssociationSpecWithLabel], as seen from (kind, object_id)."""
        found: dict[str, list[dict[str, Any]]] = {}

        def add(to_id: str, category: str, type_id: int, label: str | None) -> None:
            spec: dict[str, Any] = {"category": category, "typeId": type_id}
            if label is not None:
                spec["label"] = label
            if spec not in found.setdefault(to_id, []):
                found[to_id].append(spec)

        for association in self.associations:
            far = self._to_kind(association)
            for spec in association.get("types") or []:
                type_id = spec.get("associationTypeId")
                category = spec.get("associationCategory", "HUBSPOT_DEFINED")
                if (association["fromObjectType"] == kind
                        and association["fromObjectId"] == object_id and far == to_kind):
                    label = ASSOCIATION_TYPES.get((kind, to_kind), {}).get(type_id, (None,))[0]
                    add(association["to"]["id"], category, type_id, label)
                elif (far == kind and association["to"]["id"] == object_id
                      and association["fromObjectType"] == to_kind):
                    known = ASSOCIATION_TYPES.get((to_kind, kind), {}).get(type_id)
                    if known is not None:
                        reverse = known[1]
                        label = ASSOCIATION_TYPES[(kind, to_kind)][reverse][0]
                        add(association["fromObjectId"], category, reverse, label)
        return found

    async def _v4_prelude(self, request: Request) -> tuple[bytes, str, str] | Response:
        body = await self._record(request)
        if not self._authenticated(request):
            return _error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")
        kinds = []
        for name in ("object_type", "to_object_type"):
            raw = request.path_params[name]
            kind = self._aliases.get(raw.lower())
            if kind is None:
                return _error(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
            kinds.append(kind)
        return body, kinds[0], kinds[1]

    def _missing_record(self, kind: str, object_id: str) -> Response | None:
        record = self.objects[kind].get(object_id)
        if record is None or record["archived"]:
            return _error(404, f"No {self.specs[kind].label.lower()} with ID {object_id} "
                          "exists", "OBJECT_NOT_FOUND", context={"id": [object_id]})
        return None

    def _pair(self, kind: str, object_id: str, to_kind: str, to_id: str) -> dict[str, Any]:
        """LabelsBetweenObjectPair, as answered by a labelled create."""
        types = self._associations_from(kind, object_id, to_kind).get(to_id, [])
        return {"fromObjectTypeId": self.specs[kind].type_id, "fromObjectId": object_id,
                "toObjectTypeId": self.specs[to_kind].type_id, "toObjectId": to_id,
                "labels": [t["label"] for t in types if t.get("label")]}

    async def associations_of(self, request: Request) -> Response:
        prelude = await self._v4_prelude(request)
        if isinstance(prelude, Response):
            return prelude
        _, kind, to_kind = prelude
        object_id = request.path_params["object_id"]
        try:
            limit = min(int(request.query_params.get("limit", "500")), 500)
            after = int(request.query_params.get("after", "0") or "0")
        except ValueError:
            return _error(400, "Invalid input: limit and after must be numeric",
                          "VALIDATION_ERROR")
        with self._lock:
            if (missing := self._missing_record(kind, object_id)) is not None:
                return missing
            found = self._associations_from(kind, object_id, to_kind)
        ordered = sorted(found.items(), key=lambda item: int(item[0]))
        page = [{"toObjectId": to_id, "associationTypes": types}
                for to_id, types in ordered[after:after + limit]]
        out: dict[str, Any] = {"results": page}
        if after + limit < len(ordered):
            out["paging"] = {"next": {
                "after": str(after + limit),
                "link": f"https://{self.host}{request.url.path}?after={after + limit}"}}
        return JSONResponse(out)

    async def association(self, request: Request) -> Response:
        prelude = await self._v4_prelude(request)
        if isinstance(prelude, Response):
            return prelude
        body, kind, to_kind = prelude
        object_id = request.path_params["object_id"]
        to_id = request.path_params["to_object_id"]
        if request.method == "DELETE":
            with self._lock:
                self.associations = [
                    a for a in self.associations if not (
                        (a["fromObjectType"] == kind and a["fromObjectId"] == object_id
                         and self._to_kind(a) == to_kind and a["to"]["id"] == to_id)
                        or (a["fromObjectType"] == to_kind and a["fromObjectId"] == to_id
                            and self._to_kind(a) == kind and a["to"]["id"] == object_id))]
            return Response(status_code=204)
        if "application/json" not in request.headers.get("content-type", ""):
            return _error(415, "HTTP 415 Unsupported Media Type", None)
        try:
            specs = json.loads(body)
        except ValueError as exc:
            return _error(400, f"Invalid input JSON on line 1, column 1: {exc}",
                          "VALIDATION_ERROR")
        if not isinstance(specs, list) or not specs:
            return _bad_input("Cannot deserialize value of type `java.util.ArrayList<com."
                              "hubspot.crm.associations.v4.AssociationSpec>` from the body")
        for spec in specs:
            missing = [n for n in ("associationCategory", "associationTypeId")
                       if not isinstance(spec, dict) or spec.get(n) is None]
            if missing:
                return _bad_input("Cannot build AssociationSpec, some of required attributes "
                                  f"are not set [{', '.join(missing)}]")
            if spec["associationCategory"] not in CATEGORIES or not isinstance(
                    spec["associationTypeId"], int):
                return _bad_input("Cannot deserialize value of type `AssociationCategory` "
                                  f"from String \"{spec['associationCategory']}\"")
        with self._lock:
            for ref_kind, ref_id in ((kind, object_id), (to_kind, to_id)):
                if (missing_record := self._missing_record(ref_kind, ref_id)) is not None:
                    return missing_record
            known = ASSOCIATION_TYPES.get((kind, to_kind), {})
            for spec in specs:
                if (spec["associationCategory"] == "HUBSPOT_DEFINED"
                        and spec["associationTypeId"] not in known):
                    return _error(400, f"{spec['associationTypeId']} is not a valid "
                                  f"association type between {kind} and {to_kind}",
                                  "VALIDATION_ERROR")
            for spec in specs:
                self._associate(kind, object_id, to_kind, to_id, spec)
            out = self._pair(kind, object_id, to_kind, to_id)
        location = f"https://{self.host}/crm/v4/objects/{kind}/{object_id}/associations/{to_kind}"
        return JSONResponse(out, status_code=201, headers={"Location": location})

    async def associate_default(self, request: Request) -> Response:
        prelude = await self._v4_prelude(request)
        if isinstance(prelude, Response):
            return prelude
        _, kind, to_kind = prelude
        object_id = request.path_params["object_id"]
        to_id = request.path_params["to_object_id"]
        started = _now()
        with self._lock:
            for ref_kind, ref_id in ((kind, object_id), (to_kind, to_id)):
                if (missing_record := self._missing_record(ref_kind, ref_id)) is not None:
                    return missing_record
            spec = {"associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": self._default_type(kind, to_kind)}
            self._associate(kind, object_id, to_kind, to_id, spec)
            reverse = {"associationCategory": "HUBSPOT_DEFINED",
                       "associationTypeId": self._default_type(to_kind, kind)}
        results = [{"from": {"id": object_id}, "to": {"id": to_id}, "associationSpec": spec},
                   {"from": {"id": to_id}, "to": {"id": object_id}, "associationSpec": reverse}]
        return JSONResponse({"status": "COMPLETE", "results": results, "startedAt": started,
                             "completedAt": _now()})

    # -- batch --------------------------------------------------------------------------------

    async def batch(self, request: Request) -> Response:
        prelude = await self._prelude(request)
        if isinstance(prelude, Response):
            return prelude
        body, kind = prelude
        action = request.path_params["action"]
        handlers = {"create": self._batch_create, "update": self._batch_update,
                    "upsert": self._batch_upsert, "archive": self._batch_archive,
                    "read": self._batch_read}
        if action not in handlers:
            return _error(404, f"No route found for POST {request.url.path}", None)
        required = ["inputs"] + (["properties", "propertiesWithHistory"] if action == "read"
                                 else [])
        model = {"create": "BatchInputSimplePublicObjectInputForCreate",
                 "update": "BatchInputSimplePublicObjectBatchInput",
                 "upsert": "BatchInputSimplePublicObjectBatchInputUpsert",
                 "archive": "BatchInputSimplePublicObjectId",
                 "read": "BatchReadInputSimplePublicObjectId"}[action]
        parsed = self._parse(request, body, required, model)
        if isinstance(parsed, Response):
            return parsed
        inputs = parsed["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            return _bad_input(f"Cannot build {model}: `inputs` must be an array of objects")
        if len(inputs) > BATCH_LIMIT:
            return _error(400, f"Too many inputs: {len(inputs)}. The limit is {BATCH_LIMIT}.",
                          "VALIDATION_ERROR")
        key = "properties" if action in ("create", "update", "upsert") else "id"
        lacking = [n for n, i in enumerate(inputs) if i.get(key) is None
                   or (key == "properties" and not isinstance(i[key], dict))]
        if lacking:
            return _bad_input(f"Cannot build {model}, some of required attributes are not set "
                              f"[inputs[{lacking[0]}].{key}]")
        with self._lock:
            started = _now()
            result = handlers[action](request, kind, parsed, inputs)
            if isinstance(result, Response):
                return result
            status, results, errors = result
            if status == 204:
                return Response(status_code=204)
            out: dict[str, Any] = {"status": "COMPLETE", "results": results}
            if errors:
                out["numErrors"] = len(errors)
                out["errors"] = errors
                status = 207
            out.update({"startedAt": started, "completedAt": _now()})
        return JSONResponse(out, status_code=status)

    def _missing(self, kind: str, ids: list[str]) -> dict[str, Any]:
        return {"status": "error", "category": "OBJECT_NOT_FOUND",
                "message": f"Could not get some {self.specs[kind].label} objects, they may be "
                           "deleted or not exist. Check that ids are valid.",
                "context": {"ids": ids}}

    def _batch_create(self, request: Request, kind: str, parsed: dict[str, Any],
                      inputs: list[dict[str, Any]]) -> BatchResult:
        traced = all(i.get("objectWriteTraceId") for i in inputs)
        accepted: list[tuple[dict[str, Any], dict[str, str]]] = []
        errors: list[dict[str, Any]] = []
        emails: set[str] = set()
        for item in inputs:
            try:
                values = self._validate(kind, item["properties"])
                if values.get("email") in emails:
                    raise Conflict("")
            except Invalid as exc:
                if not traced:
                    return self._invalid_response(exc.problems)
                errors.append(self._trace_error(item, exc.problems))
                continue
            except Conflict as exc:
                if not traced:
                    return self._conflict_response(exc.existing_id)
                errors.append({"status": "error", "category": "CONFLICT",
                               "message": f"Contact already exists. Existing ID: "
                                          f"{exc.existing_id}",
                               "context": {"objectWriteTraceId": [item["objectWriteTraceId"]]}})
                continue
            if values.get("email"):
                emails.add(values["email"])
            accepted.append((item, values))
        results = []
        for item, values in accepted:
            record = self._create(kind, values, item.get("associations") or [])
            out = self._written(kind, record, list(record["properties"]))
            if item.get("objectWriteTraceId"):
                out["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(out)
        return 201, results, errors

    def _trace_error(self, item: dict[str, Any], problems: list[dict[str, Any]]) -> dict[str, Any]:
        compact = json.dumps(problems, separators=(",", ":"))
        return {"status": "error", "category": "VALIDATION_ERROR",
                "message": f"Property values were not valid: {compact}",
                "context": {"objectWriteTraceId": [item["objectWriteTraceId"]]},
                "errors": [{"message": p["message"], "code": p["error"],
                            "context": {"propertyName": [p["name"]]}} for p in problems]}

    def _batch_update(self, request: Request, kind: str, parsed: dict[str, Any],
                      inputs: list[dict[str, Any]]) -> BatchResult:
        ids = [str(i["id"]) for i in inputs]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            return _error(400, f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. "
                               "IDs must be unique", "VALIDATION_ERROR")
        planned: list[tuple[dict[str, Any], dict[str, str], dict[str, Any]]] = []
        missing: list[str] = []
        for item, object_id in zip(inputs, ids, strict=True):
            id_property = item.get("idProperty")
            if id_property and id_property not in self.specs[kind].unique | {"hs_object_id"}:
                return _error(400, f"Property {id_property} is not a unique identifier property",
                              "VALIDATION_ERROR")
            record = self._find(kind, object_id, id_property)
            if record is None:
                missing.append(object_id)
                continue
            try:
                values = self._validate(kind, item["properties"], exclude=record["id"])
            except Invalid as exc:
                return self._invalid_response(exc.problems)
            except Conflict as exc:
                return self._conflict_response(exc.existing_id)
            planned.append((item, values, record))
        results = []
        for item, values, record in planned:
            self._update(kind, record, values)
            out = self._written(kind, record, list(values))
            if item.get("objectWriteTraceId"):
                out["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(out)
        return 200, results, [self._missing(kind, missing)] if missing else []

    def _batch_upsert(self, request: Request, kind: str, parsed: dict[str, Any],
                      inputs: list[dict[str, Any]]) -> BatchResult:
        spec = self.specs[kind]
        planned: list[tuple[dict[str, str], dict[str, Any] | None, str, str]] = []
        for item in inputs:
            id_property = item.get("idProperty") or request.query_params.get("idProperty")
            if not id_property or id_property not in spec.unique:
                return _error(400, f"Property {id_property} is not a unique identifier property "
                                   f"for {spec.label} objects", "VALIDATION_ERROR")
            object_id = str(item["id"])
            record = self._find(kind, object_id, id_property)
            try:
                values = self._validate(kind, {**item["properties"], id_property: object_id},
                                        exclude=record["id"] if record else None)
            except Invalid as exc:
                return self._invalid_response(exc.problems)
            except Conflict as exc:
                return self._conflict_response(exc.existing_id)
            planned.append((values, record, id_property, object_id))
        results = []
        for values, record, id_property, object_id in planned:
            # an earlier input in this batch may have created the record
            record = record or self._find(kind, object_id, id_property)
            if record is None:
                record = self._create(kind, values, [])
                out = self._written(kind, record, list(record["properties"]))
                out["new"] = True
            else:
                self._update(kind, record, values)
                out = self._written(kind, record, list(values))
                out["new"] = False
            results.append(out)
        return 200, results, []

    def _batch_archive(self, request: Request, kind: str, parsed: dict[str, Any],
                       inputs: list[dict[str, Any]]) -> BatchResult:
        now = _now()
        for item in inputs:
            record = self._find(kind, str(item["id"]), None)
            if record is not None:
                record["archived"] = True
                record["archivedAt"] = now
        return 204, [], []

    def _batch_read(self, request: Request, kind: str, parsed: dict[str, Any],
                    inputs: list[dict[str, Any]]) -> BatchResult:
        id_property = parsed.get("idProperty")
        if id_property and id_property not in self.specs[kind].unique | {"hs_object_id"}:
            return _error(400, f"Property {id_property} is not a unique identifier property",
                          "VALIDATION_ERROR")
        archived = self._archived_param(request)
        results, missing = [], []
        for item in inputs:
            record = self._find(kind, str(item["id"]), id_property, archived)
            if record is None:
                missing.append(str(item["id"]))
                continue
            results.append(self._render(kind, record, list(parsed["properties"]),
                                        list(parsed["propertiesWithHistory"])))
        return 200, results, [self._missing(kind, missing)] if missing else []

    # -- search -------------------------------------------------------------------------------

    async def search(self, request: Request) -> Response:
        prelude = await self._prelude(request)
        if isinstance(prelude, Response):
            return prelude
        body, kind = prelude
        parsed = self._parse(request, body, [], "PublicObjectSearchRequest")
        if isinstance(parsed, Response):
            return parsed
        groups = parsed.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > 5:
            return _error(400, "There was a problem with the request. At most 5 filterGroups "
                               "are allowed.", "VALIDATION_ERROR")
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or len(filters) > 6:
                return _error(400, "There was a problem with the request. Each filterGroup needs "
                                   "a filters array of at most 6 filters.", "VALIDATION_ERROR")
            for flt in filters:
                if not isinstance(flt, dict) or flt.get("operator") not in OPERATORS:
                    operator = flt.get("operator") if isinstance(flt, dict) else None
                    return _bad_input("Cannot deserialize value of type `FilterOperatorEnum` "
                                      f'from String "{operator}"')
                if not flt.get("propertyName"):
                    return _bad_input("Cannot build Filter, some of required attributes are not "
                                      "set [propertyName]")
        try:
            limit = min(int(parsed.get("limit") or 10), 200)
            offset = int(parsed.get("after") or 0)
        except (TypeError, ValueError):
            return _bad_input("limit and after must be numeric")
        query = str(parsed.get("query") or "").lower().strip()
        spec = self.specs[kind]
        with self._lock:
            matches = [r for r in self.objects[kind].values() if not r["archived"]
                       and (not groups or any(self._group_matches(spec, r, g) for g in groups))
                       and (not query or self._query_matches(spec, r, query))]
            matches = self._sorted(spec, matches, parsed.get("sorts") or [])
            names = parsed.get("properties") or None
            page = [self._render(kind, r, list(names) if names else None)
                    for r in matches[offset:offset + limit]]
        out: dict[str, Any] = {"total": len(matches), "results": page}
        if offset + limit < len(matches):
            out["paging"] = {"next": {"after": str(offset + limit)}}
        return JSONResponse(out)

    @staticmethod
    def _query_matches(spec: TypeSpec, record: dict[str, Any], query: str) -> bool:
        for name in spec.searchable:
            value = (record["properties"].get(name) or "").lower()
            if value.startswith(query) or any(t.startswith(query) for t in _tokens(value)):
                return True
        return False

    def _group_matches(self, spec: TypeSpec, record: dict[str, Any],
                       group: dict[str, Any]) -> bool:
        return all(self._filter_matches(spec, record, f) for f in group["filters"])

    @staticmethod
    def _filter_matches(spec: TypeSpec, record: dict[str, Any], flt: dict[str, Any]) -> bool:
        name, operator = flt["propertyName"], flt["operator"]
        actual = record["properties"].get(name)
        present = actual not in (None, "")
        if operator == "HAS_PROPERTY":
            return present
        if operator == "NOT_HAS_PROPERTY":
            return not present
        if operator in ("NEQ", "NOT_IN", "NOT_CONTAINS_TOKEN") and not present:
            return True
        if not present:
            return False
        text = str(actual).lower()
        wanted = _as_value(flt.get("value")).lower()
        numeric = name in spec.numeric

        def equal(expected: str) -> bool:
            if numeric and _number(text) is not None and _number(expected) is not None:
                return _number(text) == _number(expected)
            return text == expected

        if operator == "EQ":
            return equal(wanted)
        if operator == "NEQ":
            return not equal(wanted)
        if operator in ("IN", "NOT_IN"):
            inside = any(equal(_as_value(v).lower()) for v in flt.get("values") or [])
            return inside if operator == "IN" else not inside
        if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            tokens = _tokens(text)
            if "*" in wanted:
                found = fnmatch.fnmatchcase(text, wanted) or any(
                    fnmatch.fnmatchcase(t, wanted) for t in tokens)
            else:
                found = wanted in tokens or wanted == text
            return found if operator == "CONTAINS_TOKEN" else not found
        left, right = _number(text), _number(wanted)
        if left is None or right is None:
            left_s, right_s = text, wanted
            comparisons = {"LT": left_s < right_s, "LTE": left_s <= right_s,
                           "GT": left_s > right_s, "GTE": left_s >= right_s}
            if operator == "BETWEEN":
                return right_s <= left_s <= _as_value(flt.get("highValue")).lower()
            return comparisons[operator]
        if operator == "BETWEEN":
            high = _number(_as_value(flt.get("highValue")))
            return high is not None and right <= left <= high
        return {"LT": left < right, "LTE": left <= right, "GT": left > right,
                "GTE": left >= right}[operator]

    @staticmethod
    def _sorted(spec: TypeSpec, records: list[dict[str, Any]],
                sorts: list[Any]) -> list[dict[str, Any]]:
        ordered = sorted(records, key=lambda r: int(r["id"]))
        for sort in reversed(sorts):
            if isinstance(sort, str):
                name, descending = sort.lstrip("-"), sort.startswith("-")
            elif isinstance(sort, dict) and sort.get("propertyName"):
                name = sort["propertyName"]
                descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
            else:
                continue

            def key(record: dict[str, Any], name: str = name) -> tuple[int, Any]:
                value = record["properties"].get(name)
                if value in (None, ""):
                    return (1, 0)
                if name in spec.numeric and _number(value) is not None:
                    return (0, _number(value))
                return (0, str(value).lower())

            present = [r for r in ordered if key(r)[0] == 0]
            absent = [r for r in ordered if key(r)[0] == 1]
            ordered = sorted(present, key=key, reverse=descending) + absent
        return ordered

