"""One engine for every connector: turns an HTTP request into reads, or writes to named records."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes, urlencode

from connectors_schemas.bodies import (
    AmbiguousBodyError,
    BodyError,
    at_path,
    parse_body,
    parse_form,
)
from connectors_schemas.graphql_request import parse_graphql
from connectors_schemas.graphql_schema import (
    DerivedGraphQL,
    GraphQLRead,
    derived_for,
    schemaless_writes,
)
from connectors_schemas.models import (
    PLACEHOLDER,
    READ_METHODS,
    WRITE_METHODS,
    BodyFormat,
    Connector,
    FetchSpec,
    FieldMode,
    FieldWrite,
    ObjectSpec,
    Operation,
    Route,
    SubrequestsSpec,
)

HOSTS_REMEMBERED = 4096
IDENTIFIED_REMEMBERED = 4096  # (system, path) -> what a read names, for the traffic record
IDENTIFIED_PATH_MAX = 512  # longer paths are looked up each time, so the cache stays small
MAX_FETCHES = 50  # a bulk write whose vendor has no collection read: at most this many GETs
# Query parameters (and subrequest headers) some vendors read as the method, e.g. Salesforce's
# `?_HttpMethod=PATCH` on a POST; compared case-insensitively.
METHOD_OVERRIDES = frozenset({"_httpmethod", "_method", "x-http-method-override",
                              "x-http-method", "x-method-override"})
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SUSPECT = re.compile(r"[%\\;#]|//|/\.\.?(?:/|$)|[^\x21-\x7e]")  # the cheap test first
_PERCENT = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})?")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


class BodyShapeError(ValueError):
    """The request body is not what the vendor's API takes for this route."""


@dataclass(frozen=True, slots=True)
class RecordWrite:
    """One record a write touches, with the fields it proposes."""

    object_type: str
    operation: Operation
    record_id: str | None
    values: dict[str, Any] | None
    action: str | None = None
    ops: dict[str, Any] | None = None  # per-field operations (Jira's `update`)
    read: GraphQLRead | None = None  # GraphQL: the query generated to read this record


@dataclass(frozen=True, slots=True)
class FetchRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    json_body: Any
    record_ids: list[str | None]
    graphql: GraphQLRead | None = None  # a generated GraphQL read, answered in its own shape


@dataclass(frozen=True, slots=True)
class Identified:
    system: str
    object_type: str | None
    record_id: str | None


