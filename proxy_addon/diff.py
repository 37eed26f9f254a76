"""Old versus new, field by field, under the vendor's update semantics, plus the RFC 6902 patch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonpatch

from connectors_schemas import Operation, UpdateSemantics

_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # dotted path inside the record
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class Diff:
    changes: list[FieldChange]
    patch: list[dict[str, Any]]


def same_json(a: Any, b: Any) -> bool:
    """JSON equality that tells true from 1 and a list from a tuple-shaped look-alike."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def leaves(record: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value. Objects are walked; lists are leaves, as vendors replace lists."""
    if not isinstance(record, dict) or (not record and prefix):
        return {prefix: record}
    found: dict[str, Any] = {}
    for key, value in record.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            found.update(leaves(value, path))
        else:
            found[path] = value
    return found


def _lookup(record: Any, path: str) -> Any:
    node = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def merge(current: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """The record after a partial update: nested objects merge, anything else replaces."""
    merged = dict(current)
    for key, value in proposed.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _changes(before: dict[str, Any], after: dict[str, Any], paths: list[str]) -> list[FieldChange]:
    found = []
    for path in paths:
        old, new = _lookup(before, path), _lookup(after, path)
        old = None if old is _MISSING else old
        new = None if new is _MISSING else new
        if not same_json(old, new):
            found.append(FieldChange(path, old, new))
    return found


def _ordered_union(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def compute_diff(
    operation: Operation,
    current: dict[str, Any] | None,
    proposed: dict[str, Any] | None,
    semantics: UpdateSemantics = UpdateSemantics.merge,
) -> Diff:
    """`current` None means the old record is unknown: old values show as null, no patch."""
    if operation is Operation.create:
        after = proposed or {}
        changes = [FieldChange(path, None, value) for path, value in leaves(after).items()]
        return Diff(changes, jsonpatch.make_patch({}, after).patch)
    if operation is Operation.delete:
        if current is None:
            return Diff([], [{"op": "remove", "path": ""}])
        changes = [FieldChange(path, value, None) for path, value in leaves(current).items()]
        return Diff(changes, [{"op": "remove", "path": ""}])
    proposed = proposed or {}
    if current is None:
        return Diff([FieldChange(path, None, new) for path, new in leaves(proposed).items()], [])
    if semantics is UpdateSemantics.merge:
        after = merge(current, proposed)
        paths = list(leaves(proposed))
    else:
        after = proposed
        paths = _ordered_union(leaves(current), leaves(proposed))
    return Diff(_changes(current, after, paths), jsonpatch.make_patch(current, after).patch)
