"""The shape of a connector file, validated once at start-up so the matcher can trust it."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Operation(StrEnum):
    create = "create"
    update = "update"
    delete = "delete"


class UpdateSemantics(StrEnum):
    """How the vendor applies an update body to the stored record."""

    merge = "merge"  # only the fields sent change; nested objects merge, lists replace
    replace = "replace"  # the body is the whole new record; omitted fields are cleared


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Strict):
    method: Annotated[str, Field(description="HTTP method, upper case")]
    path: Annotated[str, Field(description="Path under base_path, {id} marks the record id")]
    operation: Operation

    @field_validator("method")
    @classmethod
    def _write_method(cls, value: str) -> str:
        value = value.upper()
        if value not in WRITE_METHODS:
            raise ValueError(f"must be one of {sorted(WRITE_METHODS)}, got {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"must start with '/', got {value!r}")
        return value

    @model_validator(mode="after")
    def _record_id_for_existing_records(self) -> Route:
        if self.operation is not Operation.create and "{id}" not in self.path:
            raise ValueError(f"an {self.operation} route needs '{{id}}' in its path")
        return self


class RiskHints(_Strict):
    """Fields whose change the risk assessment must call out to a reviewer."""

    money: list[str] = []
    customer_facing: list[str] = []


class ObjectSpec(_Strict):
    wrapper: Annotated[
        str | None, Field(description="Key wrapping the record in bodies, e.g. 'ticket'")
    ] = None
    id_field: str = "id"
    update: UpdateSemantics = UpdateSemantics.merge
    fetch: Annotated[
        str | None, Field(description="GET path (under base_path) of the current record")
    ] = None
    routes: Annotated[list[Route], Field(min_length=1)]
    risk: RiskHints = RiskHints()

    @field_validator("fetch")
    @classmethod
    def _fetch_names_record(cls, value: str | None) -> str | None:
        if value is not None and "{id}" not in value:
            raise ValueError("must contain '{id}' so the current record can be fetched")
        return value


class Connector(_Strict):
    system: Annotated[str, Field(min_length=1, description="Name reviewers know, e.g. Zendesk")]
    hosts: Annotated[list[str], Field(min_length=1)]
    base_path: str = ""
    path_suffixes: list[str] = [""]
    objects: Annotated[dict[str, ObjectSpec], Field(min_length=1)]

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower() for host in value]

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"must start with '/', got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _placeholders_known(self) -> Connector:
        for name, spec in self.objects.items():
            for route in spec.routes:
                unknown = set(_PLACEHOLDER.findall(route.path)) - {"id"}
                if unknown:
                    raise ValueError(
                        f"object {name!r}: route {route.method} {route.path} uses unknown "
                        f"placeholder(s) {sorted(unknown)}; only {{id}} is supported"
                    )
        return self
