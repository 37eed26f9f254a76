"""Fake GraphQL-only vendors: Shopify Admin API (products) and Linear (issues).

Both are executed with graphql-core against a small schema subset built with `build_schema`,
so queries, fragments, aliases and variables behave as on the real servers.

Shopify: https://shopify.dev/docs/api/admin-graphql (2024-10)
- `POST /admin/api/{version}/graphql.json`, header `X-Shopify-Access-Token`
- 401 {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
- ids are `gid://shopify/Product/<n>`; mutations answer {"<name>": {..., "userErrors": []}}
- `productCreate`/`productUpdate` take the 2024-10 `product:` argument (ProductCreateInput /
  ProductUpdateInput) or the deprecated `input: ProductInput`; responses carry
  `extensions.cost`
- `Product` carries every scalar field the 2026-07 schema gives it (types as there), and `seo`,
  so the proxy's generated reads of a product (`product(id:)`) validate and answer as Shopify's
Linear: https://developers.linear.app/docs/graphql/working-with-the-graphql-api
- `POST /graphql`, `Authorization: <personal api key>` or `Authorization: Bearer <oauth token>`
- errors: {"errors": [{"message", "extensions": {"type", "code", "userPresentableMessage",
  ...}}]}; authentication and query-validation failures are answered with HTTP 400, failures
  while executing (entity not found, invalid input) with HTTP 200 and `"data": null`
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import graphql
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_ms() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _locations(error: graphql.GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or []]


class _VendorError(Exception):
    """A resolver failure carrying the vendor's error `extensions`."""

    def __init__(self, message: str, extensions: dict[str, Any]) -> None:
        super().__init__(message)
        self.extensions = extensions


def _request_payload(request: Request, body: bytes) -> dict[str, Any] | None:
    """{"query", "variables", "operationName"} from a JSON or application/graphql body."""
    if "application/graphql" in request.headers.get("content-type", ""):
        return {"query": body.decode("utf-8", "replace"), "variables": None}
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return None
    if payload.get("variables") is not None and not isinstance(payload["variables"], dict):
        return None
    return payload


def _connection(items: list[dict[str, Any]], first: int | None, after: str | None,
                last: int | None = None, before: str | None = None,
                cursor_of: Any = None) -> dict[str, Any]:
    """Relay connection over an ordered list, with opaque cursors built from each node id."""
    cursor_of = cursor_of or (lambda node: node["id"])
    cursors = [cursor_of(n) for n in items]
    start, end = 0, len(items)
    if after is not None and after in cursors:
        start = cursors.index(after) + 1
    if before is not None and before in cursors:
        end = cursors.index(before)
    window = list(range(start, end))
    if first is not None:
        window = window[:max(first, 0)]
    if last is not None:
        window = window[-last:] if last > 0 else []
    nodes = [items[i] for i in window]
    edges = [{"cursor": cursors[i], "node": items[i]} for i in window]
    return {"nodes": nodes, "edges": edges,
            "pageInfo": {"hasNextPage": bool(window) and window[-1] < len(items) - 1,
                         "hasPreviousPage": bool(window) and window[0] > 0,
                         "startCursor": edges[0]["cursor"] if edges else None,
                         "endCursor": edges[-1]["cursor"] if edges else None}}


# =============================================================================== Shopify