@dataclass(frozen=True, slots=True)
class Classification:
    system: str
    route: Route
    spec: ObjectSpec
    base: str  # the base path as the agent sent it, e.g. /services/data/v59.0
    params: dict[str, str]
    read: bool
    records: list[RecordWrite] = field(default_factory=list)
    body: Any = None
    body_problem: str | None = None
    parts: list[Classification] = field(default_factory=list)  # subrequests, each on its own
    unfetchable: str | None = None  # why a record has no fetch (GraphQL: what the schema lacks)

    @property
    def bulk(self) -> bool:
        return self.route.bulk is not None or bool(self.parts)

    @property
    def operation(self) -> Operation:
        operations = {record.operation for record in self.records}
        return operations.pop() if len(operations) == 1 else self.route.operation

    @property
    def object_type(self) -> str | None:
        types = {record.object_type for record in self.records}
        return types.pop() if len(types) == 1 else None

    @property
    def fetch_spec(self) -> FetchSpec | None:
        if self.route.no_fetch:
            return None
        return self.route.fetch or self.spec.fetch

    def fetch_requests(self, agent_query: list[tuple[str, str]]) -> list[FetchRequest]:
        """The GETs (or read POSTs) that return the records as they stand now."""
        reads = [record.read for record in self.records if record.read is not None]
        if reads:  # GraphQL: each record's generated query, POSTed to the agent's endpoint
            return [FetchRequest("POST", self.base + self.route.path, [], read.body(),
                                 [read.record_id], read) for read in reads[:MAX_FETCHES]]
        spec = self.fetch_spec
        wanted = [r for r in self.records
                  if r.operation is not Operation.create and r.record_id is not None]
        if spec is None or not wanted:
            return []
        kept = [(k, v) for k, v in agent_query if k in spec.keep_query]
        if spec.many:
            by_type: dict[str, list[RecordWrite]] = {}
            for record in wanted:
                by_type.setdefault(record.object_type, []).append(record)
            rendered = [self._render(spec, group, kept) for group in by_type.values()]
        else:
            rendered = [self._render(spec, [record], kept) for record in wanted[:MAX_FETCHES]]
        # An id from the body (`../../companyinfo/1`) may spell dot segments: such a path
        # reads another resource as the record, so it is not fetched (old values unknown).
        return [request for request in rendered if non_canonical(request.path) is None]

    def _render(self, spec: FetchSpec, records: list[RecordWrite],
                kept: list[tuple[str, str]]) -> FetchRequest:
        ids = [record.record_id or "" for record in records]
        # The identifying fields too: an API that returns only the fields asked for
        # (HubSpot's `properties`) would otherwise leave the reviewer without the name.
        fields = sorted({name for r in records for name in (r.values or {})} |
                        {name for r in records for name in (r.ops or {})} |
                        {name for r in records for name in self._identifying(r.object_type)})
        names = {**self._names(spec), "id": ids[0], "ids": ",".join(ids),
                 "fields": ",".join(fields), "type": records[0].object_type}
        lists: dict[str, Any] = {"{ids_list}": ids, "{id_objects}": [{"id": i} for i in ids],
                                 "{fields_list}": fields}

        def render(template: Any, in_path: bool = False) -> Any:
            if isinstance(template, str):
                if template in lists:
                    return lists[template]
                # In the path every value is encoded in its segment (a key holding `?` or `#`
                # from the agent's path would end the fetch's path early: another record)
                return PLACEHOLDER.sub(
                    lambda m: quote(names.get(m[1], ""), safe="/") if in_path
                    else names.get(m[1], ""), template)
            if isinstance(template, dict):
                return {key: render(value) for key, value in template.items()}
            if isinstance(template, list):
                # A list token inside a list is spliced in: ["{fields_list}", "email"].
                rendered = []
                for value in template:
                    item = render(value)
                    rendered += item if isinstance(value, str) and value in lists else [item]
                return [item for item in rendered if item != ""]
            return template

        query = [(key, render(value)) for key, value in spec.query.items()]
        query = [(key, value) for key, value in query if value != ""]
        return FetchRequest(spec.method, self.base + render(spec.path, True),
                            [*kept, *query], render(spec.body), list(ids))

    def _identifying(self, object_type: str) -> set[str]:
        named = self.spec.identify_for(object_type) or []
        return {path.split(".", 1)[0] for item in named for path in [item.field, *item.or_joined]}

    def _names(self, spec: FetchSpec) -> dict[str, str]:
        names = dict(self.params)
        for name, path in spec.names_from_body.items():
            value = at_path(self.body, path)
            names[name] = "" if value is None else str(value)
        return names

    def records_from(self, request: FetchRequest, answer: Any) -> dict[str | None, dict[str, Any]]:
        """Records found in a fetch answer, by record id."""
        if request.graphql is not None:
            found, _ = request.graphql.record(answer)
            return {request.record_ids[0]: found} if found is not None else {}
        spec = self.fetch_spec
        assert spec is not None
        record_path = spec.record_path or self.spec.record_path or self.spec.values_path
        if record_path:
            record_path = PLACEHOLDER.sub(lambda m: self.params.get(m[1], m[0]), record_path)
        found = at_path(answer, record_path)
        if not spec.many:
            return {request.record_ids[0]: found} if isinstance(found, dict) else {}
        names = self._names(spec)
        id_field = PLACEHOLDER.sub(lambda m: names.get(m[1], ""),
                                   spec.id_field or self.spec.id_field)
        records: dict[str | None, dict[str, Any]] = {}
        for item in found if isinstance(found, list) else []:
            record = at_path(item, spec.item_path) if isinstance(item, dict) else None
            if isinstance(record, dict) and at_path(item, id_field) is not None:
                key = str(at_path(item, id_field))
                if spec.record_key is not None:  # a pair: both records name it
                    key = PLACEHOLDER.sub(lambda m, key=key: key if m[1] == "id" else names.get(
                        m[1], ""), spec.record_key)
                records[key] = record
        return records


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    pattern: re.Pattern[str]
    base: str
    route: Route
    key: str
    spec: ObjectSpec
    connector: Connector
    precedence: tuple[int, ...]  # `_precedence`: the lower is tried first

    @property
    def graphql(self) -> bool:
        return (self.route.body or self.spec.body) is BodyFormat.graphql


# A segment's rank, lower first: OpenAPI's rule (a concrete path before a templated one), and a
# greedy `{x+}` last since it can swallow whatever follows. _ENDED is a template with no more.
_LITERAL, _PLACEHOLDER, _GREEDY, _ENDED = range(4)
_ANY, _GRAPHQL = "any method", "graphql"  # index names beside the write methods


def _split(template: str) -> list[str]:
    """The segments of a template or path that starts with '/'."""
    return template[1:].split("/")


