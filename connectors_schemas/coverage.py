"""How much of each vendor's documented API the connectors name right (`connectors coverage`).

Every documented write operation of a vendor's own API description is instantiated as a real
request (host, path, query, body) and classified by the real `Matcher(load_connectors())`, the
engine the proxy runs. Nothing here is derived from the matcher or the connector files: what is
"right" comes from the description alone, so the numbers say where the connectors fall short.

Definitions (one place; the report and tests/test_coverage.py use these):

writes
    OpenAPI: every POST, PUT, PATCH and DELETE operation (one per method and path template,
    the first seen when several files document the same one), except POSTs that are documented
    reads (below). GraphQL: every field of the Mutation type.

documented read (`documented_read`)
    A POST whose path ends in `/search` or `/batch/read`, or whose verb (below) is one of
    `READ_VERBS`: search, read, list, get, query, retrieve, preview, validate, parse, count,
    estimate, fetch, find, lookup, check, evaluate, analyse, render; except the POSTs in
    `STATE_CHANGING`, whose verb reads but whose description says they change state (listed one
    by one, each with the description's own words): those are writes.

verb (`verb`)
    The first word of the operation's summary, else of its description (HTML stripped), when it
    is a known verb; else the first known verb in its operationId that is no word of its path
    (HubSpot's ids repeat the path); else its last literal path segment when that is a known
    verb as written (`/batch/archive`, `/merge`); else the summary's first word. Words such as
    "bulk", "batch", "permanently", "gdpr", "a" are skipped and a third-person "s" dropped
    ("Updates" -> update, "Searches" -> search).

identifying parameter, shape
    The last path parameter that is not a selector; a selector is a parameter whose schema has an
    `enum` or whose name ends in "type" (objectType, package_type): it picks a kind, not a
    record. No identifying parameter: shape `collection`. The path ends with it: `record`.
    Literal segments (or selectors) follow it: `subpath` of that record.

right operation (`expected_operations`; the matcher's `Classification.operation` must be one of)
    DELETE: record or collection -> delete; subpath -> delete, update or action (of the parent).
    PUT/PATCH: record -> update or upsert; subpath or collection -> update, upsert or action
    (and delete when the verb is a deleting verb, e.g. PUT /issue/archive).
    POST to a record -> update or action.
    POST to a subpath -> create when the verb is a creating verb (create, upload, insert, new:
    a new record under the parent); delete, update or action when the verb deletes (delete,
    remove, archive, purge); otherwise update or action of the parent.
    POST to a collection -> update or upsert for an updating verb (update, edit, set, replace),
    delete for a deleting verb, upsert for "upsert" or "create or update", action or create for
    an action verb (`ACTION_VERBS`: merge, send, cancel, publish, ...), otherwise create.
    GraphQL, from the schema's shape only: a payload exposing a deleted id (a field named
    `deleted...`, or `entityId` without the entity) -> delete; an `id` argument, or a non-null
    `id` in the input object -> update, upsert or action; else another non-null argument of type
    ID (`companyId: ID!`) -> update, upsert or action; a nullable `id` in the input object (one
    input type for create and update) -> create, update or upsert; an input object without `id`
    -> create; otherwise action.

existing record
    OpenAPI: shape record or subpath, except a subpath POST with a creating verb (its record is
    new). GraphQL: an `id` argument or a non-null `id` in the input object.

named
    The classification has an object type (not None, not "unrecognised", not "graphql"), is not
    the unrecognised action, and for a write to an existing record reports exactly the record id
    put in the path for the identifying parameter (GraphQL: the `id` argument, else the input
    object's `id`, of a list of input objects the one item the probe sends, as Shopify's
    `fileUpdate(files: [FileUpdateInput!]!)` names each file, whenever the request carries
    one), and no fixed segment of the path is
    reported as a record id (`archive` in PUT /issue/archive).

record id
    Of writes to an existing record, the share whose classification reports exactly that id.

fetched
    Of writes to an existing record, the share whose classification yields a fetch
    (`Classification.fetch_requests([])` non-empty) that the vendor documents: OpenAPI, its
    method and path match a documented GET (or a POST documented read) of the same description,
    by path template; GraphQL, a GET, or a POST whose JSON body's `query` is a GraphQL query that
    validates against the schema.

writes classified as reads
    A documented write the matcher calls `read=True`: it would pass without review. Must be 0.

POST reads held
    A documented read the matcher does not call a read (no route, or a write): held needlessly.

Requests are instantiated faithfully: the connector's host (a glob's `*` as "acme"), the
description's server path, path parameters from their example when it is one URL segment,
their enum, `PLAUSIBLE` (HubSpot's objectType: contacts), else distinct values (integers 101,
102, ...; strings named after the parameter, `customer_101`); required query parameters; the
body built from the request body schema's required fields (`$ref` resolved, `allOf` merged, the
first of `oneOf`/`anyOf`, one entry in a map, one item in a list; when an object requires
nothing, its first scalar property, so no write is empty) as JSON, as a bracketed form for
`application/x-www-form-urlencoded` (Stripe), or a minimal multipart file. GraphQL:
`mutation { field(args) { __typename } }` with variables for the required arguments, the id
argument and the input object (required fields filled), sent as JSON to the connector's GraphQL
endpoint.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import graphql
import yaml

from connectors_schemas.loader import SCHEMAS_DIR
from connectors_schemas.matcher import Classification, FetchRequest, Matcher
from connectors_schemas.models import Connector, Operation

WRITE_METHODS = ("post", "put", "patch", "delete")
READ_PATH_ENDINGS = ("/search", "/batch/read")
READ_VERBS = frozenset({"search", "read", "list", "get", "query", "retrieve", "preview",
                        "validate", "parse", "count", "estimate", "fetch", "find", "lookup",
                        "check", "evaluate", "analyse", "analyze", "render"})
CREATE_VERBS = frozenset({"create", "upload", "insert", "new"})
UPDATE_VERBS = frozenset({"update", "edit", "modify", "set", "replace", "patch", "change",
                          "rename", "reorder", "move"})
DELETE_VERBS = frozenset({"delete", "remove", "archive", "purge", "destroy", "erase"})
UPSERT_VERBS = frozenset({"upsert"})
ACTION_VERBS = frozenset({
    "merge", "send", "cancel", "void", "finalize", "pay", "capture", "confirm", "approve",
    "reject", "publish", "unpublish", "schedule", "clone", "attach", "detach", "restore",
    "reset", "close", "reopen", "lock", "unlock", "enable", "disable", "start", "stop",
    "dispatch", "trigger", "verify", "refund", "transition", "assign", "unassign", "subscribe",
    "unsubscribe", "import", "export", "mark", "add", "associate", "disassociate", "end",
    "rerun", "revoke", "record", "generate", "resend", "apply", "complete", "fork", "star",
    "unstar", "block", "unblock", "accept", "decline", "submit", "swap", "copy", "duplicate",
    "sync", "register", "unregister", "link", "unlink", "convert", "install",
    "uninstall", "redeliver", "ping", "rerequest", "re-run", "request", "review", "dismiss"})
KNOWN_VERBS = READ_VERBS | CREATE_VERBS | UPDATE_VERBS | DELETE_VERBS | UPSERT_VERBS | ACTION_VERBS
SKIPPED_WORDS = frozenset({"bulk", "batch", "permanently", "gdpr", "partially", "manually",
                           "asynchronously", "async", "a", "an", "the"})
PLAUSIBLE = {"objectType": "contacts", "fromObjectType": "contacts", "toObjectType": "companies"}
MAX_DEPTH = 6  # nested required objects deeper than this are sent empty
BOUNDARY = "coverage-boundary"
_TAGS = re.compile(r"<[^>]+>")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_PLACEHOLDER = re.compile(r"\{([^}/]+)\}")
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_DATED = re.compile(r"\d{4}-\d{2}(?:-\d{2})?")


class CoverageError(ValueError):
    """A description that cannot be read, or a hand-picked call missing from it."""


# --- reading descriptions ----------------------------------------------------------------------


def _load_text(name: str, data: bytes) -> Any:
    """JSON, or YAML with the C loader when there is one (the Stripe YAML: ~2 s instead of 20)."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name[:-3]
    if name.endswith(".json"):
        return json.loads(data)
    if name.endswith((".graphql", ".gql")):
        return data.decode("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(data, Loader=loader)  # a safe loader, C or Python


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, mtime: float) -> tuple[Any, ...]:
    """Parsed once per process and file version: the report reads each description once."""
    del mtime  # part of the cache key only
    if path.endswith((".tar.gz", ".tgz")):
        found: dict[str, bytes] = {}
        with tarfile.open(path, "r|gz") as archive:  # in stream order: no seeking back in gzip
            for member in archive:
                data = archive.extractfile(member) if member.isfile() else None
                if data is not None and member.name.endswith((".json", ".yaml", ".yml")):
                    found[member.name] = data.read()
        return tuple(_load_text(name, found[name]) for name in sorted(found))
    return (_load_text(path, Path(path).read_bytes()),)


