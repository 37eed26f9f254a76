"""The shape of a connector file, validated once at start-up so the matcher can trust it."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})  # what a route may declare
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # exact tokens: " GET" or "get" is no read
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(\+?)\}")


class Operation(StrEnum):
    create = "create"
    update = "update"
    delete = "delete"
    upsert = "upsert"  # create or update: the fetched record decides which
    action = "action"  # a named state change (void, send, merge, transition, ...)
    read = "read"  # a POST that only reads (search, batch read, GraphQL query)


class UpdateSemantics(StrEnum):
    """How the vendor applies an update body to the stored record."""

    merge = "merge"  # only the fields sent change; nested objects merge, lists replace
    replace = "replace"  # the body is the whole new record; omitted writable fields are cleared


class BodyFormat(StrEnum):
    json = "json"
    form = "form"  # application/x-www-form-urlencoded with bracketed keys (Stripe)
    graphql = "graphql"  # queries are reads, mutations are writes


class RiskKind(StrEnum):
    money = "money"
    customer_facing = "customer_facing"
    destructive = "destructive"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RiskNote(_Strict):
    kind: RiskKind
    reason: str


class RiskHints(_Strict):
    """Fields whose change the risk assessment must call out to a reviewer."""

    money: list[str] = []
    customer_facing: list[str] = []


class FetchSpec(_Strict):
    """How to get the current record(s) with the agent's own credentials.

    Templates may use the route's path placeholders, `{id}`, `{ids}` (comma-joined record ids)
    and `{fields}` (comma-joined top-level fields the write sends).
    """

    method: str = "GET"
    path: str
    query: dict[str, str] = {}
    body: Any = None  # JSON template for fetches sent as POST (e.g. HubSpot batch/read)
    keep_query: list[str] = []  # copied from the agent's request (e.g. QuickBooks minorversion)
    record_path: str | None = None  # where the record or the list sits; keys case-insensitive
    many: bool = False  # one request returns all records of a bulk write
    id_field: str | None = None  # for `many`: the field naming each record (a template)
    item_path: str | None = None  # for `many`: where the record sits inside each item
    # for `many`: each item's record id as the write names it, `{id}` the item's id_field
    # (a pair's "{objectType}/{objectId}/{toObjectType}/{id}")
    record_key: str | None = None
    names_from_body: dict[str, str] = {}  # template name -> path in the agent's request body

    @field_validator("method")
    @classmethod
    def _read_method(cls, value: str) -> str:
        value = value.upper()
        if value not in {"GET", "POST"}:
            raise ValueError(f"must be GET or POST, got {value!r}")
        return value


class BulkSpec(_Strict):
    """Where the records of a bulk write sit: a list in the body, or ids in the query."""

    records_path: str | None = None  # body path of the list of records
    ids_query: str | None = None  # query parameter holding comma-separated ids
    ids_path: str | None = None  # body path of a list of ids (Jira's issueIdsOrKeys)
    id_field: str | None = None  # in each record
    type_field: str | None = None  # in each record, its object type (e.g. attributes.type)
    values_path: str | None = None  # in each record, where the fields sit (e.g. properties)
    shared_values_path: str | None = None  # with ids_query: values applied to every id

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        given = [self.records_path, self.ids_query, self.ids_path]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of records_path, ids_query or ids_path")
        return self


class FieldMode(StrEnum):
    set = "set"  # the body is the field's new value (PUT .../labels)
    add = "add"  # the body's items are added to the list (POST .../labels)
    remove = "remove"  # the items are taken out (DELETE .../labels/{name})
    clear = "clear"  # the field is emptied (DELETE .../labels)


class FieldWrite(_Strict):
    """A sub-resource that is one field of its parent record: the write is an update of the
    parent, shown as that field's old and new value (issue labels, a Jira issue's assignee)."""

    name: str  # the parent's field, a dotted path inside its record
    mode: FieldMode = FieldMode.set
    value_path: str | None = None  # body path of the value; None: the whole body
    value_param: str | None = None  # or the path placeholder holding it (labels/{name})


class SubrequestsSpec(_Strict):
    """A request carrying several requests (Salesforce /composite), classified one by one."""

    path: str  # body path of the list
    method_field: str = "method"
    url_field: str = "url"
    body_field: str = "body"


class KeyedList(_Strict):
    """A list field whose items are records of their own, matched by a key (Stripe's
    subscription `items`): a sent item with the key changes that item field by field, one
    without it is added, one with `remove_flag` true is removed. Items not sent are kept."""

    key: str = "id"  # the field naming each item, in the record and in the request
    record_path: str | None = None  # where the fetched value holds the items ("data": a list)
    remove_flag: str | None = None  # a sent item field that, when true, removes the item


class Route(_Strict):
    method: Annotated[str, Field(description="HTTP method, upper case")]
    path: Annotated[str, Field(description="Path under base_path; {name} is one segment")]
    operation: Operation
    query: dict[str, str] = {}  # query parameters that must be present with these values
    action: str | None = None  # the action's name, for operation: action
    sets: dict[str, Any] = {}  # fields an action changes, shown old -> new
    body: BodyFormat | None = None  # overrides the object's
    values_path: str | None = None  # overrides the object's
    update_if_body_has: str | None = None  # a create route that is an update when this is set
    id_from_body: str | None = None  # the record id is this body field (QuickBooks delete/void)
    bulk: BulkSpec | None = None
    subrequests: SubrequestsSpec | None = None
    fetch: FetchSpec | None = None  # overrides the object's
    no_fetch: bool = False  # nothing to fetch (the old state is not a record)
    field: FieldWrite | None = None  # the write sets, adds to or empties one parent field
    # a singleton's fixed record id (GitHub's /user), or a pair's from its path placeholders
    # (HubSpot's association "{objectType}/{objectId}/{toObjectType}/{id}")
    record_name: str | None = None
    from_root: bool = False  # the path is from the host's root, not under base_path
    object_type: str | None = None  # overrides the object's, e.g. "batch"
    risk: list[RiskNote] = []
    notes: dict[str, str] = {}  # query parameter -> what a reviewer should know when it is set
    parameters: list[str] = []  # beside the object's: body fields that are no record field

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
    def _consistent(self) -> Self:
        if self.operation is Operation.action and not self.action:
            raise ValueError("an action route needs 'action' (its name)")
        if self.sets and self.operation is not Operation.action:
            raise ValueError("'sets' is only for action routes")
        return self


_FIELD_PATH = re.compile(r"[A-Za-z_$@][A-Za-z0-9_$@-]*(\.[A-Za-z_$@][A-Za-z0-9_$@-]*)*")
MAX_IDENTIFY = 6  # more than this and the "which record" line is a second diff


def _field_path(value: str) -> str:
    if not _FIELD_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is no field path: dotted names, e.g. 'CustomerRef.name'")
    return value


class Identify(_Strict):
    """A field that tells a person which record this is (a ticket's subject, an invoice's
    number): shown beside the change, from the fetched record (a create's from its body)."""

    field: str  # dotted path inside the record as fetched (after record_path)
    label: str | None = None  # what reviewers call it; default: the field's last name, spaced
    # When `field` is absent: these fields' values joined with a space (a new Lead is sent
    # with FirstName and LastName; its Name is computed by Salesforce later).
    or_joined: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"field": value} if isinstance(value, str) else value

    @field_validator("field")
    @classmethod
    def _path(cls, value: str) -> str:
        return _field_path(value)

    @field_validator("or_joined")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [_field_path(item) for item in value]

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value