def _precedence(base: str, route: Route) -> tuple[int, ...]:
    """Segment ranks from the left: `/issue/archive` before `/issue/{id}` (and `{id}.json`,
    which is a placeholder too), `/{path+}` after both, a template before a shorter one it
    begins with; ties keep file order.

    The base path's segments count as literal: every route under a base shares them, so the
    connector's own `/issue/{id}` under `/rest/api/{api_version}` ties with a derived
    `/rest/api/3/issue/{id}` and the earlier in the file (the hand-written one) wins.
    """
    ranks = [_LITERAL] * len(_split(base)) if base else []
    for segment in _split(route.path):
        found = PLACEHOLDER.findall(segment)
        ranks.append(_GREEDY if any(plus for _, plus in found) else _PLACEHOLDER if found
                     else _LITERAL)
    return (*ranks, _ENDED)


@dataclass(slots=True)
class _Node:
    """A segment trie: exact segments, one child for any non-empty segment (a placeholder, whole
    or inside the segment), the routes ending here, and those whose greedy segment is next."""

    literal: dict[str, _Node] = field(default_factory=dict)
    wildcard: _Node | None = None
    ends: list[int] = field(default_factory=list)
    greedy: list[int] = field(default_factory=list)

    def add(self, keys: list[str | None], greedy: bool, position: int) -> None:
        """A route by `_trie_keys`: None is the wildcard; a greedy route stops after them."""
        node = self
        for key in keys:
            if key is None:
                if node.wildcard is None:
                    node.wildcard = _Node()
                node = node.wildcard
            else:
                if key not in node.literal:
                    node.literal[key] = _Node()
                node = node.literal[key]
        _append_once(node.greedy if greedy else node.ends, position)

    def walk(self, segments: list[str], into: list[int]) -> None:
        """Every route whose template could match these segments (never one fewer)."""
        frontier = [self]
        for segment in segments:
            following: list[_Node] = []
            for node in frontier:
                if node.greedy:
                    into += node.greedy
                if (child := node.literal.get(segment)) is not None:
                    following.append(child)
                if segment and node.wildcard is not None:  # `[^/]+?` takes no empty segment
                    following.append(node.wildcard)
            if not following:
                return
            frontier = following
        for node in frontier:
            into += node.ends


def _trie_keys(template: str) -> tuple[list[str | None], bool]:
    """The template's segments up to a greedy one (then True): literal ones as they are, None
    for one holding a placeholder (`{id}`, `{id}.json`); the regex checks what they hold."""
    keys: list[str | None] = []
    for segment in _split(template):
        found = PLACEHOLDER.findall(segment)
        if any(plus for _, plus in found):
            return keys, True
        keys.append(None if found else segment)
    return keys, False


def _append_once(positions: list[int], position: int) -> None:
    if not positions or positions[-1] != position:  # a route's variants may share a node
        positions.append(position)


class _RouteIndex:
    """One connector's routes in precedence order, and a segment trie per write method (one for
    any method, one for GraphQL routes) so a lookup costs what the path's segments fit, not
    what the connector holds. The compiled regex stays the final check."""

    def __init__(self, routes: list[_CompiledRoute], suffixes: list[str]) -> None:
        self.routes = sorted(routes, key=lambda candidate: candidate.precedence)  # stable
        self._tries: dict[str, _Node] = {}
        for position, candidate in enumerate(self.routes):
            names = [candidate.route.method, _ANY] + ([_GRAPHQL] if candidate.graphql else [])
            template = candidate.base + candidate.route.path
            # What `_compile`'s `(?:suffixes)/?$` lets the path end in, spelt into the trie, so
            # a lookup is one walk: `tickets.json` and `tickets/` are segments like any other.
            for ending in {suffix + slash for suffix in suffixes or [""] for slash in ("", "/")}:
                keys, greedy = _trie_keys(template + ending)
                for name in names:
                    self._tries.setdefault(name, _Node()).add(keys, greedy, position)

    def candidates(self, path: str, among: str) -> list[_CompiledRoute]:
        """Routes of `among` (a method, _ANY or _GRAPHQL) the path may match, in precedence
        order; a superset of those whose regex matches."""
        trie = self._tries.get(among)
        if trie is None or not path.startswith("/"):
            return []
        found: list[int] = []
        trie.walk(_split(path), found)
        return [self.routes[position] for position in sorted(set(found))]

    def scan(self, among: str) -> list[_CompiledRoute]:
        """Every route of `among` in precedence order: what `candidates` must agree with."""
        return [candidate for candidate in self.routes if among in (_ANY, candidate.route.method)
                or (among == _GRAPHQL and candidate.graphql)]