def read_description(path: Path) -> tuple[Any, ...]:
    """Every document in a description file (a .tar.gz holds one per API)."""
    try:
        return _read_cached(str(path), path.stat().st_mtime)
    except (OSError, ValueError, yaml.YAMLError, tarfile.TarError) as exc:
        raise CoverageError(f"description {path}: cannot read it: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _schema_cached(path: str, mtime: float) -> graphql.GraphQLSchema:
    (document,) = _read_cached(path, mtime)
    # assume_valid: vendors' schemas break rules graphql-core checks (Shopify deprecates fields
    # its interfaces do not), which would stop `validate` from checking a fetch's query at all.
    if isinstance(document, str):
        return graphql.build_schema(document, assume_valid=True)
    return graphql.build_client_schema(document.get("data", document), assume_valid=True)


def read_graphql_schema(path: Path) -> graphql.GraphQLSchema:
    """A GraphQL SDL file or an introspection result, as graphql-core's schema."""
    try:
        return _schema_cached(str(path), path.stat().st_mtime)
    except (OSError, ValueError, TypeError, graphql.GraphQLError) as exc:
        raise CoverageError(f"GraphQL description {path}: cannot read it: {exc}") from exc


# --- the description's own words ---------------------------------------------------------------


def _text_words(text: Any) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z-]*", _TAGS.sub(" ", str(text or "")).lower())
            if w not in SKIPPED_WORDS]


def _normal(word: str) -> str:
    """`updates` -> update, `searches` -> search, `retrieves` -> retrieve."""
    for cut, add in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(cut) and word[:-len(cut)] + add in KNOWN_VERBS:
            return word[:-len(cut)] + add
    return word


def verb(operation: dict[str, Any], template: str = "") -> str:
    """The verb the description leads with ("Creates a customer": create), in this order: the
    first word of the summary, then of the description, when it is a known verb; the first known
    verb of the operationId that is no word of the path; the last literal path segment when it
    is one as written; else the summary's (or description's) first word."""
    leading = [_text_words(operation.get(key))[:1] for key in ("summary", "description")]
    for words in leading:
        if words and _normal(words[0]) in KNOWN_VERBS:
            return _normal(words[0])
    in_path = {w.lower() for w in _WORDS.findall(template)}  # HubSpot ids repeat the path
    identifier = [w.lower() for w in _WORDS.findall(str(operation.get("operationId") or ""))]
    for word in identifier:
        if word not in SKIPPED_WORDS | in_path and _normal(word) in KNOWN_VERBS:
            return _normal(word)
    literal = [s for s in template.strip("/").split("/") if s and not _PLACEHOLDER.fullmatch(s)]
    if literal and literal[-1].lower() in KNOWN_VERBS:  # `/merge`, not the noun `/lists`
        return literal[-1].lower()
    return next((_normal(words[0]) for words in leading if words), "")


def _phrase(operation: dict[str, Any]) -> str:
    return " ".join(_text_words(operation.get("summary") or operation.get("description"))[:4])


# Documented POSTs whose verb reads but whose description says they change state: writes, held
# on purpose, never counted as reads held. Each entry gives the description's own words.
STATE_CHANGING: dict[str, str] = {
    "POST /v1/payment_method_domains/{payment_method_domain}/validate": (
        "Stripe: \"To activate a payment method on an existing payment method domain, complete "
        "the required validation steps ... and then validate the payment method domain with "
        "this endpoint\" (validating activates the domain's payment methods)"),
    "POST /v1/customers/{customer}/funding_instructions": (
        "Stripe: \"If funding instructions do not yet exist for the customer, new funding "
        "instructions will be created\""),
}


