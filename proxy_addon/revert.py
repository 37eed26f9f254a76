"""The inverse of an executed write: restore the old values, or recreate a deleted record."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from connectors_schemas import Classification, ObjectSpec, Operation, UpdateSemantics, at_path
from connectors_schemas.models import BodyFormat
from proxy_addon.edits import ITEM_FIELD, form_pairs, set_path, top_field
from proxy_addon.proposals import WriteRequest
from proxy_addon.sealing import HeldRequest
from review_api.models import Approval


class RevertError(ValueError):
    """This write cannot be undone through the vendor's API; the message says why."""


def _body(classification: Classification, values: dict[str, Any], body_format: BodyFormat,
          values_path: str | None) -> tuple[bytes, str]:
    wrapped: dict[str, Any] = {}
    if values_path:
        set_path(wrapped, values_path, values)
    else:
        wrapped = values
    if body_format is BodyFormat.form:
        return urlencode(form_pairs(wrapped)).encode(), "application/x-www-form-urlencoded"
    return json.dumps(wrapped).encode(), "application/json"


def _restore(restored: dict[str, Any], spec: ObjectSpec, old: dict[str, Any], name: str,
             by_reference: bool) -> None:
    """The field's value before, into the inverse's body: a keyed list item's field as that
    item (`items[0][id]=si_1&items[0][price]=...`), an expanded reference as its key."""
    found = ITEM_FIELD.match(name)
    keyed = spec.keyed_lists.get(found["list"]) if found is not None else None
    if top_field(name) in spec.keyed_lists and name != top_field(name) and (
            found is None or keyed is None or not found["rest"]):
        raise RevertError(f"{name}: an item sent whole (twice, or by a key no field path can "
                          "name) cannot be set back; revert this one by hand")
    if found is None or keyed is None:
        value = at_path(old, name)
        path = name
        item: dict[str, Any] = restored
    else:
        held = at_path(old.get(found["list"]), keyed.record_path)
        before = next((each for each in held if isinstance(each, dict)
                       and str(each.get(keyed.key)) == found["key"]), None) \
            if isinstance(held, list) else None
        if before is None:
            raise RevertError(f"{name}: the item as it was before is unknown")
        items = restored.setdefault(found["list"], [])
        item = next((each for each in items if each[keyed.key] == found["key"]), None) or {}
        if not item:
            item[keyed.key] = found["key"]
            items.append(item)
        value, path = at_path(before, found["rest"]), found["rest"]
    reference = spec.reference_key or "id"
    if by_reference and isinstance(value, dict) and reference in value:
        value = value[reference]
    set_path(item, path, value)


def inverse(approval: Approval, classification: Classification, held: HeldRequest,
            before: dict[str, dict[str, Any]]) -> WriteRequest:
    if approval.status.value != "executed":
        raise RevertError(f"only an executed write can be reverted; this one is "
                          f"{approval.status.value}")
    if len(classification.records) != 1 or classification.bulk:
        raise RevertError("only a single-record write can be reverted")
    record = classification.records[0]
    spec, route = classification.spec, classification.route
    if record.record_id is None or record.record_id not in before:
        raise RevertError("the record as it was before is unknown (it could not be fetched)")
    old = before[record.record_id]
    body_format = route.body or spec.body
    values_path = route.values_path if route.values_path is not None else spec.values_path
    headers = [(k, v) for k, v in held.headers
               if k.lower() not in ("content-length", "content-encoding", "content-type",
                                    "idempotency-key")]
    if record.operation is Operation.update:
        if spec.update is not UpdateSemantics.merge or spec.sparse_flag:
            raise RevertError(f"{classification.system} updates need the record's current "
                              "version token; revert this one by hand")
        if any(c.kind != "set" and top_field(c.field) in spec.keyed_lists
               for c in approval.changes):
            raise RevertError("items added to or removed from a list cannot be set back; "
                              "revert this one by hand")
        fields = [c for c in approval.changes if c.kind == "set"]
        if not fields:
            raise RevertError("the write changed no field that can be set back")
        restored: dict[str, Any] = {}
        for change in fields:
            _restore(restored, spec, old, change.field, by_reference=body_format is
                     BodyFormat.form and not isinstance(change.new, dict | list))
        content, kind = _body(classification, restored, body_format, values_path)
        url = held.url
        method = held.method
    elif record.operation is Operation.delete:
        create = next((r for r in spec.routes if r.operation is Operation.create
                       and "{id}" not in r.path and r.bulk is None), None)
        if create is None:
            raise RevertError(f"a deleted {classification.object_type} cannot be recreated "
                              f"through {classification.system}'s API")
        values = {k: v for k, v in old.items() if k not in spec.read_only and k != spec.id_field}
        content, kind = _body(classification, values, create.body or body_format,
                              create.values_path if create.values_path is not None
                              else values_path)
        path = classification.base + create.path
        for name, value in classification.params.items():
            path = path.replace("{" + name + "}", value)
        parts = urlsplit(held.url)
        url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        method = create.method
    else:
        raise RevertError(f"a {record.operation.value} cannot be reverted")
    parts = urlsplit(url)
    return WriteRequest(method=method, url=url, host=parts.hostname or "", path=parts.path,
                        headers=[*headers, ("Content-Type", kind)], content=content,
                        raw_content=content, query=[])
