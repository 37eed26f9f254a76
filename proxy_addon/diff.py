"""Old versus new, field by field, under the vendor's update semantics, plus the RFC 6902 patch."""

from __future__ import annotations

import base64
import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import jsonpatch

from connectors_schemas import ObjectSpec, Operation, RecordWrite, UpdateSemantics, at_path
from connectors_schemas.models import BodyFormat, KeyedList, Route

_MISSING = object()


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str  # dotted path inside the record
    old: Any
    new: Any
    kind: str = "set"  # set | add (an item added, e.g. a comment) | remove (an item removed)


@dataclass(frozen=True, slots=True)
class Diff:
    changes: list[FieldChange]
    patch: list[dict[str, Any]]
    # What the agent sent that is no field of the record (request options such as Stripe's
    # proration_behavior, an action's arguments): name -> value as sent, shown beside changes.
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)


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


def leaves(record: Any, prefix: str = "", whole: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Dotted path -> value. Objects are walked; lists are leaves, as vendors replace lists.

    A key holding a dot cannot be told apart in a dotted path (`metadata[a.b]`): an object with
    one is a leaf, shown whole, and so is the value of such a key at the top; `whole` names
    top-level keys not walked either (`a` beside a key `a.b`, whose paths would read alike).
    """
    if not isinstance(record, dict) or (not record and prefix):
        return {prefix: record}
    found: dict[str, Any] = {}
    for key, value in record.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if (isinstance(value, dict) and value and "." not in str(key)
                and (prefix or str(key) not in whole)
                and not any("." in str(inner) for inner in value)):
            found.update(leaves(value, path))
        else:
            found[path] = value
    return found


def _lookup(record: Any, path: str) -> Any:
    if "." not in path or (isinstance(record, dict) and path in record):  # a flat field
        return record.get(path, _MISSING) if isinstance(record, dict) else _MISSING
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


def _pointer(path: str) -> str:
    if "." not in path and "~" not in path and "/" not in path:
        return "/" + path
    return "/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in path.split("."))


def _empty(value: Any) -> bool:
    """Absent, null, "", [] or an object of only such: no value, to an empty_is_absent vendor."""
    if value is _MISSING or value is None:
        return True
    if isinstance(value, str | list):
        return not value
    if isinstance(value, dict):
        return all(_empty(item) for item in value.values())
    return False


def _pruned(value: Any) -> Any:
    """The value without its empty members: what such a vendor keeps of it."""
    if isinstance(value, dict):
        return {key: _pruned(item) for key, item in value.items() if not _empty(item)}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def _as_is(value: Any) -> Any:
    return value


def _walked(value: Any, key: str, whole: bool) -> bool:
    """Whether `leaves` walks this value under this key (its fields are paths of their own)."""
    return (isinstance(value, dict) and bool(value) and "." not in key and not whole
            and not any("." in str(inner) for inner in value))


def _nothing_to_show(old: Any, new: Any, current_walked: bool, key: str, whole: bool) -> bool:
    """Under empty_is_absent: both sides empty, or an object whose own leaves are compared."""
    if _empty(old) and _empty(new):
        return True
    if _walked(new, key, whole) and _empty(old):
        return True  # the new object's fields are paths of their own
    return current_walked and _walked(old, key, whole) and _empty(new)


def _changes_and_patch(current: dict[str, Any], after: dict[str, Any], paths: list[str],
                       empty_is_absent: bool = False, current_walked: bool = False,
                       whole: frozenset[str] = frozenset()) -> Diff:
    """One pass over the paths the write can touch: linear in the write, not the record.

    With `empty_is_absent` a path empty on both sides is no change and gets no patch operation,
    and objects and lists are shown and patched without their empty members.
    """
    changes: list[FieldChange] = []
    operations: list[dict[str, Any]] = []
    added: set[str] = set()
    shown = _pruned if empty_is_absent else _as_is
    for path in paths:
        # one key holding a dot is a field of its own, never a path through its parts
        flat = "." in path and (path in after or path in current)
        if flat:
            old, new = current.get(path, _MISSING), after.get(path, _MISSING)
        else:
            old, new = _lookup(current, path), _lookup(after, path)
        key = path if flat else path.rsplit(".", 1)[-1]
        if empty_is_absent and _nothing_to_show(old, new, current_walked, key,
                                                "." not in path and path in whole):
            continue
        shown_old = None if old is _MISSING else shown(old)
        shown_new = None if new is _MISSING else shown(new)
        if same_json(shown_old, shown_new):
            continue
        changes.append(FieldChange(path, shown_old, shown_new))
        pointer = "/" + path.replace("~", "~0").replace("/", "~1") if flat else _pointer(path)
        if new is _MISSING:
            operations.append({"op": "remove", "path": pointer})
        elif old is not _MISSING or flat:
            operations.append({"op": "replace" if old is not _MISSING else "add",
                               "path": pointer, "value": shown_new})
            added.add(path)
        else:
            # Add at the shallowest ancestor the current record lacks (or holds as a
            # non-object, replaced whole), once.
            parts = path.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in added:
                    break
                held = _lookup(current, prefix)
                if held is _MISSING or not isinstance(held, dict):
                    added.add(prefix)
                    operations.append({"op": "add" if held is _MISSING else "replace",
                                       "path": _pointer(prefix),
                                       "value": shown(_lookup(after, prefix))})
                    break
    return Diff(changes, operations)


def _dotted_heads(*records: dict[str, Any]) -> frozenset[str]:
    """Top-level names that begin a top-level key holding a dot (`a` of `a.b`)."""
    return frozenset(str(key).split(".")[0] for record in records for key in record
                     if "." in str(key))


def _ordered_union(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys([*first, *second]))


def compute_diff(
    operation: Operation,
    current: dict[str, Any] | None,
    proposed: dict[str, Any] | None,
    semantics: UpdateSemantics = UpdateSemantics.merge,
    empty_is_absent: bool = False,
) -> Diff:
    """`current` None means the old record is unknown: old values show as null, no patch.

    `empty_is_absent` (the object's connector flag): null, "", {} and [] are all "no value", so
    sending one for a field that has none is no change; clearing a real value still is.
    """
    if operation is Operation.create:
        after = proposed or {}
        if empty_is_absent:
            after = _pruned(after)  # an SDK's create sends every field, unset ones as ""
        changes = [FieldChange(path, None, value) for path, value in leaves(after).items()]
        return Diff(changes, jsonpatch.make_patch({}, after).patch)
    if operation is Operation.delete:
        if current is None:
            return Diff([], [{"op": "remove", "path": ""}])
        changes = [FieldChange(path, value, None) for path, value in leaves(current).items()
                   if not (empty_is_absent and _empty(value))]
        return Diff(changes, [{"op": "remove", "path": ""}])
    proposed = proposed or {}
    if current is None:
        # Old values unknown: a "" may be clearing one, so every field sent is shown.
        return Diff([FieldChange(path, None, new) for path, new in leaves(proposed).items()], [])
    whole = _dotted_heads(current, proposed)
    if semantics is UpdateSemantics.merge:
        after = merge(current, proposed)
        paths = list(leaves(proposed, whole=whole))
    else:
        after = proposed
        paths = _ordered_union(leaves(current, whole=whole), leaves(proposed, whole=whole))
    return _changes_and_patch(current, after, paths, empty_is_absent,
                              current_walked=semantics is UpdateSemantics.replace, whole=whole)


def _without(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in fields}


def _keyed_lists(record: dict[str, Any], list_keys: dict[str, str]) -> dict[str, Any]:
    """Lists of objects compared by one key each, so ["bug"] equals [{"name": "bug", ...}]."""
    if not list_keys:
        return record
    keyed = dict(record)
    for field, key in list_keys.items():
        items = keyed.get(field)
        if isinstance(items, list):
            keyed[field] = [item.get(key) if isinstance(item, dict) else item for item in items]
    return keyed


_BODY_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _render(template: Any, body: Any) -> Any:
    """An action's effect, with `{a.b}` taken from the request body."""
    if isinstance(template, str) and "{" in template:
        return _BODY_REF.sub(lambda m: str(at_path(body, m[1]) or ""), template)
    return template


def _typed_like(proposed: Any, current: Any) -> Any:
    """Form values arrive as strings: read them as the type the record already holds."""
    if isinstance(proposed, dict):
        current = current if isinstance(current, dict) else {}
        return {key: _typed_like(value, current.get(key)) for key, value in proposed.items()}
    if isinstance(proposed, list):
        return [_typed_like(item, None) for item in proposed]
    if not isinstance(proposed, str):
        return proposed
    if proposed == "":
        return None  # an empty form value unsets the field
    if isinstance(current, bool) and proposed in ("true", "false"):
        return proposed == "true"
    for kind in (int, float):
        if isinstance(current, kind) and not isinstance(current, bool):
            try:
                return kind(proposed)
            except ValueError:
                return proposed
    return proposed


def _decoded(record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    decoded = dict(record)
    for field in fields:
        value = decoded.get(field)
        if isinstance(value, str):
            try:
                decoded[field] = base64.b64decode("".join(value.split()), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                pass  # not base64 text: shown as sent
    return decoded


def _dereferenced(current: Any, proposed: Any, key: str) -> Any:
    """The record with each object the write names by a scalar shown as that scalar: Stripe
    expands `price` to `{id: "price_1", ...}` but takes `price=price_1`, the same reference."""
    if not isinstance(current, dict) or not isinstance(proposed, dict):
        return current
    seen = dict(current)
    for name, sent in proposed.items():
        held = current.get(name)
        if isinstance(sent, dict):
            seen[name] = _dereferenced(held, sent, key)
        elif (isinstance(sent, str | int) and sent != "" and isinstance(held, dict)
              and key in held):  # "" unsets what is held, whatever it is: shown whole
            seen[name] = held[key]
        elif (isinstance(sent, list) and isinstance(held, list)
              and all(isinstance(item, str | int) for item in sent)):
            seen[name] = [item[key] if isinstance(item, dict) and key in item else item
                          for item in held]
    return seen


def _truthy(value: Any) -> bool:
    return value is True or value == "true"


def _falsy(value: Any) -> bool:
    return value is _MISSING or value is None or value is False or value == "false"


@dataclass(slots=True)
class _Keyed:
    """Keyed list items as fields of their own (`items[si_1]`), and how to patch them back."""

    current: dict[str, Any] | None
    values: dict[str, Any]
    changes: list[FieldChange]
    # pointer of `items[si_1]` -> of that item in the fetched record; None: not held there
    pointers: dict[str, str | None]
    patch: list[dict[str, Any]]  # adds, then removes from the last item down


def _keyed(lists: dict[str, KeyedList], current: dict[str, Any] | None,
           values: dict[str, Any]) -> _Keyed:
    """Each sent item of a keyed list becomes the field `list[key]`, compared field by field
    with the item of that key in the record; an item without the key is added, one flagged
    removed is removed."""
    keyed = _Keyed(None if current is None else dict(current), dict(values), [], {}, [])
    removes: list[tuple[int, str]] = []
    for name, spec in lists.items():
        sent = keyed.values.get(name)
        if not isinstance(sent, list):
            continue  # not a list of items: compared as sent
        del keyed.values[name]
        held_value = keyed.current.pop(name, None) if keyed.current is not None else None
        held = at_path(held_value, spec.record_path)
        held = held if isinstance(held, list) else []
        index_of = {str(item[spec.key]): index for index, item in enumerate(held)
                    if isinstance(item, dict) and item.get(spec.key) not in (None, "")}
        base = _pointer(name) + ("/" + spec.record_path.replace(".", "/")
                                 if spec.record_path else "")
        template = held[0] if held and isinstance(held[0], dict) else None
        for item in sent:
            ident = item.get(spec.key) if isinstance(item, dict) else None
            if ident in (None, ""):
                added = _typed_like(_without(item, [spec.key]), template) \
                    if isinstance(item, dict) else item
                keyed.changes.append(FieldChange(name, None, added, "add"))
                keyed.patch.append({"op": "add", "path": base + "/-", "value": added})
                continue
            path, index = f"{name}[{ident}]", index_of.get(str(ident))
            if spec.remove_flag is not None and _truthy(item.get(spec.remove_flag)):
                old = held[index] if index is not None else None
                keyed.changes.append(FieldChange(path, old, None, "remove"))
                if index is not None:
                    removes.append((index, f"{base}/{index}"))
                continue
            # a flag plainly false is no change; any other value is sent, so it is shown
            fields = _without(item, [spec.key, *([spec.remove_flag] if spec.remove_flag
                                                 and _falsy(item.get(spec.remove_flag)) else [])])
            if path in keyed.values or any(mark in str(ident) for mark in ".[]"):
                # the same item twice, or a key no dotted path can name: shown whole, as sent
                old = _without(held[index], [spec.key]) if index is not None else None
                keyed.changes.append(FieldChange(path, old, fields))
                continue
            keyed.values[path] = fields
            keyed.pointers[_pointer(path)] = None if index is None else f"{base}/{index}"
            if index is not None and keyed.current is not None:
                keyed.current[path] = _without(held[index], [spec.key])
    keyed.patch += [{"op": "remove", "path": pointer}
                    for _, pointer in sorted(set(removes), reverse=True)]
    return keyed


def _repointed(patch: list[dict[str, Any]], keyed: _Keyed) -> list[dict[str, Any]]:
    """Patch operations on `list[key]` fields moved to the items' places in the record; those
    on items the record does not hold are left out, as there is nowhere to apply them."""
    moved = []
    for op in patch:
        head, _, rest = op["path"][1:].partition("/")
        if "/" + head not in keyed.pointers:
            moved.append(op)
        elif (place := keyed.pointers["/" + head]) is not None:
            moved.append({**op, "path": place + ("/" + rest if rest else "")})
    return moved + keyed.patch


def _parameters(values: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Takes the request's own options out of the values, as sent."""
    return {name: values.pop(name) for name in names if name in values}


def _action(current: dict[str, Any] | None, sets: dict[str, Any], body: Any,
            values: dict[str, Any], parameters: dict[str, Any]) -> Diff:
    """What the action sets, and each value sent for a field the record has (old -> new);
    values for no field of the record are the action's parameters."""
    changes = []
    for name, template in sets.items():
        new = _render(template, body)
        old = at_path(current, name) if current is not None else None
        if not same_json(old, new):
            changes.append(FieldChange(name, old, new))
    if current is None:
        parameters = {**values, **parameters}  # no record to tell its fields from the rest
    else:
        for path, new in leaves(values).items():
            old = _lookup(current, path)
            if old is _MISSING:
                parameters[path] = new
            elif path not in sets and not same_json(old, new):
                changes.append(FieldChange(path, old, new))
    patch = [{"op": "replace", "path": _pointer(c.field), "value": c.new} for c in changes]
    return Diff(changes, patch, parameters)


def _holds(spec: ObjectSpec, current: dict[str, Any] | None, name: str, item: Any,
           loosely: bool = False) -> bool | None:
    """Whether the fetched list `name` holds the item (compared by its `list_keys` key), so
    adding it again or removing one it lacks is no change; None when the list is unknown.

    `loosely`: text compared case-insensitively, as vendors may match names (GitHub's labels):
    a remove is no change only when the list lacks the item in every spelling."""
    items = at_path(current, name) if current is not None else None
    if not isinstance(items, list):
        return None
    key = spec.list_keys.get(name)

    def keyed(value: Any) -> Any:
        value = value.get(key) if key and isinstance(value, dict) else value
        return value.casefold() if loosely and isinstance(value, str) else value

    return any(same_json(keyed(held), keyed(item)) for held in items)


def diff_record(spec: ObjectSpec, record: RecordWrite, current: dict[str, Any] | None,
                operation: Operation, sets: dict[str, Any], body: Any, *,
                route: Route | None = None) -> Diff:
    """The diff of one record under its object's rules (read-only fields, added items, ops,
    keyed list items, references, request parameters); `route` adds its own parameters and
    body format."""
    body_format = (route.body if route is not None else None) or spec.body
    names = [*spec.parameters, *(route.parameters if route is not None else [])]
    reference = spec.reference_key or ("id" if body_format is BodyFormat.form else None)
    values = dict(record.values) if record.values is not None else None
    parameters = _parameters(values, names) if values is not None else {}
    if operation is Operation.action:
        sent = _without(values or {}, [*spec.read_only, spec.id_field])
        if current is not None and reference is not None:
            current = _dereferenced(current, sent, reference)
        if body_format is BodyFormat.form:
            sent = _typed_like(sent, current)
        return _action(current, sets, body, sent, parameters)
    if current is not None:
        current = _keyed_lists(_without(current, spec.read_only), spec.list_keys)
        current = _decoded(current, spec.base64_fields)
    if operation is Operation.delete:  # what a delete is sent says how, not what it changes
        diff = compute_diff(operation, current, None, spec.update, spec.empty_is_absent)
        return Diff(diff.changes, diff.patch,
                    {**_without(values or {}, [*spec.read_only, spec.id_field]), **parameters})
    semantics = spec.update
    if values is not None and spec.sparse_flag is not None:
        if values.pop(spec.sparse_flag, None) is True:
            semantics = UpdateSemantics.merge
    extra: list[FieldChange] = []
    keyed: _Keyed | None = None
    if values is not None:
        for name in spec.added_items:
            if name in values:
                extra.append(FieldChange(name, None, values.pop(name), "add"))
        for name, operations in (record.ops or {}).items():
            for step in operations if isinstance(operations, list) else []:
                for verb, value in (step.items() if isinstance(step, dict) else []):
                    if verb in ("set", "edit"):
                        values[name] = value
                    elif verb == "add" and _holds(spec, current, name, value) is not True:
                        extra.append(FieldChange(name, None, value, "add"))  # not there yet
                    elif verb == "remove" and _holds(spec, current, name, value,
                                                     loosely=True) is not False:
                        extra.append(FieldChange(name, value, None, "remove"))
        values = _keyed_lists(_without(values, spec.read_only), spec.list_keys)
        values = _decoded(values, spec.base64_fields)
        if spec.keyed_lists and operation is not Operation.create:
            keyed = _keyed(spec.keyed_lists, current, values)
            current, values = keyed.current, keyed.values
            extra = keyed.changes + extra
        if current is not None and reference is not None:
            current = _dereferenced(current, values, reference)
        if body_format is BodyFormat.form:
            values = _typed_like(values, current)
    diff = compute_diff(operation, current, values, semantics, spec.empty_is_absent)
    patch = diff.patch if keyed is None or current is None else _repointed(diff.patch, keyed)
    return Diff(diff.changes + extra, patch, parameters)
