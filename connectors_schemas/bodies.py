"""Request bodies parsed the way each vendor reads them, before anything is compared."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from connectors_schemas.models import BodyFormat


class BodyError(ValueError):
    """The body cannot be read the way the vendor would read it."""


class AmbiguousBodyError(BodyError):
    """Servers read this body differently (a repeated key, a non-finite number): never a read."""


def strict_json(text: str, what: str = "the JSON body", exact_numbers: bool = False) -> Any:
    """JSON as every server reads it alike, or AmbiguousBodyError.

    Parsers disagree on a repeated key (first wins, last wins, error) and on NaN or Infinity,
    so a proxy that read the last key could pass what the vendor reads as a write. With
    `exact_numbers`, a number a float cannot hold exactly (`0.10000000000000000001`) is
    ambiguous too: for fingerprints, where two numbers must never read alike.
    """

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise AmbiguousBodyError(f"{what} repeats the key {key!r}")
            found[key] = value
        return found

    def constant(name: str) -> Any:
        raise AmbiguousBodyError(f"{what} holds {name}, which servers read differently")

    def number(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise AmbiguousBodyError(f"{what} holds the number {literal[:40]}, too large for "
                                     "servers to agree on")
        if exact_numbers and Decimal(literal) != Decimal(repr(value)):
            raise AmbiguousBodyError(f"{what} holds the number {literal[:40]}, which a float "
                                     "does not hold exactly")
        return value

    try:
        return json.loads(text, object_pairs_hook=unique, parse_constant=constant,
                          parse_float=number)
    except AmbiguousBodyError:
        raise
    except (ValueError, RecursionError) as exc:
        subject = "the body" if what == "the JSON body" else what
        raise BodyError(f"{subject} is not valid JSON: {exc}") from exc


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
    """`metadata[plan]=pro&items[0][price]=p1&expand[]=customer` into nested dicts and lists.

    A name given twice (`query=A&query=B`, or `a[b]=1&a=2`) is AmbiguousBodyError: Java, Go and
    URLSearchParams keep the first value, PHP and Rack the last, so no one reading is every
    server's. Only a `[]` list (`expand[]=a&expand[]=b`) may repeat.
    """
    root: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        parts = _form_key(key)
        node: Any = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            following = None if last else parts[index + 1]
            if isinstance(node, list):
                if part != "":
                    raise AmbiguousBodyError(f"the form key {key!r} mixes [] and [name]")
                if last:
                    node.append(value)
                    break
                node.append([] if following == "" else {})
                node = node[-1]
                continue
            if last:
                if part in node:
                    raise AmbiguousBodyError(f"the form body repeats the key {key!r}")
                node[part] = value
            else:
                default: Any = [] if following == "" else {}
                node = node.setdefault(part, default)
                if not isinstance(node, dict | list):
                    raise AmbiguousBodyError(f"the form key {key!r} is both a value and a "
                                             "container")
    return _lists_from_indexes(root)


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
        return strict_json(text)
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