def _identify_list(value: list[Identify] | None) -> list[Identify] | None:
    if value is None:
        return None
    if len(value) > MAX_IDENTIFY:
        raise ValueError(f"name at most {MAX_IDENTIFY} fields, got {len(value)}")
    fields = [item.field for item in value]
    if repeated := sorted({name for name in fields if fields.count(name) > 1}):
        raise ValueError(f"names {repeated[0]!r} twice")
    return value


class ObjectSpec(_Strict):
    object_type: str | None = None  # defaults to the key; may be a placeholder like "{Type}"
    values_path: Annotated[
        str | None, Field(description="Body path of the record's fields, e.g. 'ticket'")
    ] = None
    record_path: str | None = None  # in fetch answers; defaults to values_path
    id_field: str = "id"
    update: UpdateSemantics = UpdateSemantics.merge
    sparse_flag: str | None = None  # a body field that turns a replace update into a merge
    read_only: list[str] = []  # never shown as changes: ids, versions, computed fields
    added_items: list[str] = []  # body fields that add an item (a comment), not set a value
    list_keys: dict[str, str] = {}  # list field -> key its items are compared by
    keyed_lists: dict[str, KeyedList] = {}  # list field -> how its items are matched
    # Top-level body fields that are options of the request, not fields of the record (Stripe's
    # expand, proration_behavior): shown to the reviewer as the request's parameters.
    parameters: list[str] = []
    # A scalar sent where the record holds an object is a reference to that object by this
    # field (Stripe's expandable `price: "price_1"` vs `{id: "price_1", ...}`); form bodies
    # compare so by "id" when this is unset.
    reference_key: str | None = None
    ops_path: str | None = None  # body path of per-field operations (Jira's `update`)
    base64_fields: list[str] = []  # shown decoded (GitHub file contents)
    empty_is_absent: bool = False  # the vendor stores null, "", {} and [] as nothing (QuickBooks)
    body: BodyFormat = BodyFormat.json
    fetch: FetchSpec | None = None
    routes: Annotated[list[Route], Field(min_length=1)]
    risk: RiskHints = RiskHints()
    # The fields that identify a record to a person. None: the first present of the usual
    # names (connectors_schemas.identity.DEFAULT_NAMES); []: none.
    identify: list[Identify] | None = None
    # For an object whose type is a placeholder ({type}): by the type the write names (case
    # folded), beside which `identify` serves every other type.
    identify_by_type: dict[str, list[Identify]] = {}

    @field_validator("identify")
    @classmethod
    def _identify(cls, value: list[Identify] | None) -> list[Identify] | None:
        return _identify_list(value)

    @field_validator("identify_by_type")
    @classmethod
    def _identify_by_type(cls, value: dict[str, list[Identify]]) -> dict[str, list[Identify]]:
        for name, items in value.items():
            try:
                _identify_list(items)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value

    def identify_for(self, object_type: str | None) -> list[Identify] | None:
        """The identifying fields of a record of this type (None: use the defaults)."""
        folded = (object_type or "").casefold()
        for name, items in self.identify_by_type.items():
            if name.casefold() == folded:
                return items
        return self.identify