def _compile(base: str, route: Route, suffixes: list[str]) -> re.Pattern[str]:
    def group(found: re.Match[str]) -> str:
        return f"(?P<{found[1]}>.+)" if found[2] else f"(?P<{found[1]}>[^/]+?)"

    pattern = ""
    template = base + route.path
    position = 0
    for found in PLACEHOLDER.finditer(template):
        pattern += re.escape(template[position:found.start()]) + group(found)
        position = found.end()
    pattern += re.escape(template[position:])
    alternatives = "|".join(re.escape(suffix) for suffix in suffixes)
    return re.compile(f"^{pattern}(?:{alternatives})/?$")


def non_canonical(path: str) -> str | None:
    """Why servers could read this path as another one, or None when it has one reading.

    Dot segments, encoded slashes and dots, matrix parameters, empty segments and backslashes
    are normalised by some servers and not by others, so such a path could reach a write route
    while the matcher saw a read, or name another record than the one shown.
    """
    if not path.startswith("/"):
        return "it does not start with '/'"
    if _SUSPECT.search(path) is None:
        return None
    for char in path:
        if not 0x21 <= ord(char) <= 0x7E:
            return f"it holds the character U+{ord(char):04X} unencoded"
    for char, why in (("\\", "a backslash"), (";", "a matrix parameter (';')"),
                      ("#", "a '#'")):
        if char in path:
            return f"it holds {why}"
    segments = path[1:].split("/")
    for index, segment in enumerate(segments):
        if segment == "" and index < len(segments) - 1:
            return "it has an empty segment ('//')"
        if segment in (".", ".."):
            return f"it has a dot segment ('/{segment}')"
        if "%" in segment and (why := _encoding_problem(segment)):
            return why
    return None


def _encoding_problem(segment: str) -> str | None:
    """Percent-encodings that decode to something a server may read as structure."""
    for found in _PERCENT.finditer(segment):
        if found["hex"] is None:
            return f"it has a malformed percent-encoding near {segment[found.start():][:6]!r}"
        byte = int(found["hex"], 16)
        if byte in b"/\\.":
            return f"it encodes {chr(byte)!r} as {found[0]!r}"
        if byte in _UNRESERVED:
            return f"it encodes the unreserved {chr(byte)!r} as {found[0]!r}"
        if byte < 0x20 or byte == 0x7F:
            return f"it encodes a control character as {found[0]!r}"
        if byte == 0x25 and _HEX2.fullmatch(segment[found.end():found.end() + 2]):
            return "it is percent-encoded twice ('%25' before two hex digits)"
    try:
        decoded = unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        return "it percent-encodes bytes that are not UTF-8 (an overlong '.' or '/'?)"
    folded = unicodedata.normalize("NFKC", decoded)
    if folded != decoded and (folded in (".", "..") or any(
            char in folded and char not in decoded for char in "/\\;%")):
        return f"its segment {decoded!r} reads as {folded!r} once Unicode is normalised"
    return None


def _normalised(path: str) -> str:
    """A best guess at what a lenient server makes of a non-canonical path (never trusted for
    a read: only to fail closed, e.g. a GraphQL endpoint reached through `/graphql/.`)."""
    text = unquote(unquote(path)).replace("\\", "/")
    kept: list[str] = []
    for segment in text.split("/"):
        segment = segment.split(";")[0]
        if segment == "..":
            if kept:
                kept.pop()
        elif segment not in ("", "."):
            kept.append(segment)
    return "/" + "/".join(kept)


_UNMATCHED_ROUTE = Route(method="POST", path="/", operation=Operation.action,
                         action="unrecognised", no_fetch=True)
_UNMATCHED_SPEC = ObjectSpec(routes=[_UNMATCHED_ROUTE])


def _unmatched(system: str, problem: str) -> Classification:
    """A write of the system no route may claim: held as unrecognised, with the problem shown."""
    return Classification(system, _UNMATCHED_ROUTE, _UNMATCHED_SPEC, "", {}, False, [], None,
                          problem)


def _overridden(query: list[tuple[str, str]], method: str) -> str | None:
    """A method-override parameter naming another method than the request's."""
    for name, value in query:
        if name.casefold() in METHOD_OVERRIDES and value.strip().upper() != method:
            return f"{name}={value[:20]}"
    return None


