"""A reviewer's edits and partial approvals, written back into the held request in the vendor's
own format (JSON wrapping, Stripe's bracketed form, QuickBooks' sparse updates)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from connectors_schemas import (
    Classification,
    ObjectSpec,
    Operation,
    UpdateSemantics,
    at_path,
    parse_body,
)
from connectors_schemas.models import BodyFormat
from review_api.models import EditSupport


class EditError(ValueError):
    """The edit cannot be expressed in this vendor's request; the message says why."""


def support(classification: Classification | None) -> EditSupport:
    """What a reviewer may change in this write, decided when it is held."""
    if classification is None:
        return EditSupport(reason="no connector describes this request")
    if classification.body_problem or classification.bulk or len(classification.records) != 1:
        return EditSupport(reason="only a single record's readable body can be edited")
    record = classification.records[0]
    if record.operation in (Operation.delete, Operation.action) or record.values is None:
        return EditSupport(reason=f"a {record.operation.value} carries no fields to edit")
    if classification.spec.body is BodyFormat.graphql or classification.route.body is \
            BodyFormat.graphql:
        return EditSupport(reason="GraphQL mutations are not edited")
    spec = classification.spec
    partial = (spec.update is UpdateSemantics.merge or spec.sparse_flag is not None
               or record.operation is Operation.create)
    return EditSupport(edits=True, partial=partial, reason=None if partial else
                       "a full update replaces the record: every field must be sent")


def form_pairs(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's encoding: nested objects as a[b]=, lists as a[0]=."""
    if isinstance(value, dict):
        pairs: list[tuple[str, str]] = []
        for key, item in value.items():
            pairs += form_pairs(item, f"{prefix}[{key}]" if prefix else str(key))
        return pairs
    if isinstance(value, list):
        pairs = []
        for index, item in enumerate(value):
            pairs += form_pairs(item, f"{prefix}[{index}]")
        return pairs
    if value is None:
        return [(prefix, "")]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]


def set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = target.get(part)
        if not isinstance(node, dict):
            node = target[part] = {}
        target = node
    target[parts[-1]] = value


ITEM_FIELD = re.compile(r"^(?P<list>[^.\[]+)\[(?P<key>[^\]]*)\](?:\.(?P<rest>.+))?$")


def top_field(name: str) -> str:
    """The body field a shown change is under: `items` for `items[si_1].price`."""
    return re.split(r"[.\[]", name, maxsplit=1)[0]


def _set_field(values: dict[str, Any], spec: ObjectSpec, name: str, value: Any) -> None:
    """A shown field set in the body; `items[si_1].quantity` is that field of the sent item
    whose key is si_1 (a keyed list, ObjectSpec.keyed_lists)."""
    found = ITEM_FIELD.match(name)
    if top_field(name) in spec.keyed_lists and name != top_field(name) and (
            found is None or not found["rest"]):
        raise EditError(f"{name}: edit a field of an item the request sends")
    if found is None or found["list"] not in spec.keyed_lists:
        set_path(values, name, value)
        return
    key = spec.keyed_lists[found["list"]].key
    sent = values.get(found["list"])
    item = next((item for item in sent if isinstance(item, dict)
                 and str(item.get(key)) == found["key"]), None) if isinstance(sent, list) else None
    if item is None or not found["rest"]:
        raise EditError(f"{name}: edit a field of an item the request sends")
    set_path(item, found["rest"], value)


def _keep_approved_items(values: dict[str, Any], spec: ObjectSpec,
                         approve_fields: list[str]) -> None:
    """A keyed list whose items were approved field by field (`items[si_1].quantity`) keeps
    only those items and, in each, its key and the fields approved: another item's change, or
    another field of the same item, was shown as a change of its own and was not approved."""
    approved: dict[str, dict[str, set[str] | None]] = {}
    whole: set[str] = set()
    for name in approve_fields:
        found = ITEM_FIELD.match(name)
        if found is None or found["list"] not in spec.keyed_lists:
            whole.add(top_field(name))  # the list itself (or another field) approved whole
            continue
        fields = approved.setdefault(found["list"], {})
        if not found["rest"]:
            fields[found["key"]] = None  # the item shown whole: kept whole
        elif fields.get(found["key"], set()) is not None:
            fields.setdefault(found["key"], set()).add(top_field(found["rest"]))
    for name, by_key in approved.items():
        sent = values.get(name)
        if name in whole or not isinstance(sent, list):
            continue
        key = spec.keyed_lists[name].key
        kept, seen = [], set()
        for item in sent:
            if not isinstance(item, dict) or str(item.get(key)) not in by_key:
                continue  # an added, removed or other item: not approved
            fields = by_key[str(item.get(key))]
            if str(item.get(key)) in seen and fields is not None:
                continue  # the same item again was shown whole, and not approved so
            seen.add(str(item.get(key)))
            kept.append(item if fields is None else
                        {field: value for field, value in item.items()
                         if field == key or field in fields})
        values[name] = kept


def rewrite(classification: Classification, content: bytes, content_type: str | None,
            edits: list[dict[str, Any]], approve_fields: list[str] | None) -> bytes:
    """The body to send instead: the reviewer's values set, unapproved fields left out."""
    if not support(classification).edits:
        raise EditError(support(classification).reason or "this write cannot be edited")
    spec, route = classification.spec, classification.route
    body_format = route.body or spec.body
    body = parse_body(content, content_type, body_format)
    values_path = route.values_path if route.values_path is not None else spec.values_path
    values = at_path(body, values_path)
    if not isinstance(values, dict):
        raise EditError("the body holds no record to edit")
    for edit in edits:
        _set_field(values, spec, str(edit["field"]), edit.get("new"))
    if approve_fields is not None:
        keep = {top_field(name) for name in approve_fields}
        # the request's own parameters go as sent: they are no field to approve or leave out
        keep |= set(spec.read_only) | {spec.id_field} | set(spec.parameters) | set(
            route.parameters)
        if route.update_if_body_has:
            keep.add(route.update_if_body_has)
        for name in list(values):
            if name not in keep:
                del values[name]
        _keep_approved_items(values, spec, approve_fields)
        if spec.sparse_flag and spec.update is UpdateSemantics.replace:
            values[spec.sparse_flag] = True  # a full update, partly approved, becomes sparse
    if body_format is BodyFormat.form:
        return urlencode(form_pairs(body)).encode()
    return json.dumps(body).encode()