def documented_read(method: str, template: str, operation: dict[str, Any]) -> bool:
    """A POST the vendor documents as a read (the one rule for it, see the module docstring)."""
    if method.upper() != "POST" or f"POST {template}" in STATE_CHANGING:
        return False
    ending = template.rstrip("/").endswith(READ_PATH_ENDINGS)
    return ending or verb(operation, template) in READ_VERBS


# --- OpenAPI ------------------------------------------------------------------------------------


def _resolve(document: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """Follow local `$ref`s; a cycle or a remote reference resolves to an empty schema."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            return {}
        seen = seen | {ref}
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node = target if target is not None else {}
    return node


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One documented operation, with the document its `$ref`s point into."""

    method: str  # upper case
    template: str
    operation: dict[str, Any]
    parameters: tuple[dict[str, Any], ...]
    document: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


def _parameters(document: dict[str, Any], item: dict[str, Any],
                operation: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Path-item parameters overridden by the operation's, by name and location."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        parameter = _resolve(document, raw)
        if isinstance(parameter, dict) and "name" in parameter:
            merged[(str(parameter["name"]), str(parameter.get("in")))] = parameter
    return tuple(merged.values())


def endpoints(documents: Iterable[Any], methods: Iterable[str] = WRITE_METHODS,
              keep: Callable[[str], bool] = lambda _: True) -> list[Endpoint]:
    """Operations of these methods, one per method and path (the first document wins)."""
    found: dict[tuple[str, str], Endpoint] = {}
    for document in documents:
        if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            continue  # e.g. a Postman collection shipped beside the OpenAPI files
        for template, item in document["paths"].items():
            if not isinstance(item, dict) or not keep(template):
                continue
            for method in methods:
                operation = item.get(method)
                if isinstance(operation, dict) and (method, template) not in found:
                    found[(method, template)] = Endpoint(
                        method.upper(), template, operation,
                        _parameters(document, item, operation), document)
    return list(found.values())


def server_prefix(documents: Iterable[Any]) -> str:
    """The path of the first server URL (variables at their defaults), e.g. `/api/v3`."""
    for document in documents:
        servers = document.get("servers") if isinstance(document, dict) else None
        if not servers or not isinstance(servers[0], dict):
            continue
        url = str(servers[0].get("url", ""))
        for name, variable in (servers[0].get("variables") or {}).items():
            url = url.replace("{" + name + "}", str(variable.get("default", "")))
        return urlsplit(url if "//" in url else "//host" + url).path.rstrip("/")
    return ""


def _is_selector(parameter: dict[str, Any], document: dict[str, Any]) -> bool:
    schema = _resolve(document, parameter.get("schema") or {})
    return bool(schema.get("enum")) or str(parameter["name"]).lower().endswith("type")


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str  # collection | record | subpath
    id_parameter: str | None


def shape(endpoint: Endpoint) -> Shape:
    """Where the identifying parameter sits in the path (see the module docstring)."""
    by_name = {str(p["name"]): p for p in endpoint.parameters if p.get("in") == "path"}
    segments = endpoint.template.strip("/").split("/")
    position, name = -1, None
    for index, segment in enumerate(segments):
        found = _PLACEHOLDER.fullmatch(segment)
        if found and not _is_selector(by_name.get(found[1], {"name": found[1]}),
                                      endpoint.document):
            position, name = index, found[1]
    if name is None:
        return Shape("collection", None)
    return Shape("record" if position == len(segments) - 1 else "subpath", name)


def expected_operations(endpoint: Endpoint) -> tuple[frozenset[Operation], bool]:
    """What the description says the write does, and whether it targets an existing record."""
    method, where = endpoint.method, shape(endpoint).kind
    word = verb(endpoint.operation, endpoint.template)
    o = Operation
    if method == "DELETE":
        return (frozenset({o.delete}) if where != "subpath"
                else frozenset({o.delete, o.update, o.action})), where != "collection"
    if method in ("PUT", "PATCH"):
        if where == "record":
            return frozenset({o.update, o.upsert}), True
        extra = {o.delete} if word in DELETE_VERBS else set()
        return frozenset({o.update, o.upsert, o.action, *extra}), where == "subpath"
    if where == "record":
        return frozenset({o.update, o.action}), True
    if where == "subpath":
        if word in CREATE_VERBS:
            return frozenset({o.create}), False
        if word in DELETE_VERBS:
            return frozenset({o.delete, o.update, o.action}), True
        return frozenset({o.update, o.action}), True
    return _collection_post(word, _phrase(endpoint.operation)), False


def _collection_post(word: str, phrase: str) -> frozenset[Operation]:
    o = Operation
    if word in UPSERT_VERBS or "create or update" in phrase or "create or replace" in phrase:
        return frozenset({o.upsert, o.create, o.update})
    if word in UPDATE_VERBS:
        return frozenset({o.update, o.upsert})
    if word in DELETE_VERBS:
        return frozenset({o.delete})
    if word in ACTION_VERBS:
        return frozenset({o.action, o.create})
    return frozenset({o.create})


class _Values:
    """Distinct plausible values for one request, so the record id reported can be told apart."""

    def __init__(self) -> None:
        self.counter = 100
        self.used: set[str] = set()

    def number(self) -> int:
        self.counter += 1
        return self.counter

    def text(self, name: str) -> str:
        slug = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
        slug = re.sub(r"[^a-z0-9]+", "_", slug.lower()).strip("_")[:24] or "value"
        return f"{slug}_{self.number()}"

    def unique(self, value: str) -> str:
        while value in self.used:
            value = f"{value}{self.number()}"
        self.used.add(value)
        return value


def _scalar(schema: dict[str, Any], name: str, values: _Values) -> Any:
    """A value of the schema's type: its example, enum or default first."""
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    for key in ("example", "default"):
        if key in schema and _fits(schema[key], kind):
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1)
    if kind == "number":
        return max(float(schema.get("minimum", 1)), 1.0)
    if kind == "boolean":
        return True
    formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01",
               "email": "agent@example.com", "uri": "https://example.com/",
               "url": "https://example.com/", "uuid": "3f2b8e6a-0000-4000-8000-000000000101"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    return values.text(name) if name.lower() == "id" or name.endswith(("Id", "_id")) else "example"


def _fits(value: Any, kind: Any) -> bool:
    checks = {"string": str, "integer": int, "number": (int, float), "boolean": bool}
    wanted = checks.get(kind)
    return wanted is not None and isinstance(value, wanted) and not (
        kind in ("integer", "number") and isinstance(value, bool))


def _merged(document: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """`allOf` merged into one object schema; the first of `oneOf`/`anyOf` (cycles cut)."""
    schema = _resolve(document, schema)
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return {}
    for key in ("oneOf", "anyOf"):
        if schema.get(key) and not schema.get("properties"):
            choices = [_resolve(document, c) for c in schema[key]]
            typed = [c for c in choices if isinstance(c, dict) and c.get("type") != "null"]
            rest = {k: v for k, v in schema.items() if k != key}
            schema = {**rest, **_merged(document, (typed or [{}])[0], depth + 1)}
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _merged(document, part, depth + 1)
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged.setdefault("type", part.get("type"))
        schema = merged
    return schema


def schema_value(document: dict[str, Any], schema: Any, values: _Values, name: str = "",
                 depth: int = 0) -> Any:
    """A value the schema accepts, built from its required parts (see the module docstring)."""
    schema = _merged(document, schema if isinstance(schema, dict) else {})
    kind = schema.get("type")
    if kind == "array" or "items" in schema:
        return [] if depth >= MAX_DEPTH else [
            schema_value(document, schema.get("items") or {}, values, name, depth + 1)]
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        return _object_value(document, schema, values, depth)
    return _scalar(schema, name, values)


def _object_value(document: dict[str, Any], schema: dict[str, Any], values: _Values,
                  depth: int) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    if depth >= MAX_DEPTH:
        return {}
    wanted = [n for n in schema.get("required") or [] if n in properties]
    if not wanted:
        wanted = [n for n, s in properties.items()
                  if n != "expand" and not _merged(document, s).get("deprecated")
                  and _merged(document, s).get("type") in ("string", "integer", "boolean",
                                                          "number")][:1]
    found = {n: schema_value(document, properties[n], values, n, depth + 1) for n in wanted}
    extra = schema.get("additionalProperties")
    if not found and not properties and isinstance(extra, dict):
        found["example"] = schema_value(document, extra, values, "example", depth + 1)
    return found


def _form(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Stripe's bracketed form keys: `items[0][price]=p1`, `metadata[plan]=pro`."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _form(item, f"{prefix}[{key}]" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _form(item, f"{prefix}[{index}]")
    elif isinstance(value, bool):
        yield prefix, "true" if value else "false"
    elif value is not None:
        yield prefix, str(value)


def _multipart(fields: dict[str, Any]) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields.items() if isinstance(value, str | int | float)]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                 'filename="example.txt"\r\nContent-Type: text/plain\r\n\r\nexample\r\n')
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


def request_body(endpoint: Endpoint, values: _Values) -> tuple[bytes, str | None]:
    """The body and its content type, in the media type the description documents."""
    body = _resolve(endpoint.document, endpoint.operation.get("requestBody") or {})
    content = body.get("content") or {}
    if not content:
        return b"", None
    types = list(content)
    chosen = next((t for t in types if t.split(";")[0] == "application/json"),
                  next((t for t in types if "json" in t),
                       next((t for t in types if "x-www-form-urlencoded" in t), types[0])))
    schema = (content[chosen] or {}).get("schema") or {}
    value = schema_value(endpoint.document, schema, values)
    if "json" in chosen or chosen == "*/*":
        return json.dumps(value).encode(), "application/json"
    if "x-www-form-urlencoded" in chosen:
        return urlencode(list(_form(value))).encode(), "application/x-www-form-urlencoded"
    if chosen.startswith("multipart/"):
        fields = value if isinstance(value, dict) else {}
        return _multipart(fields), f"multipart/form-data; boundary={BOUNDARY}"
    return b"example", chosen


def _parameter_value(endpoint: Endpoint, parameter: dict[str, Any], values: _Values) -> str:
    """A value for a path or query parameter: documented example when it is one segment."""
    name = str(parameter["name"])
    schema = _merged(endpoint.document, parameter.get("schema") or {})
    for candidate in (parameter.get("example"), schema.get("example"),
                      (schema.get("enum") or [None])[0], PLAUSIBLE.get(name)):
        if isinstance(candidate, str | int) and not isinstance(candidate, bool) and (
                _SEGMENT.fullmatch(str(candidate)) and str(candidate) not in (".", "..")):
            return values.unique(str(candidate))
    if schema.get("type") in ("integer", "number"):
        return values.unique(str(values.number()))
    if schema.get("type") == "boolean":
        return "true"
    return values.unique(values.text(name))


@dataclass(frozen=True, slots=True)
class Probe:
    """One documented operation as a request, with what the description says it does."""

    label: str
    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str | None
    expected: frozenset[Operation]
    existing: bool  # writes to a record that exists: record id and fetch are measured
    record_id: str | None  # the id put in the request, which the matcher must report
    documented_read: bool = False
    literals: frozenset[str] = frozenset()  # the path's fixed segments: never a record id


def openapi_probe(endpoint: Endpoint, host: str, prefix: str) -> Probe:
    """The request an agent would send for this operation."""
    values = _Values()
    filled: dict[str, str] = {}
    for parameter in endpoint.parameters:
        if parameter.get("in") == "path":
            filled[str(parameter["name"])] = _parameter_value(endpoint, parameter, values)
    path = _PLACEHOLDER.sub(lambda m: quote(filled.get(m[1]) or values.text(m[1]), safe=""),
                            endpoint.template)
    query = tuple((str(p["name"]), _parameter_value(endpoint, p, values))
                  for p in endpoint.parameters if p.get("in") == "query" and p.get("required"))
    body, content_type = request_body(endpoint, values)
    is_read = documented_read(endpoint.method, endpoint.template, endpoint.operation)
    expected, existing = (frozenset({Operation.read}), False) if is_read else (
        expected_operations(endpoint))
    id_parameter = shape(endpoint).id_parameter
    record_id = filled.get(id_parameter) if existing and id_parameter else None
    literals = frozenset(s for s in endpoint.template.split("/")
                         if s and not _PLACEHOLDER.search(s))
    return Probe(endpoint.label, endpoint.method, host, prefix + path, query, body,
                 content_type, expected, existing, record_id, is_read, literals)


def _template_pattern(prefix: str, template: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(template)
    pattern = "".join(re.escape(part) if index % 2 == 0 else "[^/]+"
                      for index, part in enumerate(parts))
    return re.compile("^" + re.escape(prefix) + pattern + "/?$")


@dataclass(frozen=True, slots=True)
class DocumentedReads:
    """The GETs and POST reads of a description, to check that a fetch is one of them."""

    patterns: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def of(cls, documents: tuple[Any, ...], prefix: str) -> DocumentedReads:
        reads = [e for e in endpoints(documents, ("get", "post"))
                 if e.method == "GET" or documented_read(e.method, e.template, e.operation)]
        return cls(tuple((e.method, _template_pattern(prefix, e.template)) for e in reads))

    def documents(self, fetch: FetchRequest) -> bool:
        return any(method == fetch.method and pattern.match(fetch.path)
                   for method, pattern in self.patterns)


# --- GraphQL ------------------------------------------------------------------------------------


def _active_arguments(field_: graphql.GraphQLField) -> dict[str, graphql.GraphQLArgument]:
    return {name: arg for name, arg in field_.args.items() if not arg.deprecation_reason}


def _input_object(type_: Any) -> graphql.GraphQLInputObjectType | None:
    named = graphql.get_named_type(type_)
    return named if isinstance(named, graphql.GraphQLInputObjectType) else None


def id_carrier(field_: graphql.GraphQLField) -> tuple[str | None, bool]:
    """The argument holding the record id (`id`, else an input object with an `id` field,
    `input` first, one-of identifier objects last) and whether that id is non-null."""
    arguments = _active_arguments(field_)
    if "id" in arguments:
        return "id", True
    order = sorted(arguments, key=lambda n: (n != "input", bool(getattr(
        _input_object(arguments[n].type), "is_one_of", False))))
    for name in order:
        found = _input_object(arguments[name].type)
        if found is not None and "id" in found.fields:
            return name, graphql.is_non_null_type(found.fields["id"].type)
    return None, False


def _deletes(payload: Any) -> bool:
    fields = getattr(graphql.get_named_type(payload), "fields", None) or {}
    return any(name.startswith("deleted") for name in fields) or (
        "entityId" in fields and "entity" not in fields)


def _names_a_record(field_: graphql.GraphQLField) -> bool:
    """A non-null argument of type ID other than `id` (companyId: ID!): an existing record,
    for the expected operation only (the record id the report checks is `id`'s)."""
    return any(graphql.is_non_null_type(arg.type) and isinstance(arg.type.of_type,
                                                                 graphql.GraphQLScalarType)
               and arg.type.of_type.name == "ID" for arg in _active_arguments(field_).values())


def graphql_expected(field_: graphql.GraphQLField) -> tuple[frozenset[Operation], bool]:
    """What the schema's shape says a mutation does (see the module docstring)."""
    o = Operation
    carrier, required = id_carrier(field_)
    if _deletes(field_.type):
        return frozenset({o.delete}), carrier is not None and required
    if carrier is not None and required:
        return frozenset({o.update, o.upsert, o.action}), True
    if _names_a_record(field_):
        return frozenset({o.update, o.upsert, o.action}), False
    if carrier is not None:
        return frozenset({o.create, o.update, o.upsert}), False
    if any(_input_object(arg.type) for arg in _active_arguments(field_).values()):
        return frozenset({o.create}), False
    return frozenset({o.action}), False


_SCALARS: dict[str, Any] = {"Int": 1, "Float": 1.5, "Boolean": True, "JSON": {},
                            "JSONObject": {}, "DateTime": "2026-01-01T00:00:00Z",
                            "Date": "2026-01-01", "TimelessDate": "2026-01-01",
                            "URL": "https://example.com/", "Decimal": "1.00", "Money": "1.00",
                            "UnsignedInt64": "1", "HTML": "<p>example</p>"}


def _graphql_value(type_: Any, values: _Values, name: str, with_id: bool = False,
                   depth: int = 0) -> Any:
    """A variable value of this input type: required fields filled (and `id` when asked)."""
    type_ = type_.of_type if graphql.is_non_null_type(type_) else type_
    if graphql.is_list_type(type_):
        return [_graphql_value(type_.of_type, values, name, False, depth + 1)]
    if isinstance(type_, graphql.GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, graphql.GraphQLInputObjectType):
        return _graphql_object(type_, values, with_id, depth)
    if name == "id" or type_.name == "ID":
        return values.unique(f"00000000-0000-4000-8000-{values.number():012d}")
    return _SCALARS.get(type_.name, "example")


def _graphql_object(type_: graphql.GraphQLInputObjectType, values: _Values, with_id: bool,
                    depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        return {}
    fields = {n: f for n, f in type_.fields.items() if not f.deprecation_reason}
    if getattr(type_, "is_one_of", False):
        chosen = ["id"] if with_id and "id" in fields else list(fields)[:1]
    else:
        chosen = [n for n, f in fields.items()
                  if graphql.is_non_null_type(f.type) and f.default_value is graphql.Undefined]
        chosen += ["id"] if with_id and "id" in fields and "id" not in chosen else []
        if not [n for n in chosen if n != "id"]:
            chosen += [n for n, f in fields.items() if n != "id" and graphql.is_leaf_type(
                graphql.get_named_type(f.type))][:1]
    return {n: _graphql_value(fields[n].type, values, n, False, depth + 1) for n in chosen}


def mutation_probe(name: str, field_: graphql.GraphQLField, host: str, path: str) -> Probe:
    """`mutation { name(args) { __typename } }` with variables, as a JSON POST."""
    values = _Values()
    arguments = _active_arguments(field_)
    carrier, _ = id_carrier(field_)
    chosen = [n for n, a in arguments.items()
              if graphql.is_non_null_type(a.type) and a.default_value is graphql.Undefined]
    if carrier and carrier not in chosen:
        chosen.append(carrier)
    if not chosen:
        inputs = sorted((n for n in arguments if _input_object(arguments[n].type)),
                        key=lambda n: n != "input")
        chosen = inputs[:1]
    variables = {n: _graphql_value(arguments[n].type, values, n, n == carrier) for n in chosen}
    declared = ", ".join(f"${n}: {arguments[n].type}" for n in chosen)
    passed = ", ".join(f"{n}: ${n}" for n in chosen)
    selection = "" if graphql.is_leaf_type(graphql.get_named_type(field_.type)) else (
        " { __typename }")
    document = (f"mutation Coverage{f'({declared})' if declared else ''} "
                f"{{ {name}{f'({passed})' if passed else ''}{selection} }}")
    record = variables.get("id") if carrier == "id" else (variables.get(carrier or "") or {})
    if isinstance(record, list):  # `files: [FileUpdateInput!]!`: the probe sends one item
        record = record[0] if record else {}
    record_id = record if isinstance(record, str) else (
        record.get("id") if isinstance(record, dict) else None)
    expected, existing = graphql_expected(field_)
    body = json.dumps({"query": document, "variables": variables}).encode()
    return Probe(f"mutation {name}", "POST", host, path, (), body, "application/json",
                 expected, existing, record_id)


def _graphql_fetch_ok(schema: graphql.GraphQLSchema, fetch: FetchRequest) -> bool:
    """A GET, or a POST carrying a GraphQL query that validates against the schema."""
    if fetch.method == "GET":
        return True
    text = fetch.json_body.get("query") if isinstance(fetch.json_body, dict) else None
    if not isinstance(text, str):
        return False
    try:
        document = graphql.parse(text)
    except graphql.GraphQLError:
        return False
    operations = [d for d in document.definitions
                  if isinstance(d, graphql.OperationDefinitionNode)]
    return bool(operations) and all(d.operation is graphql.OperationType.QUERY
                                    for d in operations) and not graphql.validate(schema,
                                                                                  document)


# --- classifying --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the matcher made of one probe."""

    probe: Probe
    object_type: str | None
    operation: Operation | None
    record_ids: tuple[str | None, ...]
    read: bool
    fetch: FetchRequest | None
    fetch_documented: bool
    body_problem: str | None = None
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.object_type not in (None, "unrecognised", "graphql")

    @property
    def id_right(self) -> bool:
        wanted = self.probe.record_id
        return wanted is not None and set(self.record_ids) == {wanted}

    @property
    def literal_id(self) -> bool:
        """A fixed word of the path taken for a record id (`archive` in PUT /issue/archive)."""
        return any(i in self.probe.literals for i in self.record_ids if i is not None)

    @property
    def named(self) -> bool:
        if not self.known or self.operation is None or self.literal_id:
            return False
        return self.id_right if self.probe.record_id is not None else True

    @property
    def right(self) -> bool:
        return self.operation in self.probe.expected

    @property
    def fetched(self) -> bool:
        return self.fetch is not None and self.fetch_documented


def classify(matcher: Matcher, probe: Probe,
             fetch_check: Callable[[FetchRequest], bool]) -> Outcome:
    """The matcher's answer, never raising: an exception is a finding of the report."""
    try:
        found = matcher.classify(probe.method, probe.host, probe.path, list(probe.query),
                                 probe.body, probe.content_type)
        if found is None:
            return Outcome(probe, None, None, (), False, None, False)
        return _outcome(probe, found, fetch_check)
    except Exception as exc:  # the proxy would fail on it too
        return Outcome(probe, None, None, (), False, None, False,
                       error=f"{type(exc).__name__}: {exc}")


def _outcome(probe: Probe, found: Classification,
             fetch_check: Callable[[FetchRequest], bool]) -> Outcome:
    unrecognised = found.route.action == "unrecognised" and not found.records
    fetches = [] if found.read else found.fetch_requests([])
    fetch = fetches[0] if fetches else None
    return Outcome(probe, None if unrecognised else found.object_type,
                   None if unrecognised or found.read else found.operation,
                   tuple(r.record_id for r in found.records), found.read, fetch,
                   fetch is not None and fetch_check(fetch), found.body_problem)


# --- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Api:
    """One API of a vendor: its description, where requests go, and the calls to show."""

    name: str
    kind: str  # openapi | graphql
    description: Path
    host: str
    keep: Callable[[str], bool] = lambda _: True  # which paths of the description belong to it
    graphql_path: str = ""
    common: tuple[str, ...] = ()


@dataclass
class Report:
    name: str
    outcomes: list[Outcome] = field(default_factory=list)
    common: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def writes(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.probe.documented_read]

    @property
    def reads(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.probe.documented_read]

    @property
    def existing(self) -> list[Outcome]:
        return [o for o in self.writes if o.probe.existing]

    def numbers(self) -> dict[str, Any]:
        writes, existing = self.writes, self.existing
        return {
            "api": self.name,
            "writes": len(writes),
            "named": _share(sum(o.named for o in writes), len(writes)),
            "right_operation": _share(sum(o.right for o in writes), len(writes)),
            "existing_record_writes": len(existing),
            "record_id": _share(sum(o.id_right for o in existing), len(existing)),
            "fetched": _share(sum(o.fetched for o in existing), len(existing)),
            "writes_as_reads": [o.probe.label for o in writes if o.read],
            "post_reads": len(self.reads),
            "post_reads_held": [o.probe.label for o in self.reads if not o.read],
            "body_problems": sum(o.body_problem is not None for o in writes),
            "literal_ids": [f"{o.probe.label}: {o.object_type} {', '.join(map(str, o.record_ids))}"
                            for o in writes if o.literal_id],
            "errors": [f"{o.probe.label}: {o.error}" for o in self.outcomes if o.error],
            "seconds": round(self.seconds, 2),
            "common_calls": [_call(o) for o in self.common],
        }


def _share(count: int, total: int) -> dict[str, Any]:
    return {"count": count, "of": total,
            "percent": round(100 * count / total, 1) if total else None}


def _call(outcome: Outcome) -> dict[str, Any]:
    return {"call": outcome.probe.label, "object": outcome.object_type,
            "operation": None if outcome.operation is None else str(outcome.operation),
            "record_id": outcome.record_ids[0] if len(set(outcome.record_ids)) == 1 else None,
            "record_id_sent": outcome.probe.record_id,
            "fetch": None if outcome.fetch is None else f"{outcome.fetch.method} "
                                                        f"{outcome.fetch.path}",
            "fetch_documented": outcome.fetched, "named": outcome.named,
            "right_operation": outcome.right, "read": outcome.read}


def _probes_openapi(api: Api) -> tuple[list[Probe], Callable[[FetchRequest], bool]]:
    documents = read_description(api.description)
    if not any(isinstance(d, dict) and "paths" in d for d in documents):
        raise CoverageError(f"{api.description}: no OpenAPI document (no 'paths')")
    prefix = server_prefix(documents)
    found = endpoints(documents, keep=api.keep)
    reads = DocumentedReads.of(documents, prefix)
    return [openapi_probe(e, api.host, prefix) for e in found], reads.documents


def _probes_graphql(api: Api) -> tuple[list[Probe], Callable[[FetchRequest], bool]]:
    schema = read_graphql_schema(api.description)
    if schema.mutation_type is None:
        raise CoverageError(f"{api.description}: the schema has no Mutation type")
    probes = [mutation_probe(name, field_, api.host, api.graphql_path)
              for name, field_ in schema.mutation_type.fields.items()]
    return probes, functools.partial(_graphql_fetch_ok, schema)


def measure(api: Api, matcher: Matcher) -> Report:
    """Every documented write (and POST read) of the API classified by the matcher."""
    started = time.perf_counter()
    probes, check = (_probes_graphql if api.kind == "graphql" else _probes_openapi)(api)
    report = Report(api.name, [classify(matcher, probe, check) for probe in probes])
    by_label = {o.probe.label: o for o in report.outcomes}
    missing = [label for label in api.common if label not in by_label]
    if missing:
        raise CoverageError(f"{api.name}: hand-picked calls missing from {api.description.name}:"
                            f" {', '.join(missing)}")
    report.common = [by_label[label] for label in api.common]
    report.seconds = time.perf_counter() - started
    return report


# --- the built-in APIs --------------------------------------------------------------------------


def _dated(template: str) -> bool:
    return any(_DATED.fullmatch(segment) for segment in template.split("/"))


def _crud(base: str, methods: str = "POST,PATCH,DELETE", record: str = "{id}") -> list[str]:
    """`POST base`, `PATCH base/{id}`, `DELETE base/{id}` (the methods asked for)."""
    wanted = methods.split(",")
    calls = [f"POST {base}"] if "POST" in wanted else []
    return calls + [f"{m} {base}/{record}" for m in wanted if m != "POST"]


COMMON_CALLS: dict[str, tuple[str, ...]] = {
    "Stripe": (
        "POST /v1/subscriptions", "POST /v1/subscriptions/{subscription_exposed_id}",
        "DELETE /v1/subscriptions/{subscription_exposed_id}",
        *_crud("/v1/products", "POST,DELETE"), "POST /v1/products/{id}",
        "POST /v1/prices", "POST /v1/prices/{price}",
        "POST /v1/invoiceitems", "POST /v1/invoiceitems/{invoiceitem}",
        "DELETE /v1/invoiceitems/{invoiceitem}",
        "POST /v1/checkout/sessions", "POST /v1/credit_notes", "POST /v1/credit_notes/{id}/void",
        "POST /v1/payment_methods/{payment_method}/attach",
        "POST /v1/payment_methods/{payment_method}/detach",
        "POST /v1/customers", "POST /v1/customers/{customer}", "DELETE /v1/customers/{customer}",
        "POST /v1/invoices/{invoice}/finalize", "POST /v1/invoices/{invoice}/void"),
    "GitHub REST": (
        "POST /repos/{owner}/{repo}/labels", "PATCH /repos/{owner}/{repo}/labels/{name}",
        "DELETE /repos/{owner}/{repo}/labels/{name}",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/labels",
        "PUT /repos/{owner}/{repo}/issues/{issue_number}/labels",
        "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/assignees",
        "DELETE /repos/{owner}/{repo}/issues/{issue_number}/assignees",
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers",
        "DELETE /repos/{owner}/{repo}/pulls/{pull_number}/requested_reviewers",
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/events",
        "POST /repos/{owner}/{repo}/pulls/{pull_number}/comments",
        "PATCH /repos/{owner}/{repo}/pulls/comments/{comment_id}",
        "POST /repos/{owner}/{repo}/releases",
        "PATCH /repos/{owner}/{repo}/releases/{release_id}",
        "DELETE /repos/{owner}/{repo}/releases/{release_id}",
        "POST /repos/{owner}/{repo}/git/refs", "PATCH /repos/{owner}/{repo}/git/refs/{ref}",
        "DELETE /repos/{owner}/{repo}/git/refs/{ref}",
        "POST /user/repos", "POST /orgs/{org}/repos", "PATCH /repos/{owner}/{repo}",
        "DELETE /repos/{owner}/{repo}",
        "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
        "POST /repos/{owner}/{repo}/issues", "PATCH /repos/{owner}/{repo}/issues/{issue_number}",
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
        "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}",
        "DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}"),
    "Jira Cloud": (
        "POST /rest/api/3/issue/{issueIdOrKey}/worklog",
        "PUT /rest/api/3/issue/{issueIdOrKey}/worklog/{id}",
        "DELETE /rest/api/3/issue/{issueIdOrKey}/worklog/{id}",
        "POST /rest/api/3/issue/{issueIdOrKey}/watchers",
        "DELETE /rest/api/3/issue/{issueIdOrKey}/watchers",
        "POST /rest/api/3/issue/{issueIdOrKey}/votes",
        "DELETE /rest/api/3/issue/{issueIdOrKey}/votes",
        "POST /rest/api/3/issueLink", "DELETE /rest/api/3/issueLink/{linkId}",
        "POST /rest/api/3/issue/{issueIdOrKey}/remotelink",
        "PUT /rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}",
        "DELETE /rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}",
        "POST /rest/api/3/issue/{issueIdOrKey}/attachments",
        "DELETE /rest/api/3/attachment/{id}",
        "PUT /rest/api/3/issue/{issueIdOrKey}/assignee",
        "PUT /rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
        "DELETE /rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
        *_crud("/rest/api/3/project", "POST,PUT,DELETE", "{projectIdOrKey}"),
        *_crud("/rest/api/3/version", "POST,PUT"),
        *_crud("/rest/api/3/component", "POST,PUT,DELETE"),
        *_crud("/rest/api/3/filter", "POST,PUT,DELETE"),
        "POST /rest/api/3/issue", "PUT /rest/api/3/issue/{issueIdOrKey}",
        "POST /rest/api/3/issue/{issueIdOrKey}/transitions", "PUT /rest/api/3/issue/archive"),
    "HubSpot": (
        "PUT /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}",
        "DELETE /crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/"
        "{toObjectId}",
        "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/create",
        "POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/archive",
        "POST /crm/v3/objects/contacts/merge", "POST /crm/v3/objects/companies/merge",
        "POST /crm/v3/objects/contacts/gdpr-delete",
        "POST /crm/v3/properties/{objectType}",
        "PATCH /crm/v3/properties/{objectType}/{propertyName}",
        "DELETE /crm/v3/properties/{objectType}/{propertyName}",
        "PATCH /crm/v3/objects/contacts/{contactId}", "PATCH /crm/v3/objects/companies/{companyId}",
        "PATCH /crm/v3/objects/0-3/{dealId}"),
    "HubSpot date-versioned": (
        "PUT /crm/objects/2026-03/{objectType}/{objectId}/associations/{toObjectType}/"
        "{toObjectId}",
        "DELETE /crm/objects/2026-03/{objectType}/{objectId}/associations/{toObjectType}/"
        "{toObjectId}",
        "POST /crm/associations/2026-03/{fromObjectType}/{toObjectType}/batch/create",
        "POST /crm/associations/2026-03/{fromObjectType}/{toObjectType}/batch/archive",
        "POST /crm/objects/2026-03/contacts/merge", "POST /crm/objects/2026-03/companies/merge",
        "POST /crm/objects/2026-03/contacts/gdpr-delete",
        "POST /crm/properties/2026-03/{objectType}",
        "PATCH /crm/properties/2026-03/{objectType}/{propertyName}",
        "DELETE /crm/properties/2026-03/{objectType}/{propertyName}",
        "PATCH /crm/objects/2026-03/contacts/{contactId}",
        "PATCH /crm/objects/2026-03/companies/{companyId}",
        "PATCH /crm/objects/2026-03/0-3/{dealId}"),
    "Linear": tuple(f"mutation {name}" for name in (
        "issueCreate", "issueUpdate", "issueArchive", "issueUnarchive", "issueAddLabel",
        "commentCreate")),
    "Shopify": tuple(f"mutation {name}" for name in (
        "productUpdate", "productCreate", "orderUpdate", "customerUpdate",
        "inventoryAdjustQuantities")),
}

# name, connector file stem, paths kept, GraphQL endpoint path
BUILTIN: tuple[tuple[str, str, Callable[[str], bool] | None, str], ...] = (
    ("Stripe", "stripe", None, ""),
    ("GitHub REST", "github", None, ""),
    ("HubSpot", "hubspot", lambda path: not _dated(path), ""),
    ("HubSpot date-versioned", "hubspot", _dated, ""),
    ("Jira Cloud", "jira", None, ""),
    ("Linear", "linear", None, "/graphql"),
    ("Shopify", "shopify", None, "/admin/api/2026-07/graphql.json"),
)


def example_host(connector: Connector) -> str:
    """The connector's first host, a glob's `*` as "acme" (acme.atlassian.net)."""
    return connector.hosts[0].replace("*", "acme")


def builtin_apis(connectors: dict[str, Connector],
                 directory: Path = SCHEMAS_DIR) -> list[Api]:
    """The shipped descriptions, as named by each built-in connector's `description`."""
    apis = []
    for name, stem, keep, graphql_path in BUILTIN:
        connector = connectors.get(stem)
        described = connector.description if connector is not None else None
        if connector is None or described is None:
            raise CoverageError(f"{name}: connector {stem!r} with a description is not loaded")
        kind = "graphql" if described.graphql else "openapi"
        files = described.graphql or described.openapi
        file = files if isinstance(files, str) else (files or [None])[0]
        if file is None:
            raise CoverageError(f"{name}: connector {stem!r} names no description file")
        apis.append(Api(name, kind, directory / file, example_host(connector),
                        keep or (lambda _: True), graphql_path, COMMON_CALLS.get(name, ())))
    return apis


def spec_api(spec: Path, host: str, name: str | None = None) -> Api:
    """A site's own OpenAPI 3 file, sent to `host`."""
    return Api(name or spec.name.split(".")[0], "openapi", spec, host.lower())


# --- output -------------------------------------------------------------------------------------


def _percent(share: dict[str, Any]) -> str:
    if not share["of"]:
        return "-"
    return f"{share['percent']:.0f}% ({share['count']}/{share['of']})"


def table(reports: list[Report]) -> str:
    """The report as markdown: the summary, then each API's most common calls and findings."""
    numbers = [report.numbers() for report in reports]
    lines = ["| API | writes | named | right op | record id | fetched | writes as reads | "
             "POST reads held |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for n in numbers:
        lines.append(f"| {n['api']} | {n['writes']} | {_percent(n['named'])} | "
                     f"{_percent(n['right_operation'])} | {_percent(n['record_id'])} | "
                     f"{_percent(n['fetched'])} | {len(n['writes_as_reads'])} | "
                     f"{len(n['post_reads_held'])} of {n['post_reads']} |")
    for n in numbers:
        lines += _details(n)
    return "\n".join(lines) + "\n"


def _details(n: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if n["common_calls"]:
        lines += ["", f"### {n['api']}: most common calls", "",
                  "| call | object | operation | record id | fetch | named | right op |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in n["common_calls"]:
            fetch = "-" if c["fetch"] is None else ("yes" if c["fetch_documented"]
                                                    else f"undocumented: {c['fetch']}")
            lines.append(f"| `{c['call']}` | {c['object'] or '-'} | {c['operation'] or '-'} | "
                         f"{c['record_id'] or '-'} | {fetch} | {_mark(c['named'])} | "
                         f"{_mark(c['right_operation'])} |")
    for key, title in (("writes_as_reads", "writes classified as reads (would pass unreviewed)"),
                       ("post_reads_held", "documented POST reads held as writes"),
                       ("literal_ids", "a fixed path segment taken for the record id"),
                       ("errors", "requests the matcher failed on")):
        if n[key]:
            lines += ["", f"{n['api']}: {title}:", ""] + [f"- `{label}`" for label in n[key]]
    return lines


def _mark(flag: bool) -> str:
    return "yes" if flag else "no"


def as_json(reports: list[Report]) -> str:
    return json.dumps({"apis": [report.numbers() for report in reports]}, indent=2)


def run(apis: list[Api], matcher: Matcher) -> list[Report]:
    return [measure(api, matcher) for api in apis]


__all__ = ["Api", "CoverageError", "Outcome", "Probe", "Report", "as_json", "builtin_apis",
           "classify", "documented_read", "endpoints", "expected_operations", "graphql_expected",
           "measure", "mutation_probe", "openapi_probe", "read_description",
           "read_graphql_schema", "run", "spec_api", "table"]
