"""Request bodies parsed the way each vendor reads them, before anything is compared."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import graphql

from connectors_schemas.models import BodyFormat


class BodyError(ValueError):
    """The body cannot be read the way the vendor would read it."""


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def _form_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts += _BRACKETS.findall("[" + rest)
    return parts


def _lists_from_indexes(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {key: _lists_from_indexes(value) for key, value in node.items()}
        # ASCII digits only: "²".isdigit() is true, but it is no list index.
        if converted and all(key.isascii() and key.isdigit() for key in converted):
            return [converted[key] for key in sorted(converted, key=int)]
        return converted
    if isinstance(node, list):
        return [_lists_from_indexes(item) for item in node]
    return node


def parse_form(text: str) -> dict[str, Any]:
    """`metadata[plan]=pro&items[0][price]=p1&expand[]=customer` into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        parts = _form_key(key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = None if last else parts[index + 1]
            if isinstance(node, list):
                if part != "":
                    raise BodyError(f"form key {key!r} mixes [] and [name]")
                if last:
                    node.append(value)
                    break
                node.append([] if following == "" else {})
                node = node[-1]
                continue
            if last:
                node[part] = value
            else:
                default: Any = [] if following == "" else {}
                node = node.setdefault(part, default)
                if not isinstance(node, dict | list):
                    raise BodyError(f"form key {key!r} is both a value and a container")
    return _lists_from_indexes(root)


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


def parse_graphql(body: Any, raw_text: str | None = None) -> GraphQLOperation:
    if isinstance(body, dict):
        query, variables, operation_name = (body.get("query"), body.get("variables") or {},
                                            body.get("operationName"))
    elif raw_text is not None:
        query, variables, operation_name = raw_text, {}, None
    else:
        raise BodyError("a GraphQL request body must be a JSON object with a 'query'")
    if not isinstance(query, str):
        raise BodyError("a GraphQL request body must carry the operation in 'query'")
    if not isinstance(variables, dict):
        raise BodyError("GraphQL 'variables' must be a JSON object")
    try:
        document = graphql.parse(query)
    except graphql.GraphQLError as exc:
        raise BodyError(f"the GraphQL document does not parse: {exc.message}") from exc
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name and op.name.value == operation_name]
    if len(operations) != 1:
        raise BodyError("the GraphQL document must name exactly one operation to run")
    operation = operations[0]
    fields = [
        GraphQLField(
            selection.name.value,
            {arg.name.value: graphql.value_from_ast_untyped(arg.value, variables)
             for arg in selection.arguments or ()},
        )
        for selection in operation.selection_set.selections
        if isinstance(selection, graphql.FieldNode)
    ]
    if not fields and operation.operation is graphql.OperationType.MUTATION:
        raise BodyError("the GraphQL operation selects no field (fragments at the top level "
                        "are not read)")
    return GraphQLOperation(operation.operation.value,
                            operation.name.value if operation.name else None, fields)


def parse_body(content: bytes, content_type: str | None, expected: BodyFormat) -> Any:
    """The parsed body, or None when there is none; BodyError says what is wrong."""
    if not content.strip():
        return None
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    if expected is BodyFormat.form or kind == "application/x-www-form-urlencoded":
        return parse_form(text)
    if kind == "application/graphql":
        return {"query": text}
    if "json" in kind or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BodyError(f"the body is not valid JSON: {exc}") from exc
    raise BodyError(f"the body is not JSON ({kind or 'no content type'})")


def at_path(value: Any, path: str | None) -> Any:
    """`a.b` (or `a.0.b` into a list); keys compared case-insensitively when not found exactly."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, list) and part.isascii() and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
            continue
        if not isinstance(value, dict):
            return None
        if part in value:
            value = value[part]
            continue
        folded = {key.lower(): key for key in value}
        if part.lower() not in folded:
            return None
        value = value[folded[part.lower()]]
    return value
