"""The review API's OpenAPI 3 description, served at /openapi.json and checked by schemathesis."""

from __future__ import annotations

from typing import Any

from review_api.models import Approval, AuditEntry, Status
from review_api.traffic import DECISIONS, RISK_FLAGS, RISK_LEVELS, TrafficEntry

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad request body or query", 401: "no reviewer token",
            403: "routed to other groups (traffic: not in the auditor group)",
            404: "no such approval (or not routed to you)", 409: "no longer pending",
            422: "the edits cannot be expressed in the vendor's request"}
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _decision(summary: str, approve: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"note": {"type": "string", "maxLength": 4000}}
    if approve:
        properties["edits"] = {"type": "array", "items": {
            "type": "object", "required": ["field"], "additionalProperties": False,
            "properties": {"field": {"type": "string"}, "new": {}}}}
        properties["approve_fields"] = {"type": "array", "minItems": 1,
                                        "items": {"type": "string"}}
    return {
        "summary": summary,
        "parameters": [{"$ref": "#/components/parameters/approval_id"}],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": properties}}}},
        "responses": {"200": _json({"$ref": "#/components/schemas/Approval"}, "the approval"),
                      **_errors(400, 401, 403, 404, 409, *([422] if approve else []))},
    }


_BULK_RESULT = {"type": "object", "required": ["id", "ok", "status", "error"], "properties": {
    "id": {"type": "string"}, "ok": {"type": "boolean"},
    "status": {"type": "string", "nullable": True}, "error": {"type": "string", "nullable": True}}}
_AWAY = {"type": "object", "required": ["reviewer", "until", "delegate"], "properties": {
    "reviewer": {"type": "string"}, "until": {"type": "string", "format": "date-time"},
    "delegate": {"type": "string", "nullable": True}}}

# What each status means for the write, since approved no longer says whether it was sent.
STATUS_MEANINGS = {
    Status.pending: "held, waiting for reviewers",
    Status.approved: "approved, not yet claimed for sending by any replica",
    Status.sending: "claimed by one replica and on its way upstream (never sent twice)",
    Status.rejected: "rejected by a reviewer; nothing was sent",
    Status.expired: "no decision in time; nothing was sent",
    Status.denied: "refused by policy; nothing was sent",
    Status.executed: "sent; upstream answered (see result)",
    Status.failed: "approved but never sent, or sent and no answer came",
    Status.outcome_unknown: "its sender stopped while sending it: check upstream, then resolve",
    Status.stale: "the record changed after review; nothing was sent",
}