class Description(_Strict):
    """The vendor's own machine-readable API description(s) a connector is derived from.

    Paths are relative to the connector file. `derived` and `graphql_derived` are what
    `hitl-proxy connectors derive` wrote from them, shipped so start-up never parses a
    multi-megabyte description; a connector with a description and no derived file is derived
    at start-up (a site's own OpenAPI file).
    """

    openapi: str | list[str] | None = None  # OpenAPI 3 JSON or YAML, may be .gz or a .tar.gz
    derived: str | None = None  # objects derived from `openapi`
    graphql: str | None = None  # GraphQL SDL or an introspection result (JSON), may be .gz
    graphql_derived: str | None = None  # mutations derived from `graphql`
    # Documented POSTs that only read though the description's words do not say so
    # ("POST /rest/api/3/jql/parse"): the per-connector allow-list, read only here.
    reads: list[str] = []


class Connector(_Strict):
    system: Annotated[str, Field(min_length=1, description="Name reviewers know, e.g. Zendesk")]
    hosts: Annotated[list[str], Field(min_length=1)]
    base_path: str | list[str] = ""
    path_suffixes: list[str] = [""]
    description: Description | None = None
    objects: Annotated[dict[str, ObjectSpec], Field(min_length=1)]

    @field_validator("hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower() for host in value]

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str | list[str]) -> str | list[str]:
        for path in [value] if isinstance(value, str) else value:
            if path and not path.startswith("/"):
                raise ValueError(f"must start with '/', got {path!r}")
        return value

    @property
    def base_paths(self) -> list[str]:
        paths = [self.base_path] if isinstance(self.base_path, str) else self.base_path
        return [path.rstrip("/") for path in paths]

    @model_validator(mode="after")
    def _records_can_be_named(self) -> Self:
        for name, spec in self.objects.items():
            for route in spec.routes:
                names = {found[0] for found in PLACEHOLDER.findall(route.path)}
                named = ("id" in names or route.update_if_body_has or route.bulk
                         or route.record_name
                         or route.id_from_body or route.subrequests or route.no_fetch
                         or spec.body is BodyFormat.graphql or route.body is BodyFormat.graphql)
                if route.operation in (Operation.update, Operation.delete,
                                       Operation.action) and not named:
                    raise ValueError(
                        f"objects.{name}: route {route.method} {route.path}: an "
                        f"{route.operation} route needs '{{id}}' in its path or a bulk spec")
        return self