class Matcher:
    def __init__(self, connectors: dict[str, Connector]) -> None:
        self._connectors = list(connectors.values())
        self._by_host: dict[str, Connector | None] = {}  # every read asks; globs are slow
        self._routes: dict[str, _RouteIndex] = {}
        self._graphql_paths: dict[str, list[re.Pattern[str]]] = {}
        self._identified: dict[tuple[int, str], Identified] = {}  # every read asks
        # By the connector itself, not its system name: a site's API may share a built-in's
        # name and must not lend its routes (or cached answers) to the built-in's hosts.
        self._index: dict[int, _RouteIndex] = {}
        self._graphql_of: dict[int, list[re.Pattern[str]]] = {}
        for connector in self._connectors:
            derived_for(connector.description)  # a schema without a derived file: now, once
            index = _RouteIndex([  # file order, then sorted
                _CompiledRoute(_compile(base, route, connector.path_suffixes), base, route, key,
                               spec, connector, _precedence(base, route))
                for key, spec in connector.objects.items()
                for route in spec.routes
                for base in ([""] if route.from_root else connector.base_paths)
            ], connector.path_suffixes)
            self._index[id(connector)] = self._routes[connector.system] = index
            # Express and others route without regard to case: `/GraphQL` is the endpoint too.
            # Only for failing closed; write routes still match exactly. A connector has a few
            # GraphQL endpoints however many routes it has, so these are tried one by one.
            self._graphql_of[id(connector)] = self._graphql_paths[connector.system] = list({
                candidate.pattern.pattern: re.compile(candidate.pattern.pattern, re.IGNORECASE)
                for candidate in index.scan(_GRAPHQL)}.values())

    def connector_for(self, host: str) -> Connector | None:
        if host in self._by_host:
            return self._by_host[host]
        name = host.lower().rstrip(".")
        found = next((connector for connector in self._connectors
                      if any(fnmatchcase(name, pattern) for pattern in connector.hosts)), None)
        if len(self._by_host) >= HOSTS_REMEMBERED:
            self._by_host.clear()  # agents reach few hosts; a flood of names starts afresh
        self._by_host[host] = found
        return found

    def is_graphql_endpoint(self, host: str, path: str) -> bool:
        """A connector knows this path as a GraphQL route (any method, any letter case): for the
        read path's `graphql_in_query`. A non-canonical path counts when a lenient server could
        read it as one."""
        connector = self.connector_for(host)
        if connector is None or not (patterns := self._graphql_of[id(connector)]):
            return False
        paths = [path] if non_canonical(path) is None else [path, _normalised(path)]
        return any(pattern.match(each) for pattern in patterns for each in paths)

    def classify(self, method: str, host: str, path: str, query: list[tuple[str, str]],
                 content: bytes = b"", content_type: str | None = None) -> Classification | None:
        """What a write-method request does, or None when no connector route knows it.

        A GET, HEAD or OPTIONS is looked up on GraphQL routes only: the read path holds one
        whose URL carries a mutation (`graphql_in_query`), and this names what it writes.
        A path with more than one reading (`non_canonical`) matches no route: it is held as
        an unrecognised write of the system, with the reason as its problem.
        """
        connector = self.connector_for(host)
        if connector is None:
            return None
        method = method.upper()
        if (why := non_canonical(path)) is not None:
            return _unmatched(connector.system, f"the path {path[:200]!r} is not canonical: "
                              f"{why}; servers differ on which route and record it names, so "
                              "no connector route is matched")
        reading = method in READ_METHODS
        # Reads only on GraphQL routes, whatever their method; writes on their method's routes.
        candidates = self._index[id(connector)].candidates(
            path, _GRAPHQL if reading else method)
        query_map = dict(query)
        for candidate in candidates:  # in precedence order; the first that fits is the route
            route = candidate.route
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if not _query_matches(route.query, query_map):
                continue
            if (override := _overridden(query, method)) is not None:
                return _unmatched(connector.system, f"the URL overrides the method ({override}),"
                                  " so the route cannot be told from the path")
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            base = PLACEHOLDER.sub(lambda m, f=found: f.group(m[1]) or "", candidate.base)
            classified = _classify_route(connector, candidate, base, params, query, content,
                                         content_type)
            if route.subrequests is not None and classified.body_problem is None:
                return self._with_parts(classified, host)
            return classified
        return None

    def _with_parts(self, outer: Classification, host: str) -> Classification:
        """Each subrequest classified as if sent alone; only an exact read method is a read."""
        spec = outer.route.subrequests
        assert spec is not None
        if (twice := _folded_twice(outer.body, spec.path)) is not None:
            return replace(outer, body_problem=twice)
        items = at_path(outer.body, spec.path)
        if not isinstance(items, list) or not items:
            return replace(outer, body_problem=f"expected a non-empty list under {spec.path!r}")
        parts: list[Classification] = []
        problems: list[str] = []
        for index, item in enumerate(items):
            where = f"{spec.path}[{index}]"
            found = self._part(spec, item, host)
            if isinstance(found, str):
                problems.append(f"{where}: {found}")
                continue
            if found is None or found.read:
                continue
            if found.body_problem is not None:
                problems.append(f"{where}: {found.body_problem}")
            parts.append(found)
        records = [record for part in parts for record in part.records]
        problem = None
        if problems:
            more = len(problems) - 1
            problem = problems[0] + (f" (and {more} more subrequest problem"
                                     f"{'s' if more > 1 else ''})" if more else "")
        return replace(outer, read=not parts and not problems, records=records, parts=parts,
                       body_problem=problem)

    def _part(self, spec: SubrequestsSpec, item: Any,
              host: str) -> Classification | str | None:
        """One subrequest: None for a read, its classification, or why it cannot be read."""
        if not isinstance(item, dict):
            return "is not a JSON object"
        for name in (spec.method_field, spec.url_field, spec.body_field):
            if (twice := _folded_twice(item, name)) is not None:
                return twice
        method, url = at_path(item, spec.method_field), at_path(item, spec.url_field)
        if not isinstance(method, str) or not method or not isinstance(url, str):
            return "has no method or url (both strings)"
        path, _, query_text = url.partition("?")
        query = parse_qsl(query_text, keep_blank_values=True)
        if (override := _override_in(item, query)) is not None:
            return f"overrides its method ({override})"
        if method in READ_METHODS:
            why = non_canonical(path)
            return None if why is None else f"its url {path[:200]!r} is not canonical: {why}"
        verb = "".join(char for char in method if char.isascii() and char.isalpha()).upper()
        if verb not in WRITE_METHODS:
            return (f"its method {method!r} is neither exactly one of "
                    f"{', '.join(sorted(READ_METHODS))} nor a write method; the vendor may "
                    "read it either way")
        body = at_path(item, spec.body_field)
        content = b"" if body is None else json.dumps(body).encode()
        part = self.classify(verb, host, path, query, content, "application/json")
        return f"no route for {verb} {path[:200]}" if part is None else part

    def identify(self, host: str, path: str) -> Identified | None:
        """Which system, object and record a request names, from host and path alone.

        For the traffic record of reads: a GET of a record's URL matches the route that would
        write it, whatever the method.
        """
        connector = self.connector_for(host)
        if connector is None:
            return None
        key = (id(connector), path)
        if (known := self._identified.get(key)) is not None:
            return known  # agents poll the same records: most reads end here
        identified = self._identify(connector, path)
        if len(path) <= IDENTIFIED_PATH_MAX:
            if len(self._identified) >= IDENTIFIED_REMEMBERED:
                self._identified.clear()  # a crawl of distinct paths starts afresh
            self._identified[key] = identified
        return identified

    def _identify(self, connector: Connector, path: str) -> Identified:
        """The first route in precedence order that names a record, else the first that
        matches (a collection), whatever the routes' methods."""
        collection: Identified | None = None
        for candidate in self._index[id(connector)].candidates(path, _ANY):
            found = candidate.pattern.match(path)
            if found is None:
                continue
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            object_type = candidate.route.object_type or _object_type(candidate.spec,
                                                                      candidate.key, params)
            if params.get("id"):
                return Identified(connector.system, object_type, params["id"])
            collection = collection or Identified(connector.system, object_type, None)
        return collection or Identified(connector.system, None, None)

    def match(self, method: str, host: str, path: str) -> Classification | None:
        """Classification from method, host and path alone (no body)."""
        return self.classify(method, host, path, [])


