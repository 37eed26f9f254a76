"""The traffic record as JSON lines (for a SIEM), CSV (for a spreadsheet) or HAR 1.2.

Each format streams: an export of millions of entries never sits in memory at once.

Every CSV the project writes (this one, the page's /history.csv, `audit export --format csv`) goes
through `csv_line`: agent-controlled text such as `=HYPERLINK(...)` must reach a spreadsheet as
text, never as a live formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from http import HTTPStatus
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.responses import StreamingResponse

from review_api.traffic import COLUMNS

EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
                "har": "application/json"}
FORMATS = tuple(EXPORT_TYPES)
CSV_COLUMNS = ("id", *(c for c in COLUMNS if c not in ("request_body", "response_body")),
               "url", "approval_status", "approval_decided_by", "approval_approvers")


async def jsonl(entries: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """One entry a line, exactly as GET /api/traffic gives it."""
    async for entry in entries:
        yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


# OWASP's CSV injection rule: a cell starting with one of these is a formula to a spreadsheet.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell that would start a formula gets a leading apostrophe, so it shows as typed.
    Numbers are left alone: they come from the proxy, and -1 is a number, not a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_line(values: Iterable[Any]) -> str:
    """One CSV record (RFC 4180 quoting, CRLF) with every cell made safe by csv_cell."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow([csv_cell(value) for value in values])
    return buffer.getvalue()


async def csv_rows(entries: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """Metadata only (bodies stay in JSONL and HAR): a spreadsheet chokes on them."""
    yield csv_line(CSV_COLUMNS)
    async for entry in entries:
        approval = entry["approval"] or {}
        flat = {**entry, "risk_flags": ",".join(entry["risk_flags"]),
                "approval_status": approval.get("status"),
                "approval_decided_by": approval.get("decided_by"),
                "approval_approvers": ",".join(approval.get("approvers", []))}
        yield csv_line("" if flat[name] is None else flat[name] for name in CSV_COLUMNS)


def _reason(status: int | None) -> str:
    try:
        return HTTPStatus(status).phrase if status else ""
    except ValueError:
        return ""


def har_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One HAR 1.2 entry; what HAR has no field for goes under `_hitl` (custom fields start
    with an underscore, as the spec allows)."""
    version = entry["http_version"] or "HTTP/1.1"
    duration = max(float(entry["duration_ms"] or 0.0), 0.0)
    query = urlsplit(entry["path"]).query
    request: dict[str, Any] = {
        "method": entry["method"], "url": entry["url"], "httpVersion": version,
        "cookies": [], "headers": _type_header(entry["request_type"]),
        "queryString": [{"name": k, "value": v}
                        for k, v in parse_qsl(query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": entry["request_bytes"],
    }
    if entry["request_body"] is not None or entry["request_bytes"]:
        request["postData"] = {"mimeType": entry["request_type"] or "",
                               "text": entry["request_body"] or ""}
    content: dict[str, Any] = {"size": entry["response_bytes"],
                               "mimeType": entry["response_type"] or ""}
    if entry["response_body"] is not None:
        content["text"] = entry["response_body"]
    response: dict[str, Any] = {
        "status": entry["status"] or 0, "statusText": _reason(entry["status"]),
        "httpVersion": version, "cookies": [], "headers": _type_header(entry["response_type"]),
        "content": content, "redirectURL": "", "headersSize": -1,
        "bodySize": entry["response_bytes"] if entry["status"] else -1,
    }
    if entry["error"]:
        response["_error"] = entry["error"]
    hitl = {key: entry[key] for key in (
        "id", "decision", "agent", "task", "system", "object_type", "record_id", "operation",
        "approval_id", "approval", "source", "upstream_status", "risk_level", "risk_flags",
        "error")}
    return {
        "startedDateTime": entry["at"], "time": duration, "request": request,
        "response": response, "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": duration,
                    "receive": 0, "ssl": -1},
        "comment": f"hitl-proxy: {entry['decision']}"
                   + (f", approval {entry['approval_id']}" if entry["approval_id"] else ""),
        "_hitl": hitl,
    }


def _type_header(content_type: str | None) -> list[dict[str, str]]:
    return [{"name": "Content-Type", "value": content_type}] if content_type else []


async def har(entries: AsyncIterator[dict[str, Any]], version: str) -> AsyncIterator[str]:
    """A HAR 1.2 document, written as it goes."""
    creator = json.dumps({"name": "hitl-proxy", "version": version})
    yield f'{{"log": {{"version": "1.2", "creator": {creator}, "pages": [], "entries": ['
    separator = "\n"
    async for entry in entries:
        yield separator + json.dumps(har_entry(entry), ensure_ascii=False)
        separator = ",\n"
    yield "\n]}}\n"


def export(fmt: str, entries: AsyncIterator[dict[str, Any]],
           version: str = "0") -> AsyncIterator[str]:
    if fmt == "jsonl":
        return jsonl(entries)
    if fmt == "csv":
        return csv_rows(entries)
    if fmt == "har":
        return har(entries, version)
    raise ValueError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")


def download(fmt: str, entries: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """An export as an HTTP download, streamed (the API and the page both serve these)."""
    return StreamingResponse(
        export(fmt, entries, version("hitl-proxy")), media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="traffic.{fmt}"'})
