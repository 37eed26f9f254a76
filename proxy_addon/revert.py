"""The inverse of an executed write: restore the old values, or recreate a deleted record."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from connectors_schemas import Classification, Operation, UpdateSemantics, at_path
from connectors_schemas.models import BodyFormat
from proxy_addon.edits import form_pairs, set_path
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
        fields = [c.field for c in approval.changes if c.kind == "set"]
        if not fields:
            raise RevertError("the write changed no field that can be set back")
        restored: dict[str, Any] = {}
        for name in fields:
            set_path(restored, name, at_path(old, name))
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
