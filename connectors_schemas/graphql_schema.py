"""GraphQL writes read from the vendor's own schema: which object each mutation changes, how,
which record, and the query that reads that record's current state.

Deriving from a schema (SDL or an introspection result) takes seconds and megabytes, so
`derive_graphql` writes a compact JSON (`graphql_derived`) once, and requests only look things
up in it. For every field of the schema's Mutation type it records:

- **object**: the type the mutation changes, the first of: the payload itself when a query
  returns that type; an object field of the payload (errors aside) whose type name starts the
  payload's name, the longest (`IssuePayload { issue: Issue }`, `ProductUpdatePayload
  { product: Product }`, `IssueArchivePayload { entity: Issue }`); a payload field whose name
  starts the mutation's name (`metafieldsSet` -> `metafields: [Metafield]`); the record a
  payload field answers when an argument is named for it (`addressId` or the input `address`
  beside `address: MailingAddress`: customerAddressUpdate changes the address, not the
  customer); the record type an `<type>Id` argument names (`orderCancel(orderId:)` -> Order,
  not its `job: Job`); the longest
  record type starting the type name of a (non-list) input argument (`ProductDeleteInput` ->
  Product); the longest record type starting the mutation's name when one word (or a plural)
  follows (`issueLabelDelete(id:)` answering a bare `DeletePayload` -> IssueLabel; not
  `teamKeyDelete` -> Team); the record type the `id` argument's description names ("The
  identifier of the OAuth application to archive", "The ID of the theme" -> the one type named
  `...Theme` when the mutation's name starts so; not "team key": no such type); the payload's
  only record field. Names only ever choose among
  types the schema defines, never the operation.
- **ids**: where the record id may sit, in this order: the argument `id`, an argument
  `<object>Id` (`issueId` for an Issue), `ids` or `<object>Ids` (lists: one record each), an
  argument `<name>Id` whose record the payload answers as `<name>` (`draftId` -> `draft:
  SubscriptionDraft`), then
  `id` or `<object>Id` inside each input-object argument that is about the object (named
  `input`, typed `<Object>...`, or holding its fields: `product.id`, `input.id`; not
  `billingAddress.id`); each marked required when non-null all the way down.
- **values**: the input-object arguments holding the record's fields: those with at least one
  field, other than the id, that reads back as a field of the object (below). With neither ids
  nor such an argument, a list of inputs with an `id` that read back (`variants: [{id, price}]`)
  is one record per item (**each**).
- **deletes**: the payload says the object is gone (`deletedId`, `deleted<Object>Id(s)`, e.g.
  `deletedProductId`; or a bare `entityId` with no record at all, Linear's `DeletePayload`, for
  a mutation taking `id`) and does not answer the object itself (`customerAddressDelete`
  answers the customer: no delete of a customer).

The operation of one mutation field in a request follows from those facts and the request:

1. deletes -> **delete** of the record named at `ids`;
2. values arguments exist -> with a record id in the request: **update** when the schema
   requires that id, **upsert** when it is optional (Linear's and Shopify's create inputs
   accept a client-chosen id; the fetched record decides: found -> update, the vendor answers
   null -> create); with no id: **create** when the request fills a values argument that has no
   id field or the mutation names a record in at most one place (`issueCreate(input:)`),
   **update** of an unnamed record when the schema requires an id, else **upsert** of an
   unnamed record (`productSet(identifier: {handle})`: named by something other than an id);
3. each -> per item: **update** (or **upsert**, as in 2) of the item's id, **create** without;
4. otherwise a **named action**, named by the mutation (`issueArchive`, `issueUnarchive`,
   `issueAddLabel`, `tagsAdd`, `orderCancel`), on the record at `ids` when the request gives
   one, its other arguments as the values. Subscriptions, fields the schema lacks and every
   mutation of an API without a shipped schema (GitHub) are actions named by the field.

Reading the current record: a Query field returning the object with an `id` argument (and no
other required one) (`issue(id:)`, `product(id:)`), else `node(id:)` with `... on <object>`
when the object implements `Node` or is an interface some of whose types do (`File`,
`Publishable`, its id read as `... on Node { id }`), else the one root field taking no id
that answers it (`userSettings`: the caller's own; an answer under another id is no old
value). An action also reads what names the record and its state (`identifier`, `title`,
`status`, `archivedAt`), so the reviewer sees what it acts on. The generated query selects
exactly the fields the write sends, mapped per input field: a field of the same name with a
compatible type (scalars and enums by name, nested input objects into the object's nested
object); `xxxId` -> `xxx { id }`;
`xxxIds` -> `xxxs { nodes { id } }` on a connection or `xxxs { id }` on a list; a delete reads
every scalar field; an action reads the arguments that map (often just `id`: the record
exists). The answer is shown under the input's own names (`stateId: old -> new`); a GraphQL
error leaves old values unknown (its codes shown, never its messages, which may echo values),
and a null record without an error says the record does not exist.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import graphql
import yaml
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)

from connectors_schemas.models import Description, Operation

FORMAT = 1
PAGE = 250  # nodes read from a connection (`labels(first: 250)`): Linear's and Shopify's maximum
MAX_DEPTH = 3  # nested input objects read back this deep
MAX_RECORDS = 50  # records of one bulk mutation (`ids: [...]`) read back, at most
MAX_SHOWN = 8  # fields an action's read shows beside those it sends (name, state)
_NAMING = ("identifier", "name", "title", "displayName", "handle", "key", "email", "number",
           "code", "url")  # what names a record to a person, best first
READ_NAME = "HitlProxyRead"  # the generated query's operation name, so vendor logs show it
_NUMBERS = frozenset({"Int", "Float"})
_STATE = re.compile(r"(?:^|[a-z])(?:[Ss]tatus|[Ss]tate|[Hh]ealth|[Rr]ole)$")
_STATE_STAMP = re.compile(r"^[a-z]+edAt$")  # archivedAt, canceledAt; not addedToCycleAt
_DELETED_ID = re.compile(r"^deleted(?P<what>(?:[A-Z]\w*?)?)Ids?$")
_ONE_WORD = re.compile(r"^(?:e?s)?[A-Z][a-z0-9]*$")  # `companyContactsDelete` too
_ID_OF = re.compile(r"^(?:the|a|an)\s+(?:(?:global\s+)?(?:id|identifier)\s+of\s+"
                    r"(?:the|a|an)\s+)?(?P<phrase>.+)", re.IGNORECASE | re.DOTALL)
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # [calculated order](https://...) -> its words
_PHRASE_ENDS = frozenset({"to", "for", "whose", "which", "that", "or", "from", "in", "on",
                          "being", "with", "by", "of", "id", "ids", "identifier", "and", "is",
                          "you", "we", "will", "should", "must", "where"})
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,60}$")
_TYPE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")

Record = GraphQLObjectType | GraphQLInterfaceType


# ---------------------------------------------------------------------------------- derivation

def load_schema(source_path: str | Path) -> GraphQLSchema:
    """An SDL file or an introspection result (JSON, `{"data": {"__schema"...}}` or bare),
    either possibly gzipped."""
    raw = Path(source_path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    if text.lstrip()[:1] == "{":
        data = json.loads(text)
        data = data.get("data", data) if isinstance(data, dict) else data
        return graphql.build_client_schema(data, assume_valid=True)
    # vendors' schemas break rules graphql-core checks (Shopify deprecates Node.id on some
    # types); they are what the vendor's server runs, so they are taken as they are
    return graphql.build_schema(text, assume_valid_sdl=True, assume_valid=True)


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _is_record(kind: GraphQLNamedType) -> bool:
    return isinstance(kind, GraphQLObjectType | GraphQLInterfaceType) and "id" in kind.fields


def _is_list(kind: Any) -> bool:
    if isinstance(kind, GraphQLNonNull):
        kind = kind.of_type
    return isinstance(kind, GraphQLList)


def _leaf(kind: GraphQLNamedType) -> bool:
    return isinstance(kind, GraphQLScalarType | GraphQLEnumType)


def _compatible(given: GraphQLNamedType, read: GraphQLNamedType) -> bool:
    """An input leaf and an output leaf that hold the same value (Int priority read as Float)."""
    if given.name == read.name:
        return True
    if given.name in _NUMBERS and read.name in _NUMBERS:
        return True
    # custom scalars (DateTime, TimelessDate, URL...) and ID/String are all strings on the wire
    stringy = {"String", "ID"}
    return (isinstance(given, GraphQLScalarType) and isinstance(read, GraphQLScalarType)
            and given.name not in _NUMBERS | {"Boolean"} and read.name not in _NUMBERS
            | {"Boolean"} and (given.name in stringy or read.name in stringy))


def _readable(field: GraphQLField) -> bool:
    """A field the generated query can select without arguments it cannot know."""
    return not any(isinstance(arg.type, GraphQLNonNull) and arg.default_value is graphql.Undefined
                   for arg in field.args.values())


def _id_list(field: GraphQLField) -> str | None:
    """How a field holds a list of records' ids: a connection's `nodes`, or a plain list."""
    named = graphql.get_named_type(field.type)
    if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        return None
    if _is_list(field.type) and _is_record(named):
        return "list"
    nodes = named.fields.get("nodes")
    if nodes is not None and _is_list(nodes.type) and _is_record(
            graphql.get_named_type(nodes.type)):
        return "nodes"
    return None


def _plural(stem: str) -> list[str]:
    if stem.endswith("y"):
        return [stem + "s", stem[:-1] + "ies"]
    return [stem + "s", stem + "es"]


class _Deriver:
    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self.objects: dict[str, dict[str, Any]] = {}
        self.types = {name: kind for name, kind in schema.type_map.items()
                      if not name.startswith("__")}
        query = schema.query_type
        self.query_fields = query.fields if query is not None else {}
        self.returned = {graphql.get_named_type(field.type).name
                         for field in self.query_fields.values()}

    # -- how one input field reads back ------------------------------------------------------
    def _read(self, name: str, given: GraphQLInputType, target: Record,
              depth: int) -> Any:
        fields = target.fields
        given_named = graphql.get_named_type(given)
        field = fields.get(name)
        if field is not None and _readable(field):
            read_named = graphql.get_named_type(field.type)
            if _leaf(given_named) and _leaf(read_named) and _compatible(given_named, read_named) \
                    and _is_list(given) == _is_list(field.type):
                return name
            if (isinstance(given_named, GraphQLInputObjectType) and not _is_list(given)
                    and isinstance(read_named, GraphQLObjectType) and not _is_list(field.type)
                    and depth < MAX_DEPTH):
                self._map(given_named, read_named, depth + 1)
                if self.objects.get(read_named.name, {}).get("fields"):
                    return {"f": name, "t": read_named.name}
        if not _leaf(given_named) or given_named.name not in ("ID", "String", "UUID"):
            return None
        if name.endswith("Ids") and _is_list(given):
            for plural in _plural(name[:-3]):
                found = fields.get(plural)
                if found is not None and _readable(found) and (how := _id_list(found)):
                    first = "first" in found.args
                    return {"f": plural, "k": how} | ({"first": True} if first else {})
        if name.endswith("Id") and not _is_list(given) and len(name) > 2:
            found = fields.get(name[:-2])
            if found is not None and _readable(found) and not _is_list(found.type) and \
                    _is_record(graphql.get_named_type(found.type)):
                return {"f": name[:-2], "k": "id"}
        return None

    def _map(self, given: GraphQLInputObjectType, target: Record, depth: int = 0) -> int:
        """Adds how each of the input type's fields reads back on `target`; how many do."""
        entry = self.objects.setdefault(target.name, {})
        reads = entry.setdefault("fields", {})
        mapped = 0
        for name, field in given.fields.items():
            if name == "id":
                continue
            if name in reads:
                mapped += reads[name] is not None
                continue
            reads[name] = None  # guards a cycle through nested inputs
            reads[name] = self._read(name, field.type, target, depth)
            mapped += reads[name] is not None
        for name in [key for key, value in reads.items() if value is None]:
            del reads[name]
        if not reads:
            entry.pop("fields")
        return mapped

    def _map_arguments(self, field: GraphQLField, target: Record, skip: set[str]) -> None:
        """An action's scalar arguments read back like input fields (`labelId` on an Issue)."""
        entry = self.objects.setdefault(target.name, {})
        reads = entry.setdefault("fields", {})
        for name, arg in field.args.items():
            if name in skip or name in reads:
                continue
            if (read := self._read(name, arg.type, target, MAX_DEPTH)) is not None:
                reads[name] = read
        if not reads:
            entry.pop("fields")

    # -- which object a mutation changes ----------------------------------------------------
    def _object(self, name: str, field: GraphQLField) -> Record | None:
        payload = graphql.get_named_type(field.type)
        answered: list[tuple[str, Record]] = []  # object fields of the payload, but errors
        if isinstance(payload, GraphQLObjectType):
            answered = [(key, kind) for key, value in payload.fields.items()
                        if isinstance(kind := graphql.get_named_type(value.type),
                                      GraphQLObjectType | GraphQLInterfaceType)
                        and "message" not in kind.fields]
        if _is_record(payload) and payload.name in self.returned:
            return payload  # type: ignore[return-value]  # the mutation answers the record
        by_type = [kind for _, kind in answered if payload.name.startswith(kind.name)]
        if by_type:
            return max(by_type, key=lambda kind: len(kind.name))
        by_field = [(key, kind) for key, kind in answered if name.startswith(key)]
        if by_field:
            return max(by_field, key=lambda pair: len(pair[0]))[1]
        # an argument named for a record the payload answers (`addressId`, or the input
        # `address`, beside `address: MailingAddress`) is that record's: customerAddressUpdate
        # changes the address, not the customer its `customerId` names; unless a record type
        # of that very name is another (`organizationId` beside `organization: AuthOrganization`)
        records = {key: kind for key, kind in answered if _is_record(kind)
                   and not _is_list(payload.fields[key].type)}  # type: ignore[union-attr]
        for arg, given in field.args.items():
            key = arg[:-2] if arg.endswith("Id") and _leaf(graphql.get_named_type(
                given.type)) else arg if isinstance(graphql.get_named_type(given.type),
                                                    GraphQLInputObjectType) else None
            named = self.types.get(key[:1].upper() + key[1:]) if key else None
            if key in records and (named is None or named is records[key]
                                   or not _is_record(named)):
                return records[key]  # (`organizationId` stays the Organization it names)
        for arg in field.args:
            kind = self.types.get(arg[:1].upper() + arg[1:-2]) if arg.endswith("Id") else None
            if kind is not None and _is_record(kind):
                return kind  # type: ignore[return-value]
        for arg in field.args.values():
            given = graphql.get_named_type(arg.type)
            if isinstance(given, GraphQLInputObjectType) and not _is_list(arg.type) and (
                    found := self._longest_prefix(given.name)):
                return found
        stem = name[:1].upper() + name[1:]
        if (found := self._longest_prefix(stem)) and _ONE_WORD.match(stem[len(found.name):]):
            return found  # the mutation's name is the object's and one word (`issueLabelDelete`)
        if (found := self._described(name, field)) is not None:
            return found
        records = {kind.name: kind for _, kind in answered if _is_record(kind)}
        return next(iter(records.values())) if len(records) == 1 else None

    def _described(self, name: str, field: GraphQLField) -> Record | None:
        """The record type the `id` argument's description names: "The identifier of the OAuth
        application to archive." -> OAuthApplication, "The ID of the theme to be deleted." ->
        the one record type named `...Theme` (OnlineStoreTheme), "The product feed which needs
        syncing." -> ProductFeed; none when no type or several have that name ("team key")."""
        arg = field.args.get("id")
        if arg is None or _is_list(arg.type) or not arg.description:
            return None
        text = _LINK.sub(r"\1", arg.description).replace("`", "")
        found = _ID_OF.match(text.strip())
        if found is None:
            return None
        words: list[str] = []
        for word in re.findall(r"[A-Za-z][A-Za-z0-9]*|\S", found["phrase"]):
            if not word[0].isalpha() or word.lower() in _PHRASE_ENDS:
                break
            words.append(word)
        if not words or len(words) > 4:
            return None
        wanted = "".join(words).lower()
        exact = [kind for type_name, kind in self.types.items() if type_name.lower() == wanted]
        ending = [kind for type_name, kind in self.types.items()
                  if len(type_name) > len(wanted) and type_name.lower().endswith(wanted)
                  and type_name[-len(wanted)].isupper()]
        if not exact and not name.lower().startswith(wanted):
            return None  # `theme...` for `...Theme`, not `discountCode...` for `...CodeDiscount`
        for kinds in (exact, ending):
            records = [kind for kind in kinds if _is_record(kind)]
            if kinds:
                return records[0] if len(kinds) == 1 and records else None  # type: ignore
        return None

    def _longest_prefix(self, name: str) -> Record | None:
        best: Record | None = None
        for type_name, kind in self.types.items():
            if (name.startswith(type_name) and _is_record(kind)
                    and (best is None or len(type_name) > len(best.name))):
                best = kind  # type: ignore[assignment]
        return best

    # -- where the record id sits -----------------------------------------------------------
    def _ids(self, field: GraphQLField, target: Record) -> list[dict[str, Any]]:
        own = _lower_first(target.name) + "Id"
        found: list[dict[str, Any]] = []

        def scalar(kind: Any) -> bool:
            return _leaf(graphql.get_named_type(kind)) and graphql.get_named_type(
                kind).name in ("ID", "String", "UUID", "Int")

        payload = graphql.get_named_type(field.type)
        answers = payload.fields if isinstance(payload, GraphQLObjectType) else {}
        # an id under its own name, `<name>Id` where the payload answers the record as `<name>`
        # (Shopify's `subscriptionDraftLineAdd(draftId:)` answering `draft: SubscriptionDraft`)
        adhoc = [name for name in field.args if name.endswith("Id") and name != own
                 and name[:-2] in answers
                 and graphql.get_named_type(answers[name[:-2]].type) is target]
        for name, many in (("id", False), (own, False), ("ids", True), (own + "s", True),
                           *((name, False) for name in adhoc[:1])):
            arg = field.args.get(name)
            if arg is not None and scalar(arg.type) and _is_list(arg.type) == many:
                found.append({"path": name, "required": isinstance(arg.type, GraphQLNonNull)}
                             | ({"many": True} if many else {}))
        for name, arg in field.args.items():
            given = graphql.get_named_type(arg.type)
            if not isinstance(given, GraphQLInputObjectType) or _is_list(arg.type):
                continue
            # An id inside an input names this record only when the input is about it:
            # `billingAddress: {id}` names an address, not the payment method.
            if not (name == "input" or given.name.startswith(target.name)
                    or self._map(given, target)):
                continue
            for inner in ("id", own):
                nested = given.fields.get(inner)
                if nested is not None and scalar(nested.type) and not _is_list(nested.type):
                    required = isinstance(arg.type, GraphQLNonNull) and isinstance(
                        nested.type, GraphQLNonNull)
                    found.append({"path": f"{name}.{inner}", "required": required})
                    break
        return found

    def _values(self, field: GraphQLField, target: Record) -> list[dict[str, Any]]:
        values = []
        for name, arg in field.args.items():
            given = graphql.get_named_type(arg.type)
            if isinstance(given, GraphQLInputObjectType) and not _is_list(arg.type) and \
                    self._map(given, target):
                values.append({"arg": name, "id": "id" in given.fields})
        return values

    def _each(self, field: GraphQLField, target: Record) -> dict[str, Any] | None:
        """A list of the object's inputs, one record each (`variants: [{id, price}]`)."""
        for name, arg in field.args.items():
            given = graphql.get_named_type(arg.type)
            inner = given.fields.get("id") if isinstance(given, GraphQLInputObjectType) else None
            if inner is not None and _is_list(arg.type) and self._map(given, target):
                return {"arg": name, "required": isinstance(inner.type, GraphQLNonNull)}
        return None

    @staticmethod
    def _deletes(field: GraphQLField, target: Record) -> bool:
        """The payload says the object is gone: `deletedId`, `deleted<Object>Id(s)`, or a bare
        `entityId` answering a mutation that takes the record as `id`; and it no longer answers
        the object itself (`customerAddressDelete` names a deleted address, not a customer)."""
        payload = graphql.get_named_type(field.type)
        if not isinstance(payload, GraphQLObjectType):
            return False
        kinds = [graphql.get_named_type(value.type) for value in payload.fields.values()]
        if any(kind is target for kind in kinds):
            return False
        for name in payload.fields:
            found = _DELETED_ID.match(name)
            if found and (found["what"] == "" or target.name.endswith(found["what"])):
                return True
        return "entityId" in payload.fields and "id" in field.args and not any(
            _is_record(kind) for kind in kinds)

    # -- how to read the record -------------------------------------------------------------
    def _reader(self, target: Record) -> dict[str, Any] | None:
        candidates = []
        for name, field in self.query_fields.items():
            kind = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            arg = field.args.get("id")
            if kind is not target or arg is None or _is_list(arg.type):
                continue
            others_optional = all(
                not isinstance(other.type, GraphQLNonNull)
                or other.default_value is not graphql.Undefined
                for key, other in field.args.items() if key != "id")
            if others_optional:
                candidates.append((name != _lower_first(target.name), name, str(arg.type)))
        if candidates:
            _, name, arg_type = min(candidates)
            return {"field": name, "type": arg_type}
        node = self.query_fields.get("node")
        node_type = self.types.get("Node")
        if node is not None and isinstance(node_type, GraphQLInterfaceType) and (
                target is node_type or node_type in target.interfaces or (
                    isinstance(target, GraphQLInterfaceType) and any(
                        node_type in kind.interfaces
                        for kind in self.schema.get_possible_types(target)))):
            # an interface some of whose types are Nodes (Shopify's `File`, `Publishable`) is
            # read as `node(id:) { ... on File {...} }`: valid wherever the two overlap
            return {"field": "node", "type": str(node.args["id"].type), "fragment": True} | (
                {} if "id" in target.fields else {"node_id": True})  # `Publishable` has no id
        singles = [name for name, field in self.query_fields.items()
                   if graphql.get_named_type(field.type) is target and not _is_list(field.type)
                   and _readable(field) and "id" in target.fields]
        if len(singles) == 1:  # `userSettings: UserSettings!`: the caller's own, no id taken;
            return {"field": singles[0], "single": True}  # the answer's id must be the record's
        return None

    def _all_scalars(self, target: Record) -> list[str]:
        return sorted(name for name, field in target.fields.items()
                      if _leaf(graphql.get_named_type(field.type)) and _readable(field)
                      and field.deprecation_reason is None)

    def _shows(self, target: Record) -> list[str]:
        """What an action's reviewer reads to see which record it acts on and in what state:
        its name (the first two naming fields the type has), then its state: enum fields named
        for one (`status`, `displayFinancialStatus`, `health`) and the nullable timestamps a
        change of state sets (`archivedAt`, `canceledAt`, `closedAt`); at most `MAX_SHOWN`."""
        leaves = {name: field for name, field in target.fields.items()
                  if _leaf(graphql.get_named_type(field.type)) and not _is_list(field.type)
                  and _readable(field) and field.deprecation_reason is None and name != "id"}
        naming = [name for name in _NAMING if name in leaves][:2]
        state = [name for name, field in leaves.items() if _STATE.search(name)
                 and isinstance(graphql.get_named_type(field.type), GraphQLEnumType)]
        stamps = [name for name, field in leaves.items() if _STATE_STAMP.match(name)
                  and not isinstance(field.type, GraphQLNonNull)
                  and name not in ("updatedAt", "createdAt")]
        return list(dict.fromkeys(naming + state + stamps))[:MAX_SHOWN]

    def derive(self) -> dict[str, Any]:
        mutation = self.schema.mutation_type
        mutations: dict[str, Any] = {}
        for name, field in (mutation.fields.items() if mutation is not None else ()):
            target = self._object(name, field)
            if target is None:
                mutations[name] = {}
                continue
            entry: dict[str, Any] = {"object": target.name}
            if ids := self._ids(field, target):
                entry["ids"] = ids
            if self._deletes(field, target):
                entry["deletes"] = True
                self.objects.setdefault(target.name, {})["all"] = self._all_scalars(target)
            elif values := self._values(field, target):
                entry["values"] = values
            elif not ids and (each := self._each(field, target)):
                entry["each"] = each
            else:
                self._map_arguments(field, target, {spot["path"] for spot in ids})
                if ids and (shows := self._shows(target)):
                    self.objects.setdefault(target.name, {})["shows"] = shows
            mutations[name] = entry
            reader = self._reader(target)
            if reader is not None and ids:
                self.objects.setdefault(target.name, {})["read"] = reader
        objects = {name: entry for name, entry in sorted(self.objects.items()) if entry}
        return {"format": FORMAT, "mutations": dict(sorted(mutations.items())),
                "objects": objects}


