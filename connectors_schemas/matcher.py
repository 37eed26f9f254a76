"""One engine for every connector: turns an HTTP write into system, object, operation and record."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import unquote

from connectors_schemas.models import Connector, ObjectSpec, Operation, Route


class BodyShapeError(ValueError):
    """The request body is not what the vendor's API takes for this route."""


@dataclass(frozen=True, slots=True)
class Match:
    system: str
    object_type: str
    operation: Operation
    record_id: str | None
    spec: ObjectSpec
    fetch_path: str | None  # path on the same host that returns the current record

    def proposed_values(self, body: Any) -> dict[str, Any] | None:
        """The record fields this write sets, unwrapped from the vendor's envelope."""
        if self.operation is Operation.delete:
            return None
        if not isinstance(body, dict):
            raise BodyShapeError(f"expected a JSON object body, got {type(body).__name__}")
        if self.spec.wrapper is None:
            return body
        inner = body.get(self.spec.wrapper)
        if not isinstance(inner, dict):
            raise BodyShapeError(f"expected a JSON object under {self.spec.wrapper!r}")
        return inner

    def unwrap_record(self, body: Any) -> dict[str, Any] | None:
        """The record inside a fetch response, or None when the response is not one."""
        record = body
        if self.spec.wrapper and isinstance(body, dict):
            record = body.get(self.spec.wrapper)
        return record if isinstance(record, dict) else None


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    pattern: re.Pattern[str]
    route: Route
    object_type: str
    spec: ObjectSpec
    connector: Connector


def _compile(connector: Connector, route: Route) -> re.Pattern[str]:
    path = re.escape(connector.base_path + route.path).replace(r"\{id\}", r"(?P<id>[^/]+?)")
    suffixes = "|".join(re.escape(suffix) for suffix in connector.path_suffixes)
    return re.compile(f"^{path}(?:{suffixes})$")


class Matcher:
    def __init__(self, connectors: dict[str, Connector]) -> None:
        self._connectors = list(connectors.values())
        self._routes: dict[str, list[_CompiledRoute]] = {}
        for connector in self._connectors:
            compiled = [
                _CompiledRoute(_compile(connector, route), route, object_type, spec, connector)
                for object_type, spec in connector.objects.items()
                for route in spec.routes
            ]
            self._routes[connector.system] = compiled

    def connector_for(self, host: str) -> Connector | None:
        host = host.lower().rstrip(".")
        for connector in self._connectors:
            if any(fnmatchcase(host, pattern) for pattern in connector.hosts):
                return connector
        return None

    def match(self, method: str, host: str, path: str) -> Match | None:
        """The connector route a write goes to, or None when no connector knows it."""
        connector = self.connector_for(host)
        if connector is None:
            return None
        method = method.upper()
        for candidate in self._routes[connector.system]:
            if candidate.route.method != method:
                continue
            found = candidate.pattern.match(path)
            if found is None:
                continue
            record_id = found.groupdict().get("id")
            fetch_path = None
            if candidate.spec.fetch and record_id is not None:
                fetch_path = connector.base_path + candidate.spec.fetch.replace("{id}", record_id)
            return Match(
                system=connector.system,
                object_type=candidate.object_type,
                operation=candidate.route.operation,
                record_id=unquote(record_id) if record_id is not None else None,
                spec=candidate.spec,
                fetch_path=fetch_path,
            )
        return None
