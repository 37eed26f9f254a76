"""A fake Salesforce REST API (sObjects, collections, composite, SOQL, search).

Follows the documented shapes of https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/
- base `/services/data/vXX.X/`; `GET /services/data/` lists versions without authentication
- auth is `Authorization: Bearer <session id>`; 401 `[{"message": "Session expired or invalid",
  "errorCode": "INVALID_SESSION_ID"}]`
- REST errors are JSON arrays `[{"message", "errorCode", "fields"?}]`; per-record failures inside
  collections use `{"success": false, "errors": [{"statusCode", "message", "fields"}]}`
- ids are 18 characters: the type's key prefix, then a case-safe checksum suffix
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
MIN_VERSION, MAX_VERSION = 20, 64
VERSION_RE = re.compile(r"(\d{2})\.0")
IDENT_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ID_RE = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

KEY_PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006",
                "User": "005", "Case": "500", "Task": "00T", "Event": "00U", "Campaign": "701"}
SYSTEM_FIELDS = ("Id", "IsDeleted", "OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate",
                 "LastModifiedById", "SystemModstamp")
READ_ONLY = frozenset(SYSTEM_FIELDS) - {"OwnerId"}
STANDARD_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": ("Name", "AccountNumber", "Type", "Industry", "Phone", "Website", "ParentId",
                "BillingStreet", "BillingCity", "BillingState", "BillingPostalCode",
                "BillingCountry", "AnnualRevenue", "NumberOfEmployees", "Description"),
    "Contact": ("AccountId", "Salutation", "FirstName", "LastName", "Name", "Title", "Email",
                "Phone", "MobilePhone", "MailingStreet", "MailingCity", "MailingState",
                "MailingPostalCode", "MailingCountry", "LeadSource", "Description"),
    "Lead": ("Salutation", "FirstName", "LastName", "Name", "Company", "Title", "Email", "Phone",
             "Status", "LeadSource", "Industry", "Rating", "City", "State", "Country",
             "AnnualRevenue", "NumberOfEmployees", "Description", "IsConverted"),
    "Opportunity": ("AccountId", "Name", "StageName", "CloseDate", "Amount", "Probability",
                    "Type", "LeadSource", "NextStep", "Description"),
}
COMPUTED = {"Contact": {"Name"}, "Lead": {"Name", "IsConverted"}}
REQUIRED = {"Account": ("Name",), "Contact": ("LastName",), "Lead": ("LastName", "Company"),
            "Opportunity": ("Name", "StageName", "CloseDate")}
REFERENCES = {"Contact": {"AccountId": "Account"}, "Opportunity": {"AccountId": "Account"},
              "Account": {"ParentId": "Account"}}
CREATE_DEFAULTS: dict[str, dict[str, Any]] = {"Lead": {"Status": "Open - Not Contacted",
                                                       "IsConverted": False}}
SEED_DEFAULTS: dict[str, dict[str, Any]] = {
    "Account": {"Name": "Acme Corporation", "Type": "Customer - Direct",
                "Industry": "Manufacturing", "Phone": "(415) 555-0100",
                "Website": "https://www.acme.test", "BillingCity": "San Francisco",
                "BillingState": "CA", "BillingCountry": "USA", "NumberOfEmployees": 250},
    "Contact": {"FirstName": "Ada", "LastName": "Lovelace", "Title": "VP Engineering",
                "Email": "ada.lovelace@acme.test", "Phone": "(415) 555-0101"},
    "Lead": {"FirstName": "Grace", "LastName": "Hopper", "Company": "Compilers Inc",
             "Email": "grace@compilers.test", "Status": "Open - Not Contacted",
             "LeadSource": "Web"},
    "Opportunity": {"Name": "Acme - 200 Widgets", "StageName": "Prospecting",
                    "CloseDate": "2030-06-30", "Amount": 50000, "Probability": 10},
}
DEFAULT_EXTERNAL_IDS = {name: ("External_Id__c",) for name in STANDARD_FIELDS}

Result = tuple[int, Any, dict[str, str]]
_MISSING: Any = object()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _base62(number: int, width: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits.rjust(width, "0")


def _to18(id15: str) -> str:
    """Appends Salesforce's case-safe suffix: one char per 5-char chunk, a bit per uppercase."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += SUFFIX_CHARS[bits]
    return id15 + suffix


def _normalize_id(raw: Any) -> str | None:
    if not isinstance(raw, str) or not ID_RE.fullmatch(raw):
        return None
    return _to18(raw[:15])


def _err(status: int, code: str, message: str, fields: list[str] | None = None) -> Result:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return status, [item], {}


def _not_found() -> Result:
    return _err(404, "NOT_FOUND", "The requested resource does not exist")


def _not_allowed(method: str, allowed: str) -> Result:
    return _err(405, "METHOD_NOT_ALLOWED",
                f"HTTP Method '{method}' not allowed. Allowed are {allowed}")


def _no_body() -> Result:
    return _err(400, "JSON_PARSER_ERROR", "No content to map due to end-of-input")


def _version_label(major: int) -> str:
    season = ("Winter", "Spring", "Summer")[(major - 20) % 3]
    return f"{season} '{11 + (major - 20) // 3:02d}"