def openapi() -> dict[str, Any]:
    approval = Approval.model_json_schema(ref_template="#/components/schemas/{model}")
    entry = AuditEntry.model_json_schema(ref_template="#/components/schemas/{model}")
    traffic = TrafficEntry.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas = {**approval.pop("$defs", {}), **entry.pop("$defs", {}),
               **traffic.pop("$defs", {}), "Approval": approval, "AuditEntry": entry,
               "TrafficEntry": traffic}
    statuses = [status.value for status in Status]
    schemas["Status"]["description"] = "\n".join(
        f"- `{status.value}`: {STATUS_MEANINGS[status]}" for status in Status)
    return {
        "openapi": "3.0.3",
        "info": {"title": "hitl-proxy review API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {"approval_id": {"name": "approval_id", "in": "path", "required": True,
                                           "schema": {"type": "string"}}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"security": [], "responses": {
                "200": _json({"type": "object"}, "ready")}}},
            "/api/approvals": {"get": {
                "parameters": [
                    {"name": "status", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": statuses}},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                    {"name": "offset", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json({"type": "object", "required": ["approvals", "total"],
                                            "properties": {"total": {"type": "integer"},
                                                           "approvals": {"type": "array", "items": {
                                                "$ref": "#/components/schemas/Approval"}}}},
                                           "approvals, oldest first"),
                              **_errors(400, 401)}}},
            "/api/approvals/{approval_id}": {"get": {
                "parameters": [{"$ref": "#/components/parameters/approval_id"}],
                "responses": {"200": _json({"$ref": "#/components/schemas/Approval"}, "found"),
                              **_errors(401, 404)}}},
            "/api/approvals/{approval_id}/approve": {"post": _decision("approve (one vote)",
                                                                      approve=True)},
            "/api/approvals/{approval_id}/reject": {"post": _decision("reject", approve=False)},
            "/api/approvals/{approval_id}/resolve": {"post": {
                "parameters": [{"$ref": "#/components/parameters/approval_id"}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["outcome"],
                    "properties": {"outcome": {"type": "string", "enum": ["executed", "failed"]},
                                   "note": {"type": "string"}}}}}},
                "responses": {"200": _json({"$ref": "#/components/schemas/Approval"}, "resolved"),
                              **_errors(400, 401, 404, 409)}}},
            "/api/approvals/{approval_id}/revert": {"post": {
                "parameters": [{"$ref": "#/components/parameters/approval_id"}],
                "responses": {"201": _json({"$ref": "#/components/schemas/Approval"},
                                           "the inverse write, held for review"),
                              **_errors(401, 404, 422)}}},
            "/api/approvals/decide": {"post": {
                "summary": "decide many: each id checked on its own (routing, owner, quorum, "
                           "fingerprint); 200 even when some failed",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ids", "decision"],
                    "additionalProperties": False, "properties": {
                        "ids": {"type": "array", "minItems": 1, "maxItems": 500,
                                "items": {"type": "string", "minLength": 1}},
                        "decision": {"type": "string", "enum": ["approve", "reject"]},
                        "note": {"type": "string", "maxLength": 4000},
                        "fingerprints": {"type": "object",
                                         "additionalProperties": {"type": "string"}}}}}}},
                "responses": {"200": _json({"type": "object", "required": ["results"],
                                            "properties": {"results": {"type": "array",
                                                                       "items": _BULK_RESULT}}},
                                           "one result per id, in the order given"),
                              **_errors(400, 401)}}},
            "/api/reviewers/me/away": {
                "put": {"summary": "away until a date or time, with a delegate (or none)",
                        "requestBody": {"required": True, "content": {"application/json": {
                            "schema": {"type": "object", "required": ["until"],
                                       "additionalProperties": False, "properties": {
                                           "until": {"anyOf": [
                                               {"type": "string", "format": "date"},
                                               {"type": "string", "format": "date-time"}]},
                                           "delegate": {"type": "string",
                                                        "nullable": True}}}}}},
                        "responses": {"200": _json(_AWAY, "away until then"),
                                      **_errors(400, 401),
                                      "422": _json(_ERROR, "until has passed or cannot be "
                                                           "read, or the delegate is not "
                                                           "another configured reviewer")}},
                "delete": {"summary": "back: nobody acts for you any more",
                           "responses": {"200": _json({"type": "object"}, "back"),
                                         **_errors(401)}}},
            "/api/reviewers/away": {"get": {
                "responses": {"200": _json({"type": "object", "required": ["away"],
                                            "properties": {"away": {"type": "array",
                                                                    "items": _AWAY}}},
                                           "reviewers away now"),
                              **_errors(401)}}},
            "/api/audit": {"get": {
                "parameters": [{"name": "approval_id", "in": "query", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object", "required": ["entries"],
                                            "properties": {"entries": {"type": "array", "items": {
                                                "$ref": "#/components/schemas/AuditEntry"}}}},
                                           "entries in order: those of approvals routed "
                                           "to you (every entry for the auditor group)"),
                              **_errors(400, 401, 404)}}},
            "/api/stats": {"get": {"responses": {"200": _json({"type": "object"}, "stats"),
                                                 **_errors(401)}}},
            "/api/traffic": {"get": {
                "summary": "every request through the proxy, newest first (auditors only)",
                "parameters": _traffic_parameters(),
                "responses": {"200": _json({"type": "object", "required": ["entries", "next"],
                                            "properties": {
                                                "entries": {"type": "array", "items": {
                                                    "$ref": "#/components/schemas/TrafficEntry"}},
                                                "next": {"type": "string", "nullable": True}}},
                                           "a page; pass `next` as `cursor` for the next one"),
                              **_errors(400, 401, 403)}}},
            "/api/traffic/export": {"get": {
                "summary": "every match, oldest first, streamed as JSON lines, CSV or HAR 1.2",
                "parameters": [*_traffic_parameters(paged=False),
                               {"name": "format", "in": "query", "required": False,
                                "schema": {"type": "string", "enum": ["jsonl", "csv", "har"]}}],
                "responses": {"200": {"description": "the export, as a download", "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}}}},
                    **_errors(400, 401, 403)}}},
        },
    }


def _traffic_parameters(paged: bool = True) -> list[dict[str, Any]]:
    def query(name: str, schema: dict[str, Any], many: bool = False) -> dict[str, Any]:
        found = {"name": name, "in": "query", "required": False,
                 "schema": {"type": "array", "items": schema} if many else schema}
        return {**found, "style": "form", "explode": True} if many else found

    text = {"type": "string"}
    return [
        *(query(name, text, many=True) for name in ("agent", "host", "system", "object_type",
                                                     "method")),
        query("decision", {"type": "string", "enum": list(DECISIONS)}, many=True),
        *(query(name, text) for name in ("record_id", "approval_id", "approved_by")),
        query("status", {"type": "string", "pattern": "^([1-5]xx|[1-5][0-9][0-9])$"}),
        *(query(name, {"anyOf": [{"type": "string", "format": "date"},
                                 {"type": "string", "format": "date-time"},
                                 {"type": "string", "pattern": "^[0-9]{1,5}[mhd]$"}]})
          for name in ("since", "until")),
        query("risk", {"type": "string", "enum": [*RISK_FLAGS, *RISK_LEVELS]}),
        query("approvers", {"type": "integer", "minimum": 0, "maximum": 100}),
        query("source", {"type": "string", "enum": ["agent", "proxy"]}),
        *([query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
           query("cursor", {"type": "integer", "minimum": 0, "maximum": 2**62}),
           query("order", {"type": "string", "enum": ["asc", "desc"]})] if paged else []),
    ]