def _folded_twice(body: Any, path: str) -> str | None:
    """Two keys on the path that differ only in case: `at_path` would pick one, the vendor
    might pick the other."""
    node = body
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        same = sorted(key for key in node if key.casefold() == part.casefold())
        if len(same) > 1:
            return (f"the body has both {same[0]!r} and {same[1]!r}; servers differ on which "
                    "one they read")
        node = node.get(same[0]) if same else None
    return None


def _override_in(item: dict[str, Any], query: list[tuple[str, str]]) -> str | None:
    """A method override in a subrequest's URL or its own headers.

    Every key that folds to `httpheaders` is looked in (Salesforce's JSON keys are not
    case-sensitive), and headers that are not an object are no read either.
    """
    for name, value in query:
        if name.casefold() in METHOD_OVERRIDES:
            return f"{name}={value[:20]}"
    for key, headers in item.items():
        if not isinstance(key, str) or key.casefold() != "httpheaders" or headers is None:
            continue
        if not isinstance(headers, dict):
            return f"{key} that is not a JSON object"
        for name in headers:
            if not isinstance(name, str) or "method" in name.casefold():
                return f"header {str(name)[:40]} in {key}"
    return None


def _query_matches(required: dict[str, str], query: dict[str, str]) -> bool:
    """Each required parameter has the given value; "*" only asks that it is present."""
    return all(query.get(name) if value == "*" else query.get(name, "").lower() == value.lower()
               for name, value in required.items())