SHOPIFY_SDL = """
scalar DateTime
scalar HTML
scalar URL
scalar UnsignedInt64

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum CombinedListingsRole { PARENT CHILD }
enum ProductSortKeys { ID TITLE VENDOR PRODUCT_TYPE CREATED_AT UPDATED_AT }

type Product {
  id: ID! legacyResourceId: UnsignedInt64! title: String! handle: String!
  status: ProductStatus! vendor: String! productType: String! tags: [String!]!
  description: String! descriptionHtml: HTML! createdAt: DateTime! updatedAt: DateTime!
  onlineStoreUrl: URL onlineStorePreviewUrl: URL publishedAt: DateTime
  combinedListingRole: CombinedListingsRole defaultCursor: String!
  giftCardTemplateSuffix: String templateSuffix: String hasOnlyDefaultVariant: Boolean!
  hasOutOfStockVariants: Boolean! hasVariantsThatRequiresComponents: Boolean!
  isGiftCard: Boolean! requiresSellingPlan: Boolean! totalInventory: Int!
  tracksInventory: Boolean! seo: SEO!
}
type SEO { title: String description: String }
input SEOInput { title: String description: String }
type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}
type ProductEdge { cursor: String! node: Product! }
type ProductConnection { edges: [ProductEdge!]! nodes: [Product!]! pageInfo: PageInfo! }
type UserError { field: [String!] message: String! }

input ProductInput {
  id: ID title: String handle: String descriptionHtml: String vendor: String
  productType: String tags: [String!] status: ProductStatus seo: SEOInput
}
input ProductCreateInput {
  title: String handle: String descriptionHtml: String vendor: String productType: String
  tags: [String!] status: ProductStatus seo: SEOInput
}
input ProductUpdateInput {
  id: ID title: String handle: String descriptionHtml: String vendor: String
  productType: String tags: [String!] status: ProductStatus seo: SEOInput
}
input ProductDeleteInput { id: ID! }

type ProductCreatePayload { product: Product userErrors: [UserError!]! }
type ProductUpdatePayload { product: Product userErrors: [UserError!]! }
type ProductDeletePayload { deletedProductId: ID userErrors: [UserError!]! }

type Query {
  product(id: ID!): Product
  products(first: Int, after: String, last: Int, before: String, reverse: Boolean,
           sortKey: ProductSortKeys): ProductConnection!
}
type Mutation {
  productCreate(input: ProductInput, product: ProductCreateInput): ProductCreatePayload
  productUpdate(input: ProductInput, product: ProductUpdateInput): ProductUpdatePayload
  productDelete(input: ProductDeleteInput!, synchronous: Boolean): ProductDeletePayload
}
"""

SHOPIFY_UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
PRODUCT_GID = re.compile(r"^gid://shopify/Product/(\d+)$")
API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


def _handleize(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "product"


class FakeShopify:
    """In-memory Shopify store: products only, through the Admin GraphQL API."""

    def __init__(self, shop: str = "acme", access_token: str = "shpat_fake_123",
                 host: str | None = None) -> None:
        self.host = host or f"{shop}.myshopify.com"
        self.access_token = access_token
        self.log = RequestLog()
        self._lock = threading.RLock()
        self._ids = itertools.count(8123456001)
        self.products: dict[str, dict[str, Any]] = {}
        self.deleted: list[str] = []
        self.schema = graphql.build_schema(SHOPIFY_SDL)
        self.app = Starlette(routes=[
            Route("/admin/api/{version}/graphql.json", self.graphql, methods=["POST"]),
            Route("/{path:path}", self.unknown, methods=ALL_METHODS),
        ])

    def seed_product(self, title: str = "Snowboard", **fields: Any) -> str:
        """Fields use the GraphQL names (vendor, productType, tags, status, ...); returns a gid."""
        with self._lock:
            number = next(self._ids)
            gid = f"gid://shopify/Product/{number}"
            now = _now()
            product = {"id": gid, "legacyResourceId": str(number), "title": title,
                       "handle": _handleize(title), "status": "ACTIVE", "vendor": "Acme",
                       "productType": "", "tags": [], "descriptionHtml": "",
                       "createdAt": now, "updatedAt": now, "publishedAt": now,
                       "seo": {"title": None, "description": None},
                       "combinedListingRole": None, "giftCardTemplateSuffix": None,
                       "templateSuffix": None, "hasOnlyDefaultVariant": True,
                       "hasOutOfStockVariants": False,
                       "hasVariantsThatRequiresComponents": False, "isGiftCard": False,
                       "requiresSellingPlan": False, "totalInventory": 0,
                       "tracksInventory": True}
            product.update(fields)
            self.products[gid] = product
            return gid

    def product(self, gid: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.products.get(gid)
            return copy.deepcopy(found) if found else None

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"errors": "Not Found"}, status_code=404)

    async def graphql(self, request: Request) -> Response:
        body = await self._record(request)
        if request.headers.get("x-shopify-access-token") != self.access_token:
            return JSONResponse(SHOPIFY_UNAUTHORIZED, status_code=401)
        if not API_VERSION.match(request.path_params["version"]):
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        payload = _request_payload(request, body)
        if payload is None:
            return JSONResponse({"errors": {"query": "Required parameter missing or invalid"}},
                                status_code=400)
        try:
            document = graphql.parse(payload["query"])
        except graphql.GraphQLError as exc:
            return JSONResponse({"errors": [{"message": exc.message,
                                             "locations": _locations(exc)}]})
        if errors := graphql.validate(self.schema, document):
            return JSONResponse({"errors": [_ruby_style(e) for e in errors]})
        is_mutation = any(getattr(d, "operation", None) == graphql.OperationType.MUTATION
                          for d in document.definitions)
        with self._lock:
            result = graphql.execute(self.schema, document, root_value=_ShopifyRoot(self),
                                     variable_values=payload.get("variables") or None,
                                     operation_name=payload.get("operationName"))
        out: dict[str, Any] = {}
        if result.errors:  # type: ignore[union-attr]
            out["errors"] = [_vendor_error(e) for e in result.errors]  # type: ignore[union-attr]
        out["data"] = result.data  # type: ignore[union-attr]
        cost = 10 if is_mutation else 2
        out["extensions"] = {"cost": {
            "requestedQueryCost": cost, "actualQueryCost": cost,
            "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 2000 - cost,
                               "restoreRate": 100.0}}}
        return JSONResponse(out)

    def _render(self, gid: str) -> dict[str, Any]:
        product = dict(self.products[gid])
        product["description"] = re.sub(r"<[^>]+>", "", product["descriptionHtml"])
        product["onlineStoreUrl"] = (f"https://{self.host}/products/{product['handle']}"
                                     if product["status"] == "ACTIVE" else None)
        product["onlineStorePreviewUrl"] = f"https://{self.host}/products/{product['handle']}"
        product["defaultCursor"] = _shopify_cursor(product)
        return product


