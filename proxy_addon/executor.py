"""The one place an approved write is prepared and sent, whoever sends it.

Two ways out, one set of steps: the agent is still held here (`release`: its own flow goes
upstream through mitmproxy), or it is gone (`send`: the sealed request goes through
UpstreamClient). Both check the traffic record can take it, that the request is the one
reviewed (its fingerprint), claim it (exactly one sender across every replica), and apply
the reviewer's edits; a write sent after its agent left is also checked for a record that
changed since review.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from mitmproxy import http

from connectors_schemas import BodyError
from proxy_addon import answers
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.edits import EditError, rewrite
from proxy_addon.flow_note import note
from proxy_addon.mcp import body_call, call_fingerprint
from proxy_addon.mcp_hold import McpHold
from proxy_addon.methods import effective_method
from proxy_addon.proposals import ProposalBuilder, WriteRequest, fingerprint
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import HeldRequest, Sealer
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.upstream import UpstreamClient
from review_api.models import Approval
from review_api.store import Conflict, Store, StoreError

logger = logging.getLogger("hitl_proxy")


@dataclass(frozen=True, slots=True)
class HoldSettings:
    hold_timeout: float
    expire_after: float
    review_url: str
    max_pending: int | None = None
    max_body: int = 10 * 1024 * 1024
    max_pending_per_agent: int | None = None
    send_within: float = 300.0  # an approved write is sent by then, or becomes failed


def reviewed(approval_fingerprint: str, request: HeldRequest) -> bool:
    """The request is what was reviewed: its bytes, or (an MCP tool call) its server, tool and
    arguments, whatever its JSON-RPC id and `_meta`."""
    if fingerprint(request.method, request.url, request.content) == approval_fingerprint:
        return True
    call = body_call(request.content)
    return call is not None and call_fingerprint(request.url, call) == approval_fingerprint


def held_write(held: HeldRequest, max_body: int) -> WriteRequest:
    """A request as the proposal builder reads it (body decoded, as when it was held)."""
    parts = urlsplit(held.url)
    headers = http.Headers([(k.encode(), v.encode()) for k, v in held.headers])
    try:
        content = decoded(held.content, headers.get("content-encoding"), max_body)
    except DecodingError:
        content = held.content
    return WriteRequest(method=held.method, url=held.url, host=parts.hostname or "",
                        path=parts.path, headers=held.headers, content=content or b"",
                        raw_content=held.content,
                        query=parse_qsl(parts.query, keep_blank_values=True))


@dataclass(frozen=True, slots=True)
class Unchecked:
    """The record could not be fetched again, so whether it changed since review is unknown:
    not stale, not sent now."""

    reason: str


# A write whose record could not be fetched again is tried again after this many seconds,
# doubling up to the last: each try is a read with the agent's credentials on every replica.
RETRY_FIRST, RETRY_MOST = 2.0, 30.0


@dataclass(frozen=True, slots=True)
class Ready:
    """Claimed and prepared: send exactly this, now."""

    request: HeldRequest
    edited: bool


@dataclass(frozen=True, slots=True)
class Superseded:
    """A retry of this write joined on another replica after this agent's connection was
    held: that newer connection is released there; this one is answered pending."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Not sent from the agent's flow: what the agent is told, and whether the proxy sends
    the sealed (reviewed) request itself instead."""

    status_code: int
    message: str
    send_sealed: bool = False


class Executor:
    def __init__(self, store: Store, builder: ProposalBuilder, sealer: Sealer,
                 upstream: UpstreamClient, resolve: Resolve, settings: HoldSettings,
                 recorder: TrafficRecorder | None = None, mcp: McpHold | None = None) -> None:
        self.store = store
        self.builder = builder
        self.sealer = sealer
        self.upstream = upstream
        self.resolve = resolve
        self.settings = settings
        self.recorder = recorder
        self.mcp = mcp
        self._tasks: set[asyncio.Task[None]] = set()
        self._sending: set[str] = set()  # approval ids this process is trying to send now
        # approval id -> (retry no sooner than, the wait after that): a throttle, nothing more
        self._unchecked: dict[str, tuple[float, float]] = {}
        self._closed = False

    # -- the steps both ways share --------------------------------------------------------------

    def unrecordable(self) -> str | None:
        """Why the traffic record cannot take a write now: then no write happens (yet)."""
        return self.recorder.failure if self.recorder is not None else None

    async def _prepare(self, approval: Approval, request: HeldRequest, *,
                       agent_here: bool) -> Ready | Refused | Superseded | None:
        """Claim and prepare; None when this process must not send it (another sender has it,
        or it ended here already and the store says so).

        Held here or not, the claim is refused while another live replica holds the write
        (`held_by`): a retry that joined there is the newest connection, the live one, as a
        retry on this replica's own connections is (waiting.Waiters)."""
        if not reviewed(approval.fingerprint, request):
            if agent_here:  # what was reviewed is what is sealed: the proxy sends that instead
                return Refused(409, "the request changed after review; the proxy sends the "
                                    "reviewed request itself", send_sealed=True)
            if await self.store.claim_for_sending(approval.id):
                await self.record(approval.id, status_code=None,
                                  error="the stored request does not match what was reviewed")
            return None
        changed = None if agent_here else await self._changed_since_review(approval, request)
        if isinstance(changed, Unchecked):
            await self._defer(approval.id, changed.reason)
            return None
        if not await self.store.claim_for_sending(approval.id):
            if not agent_here:
                return None
            if await self._joined_elsewhere(approval.id):
                return Superseded()
            return Refused(409, "this approval was already sent")
        self._unchecked.pop(approval.id, None)
        if changed is not None:
            logger.warning("approval %s not sent: %s", approval.id, changed)
            await self.store.mark_stale(approval.id, changed)
            return None
        if not approval.edits and approval.approve_fields is None:
            return Ready(request, edited=False)
        try:
            body = await self._edited(approval, held_write(request, self.settings.max_body))
        except (EditError, BodyError) as exc:
            message = f"the reviewer's edits could not be applied: {exc}"
            await self.record(approval.id, status_code=None, error=message)
            return Refused(422, message)
        headers = [(k, v) for k, v in request.headers
                   if k.lower() not in ("content-encoding", "content-length")]
        return Ready(HeldRequest(request.method, request.url, headers, body), edited=True)

    async def _edited(self, approval: Approval, write: WriteRequest) -> bytes:
        """The body with the reviewer's edits and partial approval, recorded in the audit."""
        classification = self.builder.classify(write)
        if classification is None:
            raise EditError("no connector describes this request any more")
        body = rewrite(classification, write.content, write.content_type,
                       [edit.model_dump() for edit in approval.edits], approval.approve_fields)
        await self.store.log_event("edited", approval.id, "proxy", {
            "fingerprint": fingerprint(write.method, write.url, body), "bytes": len(body)})
        return body

    async def _joined_elsewhere(self, approval_id: str) -> bool:
        """The newest connection of this write is held on another replica (a retry joined
        there last)."""
        joins = [entry.detail.get("replica") for entry in
                 await self.store.audit_entries(approval_id) if entry.event == "retry_joined"]
        return bool(joins) and joins[-1] not in (None, self.store.replica)

    async def _defer(self, approval_id: str, reason: str) -> None:
        """Leave it approved for a later try; the first deferral here is on the record."""
        first = approval_id not in self._unchecked
        wait = RETRY_FIRST if first else min(self._unchecked[approval_id][1] * 2, RETRY_MOST)
        self._unchecked[approval_id] = (time.monotonic() + wait, wait)
        logger.warning("approval %s not sent yet, tried again in %g s: %s", approval_id, wait,
                       reason)
        if first:
            try:
                await self.store.log_event("send_deferred", approval_id, "proxy",
                                           {"reason": reason,
                                            "send_within": self.settings.send_within})
            except StoreError as exc:
                logger.error("could not record the deferral of approval %s: %s", approval_id,
                             exc)

    def _deferred(self, approval_id: str) -> bool:
        retry = self._unchecked.get(approval_id)
        return retry is not None and time.monotonic() < retry[0]

    async def _changed_since_review(self, approval: Approval,
                                    held: HeldRequest) -> str | Unchecked | None:
        """Why the record no longer looks as it did when the reviewer saw it, if it doesn't;
        Unchecked when it could not be fetched to tell."""
        if not approval.old_values.known or approval.operation == "create":
            return None
        built = await self.builder.build(held_write(held, self.settings.max_body),
                                         approval.context)
        if built is None:
            return None
        now = {(c.record_id, c.field): c.old for c in built.proposal.changes if c.kind == "set"}
        if not built.proposal.old_values.known:
            return Unchecked("the record could not be fetched again to check it is unchanged "
                             f"since review: {built.proposal.old_values.reason}")
        for change in approval.changes:
            key = (change.record_id, change.field)
            if change.kind == "set" and key in now and now[key] != change.old:
                return (f"{change.field} changed since review: it was {change.old!r}, "
                        f"it is now {now[key]!r}")
        return None

    async def record(self, approval_id: str, *, status_code: int | None,
                     error: str | None = None) -> None:
        """The upstream's answer (or why there was none) on the approval."""
        try:
            await self.store.record_result(approval_id, status_code=status_code, error=error)
        except (Conflict, StoreError) as exc:
            logger.error("could not record the result of approval %s: %s", approval_id, exc)

    # -- the agent is held here: its own request goes upstream --------------------------------

    async def release(self, flow: http.HTTPFlow, approval: Approval) -> None:
        """Let the agent's own request go upstream, once, if it is what was reviewed; the
        response and error hooks record what came back."""
        if self.unrecordable():
            # A write is on the record or it does not happen (yet): the proxy sends it later.
            flow.response = answers.approved_later(approval, self.settings.review_url)
            self.send_later(approval.id, held_here=True)
            return
        _, url = self.resolve.requested_url(flow)
        request = HeldRequest(effective_method(flow.request), url,
                              list(flow.request.headers.items(multi=True)),
                              flow.request.raw_content or b"")
        # The feed may bring this approval's decision again: this process's own sender must
        # not take the claim from the agent it is releasing.
        self._sending.add(approval.id)
        try:
            prepared = await self._prepare(approval, request, agent_here=True)
        finally:
            self._sending.discard(approval.id)
        if isinstance(prepared, Superseded):
            logger.info("approval %s: a newer connection of its agent, held on another "
                        "replica, is released there", approval.id)
            flow.response = answers.pending(approval, self.settings.review_url)
            return
        if isinstance(prepared, Refused):
            flow.response = answers.refused(prepared.status_code, prepared.message, approval.id)
            if prepared.send_sealed:
                self.send_later(approval.id, held_here=True)
            return
        if prepared is None:
            # Nothing to release and no answer yet: the agent learns where its write stands
            # rather than mitmproxy sending its request on.
            flow.response = answers.pending(approval, self.settings.review_url)
            return
        if prepared.edited:
            flow.request.headers.pop("content-encoding", None)
            flow.request.content = prepared.request.content
        note(flow).released = approval.id

    # -- the agent is gone: the proxy sends the sealed request itself ------------------------

    def send_later(self, approval_id: str, *, held_here: bool = False) -> None:
        """Send in the background; a send already under way here is not started twice.
        `held_here`: this replica's hold of its agent ends as the agent is answered now."""
        if approval_id in self._sending or self._closed or self._deferred(approval_id):
            # Under way here already; or stopping (another replica, or this one's next
            # start, sends it); or waiting to fetch its record again.
            return
        self._sending.add(approval_id)
        self.spawn(self._send_once(approval_id, held_here))

    async def _send_once(self, approval_id: str, held_here: bool) -> None:
        try:
            await self.send(approval_id, held_here=held_here)
        finally:
            self._sending.discard(approval_id)

    async def send(self, approval_id: str, *, held_here: bool = False) -> None:
        """Claim and send an approved write whose agent is not held here; another replica's
        claim (or its held agent) leaves it to that replica."""
        try:
            if self.recorder is not None and (reason := self.unrecordable()):
                logger.warning("approved write %s waits until the traffic record can be "
                               "written (%s)", approval_id, reason)
                await self.recorder.writable.wait()
            if not held_here and approval_id not in await self.store.sendable():
                self._unchecked.pop(approval_id, None)  # ended, or another's now
                return  # claimed, or a live replica holds its agent: no record fetch for it
            approval = await self.store.get(approval_id)
            sealed = await self.store.sealed_request(approval_id)
            if sealed is None:
                return
            prepared = await self._prepare(approval, self.sealer.unseal(sealed),
                                           agent_here=False)
            if not isinstance(prepared, Ready):
                return
            await self._send_upstream(approval, prepared.request)
        except Exception:
            logger.exception("sending approved write %s failed", approval_id)

    async def _send_upstream(self, approval: Approval, held: HeldRequest) -> None:
        started = time.time()
        try:
            response = await self.upstream.send(held)
        except httpx.HTTPError as exc:
            error = f"sending upstream failed: {exc!r}"
            self._record_sent(approval, held, started, None, error)
            await self.record(approval.id, status_code=None, error=error)
            return
        self._record_sent(approval, held, started, response, None)
        if self.mcp is not None:
            self.mcp.keep_result(approval, held, response)
        logger.info("sent approved write %s: upstream answered %s", approval.id,
                    response.status_code)
        await self.record(approval.id, status_code=response.status_code)

    def _record_sent(self, approval: Approval, held: HeldRequest, started: float,
                     response: httpx.Response | None, error: str | None) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.record_sent(approval, held, started, response, error)
        except Exception:  # the write is sent; its result must still reach the store
            logger.exception("traffic record: could not record approved write %s", approval.id)

    # -- background work --------------------------------------------------------------------

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop background sends (a claimed one becomes outcome_unknown after the lease)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
