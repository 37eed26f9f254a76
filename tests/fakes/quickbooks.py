"""A fake QuickBooks Online Accounting API v3 (Invoice, Customer, Payment, Item).

https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/invoice
- base `/v3/company/{realmId}/`, entity names lower case in paths (`/invoice`), capitalised in
  bodies (`{"Invoice": {...}, "time": "..."}`); every write is a POST: create (no Id), full or
  sparse update (Id + SyncToken), `?operation=delete`, `?operation=void`, `/invoice/{id}/send`
- reads: `GET /{entity}/{id}`, `GET /query?query=...` and `POST /query` (text body)
- answers JSON only when `Accept` names JSON; otherwise XML (`<IntuitResponse>`), as QBO does
- errors: 401 `{"fault": {"error": [...], "type": "AUTHENTICATION"}}` (lower case, as the
  gateway sends it), 403 code 3100 for a realm the token does not cover, and 400
  `{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type": "ValidationFault"}}`
  for 610 (not found), 5010 (stale SyncToken), 2020 (missing), 2010 (unknown property),
  2500 (bad reference), 6240 (duplicate name), 4000/4001 (query), 500 (unsupported operation)
- `?requestid=` makes a write idempotent: the same id replays the first answer
- Intuit's OpenID discovery documents (`/.well-known/openid_configuration/` and
  `/.well-known/openid_sandbox_configuration/`, at developer.intuit.com for real), which
  intuitlib's AuthClient fetches when it is built: served here on the API host, the one the
  tests map to this fake; AuthClient takes such a URL as its `environment`
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

PACIFIC = timezone(timedelta(hours=-7))
USD = {"value": "USD", "name": "United States Dollar"}
NOT_FOUND = ("Object Not Found : Something you're trying to use has been made inactive. "
             "Check the fields with accounts, customers, items, vendors or employees.")
DELETED = "Object Not Found : Another user has deleted this transaction."
STALE = ("Stale Object Error : You and root were working on this at the same time. "
         "root finished before you did, so your work was not saved.")
BUSINESS = "A business validation error has occurred while processing your request"
XMLNS = "http://schema.intuit.com/finance/v3"
DISCOVERY = {  # https://developer.intuit.com/.well-known/openid_configuration/
    "issuer": "https://oauth.platform.intuit.com/op/v1",
    "authorization_endpoint": "https://appcenter.intuit.com/connect/oauth2",
    "token_endpoint": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "userinfo_endpoint": "https://accounts.platform.intuit.com/v1/openid_connect/userinfo",
    "revocation_endpoint": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    "jwks_uri": "https://oauth.platform.intuit.com/op/v1/jwks",
    "response_types_supported": ["code"],
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "scopes_supported": ["openid", "email", "profile", "address", "phone"],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
    "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
}
SANDBOX_DISCOVERY = {**DISCOVERY, "userinfo_endpoint":
                     "https://sandbox-accounts.platform.intuit.com/v1/openid_connect/userinfo"}

COMMON_READ_ONLY = {"Id", "SyncToken", "MetaData", "domain", "sparse"}
WRITABLE: dict[str, set[str]] = {
    "Invoice": {
        "Line", "CustomerRef", "CurrencyRef", "GlobalTaxCalculation", "DocNumber", "ProjectRef",
        "BillEmail", "TxnDate", "ShipFromAddr", "ShipDate", "TrackingNum", "ClassRef",
        "PrintStatus", "SalesTermRef", "TxnSource", "LinkedTxn", "DepositToAccountRef",
        "AllowOnlineACHPayment", "TransactionLocationType", "DueDate", "PrivateNote",
        "BillEmailCc", "CustomerMemo", "EmailStatus", "ExchangeRate", "Deposit", "TxnTaxDetail",
        "AllowOnlineCreditCardPayment", "CustomField", "ShipAddr", "DepartmentRef",
        "BillEmailBcc", "ShipMethodRef", "BillAddr", "ApplyTaxAfterDiscount", "FreeFormAddress",
        "AllowOnlinePayment", "AllowIPNPayment",
    },
    "Customer": {
        "DisplayName", "Title", "GivenName", "MiddleName", "Suffix", "FamilyName",
        "PrimaryEmailAddr", "ResaleNum", "SecondaryTaxIdentifier", "ARAccountRef",
        "DefaultTaxCodeRef", "PreferredDeliveryMethod", "GSTIN", "SalesTermRef",
        "CustomerTypeRef", "Fax", "BusinessNumber", "BillWithParent", "CurrencyRef", "Mobile",
        "Job", "PrimaryPhone", "OpenBalanceDate", "Taxable", "AlternatePhone", "ParentRef",
        "Notes", "WebAddr", "Active", "CompanyName", "Balance", "ShipAddr", "PaymentMethodRef",
        "Source", "PrimaryTaxIdentifier", "GSTRegistrationType", "PrintOnCheckName", "BillAddr",
        "TaxExemptionReasonId",
    },
    "Payment": {
        "TxnDate", "PrivateNote", "Line", "CustomerRef", "DepositToAccountRef",
        "PaymentMethodRef", "PaymentRefNum", "TotalAmt", "ProcessPayment", "CurrencyRef",
        "ExchangeRate", "TxnSource", "ARAccountRef", "CreditCardPayment",
        "TransactionLocationType", "ProjectRef", "TxnStatus",
    },
    "Item": {
        "Name", "Type", "Description", "Active", "UnitPrice", "IncomeAccountRef",
        "ExpenseAccountRef", "AssetAccountRef", "PurchaseDesc", "PurchaseCost", "Taxable",
        "SalesTaxIncluded", "TrackQtyOnHand", "QtyOnHand", "InvStartDate", "Sku", "ParentRef",
        "SubItem", "ClassRef", "PrefVendorRef", "SalesTaxCodeRef", "PurchaseTaxCodeRef",
        "ReorderPoint", "ItemCategoryType", "Source", "TaxClassificationRef", "ServiceType",
        "PurchaseTaxIncluded",
    },
}
READ_ONLY: dict[str, set[str]] = {
    "Invoice": COMMON_READ_ONLY | {"TotalAmt", "Balance", "HomeBalance", "HomeTotalAmt",
                                   "DeliveryInfo", "InvoiceLink", "RecurDataRef",
                                   "TaxExemptionRef"},
    "Customer": COMMON_READ_ONLY | {"FullyQualifiedName", "Level", "BalanceWithJobs",
                                    "IsProject", "V4IDPseudonym"},
    "Payment": COMMON_READ_ONLY | {"UnappliedAmt"},
    "Item": COMMON_READ_ONLY | {"FullyQualifiedName", "Level"},
}
ENTITIES = {"invoice": "Invoice", "customer": "Customer", "payment": "Payment", "item": "Item"}
VOIDABLE = {"Invoice", "Payment"}
DELETABLE = {"Invoice", "Payment"}
ITEM_TYPES = {"Inventory", "Service", "NonInventory", "Category", "Group"}


class Fault(Exception):
    """A QBO fault: raised deep inside a write, answered by the handler."""

    def __init__(self, message: str, detail: str, code: str, element: str = "",
                 status: int = 400, kind: str = "ValidationFault") -> None:
        super().__init__(detail)
        self.status = status
        self.payload: dict[str, Any] = {
            "Fault": {"Error": [{"Message": message, "Detail": detail, "code": code,
                                 "element": element}], "type": kind},
            "time": _time(),
        }


def _time() -> str:
    return datetime.now(PACIFIC).isoformat(timespec="milliseconds")


def _stamp() -> str:
    return datetime.now(PACIFIC).isoformat(timespec="seconds")


def _today() -> str:
    return datetime.now(PACIFIC).date().isoformat()


def _money(value: Any) -> float:
    try:
        return round(float(value), 2)
    except (TypeError, ValueError):
        raise Fault("Request has invalid or unsupported property",
                    f"Property Name:Can not construct instance of java.math.BigDecimal from "
                    f"String value '{value}': not a valid representation specified is "
                    "unsupported or invalid", "2010") from None


def _missing(name: str) -> Fault:
    return Fault("Required param missing, need to supply the required value for the API",
                 f"Required parameter {name} is missing in the request", "2020")


def _unsupported(detail: str) -> Fault:
    return Fault("Unsupported Operation", detail, "500")


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


# --- XML, for clients that do not ask for JSON -------------------------------------------

XML_ATTRS = {"domain", "sparse", "status", "type", "code", "element", "startPosition",
             "maxResults", "totalCount"}


def _xml_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _to_xml(tag: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "".join(_to_xml(tag, item) for item in value)
    if isinstance(value, dict):
        if "value" in value and set(value) <= {"value", "name", "type"}:
            attrs = "".join(f" {k}={quoteattr(_xml_text(v))}" for k, v in value.items()
                            if k != "value" and v is not None)
            return f"<{tag}{attrs}>{escape(_xml_text(value['value']))}</{tag}>"
        attrs = "".join(f" {k}={quoteattr(_xml_text(v))}" for k, v in value.items()
                        if k in XML_ATTRS and v is not None and not isinstance(v, dict | list))
        inner = "".join(_to_xml(k, v) for k, v in value.items() if k not in XML_ATTRS)
        return f"<{tag}{attrs}>{inner}</{tag}>"
    return f"<{tag}>{escape(_xml_text(value))}</{tag}>"


def _xml_document(payload: dict[str, Any]) -> str:
    stamp = payload.get("time", _time())
    inner = "".join(_to_xml(k, v) for k, v in payload.items() if k != "time")
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<IntuitResponse xmlns="{XMLNS}" time={quoteattr(str(stamp))}>{inner}'
            "</IntuitResponse>")


# --- the query language: select * from Entity [where a = 'b' [and ...]] ... --------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,|\*)"
                    r"|(?P<num>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_][\w.]*))")


def _parse_error(token: str, column: int) -> Fault:
    return Fault("Error parsing query",
                 f'QueryParserError: Encountered " "{token}" at line 1, column {column}.',
                 "4000")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _parse_error(text[pos:pos + 1].strip() or text[pos:], pos + 1)
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value, match.start(kind) + 1))
        pos = match.end()
    return out


class _Query:
    """A parsed select statement (the subset of QBO's SQL-like language tests need)."""

    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.pos = 0
        self.count = False
        self.fields: list[str] | None = None
        self.entity = ""
        self.where: list[tuple[str, str, Any]] = []
        self.order: tuple[str, bool] | None = None
        self.start = 1
        self.max = 100
        self._parse()

    def _peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def _next(self) -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            raise _parse_error("<EOF>", sum(len(t[1]) for t in self.toks) + 1)
        self.pos += 1
        return tok

    def _expect_word(self, *words: str) -> str:
        kind, value, col = self._next()
        if kind != "word" or (words and value.lower() not in words):
            raise _parse_error(value, col)
        return value

    def _expect_op(self, op: str) -> None:
        kind, value, col = self._next()
        if kind != "op" or value != op:
            raise _parse_error(value, col)

    def _value(self) -> Any:
        kind, value, col = self._next()
        if kind in ("str", "num"):
            return value
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower()
        raise _parse_error(value, col)

    def _parse(self) -> None:
        self._expect_word("select")
        kind, value, _ = self._peek() or ("", "", 0)
        if kind == "op" and value == "*":
            self.pos += 1
        elif kind == "word" and value.lower() == "count":
            self.pos += 1
            self._expect_op("(")
            self._expect_op("*")
            self._expect_op(")")
            self.count = True
        else:
            self.fields = [self._expect_word()]
            while (tok := self._peek()) and tok[0] == "op" and tok[1] == ",":
                self.pos += 1
                self.fields.append(self._expect_word())
        self._expect_word("from")
        self.entity = self._expect_word()
        while (tok := self._peek()) is not None:
            word = self._expect_word().lower()
            if word == "where" and not self.where:
                self._condition()
                while (tok := self._peek()) and tok[0] == "word" and tok[1].lower() == "and":
                    self.pos += 1
                    self._condition()
            elif word in ("orderby", "order"):
                if word == "order":
                    self._expect_word("by")
                field = self._expect_word()
                desc = False
                if (tok := self._peek()) and tok[0] == "word" and tok[1].lower() in ("asc",
                                                                                     "desc"):
                    desc = tok[1].lower() == "desc"
                    self.pos += 1
                self.order = (field, desc)
            elif word in ("startposition", "maxresults"):
                kind, value, col = self._next()
                if kind != "num":
                    raise _parse_error(value, col)
                if word == "startposition":
                    self.start = max(1, int(float(value)))
                else:
                    self.max = min(1000, max(1, int(float(value))))
            else:
                raise _parse_error(tok[1], tok[2])

    def _condition(self) -> None:
        field = self._expect_word()
        kind, op, col = self._next()
        if kind == "word" and op.lower() in ("in", "like"):
            op = op.lower()
        elif kind != "op" or op not in ("=", "<", ">", "<=", ">=", "!=", "<>"):
            raise _parse_error(op, col)
        if op == "in":
            self._expect_op("(")
            values = [self._value()]
            while (tok := self._peek()) and tok[0] == "op" and tok[1] == ",":
                self.pos += 1
                values.append(self._value())
            self._expect_op(")")
            self.where.append((field, op, values))
        else:
            self.where.append((field, op, self._value()))


def _lookup(record: dict[str, Any], path: str) -> Any:
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        key = next((k for k in current if k.lower() == part.lower()), None)
        if key is None:
            return None
        current = current[key]
    if isinstance(current, dict) and "value" in current:
        current = current["value"]
    return current


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "in":
        return any(_compare(actual, "=", value) for value in expected)
    if actual is None:
        return op in ("!=", "<>")
    if isinstance(actual, bool):
        actual = "true" if actual else "false"
    if op == "like":
        pattern = ".*".join(re.escape(part) for part in str(expected).split("%"))
        return re.fullmatch(pattern, str(actual), re.IGNORECASE | re.DOTALL) is not None
    left: Any
    right: Any
    try:
        left, right = float(actual), float(expected)
    except (TypeError, ValueError):
        left, right = str(actual).casefold(), str(expected).casefold()
    return {"=": left == right, "!=": left != right, "<>": left != right, "<": left < right,
            ">": left > right, "<=": left <= right, ">=": left >= right}[op]


def _sort_key(value: Any) -> tuple[int, float, str]:
    if value is None:
        return (1, 0.0, "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (0, 0.0, str(value).casefold())


def _id_key(record: dict[str, Any]) -> tuple[int, str]:
    ident = str(record.get("Id", ""))
    return (int(ident), ident) if ident.isdigit() else (1 << 62, ident)


class FakeQuickBooks:
    def __init__(self, realm_id: str = "9130347596283816",
                 access_token: str = "qbo-access-token-123",
                 host: str = "quickbooks.api.intuit.com") -> None:
        self.realm_id = realm_id
        self.access_token = access_token
        self.host = host
        self.log = RequestLog()
        self._lock = threading.Lock()
        self.invoices: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, set[str]] = {name: set() for name in WRITABLE}
        self.sent_emails: list[dict[str, Any]] = []
        self._ids = {"Invoice": itertools.count(130), "Customer": itertools.count(58),
                     "Payment": itertools.count(200), "Item": itertools.count(20)}
        self._doc_numbers = itertools.count(1037)
        self._tids = itertools.count(1)
        self._replies: dict[str, tuple[int, dict[str, Any]]] = {}
        self.seed_item(Id="1", Name="Services", UnitPrice=0)
        self.seed_item(Id="2", Name="Hours", UnitPrice=50)
        base = "/v3/company/{realm}"
        self.app = Starlette(routes=[
            Route(base + "/query", self.query, methods=["GET", "POST"]),
            Route(base + "/invoice/{ident}/send", self.send, methods=["POST"]),
            Route(base + "/{entity}/{ident}", self.read, methods=["GET"]),
            Route(base + "/{entity}", self.write, methods=["POST"]),
            Route("/.well-known/openid_configuration/", self.discovery, methods=["GET"]),
            Route("/.well-known/openid_sandbox_configuration/", self.discovery,
                  methods=["GET"]),
            Route("/{path:path}", self.unknown,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    # --- seeding and inspection ------------------------------------------------------------

    def store(self, entity: str) -> dict[str, dict[str, Any]]:
        """The public dict holding records of an entity ("Invoice", "Customer", ...)."""
        return {"Invoice": self.invoices, "Customer": self.customers,
                "Payment": self.payments, "Item": self.items}[entity]

    def _seed(self, entity: str, defaults: dict[str, Any], fields: dict[str, Any]) -> str:
        record = {**defaults, **fields}
        with self._lock:
            ident = str(record.pop("Id", "") or self._next_id(entity))
            token = str(record.pop("SyncToken", "0"))
            record = {"Id": ident, "SyncToken": token, "domain": "QBO", "sparse": False,
                      "MetaData": record.pop("MetaData", None)
                      or {"CreateTime": _stamp(), "LastUpdatedTime": _stamp()}, **record}
            self._build(entity, record, created=True)
            self.store(entity)[ident] = record
            if entity == "Payment":
                self._refresh_invoices(self._linked_invoices(record))
        return ident

    def seed_customer(self, **fields: Any) -> str:
        defaults = {
            "DisplayName": "Amy's Bird Sanctuary", "GivenName": "Amy", "FamilyName": "Lauterbach",
            "CompanyName": "Amy's Bird Sanctuary",
            "PrimaryEmailAddr": {"Address": "Birds@Intuit.com"},
            "PrimaryPhone": {"FreeFormNumber": "(650) 555-3311"},
            "BillAddr": {"Line1": "4581 Finch St.", "City": "Bayshore",
                         "CountrySubDivisionCode": "CA", "PostalCode": "94326"},
            "Balance": 0,
        }
        if any(k in fields for k in ("DisplayName", "Title", "GivenName", "MiddleName",
                                     "FamilyName", "Suffix")):
            defaults = {"Balance": 0}
        return self._seed("Customer", defaults, fields)

    def seed_item(self, **fields: Any) -> str:
        return self._seed("Item", {"Name": "Services", "Type": "Service", "UnitPrice": 0},
                          fields)

    def seed_invoice(self, **fields: Any) -> str:
        defaults = {
            "CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
            "Line": [{"Amount": 100.0, "DetailType": "SalesItemLineDetail",
                      "Description": "Weekly gardening service",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"},
                                              "Qty": 1, "UnitPrice": 100}}],
            "BillEmail": {"Address": "Birds@Intuit.com"},
            "CustomerMemo": {"value": "Thank you for your business and have a great day!"},
        }
        merged = {**defaults, **fields}
        self._ensure_refs(merged)
        return self._seed("Invoice", defaults, fields)

    def seed_payment(self, **fields: Any) -> str:
        defaults = {"CustomerRef": {"value": "1", "name": "Amy's Bird Sanctuary"},
                    "TotalAmt": 0.0, "Line": []}
        self._ensure_refs({**defaults, **fields})
        return self._seed("Payment", defaults, fields)

    def _ensure_refs(self, record: dict[str, Any]) -> None:
        """Seeds the customer and items a seeded transaction names, so seeding stays short."""
        ref = record.get("CustomerRef") or {}
        if ref.get("value") and str(ref["value"]) not in self.customers:
            self.seed_customer(Id=str(ref["value"]),
                               DisplayName=ref.get("name") or f"Customer {ref['value']}")
        for line in record.get("Line") or []:
            item = (line.get("SalesItemLineDetail") or {}).get("ItemRef") or {}
            if item.get("value") and str(item["value"]) not in self.items:
                self.seed_item(Id=str(item["value"]), Name=item.get("name")
                               or f"Item {item['value']}")

    def _next_id(self, entity: str) -> str:
        store = self.store(entity)
        while True:
            ident = str(next(self._ids[entity]))
            if ident not in store and ident not in self.deleted[entity]:
                return ident

    # --- plumbing --------------------------------------------------------------------------

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _headers(self) -> dict[str, str]:
        return {"intuit_tid": f"1-{next(self._tids):08x}-fakeqbo"}

    def _respond(self, request: Request, payload: dict[str, Any], status: int = 200) -> Response:
        """JSON when the client's Accept names it, XML otherwise (QBO's default)."""
        if "json" in request.headers.get("accept", "").lower():
            return JSONResponse(payload, status_code=status, headers=self._headers())
        return Response(_xml_document(payload), status_code=status, headers=self._headers(),
                        media_type="application/xml")

    def _gate(self, request: Request) -> Response | None:
        """401 for a missing or wrong bearer token, then 403 for a realm it does not cover."""
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if token != self.access_token:
            detail = f"Token expired: {token}" if token else None
            return self._service_fault(request, 401, "AUTHENTICATION", "3200",
                                       "message=AuthenticationFailed; errorCode=003200; "
                                       "statusCode=401", detail)
        if request.path_params.get("realm") != self.realm_id:
            return self._service_fault(request, 403, "SERVICE", "3100",
                                       "message=AuthorizationFailed; errorCode=003100; "
                                       "statusCode=403", None)
        return None

    def _service_fault(self, request: Request, status: int, kind: str, code: str,
                       message: str, detail: str | None) -> Response:
        """The gateway's own faults: lower-case keys and an epoch-millisecond time."""
        if "json" in request.headers.get("accept", "").lower():
            body = {"warnings": None, "intuitObject": None,
                    "fault": {"error": [{"message": message, "detail": detail, "code": code,
                                         "element": None}], "type": kind},
                    "report": None, "queryResponse": None, "batchItemResponse": [],
                    "attachableResponse": [], "syncErrorResponse": None, "requestId": None,
                    "time": int(time.time() * 1000), "status": None, "cdcresponse": []}
            return JSONResponse(body, status_code=status, headers=self._headers())
        fault = {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}],
                           "type": kind}, "time": _time()}
        return Response(_xml_document(fault), status_code=status, headers=self._headers(),
                        media_type="application/xml")

    def _full_path(self, request: Request) -> str:
        query = f"?{request.url.query}" if request.url.query else ""
        return f"https://{self.host}{request.url.path}{query}"

    async def discovery(self, request: Request) -> Response:
        """The OpenID discovery document: public, JSON whatever the Accept, no token needed."""
        await self._record(request)
        sandbox = "sandbox" in request.url.path
        return JSONResponse(SANDBOX_DISCOVERY if sandbox else DISCOVERY)

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        fault = _unsupported(f"Operation Could not find resource for relative : "
                             f"{request.url.path} of full path: {self._full_path(request)} "
                             "is not supported.")
        return self._respond(request, fault.payload, fault.status)

    @staticmethod
    def _json_body(request: Request, body: bytes) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if "application/json" not in content_type:
            raise Fault("Unsupported Media Type",
                        f"Content-Type {content_type or '(none)'} is not supported; "
                        "send application/json", "415", status=415)
        try:
            parsed = json.loads(body or b"null")
        except ValueError as exc:
            raise Fault("Request has invalid or unsupported property",
                        f"Property Name:{exc} specified is unsupported or invalid",
                        "2010") from None
        if not isinstance(parsed, dict):
            raise Fault("Request has invalid or unsupported property",
                        "Property Name:Can not deserialize instance out of START_ARRAY token "
                        "specified is unsupported or invalid", "2010")
        return parsed

    # --- handlers --------------------------------------------------------------------------

    async def read(self, request: Request) -> Response:
        await self._record(request)
        if denied := self._gate(request):
            return denied
        entity = ENTITIES.get(request.path_params["entity"])
        if entity is None:
            return await self._unsupported_path(request)
        ident = request.path_params["ident"]
        try:
            with self._lock:
                record = copy.deepcopy(self._existing(entity, ident))
        except Fault as fault:
            return self._respond(request, fault.payload, fault.status)
        return self._respond(request, {entity: record, "time": _time()})

    async def _unsupported_path(self, request: Request) -> Response:
        fault = _unsupported(f"Operation Could not find resource for relative : "
                             f"{request.url.path} of full path: {self._full_path(request)} "
                             "is not supported.")
        return self._respond(request, fault.payload, fault.status)

    async def write(self, request: Request) -> Response:
        body = await self._record(request)
        if denied := self._gate(request):
            return denied
        entity = ENTITIES.get(request.path_params["entity"])
        if entity is None:
            return await self._unsupported_path(request)
        request_id = request.query_params.get("requestid")
        with self._lock:
            if request_id and request_id in self._replies:
                status, payload = self._replies[request_id]
                return self._respond(request, copy.deepcopy(payload), status)
        operation = request.query_params.get("operation", "").lower()
        try:
            data = self._json_body(request, body)
            with self._lock:
                if operation == "delete":
                    payload = self._delete(entity, data)
                elif operation == "void":
                    payload = self._void(entity, data)
                elif operation in ("", "update"):
                    if data.get("Id") in (None, ""):
                        if operation == "update":
                            raise _missing("Id")
                        payload = self._create(entity, data)
                    else:
                        payload = self._update(entity, data)
                else:
                    raise _unsupported(f"Operation {operation} is not supported.")
                status = 200
        except Fault as fault:
            payload, status = fault.payload, fault.status
        if request_id:
            with self._lock:
                self._replies[request_id] = (status, copy.deepcopy(payload))
        return self._respond(request, payload, status)

    async def send(self, request: Request) -> Response:
        await self._record(request)
        if denied := self._gate(request):
            return denied
        send_to = request.query_params.get("sendTo")
        try:
            with self._lock:
                invoice = self._existing("Invoice", request.path_params["ident"])
                if send_to:
                    if "@" not in send_to:
                        raise Fault(BUSINESS, "Business Validation Error: Invalid email "
                                    f"address: {send_to}", "6000")
                    invoice["BillEmail"] = {"Address": send_to}
                address = (invoice.get("BillEmail") or {}).get("Address")
                if not address:
                    raise Fault(BUSINESS, "Business Validation Error: Missing email address. "
                                "Enter an email address in the Bill Email field.", "6000")
                now = _stamp()
                invoice["EmailStatus"] = "EmailSent"
                invoice["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": now}
                invoice["MetaData"]["LastUpdatedTime"] = now
                self.sent_emails.append({"InvoiceId": invoice["Id"], "to": address,
                                         "at": now})
                payload = {"Invoice": copy.deepcopy(invoice), "time": _time()}
        except Fault as fault:
            return self._respond(request, fault.payload, fault.status)
        return self._respond(request, payload)

    async def query(self, request: Request) -> Response:
        body = await self._record(request)
        if denied := self._gate(request):
            return denied
        text = (request.query_params.get("query", "") if request.method == "GET"
                else body.decode("utf-8", "replace"))
        try:
            if not text.strip():
                raise _missing("query")
            with self._lock:
                payload = self._run_query(_Query(text))
        except Fault as fault:
            return self._respond(request, fault.payload, fault.status)
        return self._respond(request, payload)

    # --- operations (called with the lock held) --------------------------------------------

    def _existing(self, entity: str, ident: str) -> dict[str, Any]:
        record = self.store(entity).get(str(ident))
        if record is None:
            raise Fault("Object Not Found",
                        DELETED if str(ident) in self.deleted[entity] else NOT_FOUND, "610")
        return record

    @staticmethod
    def _check_fields(entity: str, data: dict[str, Any]) -> None:
        allowed = WRITABLE[entity] | READ_ONLY[entity]
        for name in data:
            if name not in allowed:
                raise Fault("Request has invalid or unsupported property",
                            f'Property Name:Unrecognized field "{name}" (class com.intuit.'
                            f"schema.finance.v3.{entity}), not marked as ignorable specified "
                            "is unsupported or invalid", "2010")

    def _locked(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        """The stored record a write names, after the Id and SyncToken checks."""
        record = self._existing(entity, str(data.get("Id")))
        if data.get("SyncToken") in (None, ""):
            raise _missing("SyncToken")
        if str(data["SyncToken"]) != record["SyncToken"]:
            raise Fault("Stale Object Error", STALE, "5010")
        return record

    @staticmethod
    def _touch(record: dict[str, Any]) -> None:
        record["SyncToken"] = str(int(record["SyncToken"]) + 1)
        record["MetaData"] = {**record.get("MetaData", {}), "LastUpdatedTime": _stamp()}

    def _create(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        self._check_fields(entity, data)
        record: dict[str, Any] = {k: copy.deepcopy(v) for k, v in data.items()
                                  if k in WRITABLE[entity]}
        now = _stamp()
        record = {"Id": "", "SyncToken": "0", "domain": "QBO", "sparse": False,
                  "MetaData": {"CreateTime": now, "LastUpdatedTime": now}, **record}
        self._build(entity, record, created=True)
        record["Id"] = self._next_id(entity)
        self.store(entity)[record["Id"]] = record
        if entity == "Payment":
            self._refresh_invoices(self._linked_invoices(record))
        return {entity: copy.deepcopy(record), "time": _time()}

    def _update(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        self._check_fields(entity, data)
        stored = self._locked(entity, data)
        before = copy.deepcopy(stored)
        writes = {k: copy.deepcopy(v) for k, v in data.items() if k in WRITABLE[entity]}
        if _is_true(data.get("sparse")):
            record = {**copy.deepcopy(stored), **writes}
        else:
            record = {k: copy.deepcopy(v) for k, v in stored.items()
                      if k in READ_ONLY[entity]}
            record.update(writes)
        if entity == "Customer":
            record["Balance"] = stored.get("Balance", 0)
        self._build(entity, record, created=False, before=before)
        self._touch(record)
        stored.clear()
        stored.update(record)
        if entity == "Payment":
            self._refresh_invoices(self._linked_invoices(before) | self._linked_invoices(stored))
        return {entity: copy.deepcopy(stored), "time": _time()}

    def _delete(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        if entity not in DELETABLE:
            raise _unsupported("Operation Delete is not supported.")
        if data.get("Id") in (None, ""):
            raise _missing("Id")
        record = self._locked(entity, data)
        if entity == "Invoice" and self._paid(record["Id"]):
            raise Fault(BUSINESS, "Business Validation Error: This transaction has payments "
                        "applied to it. Unlink the payments before deleting it.", "6000")
        del self.store(entity)[record["Id"]]
        self.deleted[entity].add(record["Id"])
        if entity == "Payment":
            self._refresh_invoices(self._linked_invoices(record))
        return {entity: {"status": "Deleted", "domain": "QBO", "Id": record["Id"]},
                "time": _time()}

    def _void(self, entity: str, data: dict[str, Any]) -> dict[str, Any]:
        if entity not in VOIDABLE:
            raise _unsupported("Operation Void is not supported.")
        if data.get("Id") in (None, ""):
            raise _missing("Id")
        record = self._locked(entity, data)
        note = record.get("PrivateNote")
        if entity == "Invoice":
            if self._paid(record["Id"]):
                raise Fault(BUSINESS, "Business Validation Error: This transaction has "
                            "payments applied to it. Unlink the payments before voiding it.",
                            "6000")
            for line in record.get("Line", []):
                line["Amount"] = 0
                detail = line.get("SalesItemLineDetail")
                if isinstance(detail, dict):
                    detail["Qty"] = 0
                    detail.pop("UnitPrice", None)
            record["TotalAmt"] = 0
            record["Balance"] = 0
            record["Deposit"] = 0
            record["TxnTaxDetail"] = {"TotalTax": 0}
        else:
            linked = self._linked_invoices(record)
            record["Line"] = []
            record["TotalAmt"] = 0
            record["UnappliedAmt"] = 0
            self._refresh_invoices(linked)
        record["PrivateNote"] = f"Voided - {note}" if note else "Voided"
        self._touch(record)
        return {entity: copy.deepcopy(record), "time": _time()}

    def _run_query(self, query: _Query) -> dict[str, Any]:
        entity = next((v for v in ENTITIES.values() if v.lower() == query.entity.lower()), None)
        if entity is None:
            raise Fault("Invalid query", "QueryValidationError: Invalid entity name: "
                        f"{query.entity}", "4001")
        known = {name.lower() for name in WRITABLE[entity] | READ_ONLY[entity]}
        for field, _, _ in query.where:
            if field.split(".")[0].lower() not in known:
                raise Fault("Invalid query", f"QueryValidationError: property '{field}' is "
                            "not queryable", "4001")
        rows = list(self.store(entity).values())
        if entity in ("Customer", "Item") and not any(
                f.lower() == "active" for f, _, _ in query.where):
            rows = [row for row in rows if row.get("Active", True)]
        rows = [row for row in rows
                if all(_compare(_lookup(row, f), op, v) for f, op, v in query.where)]
        rows.sort(key=_id_key)
        if query.order:
            field, desc = query.order
            rows.sort(key=lambda row: _sort_key(_lookup(row, field)), reverse=desc)
        if query.count:
            return {"QueryResponse": {"totalCount": len(rows)}, "time": _time()}
        page = rows[query.start - 1:query.start - 1 + query.max]
        if query.fields:
            wanted = {f.lower() for f in query.fields}
            page = [{k: v for k, v in row.items()
                     if k.lower() in wanted or k in ("Id", "SyncToken", "domain")}
                    | {"sparse": True} for row in page]
        if not page:
            return {"QueryResponse": {}, "time": _time()}
        return {"QueryResponse": {entity: copy.deepcopy(page), "startPosition": query.start,
                                  "maxResults": len(page)}, "time": _time()}

    # --- per-entity rules ------------------------------------------------------------------

    def _build(self, entity: str, record: dict[str, Any], *, created: bool,
               before: dict[str, Any] | None = None) -> None:
        """Validates a record and fills what QBO derives or defaults (in place)."""
        {"Invoice": self._build_invoice, "Customer": self._build_customer,
         "Payment": self._build_payment, "Item": self._build_item}[entity](record, created,
                                                                           before)

    def _customer_ref(self, record: dict[str, Any]) -> dict[str, Any]:
        ref = record.get("CustomerRef")
        if not isinstance(ref, dict) or not ref.get("value"):
            raise _missing("CustomerRef")
        customer = self.customers.get(str(ref["value"]))
        if customer is None:
            raise Fault("Invalid Reference Id", "Invalid Reference Id : Something you're "
                        "trying to use has been made inactive. Check the fields with accounts, "
                        "customers, items, vendors or employees.", "2500")
        if not customer.get("Active", True):
            raise Fault("Object Not Found", NOT_FOUND, "610")
        record["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        return customer

    def _sales_line(self, line: dict[str, Any]) -> float:
        detail = line.get("SalesItemLineDetail")
        if not isinstance(detail, dict):
            detail = line["SalesItemLineDetail"] = {}
        if "Amount" not in line:
            raise _missing("Line.Amount")
        amount = _money(line["Amount"])
        line["Amount"] = amount
        if "Qty" in detail and "UnitPrice" in detail:
            expected = _money(_money(detail["Qty"]) * _money(detail["UnitPrice"]))
            if abs(expected - amount) > 0.005:
                raise Fault(BUSINESS, "Business Validation Error: Amount is not equal to "
                            f"UnitPrice * Qty. Supplied value:{amount}", "6070")
        ref = detail.get("ItemRef") or {"value": "1"}
        item = self.items.get(str(ref.get("value")))
        if item is None or not item.get("Active", True):
            raise Fault("Invalid Reference Id", "Invalid Reference Id : Something you're "
                        "trying to use has been made inactive. Check the fields with accounts, "
                        "customers, items, vendors or employees.", "2500")
        detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
        detail.setdefault("TaxCodeRef", {"value": "NON"})
        return amount

    def _build_invoice(self, record: dict[str, Any], created: bool,
                       before: dict[str, Any] | None) -> None:
        customer = self._customer_ref(record)
        raw = record.get("Line")
        if not isinstance(raw, list):
            raise _missing("Line")
        lines = [dict(line) for line in raw if isinstance(line, dict)
                 and line.get("DetailType") != "SubTotalLineDetail"]
        if not lines:
            raise _missing("Line")
        used = {str(line["Id"]) for line in lines if line.get("Id")}
        ids = (str(n) for n in itertools.count(1) if str(n) not in used)
        items: list[dict[str, Any]] = []
        discounts: list[dict[str, Any]] = []
        subtotal = 0.0
        for line in lines:
            kind = line.get("DetailType")
            if kind in ("SalesItemLineDetail", "DescriptionOnly", "GroupLineDetail"):
                if kind == "SalesItemLineDetail":
                    subtotal += self._sales_line(line)
                elif "Amount" in line:
                    line["Amount"] = _money(line["Amount"])
                line["Id"] = str(line.get("Id") or next(ids))
                items.append(line)
            elif kind == "DiscountLineDetail":
                discounts.append(line)
            elif not kind:
                raise _missing("Line.DetailType")
            else:
                raise Fault("Invalid Enumeration", f"Invalid Enumeration : {kind}", "2170")
        for number, line in enumerate(items, start=1):
            line["LineNum"] = number
        discount_total = 0.0
        for line in discounts:
            detail = line.get("DiscountLineDetail") or {}
            if _is_true(detail.get("PercentBased")) and "DiscountPercent" in detail:
                line["Amount"] = _money(subtotal * _money(detail["DiscountPercent"]) / 100)
            line["Amount"] = _money(line.get("Amount", 0))
            discount_total += line["Amount"]
        subtotal = _money(subtotal)
        record["Line"] = [*items, {"Amount": subtotal, "DetailType": "SubTotalLineDetail",
                                   "SubTotalLineDetail": {}}, *discounts]
        status = record.setdefault("EmailStatus", "NotSet") or "NotSet"
        record["EmailStatus"] = status
        if status not in ("NotSet", "NeedToSend", "EmailSent"):
            raise Fault("Invalid Enumeration", f"Invalid Enumeration : {status}", "2170")
        if created and not record.get("BillEmail") and customer.get("PrimaryEmailAddr"):
            record["BillEmail"] = copy.deepcopy(customer["PrimaryEmailAddr"])
        if created and not record.get("BillAddr") and customer.get("BillAddr"):
            record["BillAddr"] = copy.deepcopy(customer["BillAddr"])
        if status == "NeedToSend" and not (record.get("BillEmail") or {}).get("Address"):
            raise _missing("BillEmail")
        record["TxnDate"] = record.get("TxnDate") or _today()
        if not record.get("DueDate"):
            try:
                record["DueDate"] = (date.fromisoformat(record["TxnDate"])
                                     + timedelta(days=30)).isoformat()
            except ValueError:
                raise Fault("Request has invalid or unsupported property",
                            f"Property Name:TxnDate {record['TxnDate']} specified is "
                            "unsupported or invalid", "2010") from None
        if created and not record.get("DocNumber"):
            record["DocNumber"] = str(next(self._doc_numbers))
        record.setdefault("CurrencyRef", dict(USD))
        record.setdefault("PrintStatus", "NotSet")
        record.setdefault("ApplyTaxAfterDiscount", False)
        record["Deposit"] = _money(record.get("Deposit") or 0)
        tax = record.get("TxnTaxDetail") if isinstance(record.get("TxnTaxDetail"), dict) else {}
        tax = {**tax, "TotalTax": _money(tax.get("TotalTax") or 0)}
        record["TxnTaxDetail"] = tax
        record["TotalAmt"] = _money(subtotal - discount_total + tax["TotalTax"])
        record["LinkedTxn"] = [link for link in record.get("LinkedTxn") or []
                               if isinstance(link, dict) and link.get("TxnType") != "Payment"]
        self._refresh_invoice(record)

    def _paid(self, invoice_id: str, skip: str | None = None) -> float:
        total = 0.0
        for payment in self.payments.values():
            if payment["Id"] == skip:
                continue
            for line in payment.get("Line", []):
                if any(link.get("TxnType") == "Invoice" and str(link.get("TxnId")) == invoice_id
                       for link in line.get("LinkedTxn", [])):
                    total += float(line.get("Amount", 0))
        return round(total, 2)

    def _refresh_invoice(self, invoice: dict[str, Any]) -> None:
        """Balance and payment links follow the payments applied to the invoice."""
        paid = self._paid(invoice["Id"]) if invoice.get("Id") else 0.0
        invoice["Balance"] = _money(invoice["TotalAmt"] - invoice.get("Deposit", 0) - paid)
        links = [link for link in invoice.get("LinkedTxn", []) if link.get("TxnType") != "Payment"]
        for payment in sorted(self.payments.values(), key=_id_key):
            if invoice.get("Id") and invoice["Id"] in self._linked_invoices(payment):
                links.append({"TxnId": payment["Id"], "TxnType": "Payment"})
        invoice["LinkedTxn"] = links

    @staticmethod
    def _linked_invoices(payment: dict[str, Any]) -> set[str]:
        return {str(link.get("TxnId")) for line in payment.get("Line", [])
                for link in line.get("LinkedTxn", []) if link.get("TxnType") == "Invoice"}

    def _refresh_invoices(self, ids: set[str]) -> None:
        for ident in ids:
            if ident in self.invoices:
                self._refresh_invoice(self.invoices[ident])

    def _build_payment(self, record: dict[str, Any], created: bool,
                       before: dict[str, Any] | None) -> None:
        self._customer_ref(record)
        if record.get("TotalAmt") in (None, ""):
            raise _missing("TotalAmt")
        record["TotalAmt"] = _money(record["TotalAmt"])
        lines = record.get("Line") or []
        if not isinstance(lines, list):
            raise _missing("Line")
        applied = 0.0
        for line in lines:
            if "Amount" not in line:
                raise _missing("Line.Amount")
            line["Amount"] = _money(line["Amount"])
            applied += line["Amount"]
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") != "Invoice":
                    continue
                invoice = self._existing("Invoice", str(link.get("TxnId")))
                link["TxnId"] = invoice["Id"]
                open_balance = _money(invoice["TotalAmt"] - invoice.get("Deposit", 0)
                                      - self._paid(invoice["Id"], skip=record.get("Id")))
                if line["Amount"] > open_balance + 0.005:
                    raise Fault(BUSINESS, "Business Validation Error: The payment amount "
                                f"exceeds the open balance of Invoice {invoice['Id']}.", "6000")
        if applied > record["TotalAmt"] + 0.005:
            raise Fault(BUSINESS, "Business Validation Error: The amount applied exceeds the "
                        "total payment amount.", "6000")
        record["Line"] = lines
        record["UnappliedAmt"] = _money(record["TotalAmt"] - applied)
        record["TxnDate"] = record.get("TxnDate") or _today()
        record.setdefault("CurrencyRef", dict(USD))
        record.setdefault("DepositToAccountRef", {"value": "4", "name": "Undeposited Funds"})
        record.setdefault("ProcessPayment", False)

    def _build_customer(self, record: dict[str, Any], created: bool,
                        before: dict[str, Any] | None) -> None:
        parts = [record.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                         "Suffix")]
        if not record.get("DisplayName"):
            if not any(parts):
                raise _missing("DisplayName")
            record["DisplayName"] = " ".join(str(p) for p in parts if p)
        name = str(record["DisplayName"])
        was_active = before.get("Active", True) if before else True
        active = record.get("Active", True) is not False
        if not active and was_active and not name.endswith(" (deleted)"):
            name += " (deleted)"
        elif active and name.endswith(" (deleted)"):
            name = name.removesuffix(" (deleted)")
        for other in self.customers.values():
            if other["Id"] != record.get("Id") and other["DisplayName"].lower() == name.lower():
                raise Fault("Duplicate Name Exists Error", "The name supplied already exists. "
                            f": Id={other['Id']}", "6240")
        record["DisplayName"] = name
        record["Active"] = active
        record["FullyQualifiedName"] = name
        record["PrintOnCheckName"] = record.get("PrintOnCheckName") or (
            record.get("CompanyName") or name)
        record.setdefault("Taxable", False)
        record.setdefault("Job", False)
        record.setdefault("BillWithParent", False)
        record.setdefault("PreferredDeliveryMethod", "Print")
        record["CurrencyRef"] = (before or {}).get("CurrencyRef") or record.get(
            "CurrencyRef") or dict(USD)
        record["Balance"] = _money(record.get("Balance") or 0)
        record["BalanceWithJobs"] = record["Balance"]

    def _build_item(self, record: dict[str, Any], created: bool,
                    before: dict[str, Any] | None) -> None:
        if not record.get("Name"):
            raise _missing("Name")
        for other in self.items.values():
            if other["Id"] != record.get("Id") and other["Name"].lower() == str(
                    record["Name"]).lower():
                raise Fault("Duplicate Name Exists Error", "The name supplied already exists. "
                            f": Id={other['Id']}", "6240")
        kind = record.get("Type") or "Service"
        if kind not in ITEM_TYPES:
            raise Fault("Invalid Enumeration", f"Invalid Enumeration : {kind}", "2170")
        record["Type"] = kind
        record["FullyQualifiedName"] = record["Name"]
        record["Active"] = record.get("Active", True) is not False
        record.setdefault("Taxable", False)
        record["UnitPrice"] = _money(record.get("UnitPrice") or 0)
        record["PurchaseCost"] = _money(record.get("PurchaseCost") or 0)
        record.setdefault("TrackQtyOnHand", False)
        if kind != "Category":
            record.setdefault("IncomeAccountRef", {"value": "79",
                                                   "name": "Sales of Product Income"})