def _shopify_cursor(product: dict[str, Any]) -> str:
    """Opaque cursors shaped like Shopify's (base64 JSON of the last id and sort value)."""
    last = int(product["legacyResourceId"])
    return base64.b64encode(json.dumps({"last_id": last, "last_value": last}).encode()).decode()


def _gid(value: str) -> str:
    if not PRODUCT_GID.match(value):
        raise _VendorError(f"Invalid global id '{value}'",
                           {"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"})
    return value


class _ShopifyRoot:
    """Root value for graphql-core: Shopify query and mutation fields."""

    def __init__(self, fake: FakeShopify) -> None:
        self.fake = fake

    def product(self, _info: Any, id: str) -> dict[str, Any] | None:
        gid = _gid(id)
        return self.fake._render(gid) if gid in self.fake.products else None

    def products(self, _info: Any, first: int | None = None, after: str | None = None,
                 last: int | None = None, before: str | None = None, reverse: bool = False,
                 sortKey: str = "ID") -> dict[str, Any]:
        if first is None and last is None:
            raise _VendorError("you must provide one of first or last",
                               {"code": "BAD_REQUEST"})
        if (first or 0) > 250 or (last or 0) > 250:
            raise _VendorError("The page size limit is 250", {"code": "BAD_REQUEST"})
        field = {"ID": "legacyResourceId", "TITLE": "title", "VENDOR": "vendor",
                 "PRODUCT_TYPE": "productType", "CREATED_AT": "createdAt",
                 "UPDATED_AT": "updatedAt"}[sortKey]
        items = [self.fake._render(gid) for gid in self.fake.products]
        items.sort(key=lambda p: int(p[field]) if field == "legacyResourceId" else p[field],
                   reverse=reverse)
        return _connection(items, first, after, last, before,
                           cursor_of=_shopify_cursor)

    @staticmethod
    def _fields(input: dict[str, Any] | None, product: dict[str, Any] | None) -> dict[str, Any]:
        if (input is None) == (product is None):
            raise _VendorError("Exactly one of `input` or `product` must be provided",
                               {"code": "INVALID_FIELD_ARGUMENTS"})
        return dict(input if input is not None else product)  # type: ignore[arg-type]

    @staticmethod
    def _user_errors(fields: dict[str, Any]) -> list[dict[str, Any]]:
        if "title" in fields and not (fields["title"] or "").strip():
            return [{"field": ["title"], "message": "Title can't be blank"}]
        return []

    def productCreate(self, _info: Any, input: dict[str, Any] | None = None,
                      product: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = self._fields(input, product)
        fields.pop("id", None)
        fields.setdefault("title", "")
        if errors := self._user_errors(fields):
            return {"product": None, "userErrors": errors}
        fields = {k: v for k, v in fields.items() if v is not None}
        title = fields.pop("title")
        gid = self.fake.seed_product(title, **fields)
        return {"product": self.fake._render(gid), "userErrors": []}

    def productUpdate(self, _info: Any, input: dict[str, Any] | None = None,
                      product: dict[str, Any] | None = None) -> dict[str, Any]:
        fields = self._fields(input, product)
        gid = fields.pop("id", None)
        if gid is None or _gid(gid) not in self.fake.products:
            return {"product": None,
                    "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}
        if errors := self._user_errors(fields):
            return {"product": None, "userErrors": errors}
        stored = self.fake.products[gid]
        for name, value in fields.items():
            if name == "seo" and isinstance(value, dict):  # a nested input merges
                stored["seo"] = {**stored["seo"], **value}
            elif value is not None:
                stored[name] = value
        stored["updatedAt"] = _now()
        return {"product": self.fake._render(gid), "userErrors": []}

    def productDelete(self, _info: Any, input: dict[str, Any],
                      synchronous: bool = True) -> dict[str, Any]:
        gid = _gid(input["id"])
        if gid not in self.fake.products:
            return {"deletedProductId": None,
                    "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}
        del self.fake.products[gid]
        self.fake.deleted.append(gid)
        return {"deletedProductId": gid, "userErrors": []}


def _ruby_style(error: graphql.GraphQLError) -> dict[str, Any]:
    """Word validation errors as graphql-ruby (Shopify) does for the most common case."""
    found = re.match(r"Cannot query field '(\w+)' on type '(\w+)'", error.message)
    if found:
        field, type_name = found.groups()
        return {"message": f"Field '{field}' doesn't exist on type '{type_name}'",
                "locations": _locations(error),
                "extensions": {"code": "undefinedField", "typeName": type_name,
                               "fieldName": field}}
    return {"message": error.message, "locations": _locations(error)}


def _vendor_error(error: graphql.GraphQLError) -> dict[str, Any]:
    out: dict[str, Any] = {"message": error.message, "locations": _locations(error)}
    if error.path:
        out["path"] = list(error.path)
    if isinstance(error.original_error, _VendorError):
        out["extensions"] = error.original_error.extensions
    return out


# =============================================================================== Linear

LINEAR_SDL = """
scalar DateTime
scalar TimelessDate

type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}
type User { id: ID! name: String! displayName: String! email: String! active: Boolean! }
type Team { id: ID! key: String! name: String! }
type WorkflowState { id: ID! name: String! type: String! color: String! position: Float! }
type IssueLabel { id: ID! name: String! color: String! }
type IssueLabelEdge { cursor: String! node: IssueLabel! }
type IssueLabelConnection { nodes: [IssueLabel!]! edges: [IssueLabelEdge!]! pageInfo: PageInfo! }

type Issue {
  id: ID! identifier: String! number: Float! title: String! description: String
  priority: Float! priorityLabel: String! estimate: Float dueDate: TimelessDate url: String!
  createdAt: DateTime! updatedAt: DateTime! archivedAt: DateTime completedAt: DateTime
  canceledAt: DateTime startedAt: DateTime triagedAt: DateTime trashed: Boolean
  state: WorkflowState! assignee: User creator: User
  team: Team! labelIds: [String!]!
  labels(first: Int, after: String, last: Int, before: String): IssueLabelConnection!
}
type IssueEdge { cursor: String! node: Issue! }
type IssueConnection { nodes: [Issue!]! edges: [IssueEdge!]! pageInfo: PageInfo! }

input IssueCreateInput {
  id: String title: String description: String teamId: String! priority: Int stateId: String
  assigneeId: String labelIds: [String!] estimate: Int dueDate: TimelessDate
}
input IssueUpdateInput {
  title: String description: String priority: Int stateId: String assigneeId: String
  labelIds: [String!] addedLabelIds: [String!] removedLabelIds: [String!] teamId: String
  estimate: Int dueDate: TimelessDate
}

type IssuePayload { lastSyncId: Float! issue: Issue success: Boolean! }
type IssueArchivePayload { lastSyncId: Float! success: Boolean! entity: Issue }

type Query {
  issue(id: String!): Issue!
  issues(first: Int, after: String, last: Int, before: String): IssueConnection!
  viewer: User!
}
type Mutation {
  issueCreate(input: IssueCreateInput!): IssuePayload!
  issueUpdate(id: String!, input: IssueUpdateInput!): IssuePayload!
  issueDelete(id: String!, permanentlyDelete: Boolean): IssueArchivePayload!
  issueArchive(id: String!, trash: Boolean): IssueArchivePayload!
  issueUnarchive(id: String!): IssueArchivePayload!
  issueAddLabel(id: String!, labelId: String!): IssuePayload!
}
"""

LINEAR_UNAUTHENTICATED = {"errors": [{
    "message": "Authentication required, not authenticated",
    "extensions": {"type": "authentication error", "code": "AUTHENTICATION_ERROR",
                   "statusCode": 401, "userError": True,
                   "userPresentableMessage": "You need to authenticate to access this operation."},
}]}
PRIORITY_LABELS = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _not_found(entity: str) -> _VendorError:
    return _VendorError(f"Entity not found: {entity}", {
        "type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": True,
        "userPresentableMessage": f"Could not find referenced {entity}."})


def _invalid_input(detail: str) -> _VendorError:
    return _VendorError("Argument Validation Error", {
        "type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400, "userError": True,
        "userPresentableMessage": detail})


class FakeLinear:
    """In-memory Linear workspace: one team, its workflow states, users, labels and issues."""

    AUTH_STATUS = 400  # Linear answers a missing/invalid key with 400 and AUTHENTICATION_ERROR

    def __init__(self, api_key: str = "lin_api_fake_123",
                 oauth_token: str = "lin_oauth_fake_123", workspace: str = "acme",
                 host: str = "api.linear.app") -> None:
        self.host = host
        self.workspace = workspace
        self._credentials = {api_key, f"Bearer {oauth_token}"}
        self.log = RequestLog()
        self._lock = threading.RLock()
        self._serial = itertools.count(1)
        self._sync = itertools.count(1000)
        self.teams: dict[str, dict[str, Any]] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self._numbers: dict[str, int] = {}
        self.team_id = self.seed_team("ENG", "Engineering")
        for i, (name, type_, color) in enumerate((
                ("Backlog", "backlog", "#bec2c8"), ("Todo", "unstarted", "#e2e2e2"),
                ("In Progress", "started", "#f2c94c"), ("Done", "completed", "#5e6ad2"),
                ("Canceled", "canceled", "#95a2b3"))):
            self.seed_state(name, type_, color=color, position=float(i))
        self.viewer_id = self.seed_user("Ada Lovelace")
        self.seed_user("Grace Hopper")
        self.seed_label("Bug", "#eb5757")
        self.seed_label("Feature", "#bb87fc")
        self.schema = graphql.build_schema(LINEAR_SDL)
        self.app = Starlette(routes=[
            Route("/graphql", self.graphql, methods=["POST"]),
            Route("/{path:path}", self.unknown, methods=ALL_METHODS),
        ])

    # ----------------------------------------------------------------- seeding
    def _uuid(self, kind: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"linear-fake/{kind}/{next(self._serial)}"))

    def seed_team(self, key: str, name: str) -> str:
        with self._lock:
            team_id = self._uuid("team")
            self.teams[team_id] = {"id": team_id, "key": key, "name": name}
            self._numbers[team_id] = 0
            return team_id

    def seed_state(self, name: str, type_: str = "unstarted", color: str = "#e2e2e2",
                   position: float = 0.0) -> str:
        with self._lock:
            state_id = self._uuid("state")
            self.states[state_id] = {"id": state_id, "name": name, "type": type_,
                                     "color": color, "position": position}
            return state_id

    def seed_user(self, name: str, email: str | None = None) -> str:
        with self._lock:
            user_id = self._uuid("user")
            first = name.split()[0].lower()
            self.users[user_id] = {"id": user_id, "name": name, "displayName": first,
                                   "email": email or f"{first}@{self.workspace}.test",
                                   "active": True}
            return user_id

    def seed_label(self, name: str, color: str = "#4ea7fc") -> str:
        with self._lock:
            label_id = self._uuid("label")
            self.labels[label_id] = {"id": label_id, "name": name, "color": color}
            return label_id

    def state_id(self, name: str) -> str:
        return next(s for s, v in self.states.items() if v["name"] == name)

    def user_id(self, name: str) -> str:
        return next(u for u, v in self.users.items() if v["name"] == name)

    def label_id(self, name: str) -> str:
        return next(label for label, v in self.labels.items() if v["name"] == name)

    def seed_issue(self, title: str = "Fix the login page", *, state: str | None = None,
                   assignee: str | None = None, labels: list[str] | None = None,
                   **fields: Any) -> str:
        """`state`/`assignee`/`labels` are names; other fields use the GraphQL names
        (description, priority, stateId, assigneeId, labelIds, teamId, estimate, dueDate)."""
        with self._lock:
            team_id = fields.pop("teamId", self.team_id)
            issue_id = fields.pop("id", None) or self._uuid("issue")
            self._numbers[team_id] += 1
            number = self._numbers[team_id]
            identifier = f"{self.teams[team_id]['key']}-{number}"
            now = _now_ms()
            record: dict[str, Any] = {
                "id": issue_id, "identifier": identifier, "number": float(number),
                "title": title, "description": None, "priority": 0.0, "estimate": None,
                "dueDate": None, "createdAt": now, "updatedAt": now, "archivedAt": None,
                "completedAt": None, "canceledAt": None, "trashed": None,
                "stateId": self.state_id(state) if state else self.state_id("Backlog"),
                "assigneeId": self.user_id(assignee) if assignee else None,
                "creatorId": self.viewer_id, "teamId": team_id,
                "labelIds": [self.label_id(n) for n in labels or []],
            }
            record.update(fields)
            self.issues[issue_id] = record
            return issue_id

    def issue_by_identifier(self, identifier: str) -> dict[str, Any] | None:
        with self._lock:
            for record in self.issues.values():
                if record["identifier"] == identifier:
                    return copy.deepcopy(record)
        return None

    # ----------------------------------------------------------------- http
    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    async def unknown(self, request: Request) -> Response:
        await self._record(request)
        return JSONResponse({"errors": [{"message": "Not Found", "extensions": {
            "type": "invalid input", "code": "NOT_FOUND", "statusCode": 404, "userError": True,
            "userPresentableMessage": "Not found."}}]}, status_code=404)

    async def graphql(self, request: Request) -> Response:
        body = await self._record(request)
        if request.headers.get("authorization", "").strip() not in self._credentials:
            return JSONResponse(LINEAR_UNAUTHENTICATED, status_code=self.AUTH_STATUS)
        payload = _request_payload(request, body)
        if payload is None:
            return JSONResponse({"errors": [{"message": "Must provide query string.",
                                             "extensions": _graphql_ext("Must provide query "
                                                                        "string.")}]},
                                status_code=400)
        try:
            document = graphql.parse(payload["query"])
        except graphql.GraphQLError as exc:
            return JSONResponse({"errors": [_linear_validation(exc, "GRAPHQL_PARSE_FAILED")]},
                                status_code=400)
        if errors := graphql.validate(self.schema, document):
            return JSONResponse({"errors": [_linear_validation(e, "GRAPHQL_VALIDATION_FAILED")
                                            for e in errors]}, status_code=400)
        with self._lock:
            result = graphql.execute(self.schema, document, root_value=_LinearRoot(self),
                                     variable_values=payload.get("variables") or None,
                                     operation_name=payload.get("operationName"))
        out: dict[str, Any] = {}
        if result.errors:  # type: ignore[union-attr]
            out["errors"] = [_vendor_error(e) for e in result.errors]  # type: ignore[union-attr]
        out["data"] = result.data  # type: ignore[union-attr]
        return JSONResponse(out)

    # ----------------------------------------------------------------- rendering
    def _find(self, id_or_identifier: str) -> str:
        if id_or_identifier in self.issues:
            return id_or_identifier
        for issue_id, record in self.issues.items():
            if record["identifier"] == id_or_identifier.upper():
                return issue_id
        raise _not_found("Issue")

    def _render(self, issue_id: str) -> dict[str, Any]:
        rec = self.issues[issue_id]
        labels = [self.labels[x] for x in rec["labelIds"]]
        slug = re.sub(r"[^a-z0-9]+", "-", rec["title"].lower()).strip("-")
        out = {k: v for k, v in rec.items() if not k.endswith("Id")}
        out.update({
            "labelIds": list(rec["labelIds"]),
            "priorityLabel": PRIORITY_LABELS.get(int(rec["priority"]), "No priority"),
            "url": f"https://linear.app/{self.workspace}/issue/{rec['identifier']}/{slug}",
            "state": self.states[rec["stateId"]],
            "assignee": self.users.get(rec["assigneeId"] or ""),
            "creator": self.users.get(rec["creatorId"] or ""),
            "team": self.teams[rec["teamId"]],
            "labels": lambda _info, first=50, after=None, last=None, before=None:
                _connection(labels, first, after, last, before),
        })
        return out

    def _check_ref(self, table: dict[str, Any], entity: str, field: str, value: str) -> None:
        if not UUID_RE.match(value):
            raise _invalid_input(f"{field} must be a UUID.")
        if value not in table:
            raise _not_found(entity)

    def _apply(self, issue_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate an IssueCreateInput/IssueUpdateInput and return the record changes."""
        changes: dict[str, Any] = {}
        if "title" in fields:
            if not (fields["title"] or "").strip():
                raise _invalid_input("title should not be empty")
            changes["title"] = fields["title"]
        if "description" in fields:
            changes["description"] = fields["description"]
        if fields.get("priority") is not None:
            priority = fields["priority"]
            if priority > 4:
                raise _invalid_input("priority must not be greater than 4")
            if priority < 0:
                raise _invalid_input("priority must not be less than 0")
            changes["priority"] = float(priority)
        for name in ("estimate", "dueDate"):
            if name in fields:
                changes[name] = float(fields[name]) if name == "estimate" and fields[name] \
                    is not None else fields[name]
        if fields.get("teamId") is not None:
            self._check_ref(self.teams, "Team", "teamId", fields["teamId"])
            changes["teamId"] = fields["teamId"]
        if fields.get("stateId") is not None:
            self._check_ref(self.states, "WorkflowState", "stateId", fields["stateId"])
            changes["stateId"] = fields["stateId"]
            type_ = self.states[fields["stateId"]]["type"]
            changes["completedAt"] = _now_ms() if type_ == "completed" else None
            changes["canceledAt"] = _now_ms() if type_ == "canceled" else None
        if "assigneeId" in fields:
            if fields["assigneeId"] is not None:
                self._check_ref(self.users, "User", "assigneeId", fields["assigneeId"])
            changes["assigneeId"] = fields["assigneeId"]
        current = list(self.issues[issue_id]["labelIds"]) if issue_id else []
        for name in ("labelIds", "addedLabelIds", "removedLabelIds"):
            for label_id in fields.get(name) or []:
                self._check_ref(self.labels, "IssueLabel", name, label_id)
        if fields.get("labelIds") is not None:
            current = list(dict.fromkeys(fields["labelIds"]))
        current += [x for x in fields.get("addedLabelIds") or [] if x not in current]
        removed = set(fields.get("removedLabelIds") or [])
        labels = [x for x in current if x not in removed]
        if issue_id is None or labels != self.issues[issue_id]["labelIds"]:
            changes["labelIds"] = labels
        return changes


class _LinearRoot:
    """Root value for graphql-core: Linear query and mutation fields."""

    def __init__(self, fake: FakeLinear) -> None:
        self.fake = fake

    def issue(self, _info: Any, id: str) -> dict[str, Any]:
        return self.fake._render(self.fake._find(id))

    def issues(self, _info: Any, first: int | None = 50, after: str | None = None,
               last: int | None = None, before: str | None = None) -> dict[str, Any]:
        items = [self.fake._render(i) for i, r in self.fake.issues.items() if not r["trashed"]]
        return _connection(items, first, after, last, before)

    def viewer(self, _info: Any) -> dict[str, Any]:
        return self.fake.users[self.fake.viewer_id]

    def issueCreate(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        if input.get("id") is not None:
            if not UUID_RE.match(input["id"]):
                raise _invalid_input("id must be a UUID.")
            if input["id"] in fake.issues:
                raise _invalid_input("An issue with this id already exists.")
        if not (input.get("title") or "").strip():
            raise _invalid_input("title should not be empty")
        changes = fake._apply(None, input)
        issue_id = fake.seed_issue(changes.pop("title"), id=input.get("id"),
                                   teamId=changes.pop("teamId"))
        fake.issues[issue_id].update(changes)
        return {"lastSyncId": float(next(fake._sync)), "success": True,
                "issue": fake._render(issue_id)}

    def issueUpdate(self, _info: Any, id: str, input: dict[str, Any]) -> dict[str, Any]:
        fake = self.fake
        issue_id = fake._find(id)
        changes = fake._apply(issue_id, input)
        if changes:
            changes["updatedAt"] = _now_ms()
        fake.issues[issue_id].update(changes)
        return {"lastSyncId": float(next(fake._sync)), "success": True,
                "issue": fake._render(issue_id)}

    def issueDelete(self, _info: Any, id: str,
                    permanentlyDelete: bool = False) -> dict[str, Any]:
        fake = self.fake
        issue_id = fake._find(id)
        entity = fake._render(issue_id)
        if permanentlyDelete:
            del fake.issues[issue_id]
        else:
            now = _now_ms()
            fake.issues[issue_id].update({"trashed": True, "archivedAt": now, "updatedAt": now})
            entity = fake._render(issue_id)
        return {"lastSyncId": float(next(fake._sync)), "success": True, "entity": entity}

    def issueArchive(self, _info: Any, id: str, trash: bool = False) -> dict[str, Any]:
        fake = self.fake
        issue_id = fake._find(id)
        now = _now_ms()
        fake.issues[issue_id].update({"archivedAt": now, "updatedAt": now,
                                      "trashed": True if trash else None})
        return {"lastSyncId": float(next(fake._sync)), "success": True,
                "entity": fake._render(issue_id)}

    def issueUnarchive(self, _info: Any, id: str) -> dict[str, Any]:
        fake = self.fake
        issue_id = fake._find(id)
        fake.issues[issue_id].update({"archivedAt": None, "trashed": None,
                                      "updatedAt": _now_ms()})
        return {"lastSyncId": float(next(fake._sync)), "success": True,
                "entity": fake._render(issue_id)}

    def issueAddLabel(self, _info: Any, id: str, labelId: str) -> dict[str, Any]:
        fake = self.fake
        issue_id = fake._find(id)
        fake._check_ref(fake.labels, "IssueLabel", "labelId", labelId)
        labels = fake.issues[issue_id]["labelIds"]
        if labelId not in labels:
            labels.append(labelId)
            fake.issues[issue_id]["updatedAt"] = _now_ms()
        return {"lastSyncId": float(next(fake._sync)), "success": True,
                "issue": fake._render(issue_id)}


def _graphql_ext(message: str, code: str = "GRAPHQL_VALIDATION_FAILED") -> dict[str, Any]:
    return {"type": "graphql error", "code": code, "statusCode": 400, "userError": True,
            "userPresentableMessage": message}


def _linear_validation(error: graphql.GraphQLError, code: str) -> dict[str, Any]:
    """Linear runs graphql-js, which quotes names with double quotes."""
    message = error.message.replace("'", '"')
    return {"message": message, "locations": _locations(error),
            "extensions": _graphql_ext(message, code)}