def _values(body: Any, path: str | None) -> dict[str, Any]:
    values = at_path(body, path)
    if not isinstance(values, dict):
        where = f" under {path!r}" if path else ""
        raise BodyShapeError(f"expected a JSON object{where}")
    return values


def _object_type(spec: ObjectSpec, key: str, params: dict[str, str],
                 route_type: str | None = None) -> str:
    template = route_type or spec.object_type or key
    return PLACEHOLDER.sub(lambda m: params.get(m[1], m[0]), template)


def _classify_route(connector: Connector, candidate: _CompiledRoute, base: str,
                    params: dict[str, str], query: list[tuple[str, str]], content: bytes,
                    content_type: str | None) -> Classification:
    route, spec = candidate.route, candidate.spec
    if route.record_name is not None and "{" in route.record_name:  # a pair, named by both
        route = route.model_copy(update={"record_name": PLACEHOLDER.sub(
            lambda m: params.get(m[1], m[0]), route.record_name)})
    body_format = route.body or spec.body
    object_type = _object_type(spec, candidate.key, params, route.object_type)

    def outcome(read: bool, records: list[RecordWrite], body: Any = None,
                problem: str | None = None) -> Classification:
        return Classification(connector.system, route, spec, base, params, read, records, body,
                              problem)

    if route.operation is Operation.read:
        try:
            parse_body(content, content_type, body_format)
        except AmbiguousBodyError as exc:  # the vendor may read another query than we would
            return _unmatched(connector.system, str(exc))
        except BodyError:
            pass  # a read whatever its body (QuickBooks' query is text)
        return outcome(True, [])
    try:
        body = parse_body(content, content_type, body_format)
        if body_format is BodyFormat.form and query:  # Rack reads both, on every method
            body = _with_query(body, content, query)
    except BodyError as exc:
        fallback = RecordWrite(object_type, route.operation, params.get("id"), None, route.action)
        return outcome(False, [fallback], None, str(exc))
    try:
        if body_format is BodyFormat.graphql:
            return _classify_graphql(outcome, body, query, derived_for(connector.description))
        if route.bulk is not None:
            return outcome(False, _bulk_records(route, spec, object_type, body, dict(query)),
                           body)
        return outcome(False, [_single_record(route, spec, object_type, params, body)], body)
    except (BodyShapeError, BodyError) as exc:
        fallback = RecordWrite(object_type, route.operation, params.get("id"), None, route.action)
        return outcome(False, [fallback], body, str(exc))


def _with_query(body: Any, content: bytes, query: list[tuple[str, str]]) -> dict[str, Any]:
    """A form connector's write takes parameters from the URL too (stripe-python puts a
    DELETE's there, and Rack merges the query into the body's params on a POST as well): read
    them as the body, with any sent body, a name in both being ambiguous. Otherwise a field
    sent in a POST's query would change the record unseen by the reviewer and a rule."""
    if body is not None and not isinstance(body, dict):
        raise BodyError("expected form fields in the body")
    text = urlencode(query)
    if content.strip():
        text += "&" + content.decode("utf-8")
    return parse_form(text)


def _single_record(route: Route, spec: ObjectSpec, object_type: str, params: dict[str, str],
                   body: Any) -> RecordWrite:
    values_path = route.values_path if route.values_path is not None else spec.values_path
    operation, record_id = route.operation, params.get("id") or route.record_name
    if route.field is not None:
        return _field_record(route.field, object_type, record_id, params, body)
    if route.id_from_body is not None:
        found = at_path(body, route.id_from_body)
        if found in (None, ""):
            raise BodyShapeError(f"expected the record id in the body's {route.id_from_body!r}")
        record_id = str(found)
    if operation is Operation.delete:  # what it is sent (its parameters) is shown beside it
        return RecordWrite(object_type, operation, record_id,
                           body if isinstance(body, dict) else None)
    if operation is Operation.action:
        values = body if isinstance(body, dict) else None
        return RecordWrite(object_type, operation, record_id, values, route.action)
    ops = at_path(body, spec.ops_path) if spec.ops_path else None
    if ops is not None and not isinstance(ops, dict):
        raise BodyShapeError(f"expected a JSON object under {spec.ops_path!r}")
    if ops and at_path(body, values_path) is None:
        values: dict[str, Any] = {}  # an edit made only of per-field operations
    else:
        values = dict(_values(body, values_path))
    if route.update_if_body_has and values.get(route.update_if_body_has) not in (None, ""):
        operation, record_id = Operation.update, str(values[route.update_if_body_has])
    return RecordWrite(object_type, operation, record_id, values, ops=ops)


