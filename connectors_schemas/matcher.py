"""One engine for every connector: turns an HTTP request into reads, or writes to named records."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from connectors_schemas.bodies import BodyError, at_path, parse_body, parse_graphql
from connectors_schemas.models import (
    PLACEHOLDER,
    WRITE_METHODS,
    BodyFormat,
    Connector,
    FetchSpec,
    ObjectSpec,
    Operation,
    Route,
)

HOSTS_REMEMBERED = 4096
MAX_FETCHES = 50  # a bulk write whose vendor has no collection read: at most this many GETs


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


@dataclass(frozen=True, slots=True)
class FetchRequest:
    method: str
    path: str
    query: list[tuple[str, str]]
    json_body: Any
    record_ids: list[str | None]


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
            return [self._render(spec, group, kept) for group in by_type.values()]
        return [self._render(spec, [record], kept) for record in wanted[:MAX_FETCHES]]

    def _render(self, spec: FetchSpec, records: list[RecordWrite],
                kept: list[tuple[str, str]]) -> FetchRequest:
        ids = [record.record_id or "" for record in records]
        fields = sorted({name for r in records for name in (r.values or {})} |
                        {name for r in records for name in (r.ops or {})})
        names = {**self._names(spec), "id": ids[0], "ids": ",".join(ids),
                 "fields": ",".join(fields), "type": records[0].object_type}
        lists: dict[str, Any] = {"{ids_list}": ids, "{id_objects}": [{"id": i} for i in ids],
                                 "{fields_list}": fields}

        def render(template: Any, in_path: bool = False) -> Any:
            if isinstance(template, str):
                if template in lists:
                    return lists[template]
                return PLACEHOLDER.sub(
                    lambda m: quote(names.get(m[1], ""), safe="/") if in_path and m[1] in (
                        "id", "ids") else names.get(m[1], ""), template)
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

    def _names(self, spec: FetchSpec) -> dict[str, str]:
        names = dict(self.params)
        for name, path in spec.names_from_body.items():
            value = at_path(self.body, path)
            names[name] = "" if value is None else str(value)
        return names

    def records_from(self, request: FetchRequest, answer: Any) -> dict[str | None, dict[str, Any]]:
        """Records found in a fetch answer, by record id."""
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
                records[str(at_path(item, id_field))] = record
        return records


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    pattern: re.Pattern[str]
    base: str
    route: Route
    key: str
    spec: ObjectSpec
    connector: Connector


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


def _graphql_operation(name: str) -> Operation:
    lowered = name.lower()
    for words, operation in ((("delete", "remove", "archive", "destroy"), Operation.delete),
                             (("create", "add", "insert"), Operation.create),
                             (("update", "edit", "set", "upsert"), Operation.update)):
        if any(word in lowered for word in words):
            return operation
    return Operation.action


class Matcher:
    def __init__(self, connectors: dict[str, Connector]) -> None:
        self._connectors = list(connectors.values())
        self._by_host: dict[str, Connector | None] = {}  # every read asks; globs are slow
        self._routes: dict[str, list[_CompiledRoute]] = {}
        for connector in self._connectors:
            self._routes[connector.system] = [
                _CompiledRoute(_compile(base, route, connector.path_suffixes), base, route, key,
                               spec, connector)
                for base in connector.base_paths
                for key, spec in connector.objects.items()
                for route in spec.routes
            ]

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

    def classify(self, method: str, host: str, path: str, query: list[tuple[str, str]],
                 content: bytes = b"", content_type: str | None = None) -> Classification | None:
        """What a write-method request does, or None when no connector route knows it."""
        connector = self.connector_for(host)
        if connector is None:
            return None
        method = method.upper()
        query_map = dict(query)
        for candidate in self._routes[connector.system]:
            route = candidate.route
            if route.method != method:
                continue
            found = candidate.pattern.match(path)
            if found is None:
                continue
            if not _query_matches(route.query, query_map):
                continue
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            base = PLACEHOLDER.sub(lambda m, f=found: f.group(m[1]) or "", candidate.base)
            classified = _classify_route(connector, candidate, base, params, query_map, content,
                                         content_type)
            if route.subrequests is not None and classified.body_problem is None:
                return self._with_parts(classified, host)
            return classified
        return None

    def _with_parts(self, outer: Classification, host: str) -> Classification:
        """Each subrequest classified as if sent alone; GETs among them are reads."""
        spec = outer.route.subrequests
        assert spec is not None
        items = at_path(outer.body, spec.path)
        if not isinstance(items, list) or not items:
            return replace(outer, body_problem=f"expected a non-empty list under {spec.path!r}")
        parts = []
        for index, item in enumerate(items):
            method = str(at_path(item, spec.method_field) or "").upper()
            url = at_path(item, spec.url_field)
            if not isinstance(url, str) or not method:
                return replace(outer, body_problem=f"{spec.path}[{index}] has no method or url")
            if method not in WRITE_METHODS:
                continue
            path, _, query = url.partition("?")
            body = at_path(item, spec.body_field)
            content = b"" if body is None else json.dumps(body).encode()
            part = self.classify(method, host, path, parse_qsl(query), content,
                                 "application/json")
            if part is None:
                return replace(outer, body_problem=(
                    f"{spec.path}[{index}]: no route for {method} {path}"))
            if not part.read:
                parts.append(part)
        records = [record for part in parts for record in part.records]
        return replace(outer, read=not parts, records=records, parts=parts)

    def identify(self, host: str, path: str) -> Identified | None:
        """Which system, object and record a request names, from host and path alone.

        For the traffic record of reads: a GET of a record's URL matches the route that would
        write it, whatever the method.
        """
        connector = self.connector_for(host)
        if connector is None:
            return None
        collection: Identified | None = None
        for candidate in self._routes[connector.system]:
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


def _object_type(spec: ObjectSpec, key: str, params: dict[str, str]) -> str:
    template = spec.object_type or key
    return PLACEHOLDER.sub(lambda m: params.get(m[1], m[0]), template)


def _classify_route(connector: Connector, candidate: _CompiledRoute, base: str,
                    params: dict[str, str], query: dict[str, str], content: bytes,
                    content_type: str | None) -> Classification:
    route, spec = candidate.route, candidate.spec
    body_format = route.body or spec.body
    object_type = route.object_type or _object_type(spec, candidate.key, params)

    def outcome(read: bool, records: list[RecordWrite], body: Any = None,
                problem: str | None = None) -> Classification:
        return Classification(connector.system, route, spec, base, params, read, records, body,
                              problem)

    if route.operation is Operation.read:
        return outcome(True, [])
    try:
        body = parse_body(content, content_type, body_format)
    except BodyError as exc:
        fallback = RecordWrite(object_type, route.operation, params.get("id"), None, route.action)
        return outcome(False, [fallback], None, str(exc))
    try:
        if body_format is BodyFormat.graphql:
            return _classify_graphql(outcome, body)
        if route.bulk is not None:
            return outcome(False, _bulk_records(route, spec, object_type, body, query), body)
        return outcome(False, [_single_record(route, spec, object_type, params, body)], body)
    except (BodyShapeError, BodyError) as exc:
        fallback = RecordWrite(object_type, route.operation, params.get("id"), None, route.action)
        return outcome(False, [fallback], body, str(exc))


def _single_record(route: Route, spec: ObjectSpec, object_type: str, params: dict[str, str],
                   body: Any) -> RecordWrite:
    values_path = route.values_path if route.values_path is not None else spec.values_path
    operation, record_id = route.operation, params.get("id")
    if route.id_from_body is not None:
        found = at_path(body, route.id_from_body)
        if found in (None, ""):
            raise BodyShapeError(f"expected the record id in the body's {route.id_from_body!r}")
        record_id = str(found)
    if operation is Operation.delete:
        return RecordWrite(object_type, operation, record_id, None)
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


def _classify_graphql(outcome: Any, body: Any) -> Classification:
    operation = parse_graphql(body)
    if operation.kind != "mutation":
        return outcome(operation.kind == "query", [], body)
    records = []
    for mutation in operation.fields:
        arguments = dict(mutation.arguments)
        values = arguments.get("input") if isinstance(arguments.get("input"), dict) else None
        if values is None:
            values = {k: v for k, v in arguments.items() if k != "id"}
        record_id = arguments.get("id") or (values or {}).get("id")
        records.append(RecordWrite(mutation.name, _graphql_operation(mutation.name),
                                   None if record_id is None else str(record_id),
                                   dict(values), action=mutation.name))
    return outcome(False, records, body)
