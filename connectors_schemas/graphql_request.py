"""GraphQL requests read every way a server could read them: body, batch and URL together.

Servers disagree on where the document comes from when a request carries more than one
(express-graphql lets the URL's `query` win over the body's), so a request is a read only when
every document in it, wherever it sits, holds nothing but queries.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import graphql

from connectors_schemas.bodies import BodyError, strict_json

MAX_TOKENS = 100_000  # a document longer than this is not parsed, so it is no read
# Without a document, these name a stored ("persisted") one the proxy cannot see.
PERSISTED_NAMES = frozenset({"extensions", "id", "documentid", "doc_id", "queryid", "hash"})
# The keyword as a GraphQL token: a parser more lenient than ours may still run it.
_WRITE_KEYWORD = re.compile(r"(?<![_0-9A-Za-z])(mutation|subscription)(?![_0-9A-Za-z])")


@dataclass(frozen=True, slots=True)
class GraphQLField:
    """One top-level field of a mutation, with its arguments resolved from the variables."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GraphQLOperation:
    kind: str  # query | mutation | subscription
    name: str | None
    fields: list[GraphQLField]
    where: str = "the body"  # the body, item 2 of the batched body, the URL


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """Every operation a server could run for one HTTP request."""

    operations: list[GraphQLOperation]
    names: frozenset[str]  # every operationName given, in the body or the URL
    problem: str | None = None  # why a reviewer should not trust which document runs

    @property
    def read(self) -> bool:
        return bool(self.operations) and all(op.kind == "query" for op in self.operations)

    def writes(self) -> list[GraphQLOperation]:
        """Mutations and subscriptions that may run: those an operationName picks, else all."""
        writes = [op for op in self.operations if op.kind != "query"]
        return [op for op in writes if op.name in self.names] or writes


@dataclass(frozen=True, slots=True)
class _Source:
    where: str
    document: str
    variables: dict[str, Any]


def _document(text: str, where: str) -> graphql.DocumentNode:
    try:
        return graphql.parse(text, no_location=True, max_tokens=MAX_TOKENS)
    except graphql.GraphQLError as exc:
        raise BodyError(f"the GraphQL document in {where} does not parse: {exc.message}") from exc
    except RecursionError as exc:  # nested deeper than the parser goes: no server reads it alike
        raise BodyError(f"the GraphQL document in {where} is nested too deeply to read") from exc


def _variables(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):  # some clients send them as a JSON string; servers accept it
        value = strict_json(value, f"the GraphQL variables in {where}")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BodyError(f"GraphQL 'variables' in {where} must be a JSON object")
    return value


def _named(name: str, wanted: str) -> bool:
    return name.casefold() == wanted


def _operations(source: _Source) -> list[GraphQLOperation]:
    document = _document(source.document, source.where)
    found = []
    for definition in document.definitions:
        if not isinstance(definition, graphql.OperationDefinitionNode):
            continue
        kind = definition.operation.value
        fields = [] if kind == "query" else [
            GraphQLField(selection.name.value,
                         {arg.name.value: graphql.value_from_ast_untyped(arg.value,
                                                                         source.variables)
                          for arg in selection.arguments or ()})
            for selection in definition.selection_set.selections
            if isinstance(selection, graphql.FieldNode)
        ]
        if kind != "query" and not fields:
            raise BodyError(f"the GraphQL {kind} in {source.where} selects no field (fragments "
                            "at the top level are not read)")
        found.append(GraphQLOperation(kind, definition.name.value if definition.name else None,
                                      fields, source.where))
    if not found:
        raise BodyError(f"the GraphQL document in {source.where} holds no operation to run")
    return found


