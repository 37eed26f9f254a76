"""GraphQL requests read every way a server could read them: body, batch and URL together.

Servers disagree on where the document comes from when a request carries more than one
(express-graphql lets the URL's `query` win over the body's), so a request is a read only when
every document in it, wherever it sits, holds nothing but queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

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


def _top_fields(selections: Sequence[graphql.SelectionNode],
                fragments: dict[str, graphql.FragmentDefinitionNode], where: str,
                seen: frozenset[str] = frozenset()) -> list[graphql.FieldNode]:
    """The root fields a server runs: those in inline fragments and fragment spreads too
    (`mutation { a ... on Mutation { b } ...F }` runs a, b and F's fields), whatever their
    type condition; a spread of a fragment the document lacks, or one that spreads itself,
    is no document a reviewer can be shown."""
    found: list[graphql.FieldNode] = []
    for selection in selections:
        if isinstance(selection, graphql.FieldNode):
            found.append(selection)
        elif isinstance(selection, graphql.InlineFragmentNode):
            found += _top_fields(selection.selection_set.selections, fragments, where, seen)
        elif isinstance(selection, graphql.FragmentSpreadNode):
            name = selection.name.value
            if name in seen or name not in fragments:
                why = "spreads itself" if name in seen else "is not in the document"
                raise BodyError(f"the GraphQL fragment {name!r} in {where} {why}")
            found += _top_fields(fragments[name].selection_set.selections, fragments, where,
                                 seen | {name})
    return found


def _operations(source: _Source) -> list[GraphQLOperation]:
    document = _document(source.document, source.where)
    fragments = {definition.name.value: definition for definition in document.definitions
                 if isinstance(definition, graphql.FragmentDefinitionNode)}
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
            for selection in _top_fields(definition.selection_set.selections, fragments,
                                         source.where)
        ]
        if kind != "query" and not fields:
            raise BodyError(f"the GraphQL {kind} in {source.where} selects no field")
        found.append(GraphQLOperation(kind, definition.name.value if definition.name else None,
                                      fields, source.where))
    if not found:
        raise BodyError(f"the GraphQL document in {source.where} holds no operation to run")
    return found


def _field(payload: dict[str, Any], name: str, where: str) -> Any:
    """The value under `name` in any case: servers that fold case read `Query` as `query`,
    and with two spellings present no one can say which of them runs."""
    spellings = [key for key in payload if isinstance(key, str) and key.casefold() == name]
    if len(spellings) > 1:
        raise BodyError(f"{where} has both {spellings[0]!r} and {spellings[1]!r}; servers "
                        "differ on which one they read")
    return payload[spellings[0]] if spellings else None


def _persisted(names: Sequence[str]) -> list[str]:
    return sorted(name for name in names if name.casefold() in PERSISTED_NAMES)


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
        query = _field(payload, "query", where)
        operation_name = _field(payload, "operationname", where)
        if query is not None and not isinstance(query, str):
            raise BodyError(f"the GraphQL 'query' in {where} must be a string")
        if (name := _operation_name(operation_name, where)) is not None:
            names.add(name)
        if hidden := _persisted(list(payload)):
            # Even beside a document: a server that prefers its stored one runs what the
            # proxy never saw.
            raise BodyError(f"{where} names a persisted GraphQL query ({', '.join(hidden)}) "
                            "whose document the proxy cannot see")
        if query is None and (len(payloads) > 1 or not url_documents):
            raise BodyError(f"{where} carries no GraphQL operation in 'query'")
        body_variables = _field(payload, "variables", where)
        if query is not None:
            variables = _variables(body_variables if body_variables is not None
                                   else url_variables, where)
            sources.append(_Source(where, query, variables))
    for document in url_documents:
        variables = _variables(url_variables if url_variables is not None else body_variables,
                               "the URL")
        sources.append(_Source("the URL", document, variables))
    if hidden := _persisted([name for name, _ in url_query]):
        raise BodyError(f"the URL names a persisted GraphQL query ({', '.join(hidden)}) whose "
                        "document the proxy cannot see")
    if not sources:
        raise BodyError("the request carries no GraphQL operation in 'query'")
    operations = [operation for source in sources for operation in _operations(source)]
    texts = {source.document for source in sources}
    problem = None
    if url_documents and payloads and len(texts) > 1:
        problem = ("the body and the URL carry different GraphQL documents; servers differ on "
                   "which one runs")
    return GraphQLRequest(operations, frozenset(names), problem)


def _parsed(document: str) -> graphql.DocumentNode | None:
    try:
        return graphql.parse(document, no_location=True, max_tokens=MAX_TOKENS)
    except (graphql.GraphQLError, RecursionError):
        return None


def _writes(document: str, where: str, graphql_endpoint: bool) -> str | None:
    """Why this document may write: a mutation or subscription in it or, when it does not
    parse, the keyword (a parser more lenient than ours may run it), or on a GraphQL endpoint
    the failure itself."""
    parsed = _parsed(document)
    if parsed is None:
        if graphql_endpoint:
            return f"{where} does not parse as GraphQL, and this path is a GraphQL endpoint"
        if found := _WRITE_KEYWORD.search(document):
            return (f"{where} names a GraphQL {found[1]} but does not parse; a server may "
                    "still run it")
        return None
    for definition in parsed.definitions:
        if (isinstance(definition, graphql.OperationDefinitionNode)
                and definition.operation is not graphql.OperationType.QUERY):
            return f"{where} carries a GraphQL {definition.operation.value}"
    return None


def graphql_in_query(query: Sequence[tuple[str, str]], graphql_endpoint: bool) -> str | None:
    """Why a GET, HEAD or OPTIONS with these query parameters is a write; None for a read.

    Called on every read, so a request without a `query` parameter costs one pass over the
    parameter names. `graphql_endpoint` says a connector knows the path as a GraphQL route:
    there a `query` that does not parse, or a persisted query (with or without a document), is
    a write too. Pass the pairs of every way servers split the query (on `&`, and on `&` and
    `;`): a value one split cuts short may be a whole mutation in the other.
    """
    documents = [value for name, value in query if _named(name, "query")]
    if graphql_endpoint and (hidden := _persisted([name for name, _ in query])):
        return (f"the URL names a persisted GraphQL query ({hidden[0]!r}) whose document the "
                "proxy cannot see")
    for value in documents:
        if why := _writes(value, "the URL's 'query' parameter", graphql_endpoint):
            return why
    return None


# Bytes without one of these cannot name `query` in JSON (`\u0071`) or a form (`%71`).
_MAY_NAME_QUERY = re.compile(rb"query|%|\\u", re.IGNORECASE)
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its pairs in order: a repeated `query` is checked every time."""


def _media(content_type: str | None) -> tuple[str, str | None]:
    kind, _, parameters = (content_type or "").partition(";")
    charset = None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return kind.strip().lower(), charset


def _body_texts(content: bytes, charset: str | None) -> list[str] | str:
    """The body as a server could decode it (body-parser honours a `utf-16` or `utf-7`
    charset, JSON parsers detect UTF-16 and UTF-32), or why it cannot be read."""
    if charset is not None and charset not in _UTF8:
        try:
            return [content.decode(charset, "replace")]
        except LookupError:
            return (f"the read's body declares the charset {charset[:40]!r}, which the proxy "
                    "cannot decode to look for a GraphQL document")
    texts = [content.decode("utf-8", "replace")]
    if b"\x00" in content:
        texts.append(content.decode(json.detect_encoding(content), "replace"))
    return texts


def _payloads(text: str) -> tuple[list[tuple[str, list[tuple[str, Any]]]], bool]:
    """Each object a server could take the `query` from: the JSON object or batch items, and
    the form read split on `&` and on `&` and `;`; and whether JSON-like text failed to parse."""
    found: list[tuple[str, list[tuple[str, Any]]]] = []
    broken = False
    if text.lstrip("\ufeff \t\r\n")[:1] in ("{", "["):
        try:
            value = json.loads(text.lstrip("\ufeff"), object_pairs_hook=_Pairs)
        except (ValueError, RecursionError):
            broken = True  # a lenient parser (JSON5, a deeper stack) may still read it
        else:
            items = value if type(value) is list else [value]
            found += [(f"item {index} of the batched body" if items is value else "the body",
                       item) for index, item in enumerate(items) if isinstance(item, _Pairs)]
    if "=" in text:
        found.append(("the form body", parse_qsl(text, keep_blank_values=True)))
        if ";" in text:
            found.append(("the form body split on ';'",
                          parse_qsl(text.replace(";", "&"), keep_blank_values=True)))
    return found, broken


def graphql_in_body(content: bytes, content_type: str | None) -> str | None:
    """Why a GET, HEAD or OPTIONS body, to any host, carries a GraphQL write; None otherwise.

    A server may run the document in a read's body, so a string `query` (any case) in a JSON
    object, a batch item or a form that holds a mutation or subscription, or names one and does
    not parse, is a write; so is a persisted-query name beside a document that parses. Pass the
    decoded body (no Content-Encoding). Bytes that cannot name `query` cost one scan.
    """
    if not content:
        return None
    kind, charset = _media(content_type)
    plain = charset is None or charset in _UTF8
    if (kind != "application/graphql" and plain and b"\x00" not in content
            and _MAY_NAME_QUERY.search(content) is None):
        return None
    texts = _body_texts(content, charset)
    if isinstance(texts, str):
        return texts
    for text in texts:
        if kind == "application/graphql" and (why := _writes(text, "the body", False)):
            return why
        payloads, broken = _payloads(text)
        for where, pairs in payloads:
            documents = [value for name, value in pairs
                         if isinstance(value, str) and _named(name, "query")]
            for document in documents:
                if why := _writes(document, f"the 'query' in {where}", False):
                    return why
            hidden = _persisted([name for name, _ in pairs])
            if hidden and any(_parsed(document) is not None for document in documents):
                return (f"{where} names a persisted GraphQL query ({hidden[0]!r}) beside its "
                        "document; a server may run the stored one instead")
        if (broken or kind.startswith("multipart/")) and "query" in text.casefold() and (
                found := _WRITE_KEYWORD.search(text)):
            return (f"the body names 'query' and a GraphQL {found[1]} in a form the proxy "
                    "cannot parse; a server may still run it")
    return None