def derive_graphql(source_path: str | Path) -> dict[str, Any]:
    """The derived description of a GraphQL schema file (see the module docstring)."""
    path = Path(source_path)
    derived = _Deriver(load_schema(path)).derive()
    return {"source": path.name, "source_sha256": _sha256(path), **derived}


def write_derived(derived: dict[str, Any], path: str | Path) -> None:
    """One mutation or object per line: small, and a changed schema shows as a readable diff."""
    lines = ["{"]
    head = {key: value for key, value in derived.items() if key not in ("mutations", "objects")}
    for key, value in head.items():
        lines.append(f"{json.dumps(key)}: {json.dumps(value)},")
    for section in ("mutations", "objects"):
        items = list(derived.get(section, {}).items())
        lines.append(f"{json.dumps(section)}: {{")
        for index, (name, value) in enumerate(items):
            comma = "," if index < len(items) - 1 else ""
            lines.append(f"{json.dumps(name)}: {json.dumps(value, separators=(',', ':'))}"
                         f"{comma}")
        lines.append("}," if section == "mutations" else "}")
    lines.append("}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------- requests

@dataclass(frozen=True, slots=True)
class GraphQLRead:
    """The generated query reading one record's current state, and how to show its answer."""

    object_type: str
    record_id: str
    query: str
    variables: dict[str, Any]
    reads: dict[str, Any]  # input field name -> how its value sits in the answer
    fragment: bool  # read through `node(id:)`: the answer's `__typename` must be the object
    single: bool = False  # a field taking no id (`userSettings`): the answer's id must match

    def body(self) -> dict[str, Any]:
        return {"query": self.query, "variables": self.variables, "operationName": READ_NAME}

    def record(self, answer: Any) -> tuple[dict[str, Any] | None, str | None]:
        """(the record under the input's field names, None) or (None, why it is unknown);
        (None, None) when the vendor answered null without an error: no such record."""
        if not isinstance(answer, dict):
            return None, "the upstream's answer to the generated GraphQL read is not an object"
        errors = answer.get("errors")
        data = answer.get("data")
        if errors:
            return None, "the upstream answered the generated GraphQL read with " + _errors(errors)
        if not isinstance(data, dict) or "record" not in data:
            return None, "the upstream's answer to the generated GraphQL read holds no record"
        found = data["record"]
        if found is None:
            return None, None
        if not isinstance(found, dict):
            return None, "the upstream's answer to the generated GraphQL read holds no record"
        if self.fragment and "id" not in found:  # the fragment did not apply: another type
            kind = found.get("__typename")
            named = kind if isinstance(kind, str) and _TYPE_NAME.match(kind) else "another type"
            return None, f"the id names a {named}, not a {self.object_type}"
        if self.single and str(found.get("id")) != self.record_id:
            return None, (f"the schema reads only the caller's own {self.object_type}, "
                          "not the one this id names")
        return _present(found, self.reads), None


def _errors(errors: Any) -> str:
    """How many errors and their codes, never their messages: those may echo the values."""
    items = errors if isinstance(errors, list) else [errors]
    codes = sorted({str(code) for item in items if isinstance(item, dict)
                    and isinstance(item.get("extensions"), dict)
                    and _SAFE_CODE.match(str(code := item["extensions"].get("code", "")))})
    count = f"{len(items)} error{'s' if len(items) != 1 else ''}"
    return count + (f" ({', '.join(codes[:3])})" if codes else "")


def _present(found: dict[str, Any], reads: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    if "id" in found:
        shown["id"] = found["id"]
    for name, how in reads.items():
        if isinstance(how, str):
            if how in found:
                shown[name] = found[how]
            continue
        value = found.get(how["f"])
        if how["f"] not in found:
            continue
        kind = how.get("k")
        if kind == "id":
            shown[name] = value.get("id") if isinstance(value, dict) else None
        elif kind in ("nodes", "list"):
            items = value.get("nodes") if kind == "nodes" and isinstance(value, dict) else value
            shown[name] = [item.get("id") for item in items if isinstance(item, dict)] \
                if isinstance(items, list) else None
        elif "t" in how:
            shown[name] = _present(value, how["sub"]) if isinstance(value, dict) \
                else value
    return shown


@dataclass(frozen=True, slots=True)
class GraphQLWrite:
    """One record a mutation field writes, as the schema reads it."""

    object_type: str
    operation: Operation
    record_id: str | None
    values: dict[str, Any] | None
    action: str | None
    read: GraphQLRead | None
    unreadable: str | None = None  # why no read is generated for this record
    problem: str | None = None  # why the request may write another record than the one shown


class DerivedGraphQL:
    """A derived file loaded for look-ups; `writes` classifies one mutation field."""

    def __init__(self, derived: dict[str, Any]) -> None:
        self.mutations: dict[str, dict[str, Any]] = derived.get("mutations", {})
        self.objects: dict[str, dict[str, Any]] = derived.get("objects", {})

    def knows(self, name: str) -> bool:
        return name in self.mutations

    def writes(self, name: str, arguments: dict[str, Any]) -> list[GraphQLWrite]:
        """The records this mutation field writes (several for `ids: [...]`)."""
        arguments = _defined(arguments)
        entry = self.mutations.get(name)
        if not entry or "object" not in entry:
            return [GraphQLWrite(name, Operation.action, _any_id(arguments),
                                 _without_id(arguments), name, None,
                                 "the schema names no object this mutation changes")]
        object_type = entry["object"]
        if "each" in entry:
            return self._each_writes(object_type, entry["each"], arguments)
        ids, spot = self._ids(entry, arguments)
        values_specs = entry.get("values", [])
        if entry.get("deletes"):
            operation, values, action = Operation.delete, None, None
        elif values_specs:
            values = {}
            for spec in values_specs:
                given = arguments.get(spec["arg"])
                if isinstance(given, dict):
                    values.update({k: v for k, v in given.items()
                                   if not (spot and spot["path"] == f"{spec['arg']}.{k}")})
            operation, action = self._write_operation(entry, spot, arguments), None
        else:
            operation, action = Operation.action, name
            values = {k: v for k, v in arguments.items() if not (spot and k == spot["path"])}
            if spot and "." in spot["path"]:
                outer, inner = spot["path"].split(".", 1)
                if isinstance(values.get(outer), dict):
                    values[outer] = {k: v for k, v in values[outer].items() if k != inner}
        problem = self._elsewhere(entry, arguments, ids, spot)
        records = []
        for record_id in ids or [None]:
            read, why = self._read(object_type, record_id, values, operation)
            records.append(GraphQLWrite(object_type, operation, record_id,
                                        dict(values) if values is not None else None, action,
                                        read, why, problem))
        return records

    @staticmethod
    def _elsewhere(entry: dict[str, Any], arguments: dict[str, Any], ids: list[str],
                   spot: dict[str, Any] | None) -> str | None:
        """Another place the schema takes the record id naming another record than the one
        shown (`collectionUpdate(collection: {id: A}, input: {id: B})`, `ids` beside a
        `savedSearchId`): which one the vendor acts on is not the proxy's to guess."""
        if spot is None:
            return None
        for other in entry.get("ids", []):
            if other is spot:
                continue
            value: Any = arguments
            for part in other["path"].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            given = value if isinstance(value, list) else [value]
            named = {str(item) for item in given if _id_like(item)}
            if named - set(ids):
                return (f"the mutation names its record in {spot['path']!r} and another in "
                        f"{other['path']!r} ({sorted(named - set(ids))[0][:80]!r}); the vendor "
                        "may act on either")
        return None

    def _each_writes(self, object_type: str, each: dict[str, Any],
                     arguments: dict[str, Any]) -> list[GraphQLWrite]:
        items = arguments.get(each["arg"])
        records = []
        for item in (items if isinstance(items, list) else [])[:MAX_RECORDS]:
            if not isinstance(item, dict):
                continue
            found = item.get("id")
            record_id = str(found) if _id_like(found) else None
            operation = Operation.create if record_id is None else (
                Operation.update if each["required"] else Operation.upsert)
            values = {k: v for k, v in item.items() if k != "id"}
            read, why = self._read(object_type, record_id, values, operation)
            records.append(GraphQLWrite(object_type, operation, record_id, values, None, read,
                                        why))
        if not records:
            return [GraphQLWrite(object_type, Operation.action, None, dict(arguments), None,
                                 None, f"the request lists no {object_type} in "
                                 f"{each['arg']!r}")]
        return records

    @staticmethod
    def _ids(entry: dict[str, Any], arguments: dict[str, Any]
             ) -> tuple[list[str], dict[str, Any] | None]:
        for spot in entry.get("ids", []):
            value: Any = arguments
            for part in spot["path"].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if spot.get("many"):
                if isinstance(value, list) and value:
                    found = [str(item) for item in value if _id_like(item)]
                    if found:
                        return found, spot
            elif _id_like(value):
                return [str(value)], spot
        return [], None

    @staticmethod
    def _write_operation(entry: dict[str, Any], spot: dict[str, Any] | None,
                         arguments: dict[str, Any]) -> Operation:
        if spot is not None:
            return Operation.update if spot["required"] else Operation.upsert
        places = entry.get("ids", [])
        if any(place["required"] for place in places):
            return Operation.update  # the schema requires an id the request left out
        without_id = any(not spec["id"] and isinstance(arguments.get(spec["arg"]), dict)
                         for spec in entry["values"])
        if without_id or len(places) <= 1:
            return Operation.create
        return Operation.upsert  # named by other fields than an id (a handle, a custom id)

    def _read(self, object_type: str, record_id: str | None, values: dict[str, Any] | None,
              operation: Operation) -> tuple[GraphQLRead | None, str | None]:
        if operation is Operation.create:
            return None, None
        if record_id is None:
            return None, "the request names no record id"
        entry = self.objects.get(object_type, {})
        reader = entry.get("read")
        if reader is None:
            return None, (f"the vendor's GraphQL schema has no query reading a {object_type} "
                          "by id")
        if operation is Operation.delete:  # what is lost: every scalar field
            reads = {name: name for name in entry.get("all", []) if name != "id"}
            selection = " ".join(reads)
        else:
            selection, reads = self._selection(entry.get("fields", {}), values or {}, 0)
        if operation is Operation.action:  # what it acts on: the record's name and state too
            shows = [name for name in entry.get("shows", []) if name not in reads]
            reads |= {name: name for name in shows}
            selection = " ".join(filter(None, (selection, *shows)))
        inner = f"{'... on Node { id }' if reader.get('node_id') else 'id'} {selection}".strip()
        if reader.get("fragment"):
            body = f"__typename ... on {object_type} {{ {inner} }}"
        else:
            body = inner
        if reader.get("single"):
            query = f"query {READ_NAME} {{ record: {reader['field']} {{ {body} }} }}"
            variables: dict[str, Any] = {}
        else:
            query = (f"query {READ_NAME}($id: {reader['type']}) "
                     f"{{ record: {reader['field']}(id: $id) {{ {body} }} }}")
            variables = {"id": record_id}
        return GraphQLRead(object_type, record_id, query, variables, reads,
                           bool(reader.get("fragment")), bool(reader.get("single"))), None

    def _selection(self, fields: dict[str, Any], values: dict[str, Any],
                   depth: int) -> tuple[str, dict[str, Any]]:
        parts: list[str] = []
        reads: dict[str, Any] = {}
        for name, value in values.items():
            how = fields.get(name)
            if how is None:
                continue
            if isinstance(how, str):
                text = how
            elif how.get("k") == "id":
                text = f"{how['f']} {{ id }}"
            elif how.get("k") in ("nodes", "list"):
                page = f"(first: {PAGE})" if how.get("first") else ""
                text = (f"{how['f']}{page} {{ nodes {{ id }} }}" if how["k"] == "nodes"
                        else f"{how['f']} {{ id }}")
            elif "t" in how and isinstance(value, dict) and depth < MAX_DEPTH:
                nested = self.objects.get(how["t"], {}).get("fields", {})
                sub, sub_reads = self._selection(nested, value, depth + 1)
                if not sub:
                    continue
                text = f"{how['f']} {{ {sub} }}"
                how = {**how, "sub": sub_reads}
            else:
                continue
            reads[name] = how
            parts.append(text)
        return " ".join(dict.fromkeys(parts)), reads


def _id_like(value: Any) -> bool:
    return (isinstance(value, str) and value != "") or (
        isinstance(value, int) and not isinstance(value, bool))


def _any_id(arguments: dict[str, Any]) -> str | None:
    """Without a schema: the `id` argument or an `id` inside `input`, as before."""
    found = arguments.get("id")
    if not _id_like(found) and isinstance(arguments.get("input"), dict):
        found = arguments["input"].get("id")
    return str(found) if _id_like(found) else None


def _without_id(arguments: dict[str, Any]) -> dict[str, Any]:
    given = arguments.get("input")
    if isinstance(given, dict):
        return dict(given)
    return {k: v for k, v in arguments.items() if k != "id"}


def schemaless_writes(name: str, arguments: dict[str, Any],
                      why: str = "no GraphQL schema is shipped for this API, so the record "
                                 "is not read") -> list[GraphQLWrite]:
    """No schema (GitHub): the mutation's name as its object and action; nothing is guessed."""
    arguments = _defined(arguments)
    return [GraphQLWrite(name, Operation.action, _any_id(arguments), _without_id(arguments),
                         name, None, why)]


def _defined(value: Any) -> Any:
    """Without the variables it names (`$t` not sent), a value is absent, as servers read it."""
    if isinstance(value, dict):
        return {key: _defined(item) for key, item in value.items()
                if item is not graphql.Undefined}
    if isinstance(value, list):
        return [_defined(item) for item in value if item is not graphql.Undefined]
    return value


# ---------------------------------------------------------------------------------- loading

@cache
def _load(derived_path: str | None, source_path: str | None) -> DerivedGraphQL | None:
    if derived_path is not None:
        try:
            data = json.loads(Path(derived_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"field description.graphql_derived: cannot read it: {exc}") \
                from exc
        if not isinstance(data, dict) or not isinstance(data.get("mutations"), dict):
            raise ValueError("field description.graphql_derived: not a derived GraphQL file "
                             "(run `hitl-proxy connectors derive`)")
        current = data.get("format") == FORMAT
        if current and (source_path is None
                        or data.get("source_sha256") == _sha256(Path(source_path))):
            return DerivedGraphQL(data)
    if source_path is None:
        raise ValueError("field description.graphql_derived: derived by another version and "
                         "no description.graphql to derive it again from")
    try:  # no derived file, or a stale one: derived again, once
        return DerivedGraphQL(derive_graphql(source_path))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, graphql.GraphQLError) as exc:
        raise ValueError(f"field description.graphql: not a GraphQL schema (SDL or "
                         f"introspection JSON): {str(exc)[:300]}") from exc


def derived_for(description: Description | None) -> DerivedGraphQL | None:
    """The connector's derived mutations: the shipped file, else derived from the schema now
    (once per process: the loader asks at start-up). ValueError names the field at fault."""
    if description is None or (description.graphql is None
                               and description.graphql_derived is None):
        return None
    return _load(description.graphql_derived, description.graphql)


def derive_connector(connector_path: str | Path) -> Path | None:
    """Regenerates one connector file's derived GraphQL file (for `hitl-proxy connectors
    derive`): its `graphql_derived`, else `derived/<stem>.graphql.json` beside it; None when
    the connector names no GraphQL schema. Reads the file itself, not the loaded connector:
    the derived file it names may not exist yet."""
    path = Path(connector_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"connector file {path}: cannot read it: {exc}") from exc
    description = raw.get("description") if isinstance(raw, dict) else None
    source = description.get("graphql") if isinstance(description, dict) else None
    if not isinstance(source, str):
        return None
    named = description.get("graphql_derived")
    target = path.parent / (named if isinstance(named, str) else
                            f"derived/{path.stem}.graphql.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_derived(derive_graphql(path.parent / source), target)
    return target


def described(directory: Path) -> list[str]:
    """Stems of the connector files in `directory` that name a GraphQL schema."""
    return sorted(path.stem for path in directory.glob("*.yaml")
                  if "graphql:" in path.read_text(encoding="utf-8")
                  and _names_schema(path))


def _names_schema(path: Path) -> bool:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    description = raw.get("description") if isinstance(raw, dict) else None
    return isinstance(description, dict) and isinstance(description.get("graphql"), str)


def summary(target: Path) -> str:
    """`371 mutations: 335 named, 263 with a record id, 236 read back` for the CLI."""
    derived = json.loads(target.read_text(encoding="utf-8"))
    mutations, objects = derived["mutations"], derived["objects"]
    named = [entry for entry in mutations.values() if "object" in entry]
    with_id = [entry for entry in named if entry.get("ids") or entry.get("each")]
    read = [entry for entry in with_id if "read" in objects.get(entry["object"], {})]
    return (f"{len(mutations)} mutations: {len(named)} named, {len(with_id)} with a record id, "
            f"{len(read)} read back")