def _operation_name(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BodyError(f"GraphQL 'operationName' in {where} must be a string")
    return value


def parse_graphql(body: Any, url_query: Sequence[tuple[str, str]] = ()) -> GraphQLRequest:
    """Every operation in the body (one, or a batched list) and in the URL's `query`.

    BodyError when any document cannot be read: then no one can say the request only reads.
    """
    url_documents = [value for name, value in url_query if _named(name, "query")]
    names = {value for name, value in url_query if _named(name, "operationname")}
    url_variables = next((value for name, value in url_query if _named(name, "variables")),
                         None)
    if isinstance(body, list):
        if not body:
            raise BodyError("the batched GraphQL body lists no operation")
        payloads = [(f"item {index} of the batched body", item) for index, item in enumerate(body)]
    elif isinstance(body, dict):
        payloads = [("the body", body)]
    elif body is None:
        payloads = []
    else:
        raise BodyError("a GraphQL request body must be a JSON object with a 'query'")
    body_variables: Any = None
    sources: list[_Source] = []
    for where, payload in payloads:
        if not isinstance(payload, dict):
            raise BodyError(f"{where} must be a JSON object with a 'query'")
        query, operation_name = payload.get("query"), payload.get("operationName")
        if query is not None and not isinstance(query, str):
            raise BodyError(f"the GraphQL 'query' in {where} must be a string")
        if (name := _operation_name(operation_name, where)) is not None:
            names.add(name)
        if query is None and (len(payloads) > 1 or not url_documents):
            hidden = sorted(key for key in payload if key.casefold() in PERSISTED_NAMES)
            raise BodyError(f"{where} names a persisted GraphQL query ({', '.join(hidden)}) "
                            "whose document the proxy cannot see" if hidden else
                            f"{where} carries no GraphQL operation in 'query'")
        body_variables = payload.get("variables")
        if query is not None:
            variables = _variables(body_variables if body_variables is not None
                                   else url_variables, where)
            sources.append(_Source(where, query, variables))
    for document in url_documents:
        variables = _variables(url_variables if url_variables is not None else body_variables,
                               "the URL")
        sources.append(_Source("the URL", document, variables))
    if not sources:
        hidden = sorted(name for name, _ in url_query if name.casefold() in PERSISTED_NAMES)
        raise BodyError(f"the URL names a persisted GraphQL query ({', '.join(hidden)}) whose "
                        "document the proxy cannot see" if hidden else
                        "the request carries no GraphQL operation in 'query'")
    operations = [operation for source in sources for operation in _operations(source)]
    texts = {source.document for source in sources}
    problem = None
    if url_documents and payloads and len(texts) > 1:
        problem = ("the body and the URL carry different GraphQL documents; servers differ on "
                   "which one runs")
    return GraphQLRequest(operations, frozenset(names), problem)


def graphql_in_query(query: Sequence[tuple[str, str]], graphql_endpoint: bool) -> str | None:
    """Why a GET, HEAD or OPTIONS with these query parameters is a write; None for a read.

    Called on every read, so a request without a `query` parameter costs one pass over the
    parameter names. `graphql_endpoint` says a connector knows the path as a GraphQL route:
    there a `query` that does not parse, or a persisted query with no document, is a write too.
    """
    documents = [value for name, value in query if _named(name, "query")]
    if not documents:
        if not graphql_endpoint:
            return None
        hidden = next((name for name, _ in query if name.casefold() in PERSISTED_NAMES), None)
        if hidden is None:
            return None
        return (f"the URL names a persisted GraphQL query ({hidden!r}) whose document the proxy "
                "cannot see")
    for value in documents:
        try:
            document = graphql.parse(value, no_location=True, max_tokens=MAX_TOKENS)
        except (graphql.GraphQLError, RecursionError):
            if graphql_endpoint:
                return ("the URL's 'query' parameter does not parse as GraphQL, and this path is "
                        "a GraphQL endpoint")
            if found := _WRITE_KEYWORD.search(value):
                return (f"the URL's 'query' parameter names a GraphQL {found[1]} but does not "
                        "parse; a server may still run it")
            continue
        for definition in document.definitions:
            if (isinstance(definition, graphql.OperationDefinitionNode)
                    and definition.operation is not graphql.OperationType.QUERY):
                return (f"the URL's 'query' parameter carries a GraphQL "
                        f"{definition.operation.value}")
    return None