@dataclass
class Fail:
    """One record-level failure, rendered as a REST error array or as a collection item."""

    status: int
    code: str
    message: str
    fields: list[str] | None = None

    def rest(self) -> Result:
        return _err(self.status, self.code, self.message, self.fields)

    def item(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Unresolved(Exception):
    pass


@dataclass
class Query:
    fields: list[str]
    sobject: str
    where: Any = None
    order: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    count: bool = False


SOQL_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^'\\]|\\.)*')
    |(?P<date>\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:?\d{2}))?)
    |(?P<num>-?\d+(?:\.\d+)?)
    |(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
    |(?P<word>[A-Za-z_][\w.]*))""", re.VERBOSE)


class _SoqlParser:
    """Recursive-descent parser for the SOQL subset simple clients send."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = SOQL_TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: {text[pos:].split()[0]}")
            kind = match.lastgroup or "word"
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def next(self) -> tuple[str, str]:
        token = self.peek()
        self.pos += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.upper() in words:
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> None:
        _kind, got = self.next()
        if got.upper() != value.upper():
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{got or '<EOF>'}'")

    def name(self) -> str:
        kind, value = self.next()
        if kind != "word":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value or '<EOF>'}'")
        return value

    def parse(self) -> Query:
        self.expect("SELECT")
        fields: list[str] = []
        count = False
        if self.peek()[1].upper() == "COUNT" and self.peek(1)[1] == "(":
            self.pos += 2
            self.expect(")")
            count = True
        else:
            fields.append(self.name())
            while self.peek()[1] == ",":
                self.pos += 1
                fields.append(self.name())
        self.expect("FROM")
        query = Query(fields=fields, sobject=self.name(), count=count)
        if self.keyword("WHERE"):
            query.where = self.disjunction()
        if self.keyword("ORDER"):
            self.expect("BY")
            while True:
                column = self.name()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                if self.keyword("NULLS"):
                    self.keyword("FIRST", "LAST")
                query.order.append((column, descending))
                if self.peek()[1] != ",":
                    break
                self.pos += 1
        if self.keyword("LIMIT"):
            query.limit = int(self.number())
        if self.keyword("OFFSET"):
            query.offset = int(self.number())
        if self.peek()[0] != "end":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")
        return query

    def number(self) -> float:
        kind, value = self.next()
        if kind != "num":
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{value or '<EOF>'}'")
        return float(value)

    def disjunction(self) -> Any:
        node = self.conjunction()
        while self.keyword("OR"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Any:
        node = self.negation()
        while self.keyword("AND"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Any:
        if self.keyword("NOT"):
            return ("not", self.negation())
        if self.peek()[1] == "(":
            self.pos += 1
            node = self.disjunction()
            self.expect(")")
            return node
        column = self.name()
        if self.keyword("LIKE"):
            return ("like", column, self.value())
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect("(")
            values = [self.value()]
            while self.peek()[1] == ",":
                self.pos += 1
                values.append(self.value())
            self.expect(")")
            return ("in", column, values, negate)
        kind, op = self.next()
        if kind != "op" or op in ("(", ")", ","):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{op or '<EOF>'}'")
        return ("cmp", column, "!=" if op == "<>" else op, self.value())

    def value(self) -> Any:
        kind, raw = self.next()
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", raw[1:-1])
        if kind == "num":
            return float(raw) if "." in raw else int(raw)
        if kind == "date":
            return raw
        if kind == "word" and raw.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[raw.lower()]
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{raw or '<EOF>'}'")


def _compare(left: Any, op: str, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        left, right = left.lower(), right.lower()
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool({"<": left < right, ">": left > right, "<=": left <= right,
                     ">=": left >= right}[op])
    except TypeError:
        return False


class FakeSalesforce:
    def __init__(self, host: str = "acme.my.salesforce.com",
                 session_id: str = "00Dxx0000001gPL!AQ4AQFakeSession",
                 extra_fields: Mapping[str, Iterable[str]] | None = None,
                 external_ids: Mapping[str, Iterable[str]] | None = None) -> None:
        """extra_fields declares custom fields (a new type name declares a new field set);
        types without a declared field set accept any field name."""
        self.host = host
        self.session_id = session_id
        self.log = RequestLog()
        self._lock = threading.Lock()
        self._ids = itertools.count(3_000_000)
        self._api_calls = 0
        self.records: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.prefixes: dict[str, str] = dict(KEY_PREFIXES)
        self.external_ids: dict[str, set[str]] = {
            name: set(ids) for name, ids in (external_ids or DEFAULT_EXTERNAL_IDS).items()}
        self.schema: dict[str, list[str]] = {
            name: [*SYSTEM_FIELDS, *fields] for name, fields in STANDARD_FIELDS.items()}
        for name, fields in (extra_fields or {}).items():
            self.schema.setdefault(name, list(SYSTEM_FIELDS)).extend(fields)
        for name, ids in self.external_ids.items():
            if name in self.schema:
                self.schema[name].extend(f for f in ids if f not in self.schema[name])
        self.owner_id = _to18("0055g00000Fk1Ab")
        self.app = Starlette(routes=[
            Route("/services/data", self.versions, methods=ALL_METHODS),
            Route("/services/data/", self.versions, methods=ALL_METHODS),
            Route("/services/data/v{version}", self.api, methods=ALL_METHODS),
            Route("/services/data/v{version}/{rest:path}", self.api, methods=ALL_METHODS),
            Route("/{path:path}", self.unknown, methods=ALL_METHODS),
        ])

    @property
    def instance_url(self) -> str:
        return f"https://{self.host}"

    # ---- seeding and inspection -------------------------------------------------------------

    def seed(self, sobject_type: str, **fields: Any) -> str:
        """Stores a record without validation; standard types get realistic defaults."""
        with self._lock:
            sobject = self._type(sobject_type) or sobject_type
            values = {**SEED_DEFAULTS.get(sobject, {}), **fields}
            record_id = self._new_id(sobject)
            self.records[record_id] = self._fresh(sobject, record_id, values)
            return record_id

    def seed_account(self, **fields: Any) -> str:
        return self.seed("Account", **fields)

    def seed_contact(self, **fields: Any) -> str:
        return self.seed("Contact", **fields)

    def seed_lead(self, **fields: Any) -> str:
        return self.seed("Lead", **fields)

    def seed_opportunity(self, **fields: Any) -> str:
        return self.seed("Opportunity", **fields)

    def get(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.records.get(_normalize_id(record_id) or record_id)
            return copy.deepcopy(record)

    def of_type(self, sobject_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for rid, r in self.records.items()
                    if self.type_of(rid) == sobject_type]

    def type_of(self, record_id: str) -> str | None:
        prefix = record_id[:3]
        return next((name for name, p in self.prefixes.items() if p == prefix), None)

    # ---- internals (call with the lock held) ------------------------------------------------

    def _type(self, name: Any) -> str | None:
        if not isinstance(name, str) or not IDENT_RE.fullmatch(name):
            return None
        for known in (*self.schema, *self.prefixes):
            if known.lower() == name.lower():
                return known
        return name

    def _prefix(self, sobject: str) -> str:
        if sobject not in self.prefixes:
            self.prefixes[sobject] = "a0" + BASE62[len(self.prefixes) - len(KEY_PREFIXES)]
        return self.prefixes[sobject]

    def _new_id(self, sobject: str) -> str:
        return _to18(self._prefix(sobject) + "5g0000" + _base62(next(self._ids), 6))

    def _fresh(self, sobject: str, record_id: str, values: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        record: dict[str, Any] = {
            "Id": record_id, "IsDeleted": False, "OwnerId": self.owner_id, "CreatedDate": now,
            "CreatedById": self.owner_id, "LastModifiedDate": now,
            "LastModifiedById": self.owner_id, "SystemModstamp": now,
        }
        record.update(CREATE_DEFAULTS.get(sobject, {}))
        record.update(values)
        self._compute(sobject, record)
        return record

    @staticmethod
    def _compute(sobject: str, record: dict[str, Any]) -> None:
        if sobject in ("Contact", "Lead"):
            parts = [record.get("FirstName"), record.get("LastName")]
            record["Name"] = " ".join(p for p in parts if p) or None

    def _column(self, sobject: str, name: str) -> str | None:
        """Canonical spelling of a field (names are case-insensitive); None if undeclared."""
        declared = self.schema.get(sobject)
        if declared is None:
            return name if IDENT_RE.fullmatch(name) else None
        return next((f for f in declared if f.lower() == name.lower()), None)

    def _columns(self, sobject: str, names: Iterable[str]) -> list[str] | Fail:
        out = []
        for raw in names:
            name = raw.strip()
            column = self._column(sobject, name)
            if column is None:
                return Fail(400, "INVALID_FIELD",
                            f"No such column '{name}' on entity '{sobject}'. If you are "
                            "attempting to use a custom field, be sure to append the '__c' "
                            "after the custom field name. Please reference your WSDL or the "
                            "describe call for the appropriate names.")
            out.append(column)
        return out

    def _prepare(self, sobject: str, data: Any,
                 existing: dict[str, Any] | None) -> dict[str, Any] | Fail:
        """Validates a create (existing is None) or update body like Salesforce does."""
        if not isinstance(data, dict):
            kind = "START_ARRAY" if isinstance(data, list) else "VALUE_STRING"
            return Fail(400, "JSON_PARSER_ERROR",
                        f"Cannot deserialize instance of {sobject} from {kind} value "
                        "[line:1, column:1]")
        prepared: dict[str, Any] = {}
        for key, value in data.items():
            if key == "attributes":
                continue
            column = self._column(sobject, key)
            if column is None:
                return Fail(400, "INVALID_FIELD",
                            f"No such column '{key}' on sobject of type {sobject}", [])
            if column in READ_ONLY or column in COMPUTED.get(sobject, set()):
                return Fail(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                            f"Unable to create/update fields: {column}. Please check the "
                            "security settings of this field and verify that it is read/write "
                            "for your profile or permission set.", [column])
            prepared[column] = value
        merged = {**(existing or {}), **prepared}
        missing = [f for f in REQUIRED.get(sobject, ()) if merged.get(f) in (None, "")]
        if missing and (existing is None or any(f in prepared for f in missing)):
            return Fail(400, "REQUIRED_FIELD_MISSING",
                        f"Required fields are missing: [{', '.join(missing)}]", missing)
        email = prepared.get("Email")
        if email not in (None, "") and not (isinstance(email, str) and EMAIL_RE.fullmatch(email)):
            return Fail(400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}",
                        ["Email"])
        for column, target in REFERENCES.get(sobject, {}).items():
            value = prepared.get(column)
            if value in (None, ""):
                continue
            normalized = _normalize_id(value)
            if normalized is None or normalized[:3] != self._prefix(target):
                return Fail(400, "MALFORMED_ID", f"{target} ID: id value of incorrect type: "
                            f"{value}", [column])
            prepared[column] = normalized
        return prepared

    def _insert(self, sobject: str, data: Any) -> str | Fail:
        prepared = self._prepare(sobject, data, None)
        if isinstance(prepared, Fail):
            return prepared
        record_id = self._new_id(sobject)
        self.records[record_id] = self._fresh(sobject, record_id, prepared)
        return record_id

    def _update(self, sobject: str, record_id: str, data: Any) -> Fail | None:
        record = self.records[record_id]
        prepared = self._prepare(sobject, data, record)
        if isinstance(prepared, Fail):
            return prepared
        record.update(prepared)
        self._compute(sobject, record)
        record["LastModifiedDate"] = record["SystemModstamp"] = _now()
        return None

    def _locate(self, sobject: str, raw_id: str, method: str) -> str | Fail:
        record_id = _normalize_id(raw_id)
        if method == "GET" and record_id is None:
            return Fail(404, "NOT_FOUND",
                        f"Provided external ID field does not exist or is not accessible: "
                        f"{raw_id}")
        if record_id is None or record_id[:3] != self._prefix(sobject):
            return Fail(400, "MALFORMED_ID", f"{sobject} ID: id value of incorrect type: {raw_id}",
                        ["Id"])
        if record_id in self.deleted and method != "GET":
            return Fail(404, "ENTITY_IS_DELETED", "entity is deleted", [])
        if record_id not in self.records:
            return Fail(404, "NOT_FOUND", "The requested resource does not exist")
        return record_id

    def _remove(self, record_id: str) -> None:
        record = self.records.pop(record_id)
        record["IsDeleted"] = True
        self.deleted[record_id] = record

    def _url(self, version: str, sobject: str, record_id: str) -> str:
        return f"/services/data/v{version}/sobjects/{sobject}/{record_id}"

    def _render(self, record_id: str, version: str,
                columns: list[str] | None = None) -> dict[str, Any]:
        record = self.records.get(record_id) or self.deleted[record_id]
        sobject = self.type_of(record_id) or ""
        out: dict[str, Any] = {"attributes": {"type": sobject,
                                              "url": self._url(version, sobject, record_id)}}
        if columns is None:
            declared = self.schema.get(sobject, list(SYSTEM_FIELDS))
            columns = [*declared, *(k for k in record if k not in declared)]
        elif "Id" not in columns:
            columns = [*columns, "Id"]
        for column in columns:
            out[column] = copy.deepcopy(record.get(column))
        return out

    def _snapshot(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return copy.deepcopy(self.records), copy.deepcopy(self.deleted)

    def _restore(self, snapshot: tuple[dict[str, Any], dict[str, Any]]) -> None:
        self.records.clear()
        self.records.update(snapshot[0])
        self.deleted.clear()
        self.deleted.update(snapshot[1])

    # ---- HTTP plumbing ------------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _authenticated(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.session_id}"

    @staticmethod
    def _respond(result: Result, extra: Mapping[str, str] | None = None) -> Response:
        status, payload, headers = result
        headers = {**headers, **(extra or {})}
        if status == 204:
            return Response(status_code=204, headers=headers)
        return JSONResponse(payload, status_code=status, headers=headers)

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return self._respond(_not_found())

    async def versions(self, request: Request) -> Response:
        """The Versions resource needs no session."""
        await self._record(request)
        if request.method not in ("GET", "HEAD"):
            return self._respond(_not_allowed(request.method, "GET,HEAD"))
        return JSONResponse([
            {"label": _version_label(major), "url": f"/services/data/v{major}.0",
             "version": f"{major}.0"} for major in range(MIN_VERSION, MAX_VERSION + 1)])

    async def api(self, request: Request) -> Response:
        raw = await self._record(request)
        if not self._authenticated(request):
            return self._respond(_err(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        body: Any = _MISSING
        if request.method in ("POST", "PATCH", "PUT") and raw.strip():
            content_type = request.headers.get("content-type", "")
            if "json" not in content_type.lower():
                return self._respond(_err(
                    415, "UNSUPPORTED_MEDIA_TYPE",
                    f"Content-Type header specified in HTTP request is not supported: "
                    f"{content_type}"))
            try:
                body = json.loads(raw)
            except ValueError as exc:
                where = (f" at [line:{exc.lineno}, column:{exc.colno}]"
                         if isinstance(exc, json.JSONDecodeError) else "")
                return self._respond(_err(400, "JSON_PARSER_ERROR",
                                          f"Unexpected character ({exc}){where}"))
        params = parse_qs(request.url.query, keep_blank_values=True)
        version = request.path_params["version"]
        rest = request.path_params.get("rest", "")
        with self._lock:
            self._api_calls += 1
            usage = {"Sforce-Limit-Info": f"api-usage={self._api_calls}/15000"}
            result = self._dispatch(request.method, version, rest, params, body)
        return self._respond(result, usage)

    # ---- routing (lock held) ----------------------------------------------------------------

    def _dispatch(self, method: str, version: str, rest: str, params: dict[str, list[str]],
                  body: Any) -> Result:
        match = VERSION_RE.fullmatch(version)
        if not match or not MIN_VERSION <= int(match.group(1)) <= MAX_VERSION:
            return _not_found()
        parts = [p for p in rest.strip("/").split("/") if p] if rest.strip("/") else []
        if not parts:
            if method != "GET":
                return _not_allowed(method, "GET,HEAD")
            base = f"/services/data/v{version}"
            return 200, {name: f"{base}/{name}" for name in (
                "sobjects", "query", "queryAll", "search", "parameterizedSearch", "composite",
                "limits", "tooling")}, {}
        head = parts[0]
        if head == "sobjects":
            return self._sobjects(method, version, parts[1:], params, body)
        if head == "composite":
            if len(parts) == 1:
                if method != "POST":
                    return _not_allowed(method, "POST")
                return self._composite(version, body)
            if parts[1] == "sobjects":
                return self._collections(method, version, parts[2:], params, body)
            return _not_found()
        if head in ("query", "queryAll") and len(parts) == 1:
            if method != "GET":
                return _not_allowed(method, "GET,HEAD")
            return self._query(version, params.get("q", [""])[0], head == "queryAll")
        if head == "parameterizedSearch" and len(parts) == 1:
            return self._parameterized_search(method, version, params, body)
        if head == "search" and len(parts) == 1 and method == "GET":
            return self._sosl(version, params.get("q", [""])[0])
        return _not_found()

    def _sobjects(self, method: str, version: str, parts: list[str],
                  params: dict[str, list[str]], body: Any) -> Result:
        if not parts:
            if method != "GET":
                return _not_allowed(method, "GET,HEAD")
            return 200, {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": [
                self._summary(name, version) for name in sorted({*self.schema, *self.prefixes})
            ]}, {}
        sobject = self._type(parts[0])
        if sobject is None:
            return _not_found()
        if len(parts) == 1:
            if method == "POST":
                if body is _MISSING:
                    return _no_body()
                created = self._insert(sobject, body)
                if isinstance(created, Fail):
                    return created.rest()
                return 201, {"id": created, "success": True, "errors": []}, {
                    "Location": self._url(version, sobject, created)}
            if method == "GET":
                return 200, {"objectDescribe": self._summary(sobject, version),
                             "recentItems": []}, {}
            return _not_allowed(method, "GET,HEAD,POST")
        if len(parts) == 2 and parts[1] == "describe" and method == "GET":
            return 200, self._describe(sobject, version), {}
        if len(parts) == 2:
            return self._one(method, version, sobject, parts[1], params, body)
        if len(parts) == 3:
            return self._by_external_id(method, version, sobject, parts[1], parts[2], body)
        return _not_found()

    def _summary(self, sobject: str, version: str) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{sobject}"
        return {"name": sobject, "label": sobject, "keyPrefix": self._prefix(sobject),
                "custom": sobject.endswith("__c"), "createable": True, "updateable": True,
                "deletable": True, "queryable": True,
                "urls": {"sobject": base, "describe": f"{base}/describe",
                         "rowTemplate": f"{base}/{{ID}}"}}

    def _describe(self, sobject: str, version: str) -> dict[str, Any]:
        required = set(REQUIRED.get(sobject, ()))
        fields = [{"name": name, "label": name, "custom": name.endswith("__c"),
                   "nillable": name not in required and name not in READ_ONLY,
                   "createable": name not in READ_ONLY and name not in COMPUTED.get(sobject, ()),
                   "updateable": name not in READ_ONLY and name not in COMPUTED.get(sobject, ()),
                   "externalId": name in self.external_ids.get(sobject, set()),
                   "type": "id" if name == "Id" else "reference" if name.endswith("Id")
                   else "boolean" if name.startswith("Is") else "datetime"
                   if name.endswith(("Date", "Modstamp")) and name != "CloseDate"
                   else "date" if name == "CloseDate" else "string"}
                  for name in self.schema.get(sobject, SYSTEM_FIELDS)]
        return {**self._summary(sobject, version), "fields": fields}

    def _one(self, method: str, version: str, sobject: str, raw_id: str,
             params: dict[str, list[str]], body: Any) -> Result:
        if method not in ("GET", "PATCH", "DELETE"):
            return _not_allowed(method, "GET,HEAD,PATCH,DELETE")
        located = self._locate(sobject, raw_id, method)
        if isinstance(located, Fail):
            return located.rest()
        if method == "GET":
            columns = None
            if params.get("fields", [""])[0]:
                columns = self._columns(sobject, params["fields"][0].split(","))
                if isinstance(columns, Fail):
                    return columns.rest()
            return 200, self._render(located, version, columns), {}
        if method == "DELETE":
            self._remove(located)
            return 204, None, {}
        if body is _MISSING:
            return _no_body()
        failed = self._update(sobject, located, body)
        return failed.rest() if failed else (204, None, {})

    def _matches(self, sobject: str, column: str, value: str) -> list[str]:
        return [rid for rid, record in self.records.items()
                if self.type_of(rid) == sobject and record.get(column) is not None
                and str(record.get(column)) == value]

    def _external_column(self, sobject: str, raw: str) -> str | Fail:
        column = self._column(sobject, raw)
        if raw.lower() == "id":
            return "Id"
        if column is None or (sobject not in self.schema and not column.endswith("__c")):
            return Fail(404, "NOT_FOUND",
                        f"Provided external ID field does not exist or is not accessible: {raw}")
        if sobject in self.schema and column not in self.external_ids.get(sobject, set()):
            return Fail(400, "INVALID_FIELD",
                        f"Field {column} is not an External ID or indexed field for {sobject}",
                        [])
        return column

    def _upsert(self, sobject: str, column: str, value: str, data: Any) -> tuple[str, bool] | Fail:
        if column == "Id":
            located = self._locate(sobject, value, "PATCH")
            if isinstance(located, Fail):
                return located
            failed = self._update(sobject, located, data)
            return failed or (located, False)
        matches = self._matches(sobject, column, value)
        if len(matches) > 1:
            return Fail(300, "MULTIPLE_RECORDS",
                        f"More than one record found for external id field {column}: {value}")
        body = {k: v for k, v in data.items() if k.lower() != column.lower()} \
            if isinstance(data, dict) else data
        if matches:
            failed = self._update(sobject, matches[0], body)
            return failed or (matches[0], False)
        created = self._insert(sobject, {**body, column: value} if isinstance(body, dict)
                               else body)
        return created if isinstance(created, Fail) else (created, True)

    def _by_external_id(self, method: str, version: str, sobject: str, raw_column: str,
                        value: str, body: Any) -> Result:
        if method not in ("GET", "PATCH", "DELETE"):
            return _not_allowed(method, "GET,HEAD,PATCH,DELETE")
        column = self._external_column(sobject, raw_column)
        if isinstance(column, Fail):
            return column.rest()
        if method == "PATCH":
            if body is _MISSING:
                return _no_body()
            outcome = self._upsert(sobject, column, value, body)
            if isinstance(outcome, Fail):
                if outcome.status == 300:
                    return self._multiple(version, sobject, column, value)
                return outcome.rest()
            record_id, created = outcome
            if not created and int(version.split(".")[0]) < 46:
                return 204, None, {}
            return (201 if created else 200), {"id": record_id, "success": True, "errors": [],
                                               "created": created}, {}
        if column == "Id":
            located = self._locate(sobject, value, method)
            if isinstance(located, Fail):
                return located.rest()
            matches = [located]
        else:
            matches = self._matches(sobject, column, value)
        if not matches:
            return _not_found()
        if len(matches) > 1:
            return self._multiple(version, sobject, column, value)
        if method == "DELETE":
            self._remove(matches[0])
            return 204, None, {}
        return 200, self._render(matches[0], version), {}

    def _multiple(self, version: str, sobject: str, column: str, value: str) -> Result:
        return 300, [self._url(version, sobject, rid)
                     for rid in self._matches(sobject, column, value)], {}

    # ---- sObject Collections ----------------------------------------------------------------

    def _collection_body(self, body: Any) -> tuple[bool, list[Any]] | Result:
        if body is _MISSING:
            return _no_body()
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return _err(400, "JSON_PARSER_ERROR",
                        "Cannot deserialize instance of SObjectCollectionRequest: records "
                        "must be an array")
        if len(body["records"]) > 200:
            return _err(400, "EXCEEDED_ID_LIMIT",
                        "record limit reached. cannot submit more than 200 records into this "
                        "call")
        for index, record in enumerate(body["records"]):
            attributes = record.get("attributes") if isinstance(record, dict) else None
            if not isinstance(attributes, dict) or not self._type(attributes.get("type")):
                return _err(400, "INVALID_TYPE",
                            f"No type specified in the attributes of record {index}")
        return bool(body.get("allOrNone", False)), body["records"]

    def _collections(self, method: str, version: str, parts: list[str],
                     params: dict[str, list[str]], body: Any) -> Result:
        if not parts:
            if method == "POST":
                return self._collection_write(body, self._collection_create)
            if method == "PATCH":
                return self._collection_write(body, self._collection_update)
            if method == "DELETE":
                return self._collection_delete(params)
            return _not_allowed(method, "POST,PATCH,DELETE")
        sobject = self._type(parts[0])
        if sobject is None:
            return _not_found()
        if len(parts) == 2 and method == "PATCH":
            column = self._external_column(sobject, parts[1])
            if isinstance(column, Fail):
                return column.rest()
            return self._collection_write(body, lambda rec: self._collection_upsert(
                sobject, str(column), rec))
        if len(parts) != 1:
            return _not_found()
        if method == "GET":
            ids = params.get("ids", [""])[0]
            fields = params.get("fields", [""])[0]
            return self._retrieve(version, sobject, ids.split(",") if ids else [],
                                  fields.split(",") if fields else [])
        if method == "POST":
            if not isinstance(body, dict):
                return _no_body() if body is _MISSING else _err(
                    400, "JSON_PARSER_ERROR", "Request body must be a JSON object")
            return self._retrieve(version, sobject, list(body.get("ids") or []),
                                  list(body.get("fields") or []))
        return _not_allowed(method, "GET,HEAD,POST")

    def _collection_write(self, body: Any,
                          one: Callable[[dict[str, Any]], dict[str, Any]]) -> Result:
        parsed = self._collection_body(body)
        if not isinstance(parsed[0], bool):
            return parsed  # type: ignore[return-value]
        all_or_none, records = parsed
        snapshot = self._snapshot() if all_or_none else None
        results = [one(record) for record in records]
        if snapshot and not all(r["success"] for r in results):
            self._restore(snapshot)
            rolled_back = Fail(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                               "Record rolled back because not all records were valid and the "
                               "request was using AllOrNone header", []).item()
            for index, result in enumerate(results):
                if result["success"]:
                    kept = {"id": result["id"]} if "created" not in result and \
                        records[index].get("id") else {}
                    results[index] = {**kept, "success": False, "errors": [rolled_back]}
        return 200, results, {}

    def _collection_create(self, record: dict[str, Any]) -> dict[str, Any]:
        sobject = self._type(record["attributes"]["type"]) or ""
        if any(key.lower() == "id" for key in record):
            return {"success": False, "errors": [Fail(
                400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]).item()]}
        created = self._insert(sobject, record)
        if isinstance(created, Fail):
            return {"success": False, "errors": [created.item()]}
        return {"id": created, "success": True, "errors": []}

    def _collection_update(self, record: dict[str, Any]) -> dict[str, Any]:
        sobject = self._type(record["attributes"]["type"]) or ""
        raw_id = next((v for k, v in record.items() if k.lower() == "id"), None)
        if not raw_id:
            return {"success": False, "errors": [Fail(
                400, "MISSING_ARGUMENT", "Id not specified in an update call", []).item()]}
        located = self._locate(sobject, str(raw_id), "PATCH")
        if isinstance(located, Fail):
            return {"id": raw_id, "success": False, "errors": [located.item()]}
        failed = self._update(sobject, located, {k: v for k, v in record.items()
                                                 if k.lower() != "id"})
        if failed:
            return {"id": located, "success": False, "errors": [failed.item()]}
        return {"id": located, "success": True, "errors": []}

    def _collection_upsert(self, sobject: str, column: str,
                           record: dict[str, Any]) -> dict[str, Any]:
        value = next((v for k, v in record.items() if k.lower() == column.lower()), None)
        if value in (None, ""):
            return {"success": False, "errors": [Fail(
                400, "MISSING_ARGUMENT", f"{column} not specified", [column]).item()]}
        outcome = self._upsert(sobject, column, str(value), record)
        if isinstance(outcome, Fail):
            return {"success": False, "errors": [outcome.item()]}
        return {"id": outcome[0], "success": True, "errors": [], "created": outcome[1]}

    def _collection_delete(self, params: dict[str, list[str]]) -> Result:
        ids = [i for i in params.get("ids", [""])[0].split(",") if i]
        if not ids:
            return _err(400, "MISSING_ARGUMENT", "ids: required parameter missing")
        if len(ids) > 200:
            return _err(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                        "than 200 records into this call")
        all_or_none = params.get("allOrNone", ["false"])[0].lower() == "true"
        snapshot = self._snapshot() if all_or_none else None
        results: list[dict[str, Any]] = []
        for raw_id in ids:
            record_id = _normalize_id(raw_id)
            if record_id is None:
                fail = Fail(400, "MALFORMED_ID", f"malformed id {raw_id}", [])
            elif record_id in self.deleted:
                fail = Fail(404, "ENTITY_IS_DELETED", "entity is deleted", [])
            elif record_id not in self.records:
                fail = Fail(404, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [])
            else:
                self._remove(record_id)
                results.append({"id": record_id, "success": True, "errors": []})
                continue
            results.append({"success": False, "errors": [fail.item()]})
        if snapshot and not all(r["success"] for r in results):
            self._restore(snapshot)
            rolled_back = Fail(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                               "Record rolled back because not all records were valid and the "
                               "request was using AllOrNone header", []).item()
            results = [{"id": r["id"], "success": False, "errors": [rolled_back]}
                       if r["success"] else r for r in results]
        return 200, results, {}

    def _retrieve(self, version: str, sobject: str, ids: list[str],
                  fields: list[str]) -> Result:
        if not fields:
            return _err(400, "MISSING_ARGUMENT", "fields: required parameter missing")
        if not ids:
            return _err(400, "MISSING_ARGUMENT", "ids: required parameter missing")
        if len(ids) > 2000:
            return _err(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                        "than 2000 records into this call")
        columns = self._columns(sobject, fields)
        if isinstance(columns, Fail):
            return columns.rest()
        out: list[Any] = []
        for raw_id in ids:
            record_id = _normalize_id(str(raw_id).strip())
            if record_id in self.records and self.type_of(record_id) == sobject:
                out.append(self._render(record_id, version, columns))
            else:
                out.append(None)
        return 200, out, {}

    # ---- Composite ----------------------------------------------------------------------------

    def _composite(self, version: str, body: Any) -> Result:
        if body is _MISSING:
            return _no_body()
        subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
        if not isinstance(subrequests, list) or not subrequests:
            return _err(400, "INVALID_INPUT", "compositeRequest: required field missing")
        if len(subrequests) > 25:
            return _err(400, "LIMIT_EXCEEDED",
                        "Limit Exceeded: a composite request can contain up to 25 subrequests")
        seen: set[str] = set()
        for sub in subrequests:
            ref = sub.get("referenceId") if isinstance(sub, dict) else None
            if not isinstance(sub, dict) or sub.get("method") not in (
                    "GET", "POST", "PUT", "PATCH", "DELETE") or not isinstance(
                    sub.get("url"), str) or not isinstance(ref, str):
                return _err(400, "INVALID_INPUT",
                            "Each subrequest needs method, url and referenceId")
            if not re.fullmatch(r"[A-Za-z0-9_]+", ref) or ref in seen:
                return _err(400, "INVALID_INPUT",
                            f"Invalid or duplicate referenceId provided in the request: {ref}")
            seen.add(ref)
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = self._snapshot() if all_or_none else None
        bodies: dict[str, Any] = {}
        out: list[dict[str, Any]] = []
        failed = False
        halted_body = [{"errorCode": "PROCESSING_HALTED",
                        "message": "The transaction was rolled back since another operation in "
                                   "the same transaction failed."}]
        for sub in subrequests:
            ref = sub["referenceId"]
            if failed and all_or_none:
                out.append({"body": halted_body, "httpHeaders": {}, "httpStatusCode": 400,
                            "referenceId": ref})
                continue
            try:
                url = self._resolve(sub["url"], bodies)
                sub_body = self._resolve(sub["body"], bodies) if "body" in sub else _MISSING
                status, payload, headers = self._subrequest(sub["method"], str(url), sub_body)
            except _Unresolved as exc:
                status, headers = 400, {}
                payload = [{"errorCode": "PROCESSING_HALTED",
                            "message": f"Invalid reference specified. No value for {exc} found "
                                       f"in {str(exc).split('.')[0]}. Provided referenceId "
                                       f"doesn't match any prior subrequest result."}]
            out.append({"body": payload, "httpHeaders": headers, "httpStatusCode": status,
                        "referenceId": ref})
            if status < 400:
                bodies[ref] = payload
            else:
                failed = True
        if snapshot and failed:
            self._restore(snapshot)
            for entry in out:
                if entry["httpStatusCode"] < 400:
                    entry.update(body=halted_body, httpHeaders={}, httpStatusCode=400)
        return 200, {"compositeResponse": out}, {}

    @staticmethod
    def _resolve(value: Any, bodies: dict[str, Any]) -> Any:
        """Substitutes `@{referenceId.path}` references with values of earlier results."""
        pattern = re.compile(r"@\{([A-Za-z0-9_]+)((?:\.[^.}\[]+|\[\d+\])+)\}")

        def lookup(match: re.Match[str]) -> Any:
            if match.group(1) not in bodies:
                raise _Unresolved(match.group(0)[2:-1])
            current = bodies[match.group(1)]
            for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", match.group(2)):
                try:
                    current = current[int(index)] if index else current[key]
                except (KeyError, IndexError, TypeError):
                    raise _Unresolved(match.group(0)[2:-1]) from None
            return current

        if isinstance(value, str):
            whole = pattern.fullmatch(value)
            if whole:
                return lookup(whole)
            return pattern.sub(lambda m: str(lookup(m)), value)
        if isinstance(value, dict):
            return {k: FakeSalesforce._resolve(v, bodies) for k, v in value.items()}
        if isinstance(value, list):
            return [FakeSalesforce._resolve(v, bodies) for v in value]
        return value

    def _subrequest(self, method: str, url: str, body: Any) -> Result:
        parts = urlsplit(url)
        match = re.fullmatch(r"/services/data/v([^/]+)(/.*)?", parts.path)
        if not match:
            return _not_found()
        rest = (match.group(2) or "").strip("/")
        if rest.split("/")[0] == "composite" and not rest.startswith("composite/sobjects"):
            return _err(400, "INVALID_INPUT", f"The url {url} isn't supported in a "
                        "composite subrequest")
        if method in ("GET", "DELETE"):
            body = _MISSING
        result = self._dispatch(method, match.group(1), rest,
                                parse_qs(parts.query, keep_blank_values=True), body)
        if result[0] == 204:
            return 204, None, result[2]
        return result

    # ---- SOQL and search --------------------------------------------------------------------

    def _query(self, version: str, text: str, include_deleted: bool) -> Result:
        if not text.strip():
            return _err(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            query = _SoqlParser(text).parse()
            return 200, self._run(version, query, include_deleted), {}
        except SoqlError as exc:
            return _err(400, exc.code, exc.message)
        except ValueError:
            return _err(400, "MALFORMED_QUERY", "unexpected token in query")

    def _path(self, sobject: str, path: str) -> tuple[str, list[str]]:
        """Canonical relationship path, e.g. `account.name` on Contact -> (Account, [Name])."""
        hops = path.split(".")
        current = sobject
        canonical: list[str] = []
        for hop in hops[:-1]:
            link = (hop[:-3] + "__c") if hop.lower().endswith("__r") else hop + "Id"
            column = self._column(current, link)
            target = REFERENCES.get(current, {}).get(column or "")
            if column is None or (current in self.schema and target is None
                                  and not link.endswith("__c")):
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{hop}' in "
                                f"field path. If you are attempting to use a custom relationship,"
                                f" be sure to append the '__r' after the custom relationship "
                                f"name.")
            canonical.append(column[:-2] if column.endswith("Id") else column[:-3] + "__r")
            current = target or current
        leaf = self._columns(current, [hops[-1]])
        if isinstance(leaf, Fail):
            raise SoqlError(leaf.code, leaf.message)
        return ".".join([*canonical, leaf[0]]), canonical

    def _value(self, sobject: str, record: dict[str, Any], path: str) -> Any:
        hops = path.split(".")
        current, kind = record, sobject
        for hop in hops[:-1]:
            link = hop + "Id" if not hop.endswith("__r") else hop[:-3] + "__c"
            target_id = current.get(link)
            kind = REFERENCES.get(kind, {}).get(link) or (self.type_of(target_id or "") or "")
            current = self.records.get(target_id or "") or {}
            if not current:
                return None
        return current.get(hops[-1])

    def _run(self, version: str, query: Query, include_deleted: bool) -> dict[str, Any]:
        sobject = self._type(query.sobject)
        if sobject is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
        columns = [self._path(sobject, f)[0] for f in query.fields]
        paths: dict[str, str] = {}

        def check(node: Any) -> None:
            if node is None:
                return
            if node[0] in ("and", "or"):
                check(node[1])
                check(node[2])
            elif node[0] == "not":
                check(node[1])
            else:
                paths[node[1]] = self._path(sobject, node[1])[0]

        check(query.where)

        def test(node: Any, record: dict[str, Any]) -> bool:
            if node is None:
                return True
            if node[0] == "and":
                return test(node[1], record) and test(node[2], record)
            if node[0] == "or":
                return test(node[1], record) or test(node[2], record)
            if node[0] == "not":
                return not test(node[1], record)
            value = self._value(sobject, record, paths[node[1]])
            if node[0] == "like":
                regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                                for c in str(node[2]))
                return value is not None and re.fullmatch(regex, str(value), re.I) is not None
            if node[0] == "in":
                hit = any(_compare(value, "=", v) for v in node[2])
                return hit != node[3]
            return _compare(value, node[2], node[3])

        pool = [*self.records.items(), *(self.deleted.items() if include_deleted else [])]
        hits = [(rid, rec) for rid, rec in pool
                if self.type_of(rid) == sobject and test(query.where, rec)]
        for column, descending in reversed(query.order):
            path = self._path(sobject, column)[0]

            def key(item: tuple[str, dict[str, Any]], path: str = path) -> tuple[int, str]:
                value = self._value(sobject, item[1], path)
                return (0, "") if value is None else (1, str(value).lower()) \
                    if isinstance(value, str) else (1, f"{value:020.4f}")

            hits.sort(key=key, reverse=descending)
        hits = hits[query.offset:]
        if query.limit is not None:
            hits = hits[:query.limit]
        if query.count:
            return {"totalSize": len(hits), "done": True, "records": []}
        records = [self._project(version, sobject, rid, rec, columns) for rid, rec in hits]
        return {"totalSize": len(records), "done": True, "records": records}

    def _project(self, version: str, sobject: str, record_id: str, record: dict[str, Any],
                 columns: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": {"type": sobject,
                                              "url": self._url(version, sobject, record_id)}}
        for column in columns:
            if "." not in column:
                out[column] = copy.deepcopy(record.get(column))
                continue
            hop, rest = column.split(".", 1)
            link = hop + "Id" if not hop.endswith("__r") else hop[:-3] + "__c"
            target_id = record.get(link)
            target = self.records.get(target_id or "")
            if target is None:
                out[hop] = None
                continue
            nested = out.get(hop) or {}
            out[hop] = {**nested, **self._project(version, self.type_of(target_id) or "",
                                                  target_id, target, [rest])}
        return out

    def _search(self, version: str, term: str, wanted: list[tuple[str, list[str] | None,
                                                                  int | None]]) -> Result:
        """Substring match on Name across the wanted (type, fields, limit) triples."""
        if len(term.strip("*")) < 2:
            return _err(400, "INVALID_SEARCH",
                        f"search term must be longer than one character: {term}")
        needle = term.strip("*").lower()
        found: list[dict[str, Any]] = []
        for sobject, fields, limit in wanted:
            columns = self._columns(sobject, fields or ["Id"])
            if isinstance(columns, Fail):
                return columns.rest()
            hits = [rid for rid, rec in self.records.items() if self.type_of(rid) == sobject
                    and needle in str(rec.get("Name") or "").lower()]
            for rid in hits[:limit]:
                found.append(self._project(version, sobject, rid, self.records[rid], columns))
        return 200, {"searchRecords": found}, {}

    def _searchable(self) -> list[str]:
        return [s for s in self.prefixes if any(self.type_of(r) == s for r in self.records)]

    def _parameterized_search(self, method: str, version: str, params: dict[str, list[str]],
                              body: Any) -> Result:
        wanted: list[tuple[str, list[str] | None, int | None]] = []
        if method == "GET":
            term = params.get("q", [""])[0]
            default_fields = params.get("fields", [""])[0].split(",") \
                if params.get("fields", [""])[0] else None
            default_limit = params.get("defaultLimit", [""])[0]
            for name in params.get("sobject", []) or self._searchable():
                sobject = self._type(name) or name
                own = params.get(f"{name}.fields", [""])[0]
                limit = params.get(f"{name}.limit", [default_limit])[0]
                wanted.append((sobject, own.split(",") if own else default_fields,
                               int(limit) if limit.isdigit() else None))
        elif method == "POST":
            if not isinstance(body, dict):
                return _no_body() if body is _MISSING else _err(
                    400, "JSON_PARSER_ERROR", "Request body must be a JSON object")
            term = str(body.get("q") or "")
            default_fields = body.get("fields")
            default_limit = body.get("defaultLimit")
            specs = body.get("sobjects") or [{"name": n} for n in self._searchable()]
            for spec in specs:
                if not isinstance(spec, dict) or not self._type(spec.get("name")):
                    return _err(400, "INVALID_TYPE", "sobjects[].name must be an sObject name")
                limit = spec.get("limit", default_limit)
                wanted.append((self._type(spec["name"]) or "", spec.get("fields")
                               or default_fields, int(limit) if limit else None))
        else:
            return _not_allowed(method, "GET,HEAD,POST")
        if not term:
            return _err(400, "MISSING_ARGUMENT", "q: required parameter missing")
        return self._search(version, term, wanted)

    def _sosl(self, version: str, text: str) -> Result:
        match = re.match(r"\s*FIND\s*\{(.*?)\}", text, re.I | re.S)
        if not match:
            return _err(400, "MALFORMED_SEARCH", "No search term found. The search term must "
                        "be enclosed in braces.")
        return self._search(version, match.group(1),
                            [(s, None, None) for s in self._searchable()])
