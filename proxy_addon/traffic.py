"""Records every request through the proxy for security teams, off the request's path.

The hooks only append the flow to a list; a background task turns the list into masked rows
and writes them in one transaction a batch. When the record cannot be written (a full disk),
reads go on with a logged warning and HoldWrites refuses writes until a batch lands again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from urllib.parse import urlencode, urlsplit

import httpx
from mitmproxy import http

from connectors_schemas import Matcher
from connectors_schemas.models import WRITE_METHODS
from proxy_addon.config import TrafficSettings
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.flow_note import FlowNote, note, peek
from proxy_addon.redact import (
    MAX_PARSED,
    WithheldBody,
    form_pairs,
    mask_request_body,
    mask_url,
    shown_content_type,
)
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import HeldRequest
from review_api.metrics import Metrics
from review_api.models import Approval, Proposal, iso
from review_api.traffic import TrafficRow, TrafficStore

logger = logging.getLogger("hitl_proxy")

FLUSH_EVERY = 0.25  # seconds between batches
FLUSH_AT = 2000  # entries that start a batch early
DESCRIBE_AT_ONCE = 200  # flows turned into rows between two turns of the event loop
MAX_WAITING = 100_000  # flows waiting for a batch; past this, reads are dropped (and counted)
MAX_RETRY = 10_000  # write rows kept to retry while the record cannot be written
PROBE_EVERY = 1.0  # seconds between checks that a failed record can be written again
WARN_EVERY = 30.0  # seconds between repeated warnings about the same failure
UPSTREAM_DECISIONS = frozenset({"passed", "allowed"})
_UNNOTED = FlowNote()  # shared by every flow no addon noted: never written to


def _moment(timestamp: float | None) -> str:
    return iso(datetime.fromtimestamp(timestamp or time.time(), UTC))


def _content_type(headers: http.Headers | None) -> str | None:
    """The content type with its encoding parameters only (any other could carry a secret)."""
    value = headers.get("content-type") if headers is not None else None
    return shown_content_type(value)[:200] if value else None


def masked_body(content: bytes | None, content_type: str | None, limit: int,
                graphql_expected: bool = False) -> str | None:
    """A body in the form the proxy parsed and masked, as text; None when not asked for.

    Only what can be masked is kept (redact.mask_request_body): a body that is not JSON,
    NDJSON, a form, multipart or GraphQL by its declared type (text, XML, invalid JSON, a form
    sent as JSON, binary), or too large to parse, is recorded as its type, size and hash alone.
    `graphql_expected` (the path is a connector's GraphQL route) withholds a document that does
    not parse, as the approval does: the record must keep no more than the approval shows.
    """
    if not content or limit <= 0:
        return None
    shown = mask_request_body(content, content_type, graphql_expected)
    if shown is None:
        return None
    if isinstance(shown, WithheldBody):
        return f"({shown.describe()})"
    if shown.form == "form":  # as sent, urlencoded: the masked pairs in their order
        text = urlencode(form_pairs(content.decode("utf-8"), graphql_expected), safe="*[]")
    elif shown.form == "ndjson":
        text = "\n".join(json.dumps(line, ensure_ascii=False) for line in shown.value)
    else:
        text = json.dumps(shown.value, ensure_ascii=False)
    if len(text) > limit:
        return text[:limit] + f"... ({len(text) - limit} more characters not kept)"
    return text


def _masked_path(path: str) -> str:
    return mask_url(path) if "?" in path or "#" in path else path


def _risk_flags(proposal: Proposal) -> str:
    risk = proposal.risk
    flags = [name for name in ("money", "customer_facing", "destructive") if getattr(risk, name)]
    return "," + ",".join(flags) + "," if flags else ","


def summarize(proposal: Proposal) -> dict[str, str | None]:
    """What the record keeps of a write's proposal, as plain values."""
    return {"system": proposal.system, "object_type": proposal.object_type,
            "record_id": proposal.record_id, "operation": proposal.operation,
            "risk_level": proposal.risk.level.value, "risk_flags": _risk_flags(proposal)}


@dataclass(slots=True)
class _Seen:
    """A flow's parts, kept by reference until the batch: decoding them waits till then."""

    note: FlowNote  # what our addons noted of the flow (an empty one: a read nobody noted)
    request: http.RequestData
    response: http.ResponseData | None
    error: str | None
    seen_at: float

    def text(self, raw: bytes) -> str:
        return raw.decode("utf-8", "surrogateescape")


def _decoded(data: http.MessageData | None) -> bytes | None:
    """The body without its content-encoding, or as sent when it cannot be inflated within
    the bound of what is ever parsed (then it is kept as size, type and hash alone): an
    agent's 841 bytes of brotli must not become a gigabyte in the proxy."""
    if data is None or not data.content:
        return None
    try:
        return decoded(data.content, data.headers.get("content-encoding"), MAX_PARSED)
    except DecodingError:
        return data.content


class TrafficRecorder:
    def __init__(self, store: TrafficStore, matcher: Matcher, settings: TrafficSettings,
                 metrics: Metrics | None = None, resolve: Resolve | None = None) -> None:
        self.resolve = resolve
        self.store = store
        self.matcher = matcher
        self.settings = settings
        self.metrics = metrics
        self._waiting: list[_Seen | TrafficRow] = []
        self._retry: list[TrafficRow] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Set while batches land; approved writes wait on it. `failure` says why it is not.
        self.writable = asyncio.Event()
        self.writable.set()
        self._failure = ""
        self._warned_at = 0.0
        self._pruning = False
        self._stopping = False
        self._probed_at = 0.0

    @property
    def failure(self) -> str | None:
        """Why the last batch could not be written; None while the record is writable."""
        return None if self.writable.is_set() else self._failure

    # -- mitmproxy hooks: as cheap as an append --------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        self._remember_requested(flow)
        self._add(self._seen(flow))

    def http_connect(self, flow: http.HTTPFlow) -> None:
        """A tunnel the proxy refused (407: an unknown agent) is on the record too."""
        if flow.response is not None:
            self._add(self._seen(flow))

    def error(self, flow: http.HTTPFlow) -> None:
        # A response hook ran only if the whole response arrived (timestamp_end is set then).
        if flow.response is None or flow.response.timestamp_end is None:
            self._remember_requested(flow)
            self._add(self._seen(flow))

    def _remember_requested(self, flow: http.HTTPFlow) -> None:
        # --resolve rewrites where we connect; the record keeps what the agent asked for.
        if self.resolve and (found := self.resolve.requested_address(flow)):
            note(flow).requested = found

    def _add(self, item: _Seen | TrafficRow) -> None:
        waiting = self._waiting
        if len(waiting) >= MAX_WAITING and isinstance(item, _Seen) and (
                item.note.decision == "passed"):
            self._count_dropped(1)
            return
        waiting.append(item)
        if len(waiting) >= FLUSH_AT:
            self._wake.set()

    async def running(self) -> None:
        self._tasks = [asyncio.ensure_future(self._flush_forever()),
                       asyncio.ensure_future(self._prune_forever())]

    async def done(self) -> None:
        """The batch being written finishes, and what waits is written, before we stop."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            self._tasks[1].cancel()  # pruning can stop anywhere: each delete is whole
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()

    # -- what HoldWrites asks --------------------------------------------------------------

    def record_sent(self, approval: Approval, held: HeldRequest, started: float,
                    response: httpx.Response | None, error: str | None) -> None:
        """An approved write the proxy sent itself, after the agent had its 202."""
        parts = urlsplit(held.url)
        default_port = 443 if parts.scheme == "https" else 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        host = (parts.hostname or "").lower()
        want = self._wants_body(True, host)
        request_type = next((shown_content_type(v)[:200] for k, v in held.headers
                             if k.lower() == "content-type"), None)
        self._add(TrafficRow(
            at=_moment(started), method=held.method, scheme=parts.scheme,
            host=host, port=parts.port or default_port,
            path=_masked_path(path), decision="held", agent=approval.context.agent,
            task=approval.context.task,
            http_version=response.http_version if response is not None else None,
            system=approval.system,
            object_type=approval.object_type, record_id=approval.record_id,
            operation=approval.operation, approval_id=approval.id, source="proxy",
            status=response.status_code if response is not None else None,
            upstream_status=response.status_code if response is not None else None,
            request_bytes=len(held.content),
            response_bytes=len(response.content) if response is not None else 0,
            duration_ms=round((time.time() - started) * 1000, 3), error=error,
            request_type=request_type,
            response_type=shown_content_type(response.headers.get("content-type", ""))[:200]
            or None if response is not None else None,
            request_body=masked_body(held.content, request_type, self.settings.max_body,
                                     self.matcher.is_graphql_endpoint(host, parts.path))
            if want else None,
            response_body=masked_body(response.content, response.headers.get("content-type"),
                                      self.settings.max_body)
            if want and response is not None else None,
            risk_level=approval.risk.level.value, risk_flags=_risk_flags(approval)))

    # -- batches ---------------------------------------------------------------------------

    async def _flush_forever(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), FLUSH_EVERY)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the loop must outlive any one batch
                logger.exception("traffic record: a batch failed")

    async def flush(self) -> None:
        items, self._waiting = self._waiting, []
        rows = self._retry
        for index, item in enumerate(items, 1):
            try:
                rows.append(item if isinstance(item, TrafficRow) else self._row(item))
            except Exception as exc:  # still on the record, with what is sure
                logger.exception("traffic record: could not describe a request")
                assert isinstance(item, _Seen)
                rows.append(self._bare_row(item, f"not fully described: {exc!r}"[:500]))
            if index % DESCRIBE_AT_ONCE == 0:
                await asyncio.sleep(0)  # proxied requests never wait on a long batch
        self._retry = []
        if not rows and (self.failure is None
                         or time.monotonic() - self._probed_at < PROBE_EVERY):
            return
        self._probed_at = time.monotonic()
        try:
            await self.store.append(rows) if rows else await self.store.probe()
        except Exception as exc:  # whatever it is, writes are refused until a batch lands
            self._failed(rows, exc)
            if "full" in str(exc) and self.settings.retention.max_size is not None:
                await self._prune()  # room for the next batch, if pruning can make it
            return
        if self.failure is not None:
            logger.warning("traffic record: writable again (%d entries written); writes are "
                           "accepted", len(rows))
            self.writable.set()
        if self.metrics is not None:
            self.metrics.traffic_recorded.inc(len(rows))

    def _failed(self, rows: list[TrafficRow], exc: Exception) -> None:
        """Reads go on unrecorded; write rows wait for the next batch; writes are refused."""
        # Writes that reached upstream matter most; then other writes; reads are let go.
        sent = [row for row in rows if row.decision not in ("passed", "proxy")
                and row.upstream_status is not None]
        unsent = [row for row in rows if row.decision not in ("passed", "proxy")
                  and row.upstream_status is None]
        kept = sent[-MAX_RETRY:] + unsent[-max(0, MAX_RETRY - len(sent)):]
        if len(kept) < len(sent) + len(unsent):
            logger.error("traffic record: %d write entries dropped: more than %d wait for room",
                         len(sent) + len(unsent) - len(kept), MAX_RETRY)
        self._retry = kept
        self._count_dropped(len(rows) - len(sent) - len(unsent))
        if self.metrics is not None:
            self.metrics.traffic_failures.inc()
        first = self.failure is None
        self._failure = str(exc)
        self.writable.clear()
        now = time.monotonic()
        if first or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning("traffic record: %s; %d read entries not recorded, writes are "
                           "refused until it can be written again", exc, len(rows) - len(kept))

    def _count_dropped(self, count: int) -> None:
        if count and self.metrics is not None:
            self.metrics.traffic_dropped.inc(count)

    # -- retention -------------------------------------------------------------------------

    async def _prune_forever(self) -> None:
        while True:
            await self._prune()
            await asyncio.sleep(self.settings.prune_every)

    async def _prune(self) -> None:
        if self._pruning:
            return
        self._pruning = True
        retention = self.settings.retention
        try:
            deleted = await self.store.prune(retention.max_age, retention.max_size)
            if deleted:
                logger.info("traffic record: pruned %d entries past the retention bounds",
                            deleted)
        except Exception as exc:
            logger.warning("traffic record: %s", exc)
        finally:
            self._pruning = False

    # -- one row ---------------------------------------------------------------------------

    def _wants_body(self, write: bool, host: str) -> bool:
        bodies = self.settings.bodies
        if bodies == "all" or (bodies == "writes" and write):
            return True
        return any(fnmatchcase(host, glob.lower()) for glob in self.settings.body_hosts)

    def _seen(self, flow: http.HTTPFlow) -> _Seen:
        """The flow's parts by reference: the hook copies nothing and keeps no flow alive."""
        return _Seen(note=peek(flow) or _UNNOTED, request=flow.request.data,
                     response=flow.response.data if flow.response is not None else None,
                     error=flow.error.msg[:500] if flow.error else None, seen_at=time.time())

    def _bare_row(self, seen: _Seen, error: str) -> TrafficRow:
        request = seen.request
        return TrafficRow(at=_moment(request.timestamp_start), method=seen.text(request.method),
                          scheme=seen.text(request.scheme), host=request.host.lower(),
                          port=request.port, path="(not recorded)",
                          decision=seen.note.decision, approval_id=seen.note.held,
                          status=seen.response.status_code if seen.response else None,
                          error=error)

    def _row(self, seen: _Seen) -> TrafficRow:
        noted, request, response = seen.note, seen.request, seen.response
        decision: str = noted.decision
        context = noted.context
        proposal = summarize(noted.proposal) if noted.proposal is not None else {}
        host, port = noted.requested or (request.host, request.port)
        host, path, method = host.lower(), seen.text(request.path), seen.text(request.method)
        system, object_type = proposal.get("system"), proposal.get("object_type")
        record_id, operation = proposal.get("record_id"), proposal.get("operation")
        if not proposal and decision == "passed" and (
                found := self.matcher.identify(host, path.split("?")[0])):
            system, object_type, record_id = found.system, found.object_type, found.record_id
            operation = "read"
        status = response.status_code if response is not None else None
        went_up = status is not None and (decision in UPSTREAM_DECISIONS
                                           or noted.released is not None)
        write = decision not in ("passed", "proxy") or method in WRITE_METHODS
        want = self._wants_body(write, host)
        request_type = _content_type(request.headers)
        response_type = _content_type(response.headers) if response is not None else None
        ended = (response.timestamp_end if response is not None else None) or seen.seen_at
        limit = self.settings.max_body
        # CONNECT has no scheme of its own: the port says what the tunnel is for.
        scheme = seen.text(request.scheme) or ("https" if port == 443 else "http")
        return TrafficRow(
            at=_moment(request.timestamp_start), method=method, scheme=scheme, host=host,
            port=port, path=_masked_path(path), decision=decision,
            agent=noted.agent or (context.agent if context else None),
            task=context.task if context else None,
            http_version=seen.text(request.http_version), system=system,
            object_type=object_type, record_id=record_id, operation=operation,
            approval_id=noted.held, source="agent", status=status,
            upstream_status=status if went_up else None,
            request_bytes=len(request.content or b""),
            response_bytes=len(response.content or b"") if response is not None else 0,
            duration_ms=round((ended - request.timestamp_start) * 1000, 3), error=seen.error,
            request_type=request_type, response_type=response_type,
            request_body=masked_body(_decoded(request), request_type, limit,
                                     self.matcher.is_graphql_endpoint(host, path.split("?")[0]))
            if want else None,
            response_body=masked_body(_decoded(response), response_type, limit)
            if want else None,
            risk_level=proposal.get("risk_level"), risk_flags=proposal.get("risk_flags"))