def _field_record(write: FieldWrite, object_type: str, record_id: str | None,
                  params: dict[str, str], body: Any) -> RecordWrite:
    """A sub-resource that is one field of its parent: an update of the parent, its field set
    (old -> new) or items added to or removed from it (shown as added and removed items)."""
    if write.value_param is not None:
        value: Any = params.get(write.value_param)
    elif write.value_path is not None and isinstance(body, dict):
        value = at_path(body, write.value_path)
    else:
        value = body  # the whole body (Jira's assignee), or a bare list of labels
    if write.mode is FieldMode.clear:
        return RecordWrite(object_type, Operation.update, record_id, {write.name: []})
    if write.mode is FieldMode.set:
        return RecordWrite(object_type, Operation.update, record_id, {write.name: value})
    if value is None:
        raise BodyShapeError(f"expected the items to {write.mode} in the body")
    items = value if isinstance(value, list) else [value]
    return RecordWrite(object_type, Operation.update, record_id, {},
                       ops={write.name: [{write.mode.value: item} for item in items]})


def _bulk_records(route: Route, spec: ObjectSpec, object_type: str, body: Any,
                  query: dict[str, str]) -> list[RecordWrite]:
    bulk = route.bulk
    assert bulk is not None
    operation = route.operation
    if bulk.ids_query is not None:
        ids = [item for item in query.get(bulk.ids_query, "").split(",") if item]
        if not ids:
            raise BodyShapeError(f"expected record ids in the {bulk.ids_query!r} query parameter")
        shared = None
        if operation is not Operation.delete:
            shared = dict(_values(body, bulk.shared_values_path))
        return [RecordWrite(object_type, operation, record_id, shared) for record_id in ids]
    if bulk.ids_path is not None:
        listed = at_path(body, bulk.ids_path)
        if not isinstance(listed, list) or not listed or any(
                isinstance(item, dict | list) or item in (None, "") for item in listed):
            raise BodyShapeError(f"expected a non-empty list of ids under {bulk.ids_path!r}")
        return [RecordWrite(object_type, operation, str(item), None, route.action)
                for item in listed]
    items = at_path(body, bulk.records_path)
    if not isinstance(items, list) or not items:
        raise BodyShapeError(f"expected a non-empty list under {bulk.records_path!r}")
    records = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise BodyShapeError(f"{bulk.records_path}[{index}] is not a JSON object")
        record_id = at_path(item, bulk.id_field) if bulk.id_field else None
        item_type = at_path(item, bulk.type_field) if bulk.type_field else None
        values = None
        if operation is not Operation.delete:
            values = dict(_values(item, bulk.values_path))
            for drop in filter(None, (bulk.id_field, bulk.type_field)):
                values.pop(drop.split(".")[0], None)
        records.append(RecordWrite(str(item_type) if item_type else object_type, operation,
                                   None if record_id is None else str(record_id), values))
    return records


def _classify_graphql(outcome: Any, body: Any, url_query: list[tuple[str, str]],
                      schema: DerivedGraphQL | None = None) -> Classification:
    """A read only if every document in the body, the batch and the URL holds only queries.

    Each mutation field is a record as the vendor's schema reads it (`graphql_schema`): its
    object, operation, record id and the query reading it now. Without a schema (GitHub), or
    for a field the schema lacks, the field's name is the object and the action, and nothing
    is guessed from the words in it.
    """
    request = parse_graphql(body, url_query)
    if request.read:
        return outcome(True, [], body)
    records = []
    unfetchable = None
    problem = request.problem
    for operation in request.writes():
        for mutation in operation.fields:
            arguments = dict(mutation.arguments)
            if operation.kind != "mutation":  # a subscription: held, though it changes nothing
                writes = schemaless_writes(mutation.name, arguments,
                                           "a subscription changes no record to read")
            elif schema is None:
                writes = schemaless_writes(mutation.name, arguments)
            else:
                writes = schema.writes(mutation.name, arguments)
            for write in writes:
                records.append(RecordWrite(write.object_type, write.operation, write.record_id,
                                           write.values, write.action, read=write.read))
                if write.read is None and write.operation is not Operation.create:
                    unfetchable = unfetchable or write.unreadable
                problem = problem or write.problem
    return replace(outcome(False, records, body, problem), unfetchable=unfetchable)
