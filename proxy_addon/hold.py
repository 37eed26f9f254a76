"""The addon that holds every write until a reviewer decides, and sends it exactly once.

Reads pass with nothing but the removal of our X-HITL-* headers. Every error on the write path
refuses the write: mitmproxy would otherwise send a request upstream when a hook raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from mitmproxy import connection, http

from connectors_schemas import BodyError, graphql_in_body, graphql_in_query
from proxy_addon import answers, mcp_hold
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.edits import EditError, rewrite
from proxy_addon.flow_keys import (
    AGENT_KEY,
    APPROVAL_KEY,
    CONTEXT_KEY,
    DECISION_KEY,
    HELD_KEY,
    PROPOSAL_KEY,
)
from proxy_addon.mcp import (
    MCP_KEY,
    MCP_LIST_KEY,
    Classified,
    KeptResults,
    McpRules,
    answer_messages,
    body_call,
    call_fingerprint,
)
from proxy_addon.methods import (
    MethodOverrideError,
    body_may_override,
    effective_method,
    is_read,
    query_pairs,
)
from proxy_addon.offload import OFF_LOOP_BYTES, off_loop
from proxy_addon.proposals import ProposalBuilder, WriteRequest, fingerprint
from proxy_addon.resolve import Resolve
from proxy_addon.revert import RevertError, inverse
from proxy_addon.sealing import HeldRequest, Sealer
from proxy_addon.traffic import TrafficRecorder, summarize
from proxy_addon.upstream import UpstreamClient
from review_api.metrics import Metrics
from review_api.models import Approval, Context, Status, utcnow
from review_api.store import Conflict, Full, NotFound, Store, StoreError

logger = logging.getLogger("hitl_proxy")

STATUS_HOST = "hitl-proxy.status"  # answered by the proxy itself, never resolved or forwarded
CONTEXT_HEADERS = {"x-hitl-reason": "reason", "x-hitl-task": "task", "x-hitl-agent": "agent"}


class _Detached:
    """The agent hung up while its write was held; a later approval is sent by the proxy."""


DETACHED = _Detached()


@dataclass
class _Waiter:
    client_id: str
    outcome: asyncio.Future[Approval | _Detached] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, outcome: Approval | _Detached) -> None:
        if not self.outcome.done():
            self.outcome.set_result(outcome)


@dataclass(frozen=True, slots=True)
class HoldSettings:
    hold_timeout: float
    expire_after: float
    review_url: str
    max_pending: int | None = None
    max_body: int = 10 * 1024 * 1024
    max_pending_per_agent: int | None = None
    send_within: float = 300.0  # an approved write is sent by then, or becomes failed


def take_context(headers: http.Headers) -> Context:
    """Our explanation headers, removed so they never reach upstream."""
    values: dict[str, str] = {}
    for name in [name for name in headers if name.lower().startswith("x-hitl-")]:
        key = CONTEXT_HEADERS.get(name.lower())
        value = headers.pop(name)
        if key is not None:
            values[key] = value[:2000]
    return Context(**values)


def _write_request(flow: http.HTTPFlow, method: str, resolve: Resolve,
                   max_body: int) -> WriteRequest:
    """The write as reviewed; DecodingError when its body cannot be decoded within bounds."""
    request = flow.request
    host, url = resolve.requested_url(flow)
    raw = request.raw_content or b""
    return WriteRequest(
        method=method,
        url=url,
        host=host,
        path=request.path.split("?", 1)[0],
        headers=list(request.headers.items(multi=True)),
        content=decoded(raw, request.headers.get("content-encoding"), max_body),
        raw_content=raw,
        query=list(request.query.items(multi=True)),
    )


def _held_write(held: HeldRequest, max_body: int) -> WriteRequest:
    """A stored request as the proposal builder reads it (body decoded, as when it was held)."""
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


def _reviewed(approval_fingerprint: str, method: str, url: str, raw_content: bytes) -> bool:
    """The request is what was reviewed: its bytes, or (an MCP tool call) its server, tool and
    arguments, whatever its JSON-RPC id and `_meta`."""
    if fingerprint(method, url, raw_content) == approval_fingerprint:
        return True
    call = body_call(raw_content)
    return call is not None and call_fingerprint(url, call) == approval_fingerprint


class HoldWrites:
    def __init__(self, store: Store, builder: ProposalBuilder, sealer: Sealer,
                 upstream: UpstreamClient, resolve: Resolve, settings: HoldSettings,
                 auth: AgentAuth | None = None, metrics: Metrics | None = None,
                 recorder: TrafficRecorder | None = None, mcp: McpRules | None = None) -> None:
        self.mcp = mcp
        self.kept = KeptResults()  # MCP results of calls executed after their agent left
        self._listed: dict[tuple[str, str], float] = {}  # when the proxy last fetched tools/list
        self.metrics = metrics
        self.recorder = recorder
        self.store = store
        self.auth = auth
        self.resolve = resolve
        self.builder = builder
        self.sealer = sealer
        self.upstream = upstream
        self.settings = settings
        self._waiters: dict[str, _Waiter] = {}
        self._started = time.monotonic()
        self._tasks: set[asyncio.Task[None]] = set()
        store.subscribe(self._on_change)

    # -- mitmproxy hooks ----------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Synchronous for reads (no task, no await); a write gets a coroutine that holds it.

        An error while deciding refuses the request: mitmproxy would log an addon's exception
        and send the request on, unreviewed.
        """
        try:
            pending = self._decide(flow)
        except Exception:
            self._refuse_undecided(flow)
            return None
        return None if pending is None else self._guarded(flow, pending)

    async def _guarded(self, flow: http.HTTPFlow, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception:
            self._refuse_undecided(flow)

    def _refuse_undecided(self, flow: http.HTTPFlow) -> None:
        logger.exception("refused %s %s: deciding on it failed", flow.request.method,
                         flow.request.pretty_host)
        flow.response = answers.refused(
            503, "the proxy could not decide whether this request writes, so it was refused")
        self._decided(flow, "refused")

    def _decide(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live:
            return None
        context = self._context(flow)
        if self.recorder is not None:  # only the traffic record reads it
            flow.metadata[CONTEXT_KEY] = {"agent": context.agent, "task": context.task}
        flow.request.headers.pop("Proxy-Authorization", None)
        if flow.request.trailers:
            # Sent upstream after this hook and never reviewed: refused, whatever they say.
            self._decided(flow, "refused")
            flow.response = answers.refused(400, "requests with trailers are refused")
            return None
        if flow.request.pretty_host == STATUS_HOST:
            flow.metadata[DECISION_KEY] = "proxy"
            return self._agent_status(flow, context)
        try:
            method = effective_method(flow.request)
        except MethodOverrideError as exc:
            self._decided(flow, "refused")
            flow.response = answers.refused(400, str(exc))
            return None
        if self.mcp is not None and (legacy := self._mcp_legacy(flow, method)):
            self._decided(flow, "refused")
            flow.response = answers.refused(400, legacy)
            return None
        if self.mcp is not None and method in ("POST", "DELETE") and (
                found := self._mcp_message(flow, method)) is not None:
            flow.metadata[MCP_KEY] = found
            if found.verdict == "write" and self._unlisted(found):
                return self._list_then_decide(flow, method, context, found)
            if found.verdict == "write":
                return self._request_write(flow, method, context)
            if found.methods == ("tools/list",):
                flow.metadata[MCP_LIST_KEY] = found.endpoint  # learn its tools' annotations
            if self.metrics is not None:
                self.metrics.counted["passed"].inc()
            return None
        if is_read(method) and (carried := self._write_in_read(flow)) is not None:
            logger.info("%s %s is held as a write: %s", method, flow.request.pretty_host,
                        carried)
            return self._request_write(flow, method, context)
        if is_read(method):
            if self.metrics is not None:
                self.metrics.counted["passed"].inc()
            return None  # no DECISION_KEY: "passed" is what the traffic record assumes
        return self._request_write(flow, method, context)

    def _unlisted(self, found: Classified) -> bool:
        """A tool call naming a tool the proxy has not seen listed, on a server whose
        annotations are trusted: worth asking the server for its tools/list first."""
        assert self.mcp is not None
        call = found.call
        if call is None or not found.endpoint.trust_annotations or found.methods != (
                "tools/call",) or self.mcp.catalog.get(found.endpoint, call.tool) is not None:
            return False
        key, now = (found.endpoint.key, call.tool), time.monotonic()
        if now - self._listed.get(key, -1e9) < 60:
            return False  # asked a minute ago and not listed: held without asking again
        self._listed[key] = now
        while len(self._listed) > 1000:
            self._listed.pop(next(iter(self._listed)))
        return True

    async def _list_then_decide(self, flow: http.HTTPFlow, method: str, context: Context,
                                found: Classified) -> None:
        """Fetch the server's tools/list with the agent's credentials, then decide again; a
        fetch that fails leaves the call held."""
        assert self.mcp is not None
        _, url = self.resolve.requested_url(flow)
        headers = list(flow.request.headers.items(multi=True))
        problem = await mcp_hold.fetch_tools(self.mcp, found, url, headers, self.upstream)
        if problem is not None:
            logger.info("MCP %s: the proxy's own tools/list failed: %s", found.endpoint.name,
                        problem)
        again = self._mcp_message(flow, method)
        if again is not None and again.verdict == "pass":
            flow.metadata[MCP_KEY] = again
            if self.metrics is not None:
                self.metrics.counted["passed"].inc()
            return
        if again is not None:
            flow.metadata[MCP_KEY] = again
        await self._request_write(flow, method, context)

    def _mcp_legacy(self, flow: http.HTTPFlow, method: str) -> str | None:
        """Why this is the legacy MCP HTTP+SSE transport, refused with a clear answer."""
        assert self.mcp is not None
        if method not in ("GET", "POST") or method != flow.request.data.method.decode(
                "utf-8", "surrogateescape"):
            return None
        if ("sse" if method == "GET" else "message") not in flow.request.path:
            return None  # the cheap test first: nearly every request stops here
        body = b""
        if method == "POST":
            try:
                body = decoded(flow.request.raw_content or b"", flow.request.headers.get(
                    "content-encoding"), self.settings.max_body)
            except DecodingError:
                return None
        host, _ = self.resolve.requested_url(flow)
        return self.mcp.legacy(method, host, flow.request.path, flow.request.headers, body)

    def _mcp_message(self, flow: http.HTTPFlow, method: str) -> Classified | None:
        """The MCP reading of a POST or DELETE sent as such (no override), if it is MCP."""
        assert self.mcp is not None
        if method != flow.request.data.method.decode("utf-8", "surrogateescape"):
            return None
        try:
            body = decoded(flow.request.raw_content or b"",
                           flow.request.headers.get("content-encoding"), self.settings.max_body)
        except DecodingError:
            return None  # the write path refuses it
        host, _ = self.resolve.requested_url(flow)
        return self.mcp.classify(method, host, flow.request.path, flow.request.headers, body)

    def _write_in_read(self, flow: http.HTTPFlow) -> str | None:
        """Why a GET/HEAD/OPTIONS carries a write (a GraphQL mutation in its URL), if it does."""
        query, body = "?" in flow.request.path, bool(flow.request.raw_content)
        if not query and not body:
            return None  # the cheap test first: every read passes here
        host, _ = self.resolve.requested_url(flow)
        path = flow.request.path.split("?", 1)[0]
        endpoint = self.builder.matcher.is_graphql_endpoint(host, path)
        if body and endpoint:
            return "a GraphQL endpoint read with a body (a server may run the document in it)"
        if body and body_may_override(flow.request):
            return "a read whose body carries a method override (a `_method` field)"
        if body:
            try:
                content = decoded(flow.request.raw_content or b"",
                                  flow.request.headers.get("content-encoding"),
                                  self.settings.max_body)
            except DecodingError as exc:
                return f"a read whose body cannot be checked: {exc}"
            if (why := graphql_in_body(content, flow.request.headers.get("content-type"))):
                return why
        if not query:
            return None
        # Split on & only and on ; as well: a document holding ";" must be read both ways.
        pairs = flow.request.query.items(multi=True)
        return graphql_in_query([*pairs, *query_pairs(flow.request)], endpoint)

    def _decided(self, flow: http.HTTPFlow, decision: str) -> None:
        """For /metrics and the traffic record."""
        flow.metadata[DECISION_KEY] = decision
        if self.metrics is not None:
            self.metrics.counted[decision].inc()

    async def _agent_status(self, flow: http.HTTPFlow, context: Context) -> None:
        """The agent's own read-only view of its approvals, answered by the proxy itself."""
        parts = flow.request.path.split("?")[0].strip("/").split("/")
        if flow.request.method not in ("GET", "HEAD"):
            flow.response = answers.refused(405, "the approval status is read-only")
            return
        if len(parts) != 2 or parts[0] != "approvals":
            flow.response = answers.refused(404, "ask for /approvals/<id>")
            return
        try:
            approval = await self.store.get(parts[1])
        except (NotFound, StoreError):
            approval = None
        # Only the agent that sent the write sees it; to anyone else it does not exist.
        if approval is None or approval.context.agent != context.agent:
            flow.response = answers.refused(404, f"no approval {parts[1]} for this agent")
            return
        flow.response = answers.agent_view(approval)

    async def _request_write(self, flow: http.HTTPFlow, method: str, context: Context) -> None:
        try:
            await self._hold(flow, method, context)
        except DecodingError as exc:
            self._decided(flow, "refused")
            flow.response = answers.refused(exc.status_code, str(exc))
        except StoreError as exc:
            self._decided(flow, "refused")
            if self.metrics is not None:
                self.metrics.store_errors.inc()
            logger.error("refused %s %s: the store cannot record it: %s", method,
                         flow.request.pretty_host, exc)
            flow.response = answers.refused(
                503, "the approvals store is unavailable, so this write was refused")
        except Exception:
            self._decided(flow, "refused")
            logger.exception("refused %s %s: holding it failed", method, flow.request.pretty_host)
            flow.response = answers.refused(
                503, "the proxy could not hold this write for review, so it was refused")
        found = flow.metadata.get(MCP_KEY)
        if isinstance(found, Classified) and flow.response is not None:
            # An MCP client reads an HTTP error as a broken transport: a tool failure instead.
            flow.response = mcp_hold.as_tool_result(flow.response, found)

    def _context(self, flow: http.HTTPFlow) -> Context:
        """The X-HITL-* headers, with the authenticated agent and its default task."""
        context = take_context(flow.request.headers)
        name = flow.metadata.get(AGENT_KEY)
        if name is None and self.auth is not None and self.auth.configured:
            # No proxy authentication named this flow (SOCKS5, reverse mode): the headers are
            # claims, shown to the reviewer, never what policy or the status page go by.
            return context.model_copy(update={
                "agent": None, "task": None, "claimed_agent": context.agent,
                "claimed_task": context.task})
        if name is None:
            return context
        agent = self.auth.agent(name) if self.auth else None
        if agent is None or agent.task is None:
            return context.model_copy(update={"agent": name})
        # A header the agent controls never widens what policy allows: its configured task
        # decides, and a different claim is only shown.
        claimed = context.task if context.task not in (None, agent.task) else None
        return context.model_copy(update={"agent": name, "task": agent.task,
                                          "claimed_task": claimed})

    def response(self, flow: http.HTTPFlow) -> None:
        # Synchronous on purpose: every read passes here, and only released writes need work.
        approval_id = flow.metadata.get(APPROVAL_KEY)
        if approval_id is None or flow.response is None:
            return
        self._spawn(self._record(approval_id, status_code=flow.response.status_code))

    def error(self, flow: http.HTTPFlow) -> None:
        approval_id = flow.metadata.get(APPROVAL_KEY)
        response = flow.response
        if approval_id is None or (response is not None and response.timestamp_end):
            return  # the response hook recorded a whole answer
        message = flow.error.msg if flow.error else "unknown error"
        if response is not None:  # upstream answered, then the answer broke off: it landed
            message = f"upstream answered {response.status_code}, then: {message}"
        self._spawn(self._record(approval_id, status_code=response.status_code if response
                                 else None, error=message))

    def client_disconnected(self, client: connection.Client) -> None:
        for waiter in self._waiters.values():
            if waiter.client_id == client.id:
                waiter.settle(DETACHED)

    async def running(self) -> None:
        self._started = time.monotonic()
        self._spawn(self._expire_forever())
        # A write that was on its way upstream when the proxy died may or may not have landed:
        # never resent on our own; a reviewer checks and resolves it.
        for approval_id in await self.store.mark_in_flight_unknown():
            logger.warning("approval %s was being sent when the proxy stopped: outcome unknown",
                           approval_id)
        # An approval decided while no process was running (or before a crash) is sent now.
        for approval in await self.store.list(Status.approved):
            self._spawn(self._send_later(approval.id))

    async def done(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.upstream.close()

    # -- holding --------------------------------------------------------------------------------

    async def _hold(self, flow: http.HTTPFlow, method: str, context: Context) -> None:
        large = len(flow.request.raw_content or b"") > OFF_LOOP_BYTES
        write = await off_loop(large, _write_request, flow, method, self.resolve,
                               self.settings.max_body)
        found = flow.metadata.get(MCP_KEY)
        if isinstance(found, Classified):
            mapped = (await mcp_hold.old_values(found, self.mcp, write.url, write.headers,
                                                self.upstream)
                      if self.mcp is not None and found.call is not None
                      and found.methods == ("tools/call",) else None)
            built = mcp_hold.build(
                found, self.mcp.catalog.get(found.endpoint, found.call.tool)
                if self.mcp is not None and found.call else None, write, context,
                self.builder.policy, fingerprint(write.method, write.url, write.raw_content),
                mapped)
        else:
            built = await self.builder.build(write, context)
        if built is None and is_read(method):
            # The read path found a write in it; a classification that disagrees is not trusted.
            self._decided(flow, "refused")
            flow.response = answers.refused(
                403, "this request reads as a write (a GraphQL mutation in its URL) that the "
                     "proxy cannot describe, so it was refused")
            return
        if built is None and body_may_override(flow.request):
            self._decided(flow, "refused")
            flow.response = answers.refused(
                403, "this read carries a method override in its body (a `_method` field) "
                     "that a server may act on, so it was refused")
            return
        if built is None:
            self._decided(flow, "passed")
            return  # a read sent as POST (a search, a batch read, a GraphQL query)
        proposal, verdict = built.proposal, built.verdict
        flow.metadata[PROPOSAL_KEY] = summarize(proposal)
        if reason := self._unrecordable():
            # Every write is on the record, or it does not happen.
            self._decided(flow, "refused")
            logger.error("refused %s %s: the traffic record cannot be written: %s", method,
                         proposal.url, reason)
            flow.response = answers.refused(
                503, "the traffic record cannot be written (is the disk full?), so this write "
                     "was refused")
            return
        if verdict.action == "allow" and proposal.system is not None and proposal.request.problem:
            # A rule allows only what the proxy read as the vendor will: a body or path it
            # could not read (a repeated key, a non-canonical path) waits for a reviewer.
            logger.info("%s %s: rule %s would allow it, but it is held: %s", method,
                        proposal.url, verdict.rule, proposal.request.problem)
            verdict = dataclasses.replace(verdict, action="hold")
        if verdict.action == "allow":
            self._decided(flow, "allowed")
            await self.store.log_event("allowed", None, "proxy", {
                "rule": verdict.rule, "method": proposal.method, "url": proposal.url,
                "system": proposal.system, "fingerprint": proposal.fingerprint,
            })
            return
        if verdict.action == "deny":
            self._decided(flow, "denied")
            approval = await self.store.create(proposal, status=Status.denied)
            flow.metadata[HELD_KEY] = approval.id
            flow.response = answers.denied(approval)
            return

        if isinstance(found, Classified) and (
                kept := self.kept.take(proposal.context.agent, proposal.fingerprint)):
            # The same call from the same agent, run by the proxy after it left: its result.
            logger.info("MCP call %s answered with the result of approval %s", proposal.action,
                        kept[0])
            flow.metadata[DECISION_KEY] = "proxy"
            flow.response = mcp_hold.kept_answer(kept[1], found.request_id)
            return
        key = flow.request.headers.get("Idempotency-Key")
        key_digest = hashlib.sha256(key.encode()).hexdigest() if key else None
        if key_digest is not None and (used := await self.store.key_in_use(
                proposal.context.agent, key_digest)) is not None:
            if used.fingerprint != proposal.fingerprint:
                # Stripe's rule: a key names one request; another body under it is a mistake.
                self._decided(flow, "refused")
                flow.response = answers.refused(
                    409, "this Idempotency-Key was already used for a different request "
                         f"(approval {used.id}); use a new key for a new write", used.id)
                return
            if used.status is not Status.pending:
                self._decided(flow, "refused")
                flow.response = answers.refused(
                    409, f"this Idempotency-Key's write was already {used.status.value} "
                         f"(approval {used.id}); its status_url tells the outcome", used.id)
                return
        approval = await self.store.find_pending(proposal.fingerprint, proposal.context.agent,
                                                 key_digest)
        if approval is not None:
            # An agent's retry joins the write already waiting; it can execute only once.
            await self.store.log_event("retry_joined", approval.id, "proxy", {})
            logger.info("retry of %s %s joined approval %s", method, proposal.url, approval.id)
        else:
            sealed = await off_loop(large, self.sealer.seal,
                                    HeldRequest(method, write.url, write.headers,
                                                write.raw_content))
            sealed_before = self.sealer.seal_data(built.before) if built.before else None
            expire_after = verdict.expire_after or self.settings.expire_after
            try:
                approval = await self.store.create(
                    proposal, expires_at=utcnow() + timedelta(seconds=expire_after),
                    sealed_request=sealed, idempotency_key=key_digest,
                    max_pending=self.settings.max_pending, sealed_before=sealed_before,
                    max_pending_per_agent=self.settings.max_pending_per_agent)
            except Full as exc:
                self._decided(flow, "refused")
                logger.warning("refused %s %s: %s", method, proposal.url, exc)
                flow.response = answers.refused(429, f"too many writes wait for review: {exc}")
                flow.response.headers["Retry-After"] = "60"
                return
            logger.info("held %s %s as approval %s", method, proposal.url, approval.id)
        self._decided(flow, "held")
        flow.metadata[HELD_KEY] = approval.id

        hold_timeout = verdict.hold_timeout or self.settings.hold_timeout
        outcome = await self._wait(approval, flow.client_conn.id, hold_timeout)
        if outcome is None or isinstance(outcome, _Detached):
            flow.response = answers.pending(approval, self.settings.review_url)
        elif outcome.status is Status.rejected:
            flow.response = answers.rejected(outcome)
        elif outcome.status is Status.expired:
            flow.response = answers.expired(outcome)
        elif outcome.status is Status.approved:
            await self._release(flow, outcome)
        else:
            flow.response = answers.refused(409, f"approval is {outcome.status}", approval.id)

    async def _wait(self, approval: Approval, client_id: str,
                    hold_timeout: float) -> Approval | _Detached | None:
        """The decision, DETACHED if the agent left, or None when the hold window passed."""
        if (earlier := self._waiters.get(approval.id)) is not None:
            earlier.settle(DETACHED)  # the newest connection of a retried write is the live one
        waiter = self._waiters[approval.id] = _Waiter(client_id)
        try:
            # A decision may have landed between the commit and this waiter's registration.
            latest = await self.store.get(approval.id)
            if latest.status is not Status.pending:
                waiter.settle(latest)
        except StoreError as exc:
            logger.warning("could not re-read approval %s: %s", approval.id, exc)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.outcome), hold_timeout)
        except TimeoutError:
            pass
        finally:
            # From here on a decision finds no waiter and is sent by the proxy itself.
            if self._waiters.get(approval.id) is waiter:
                del self._waiters[approval.id]
        return waiter.outcome.result() if waiter.outcome.done() else None

    async def _release(self, flow: http.HTTPFlow, approval: Approval) -> None:
        """Let the agent's own request go upstream, once, if it is what was reviewed."""
        if self._unrecordable():
            # A write is on the record or it does not happen (yet): the proxy sends it later.
            flow.response = answers.approved_later(approval, self.settings.review_url)
            self._spawn(self._send_later(approval.id))
            return
        _, url = self.resolve.requested_url(flow)
        if not _reviewed(approval.fingerprint, effective_method(flow.request), url,
                         flow.request.raw_content or b""):
            # What was reviewed is what is sealed: the proxy sends that, never this.
            flow.response = answers.refused(
                409, "the request changed after review; the proxy sends the reviewed request "
                     "itself", approval.id)
            self._spawn(self._send_later(approval.id))
            return
        if not await self.store.claim_for_sending(approval.id):
            flow.response = answers.refused(409, "this approval was already sent", approval.id)
            return
        if approval.edits or approval.approve_fields is not None:
            write = _write_request(flow, effective_method(flow.request), self.resolve,
                                   self.settings.max_body)
            try:
                body = await self._edited(approval, write)
            except (EditError, BodyError) as exc:
                await self._record(approval.id, status_code=None,
                                   error=f"the reviewer's edits could not be applied: {exc}")
                flow.response = answers.refused(422, f"the reviewer's edits could not be "
                                                     f"applied: {exc}", approval.id)
                return
            flow.request.headers.pop("content-encoding", None)
            flow.request.content = body
        flow.metadata[APPROVAL_KEY] = approval.id

    async def _edited(self, approval: Approval, write: WriteRequest) -> bytes:
        """The body with the reviewer's edits and partial approval, recorded in the audit."""
        classification = self.builder.classify(write)
        if classification is None:
            raise EditError("no connector describes this request any more")
        body = rewrite(classification, write.content, write.content_type,
                       [edit.model_dump() for edit in approval.edits], approval.approve_fields)
        await self.store.log_event("edited", approval.id, "proxy", {
            "fingerprint": fingerprint(write.method, write.url, body),
            "bytes": len(body)})
        return body

    # -- after the agent has gone -------------------------------------------------------------

    async def _on_change(self, approval: Approval) -> None:
        if approval.status is Status.pending:
            return
        waiter = self._waiters.get(approval.id)
        if waiter is not None and not waiter.outcome.done():
            waiter.settle(approval)
        elif approval.status is Status.approved:
            self._spawn(self._send_later(approval.id))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _unrecordable(self) -> str | None:
        return self.recorder.failure if self.recorder is not None else None

    async def _send_later(self, approval_id: str) -> None:
        try:
            if self.recorder is not None and (reason := self._unrecordable()):
                logger.warning("approved write %s waits until the traffic record can be "
                               "written (%s)", approval_id, reason)
                await self.recorder.writable.wait()
            approval = await self.store.get(approval_id)
            sealed = await self.store.sealed_request(approval_id)
            if sealed is None or not await self.store.claim_for_sending(approval_id):
                return
            held = self.sealer.unseal(sealed)
            if not _reviewed(approval.fingerprint, held.method, held.url, held.content):
                await self._record(approval_id, status_code=None,
                                   error="the stored request does not match what was reviewed")
                return
            if stale := await self._changed_since_review(approval, held):
                logger.warning("approval %s not sent: %s", approval_id, stale)
                await self.store.mark_stale(approval_id, stale)
                return
            if approval.edits or approval.approve_fields is not None:
                try:
                    body = await self._edited(approval, _held_write(held, self.settings.max_body))
                except (EditError, BodyError) as exc:
                    await self._record(approval_id, status_code=None,
                                       error=f"the reviewer's edits could not be applied: {exc}")
                    return
                headers = [(k, v) for k, v in held.headers
                           if k.lower() not in ("content-encoding", "content-length")]
                held = HeldRequest(held.method, held.url, headers, body)
            started = time.time()
            try:
                response = await self.upstream.send(held)
            except httpx.HTTPError as exc:
                error = f"sending upstream failed: {exc!r}"
                self._record_sent(approval, held, started, None, error)
                await self._record(approval_id, status_code=None, error=error)
                return
            self._record_sent(approval, held, started, response, None)
            self._keep_mcp_result(approval, held, response)
            logger.info("sent approved write %s: upstream answered %s", approval_id,
                        response.status_code)
            await self._record(approval_id, status_code=response.status_code)
        except Exception:
            logger.exception("sending approved write %s failed", approval_id)

    def _keep_mcp_result(self, approval: Approval, held: HeldRequest,
                         response: httpx.Response) -> None:
        """An MCP call's result, for its agent's same call (it had gone when it was sent)."""
        call = body_call(held.content)
        if call is None or call_fingerprint(held.url, call) != approval.fingerprint:
            return
        found = [message for message in answer_messages(
            response.content, response.headers.get("content-type"))
            if isinstance(message, dict) and ("result" in message or "error" in message)]
        if found:
            self.kept.keep(approval.context.agent, approval.fingerprint, approval.id, found[-1])

    def _record_sent(self, approval: Approval, held: HeldRequest, started: float,
                     response: httpx.Response | None, error: str | None) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.record_sent(approval, held, started, response, error)
        except Exception:  # the write is sent; its result must still reach the store
            logger.exception("traffic record: could not record approved write %s", approval.id)

    async def _changed_since_review(self, approval: Approval, held: HeldRequest) -> str | None:
        """Why the record no longer looks as it did when the reviewer saw it, if it doesn't."""
        if not approval.old_values.known or approval.operation == "create":
            return None
        built = await self.builder.build(_held_write(held, self.settings.max_body),
                                         approval.context)
        if built is None:
            return None
        now = {(c.record_id, c.field): c.old for c in built.proposal.changes if c.kind == "set"}
        if not built.proposal.old_values.known:
            return ("the record could not be fetched again: "
                    f"{built.proposal.old_values.reason}")
        for change in approval.changes:
            key = (change.record_id, change.field)
            if change.kind == "set" and key in now and now[key] != change.old:
                return (f"{change.field} changed since review: it was {change.old!r}, "
                        f"it is now {now[key]!r}")
        return None

    async def propose_revert(self, approval_id: str, actor: str) -> Approval:
        """A new approval for the inverse write, linked to the first, reviewed like any other."""
        original = await self.store.get(approval_id)
        if original.status is not Status.executed:
            raise RevertError(f"only an executed write can be reverted; this one is "
                              f"{original.status.value}")
        sealed, sealed_before = (await self.store.sealed_request(approval_id),
                                 await self.store.sealed_before(approval_id))
        if sealed is None:
            raise RevertError("the original request is no longer kept")
        held = self.sealer.unseal(sealed)
        classification = self.builder.classify(_held_write(held, self.settings.max_body))
        if classification is None:
            raise RevertError("no connector describes this write")
        before = self.sealer.unseal_data(sealed_before) if sealed_before else {}
        write = inverse(original, classification, held, before)
        context = original.context.model_copy(update={
            "reason": f"revert of approval {original.id}, asked by {actor}"})
        built = await self.builder.build(write, context)
        if built is None:
            raise RevertError("the inverse write would be a read")
        proposal = built.proposal.model_copy(update={"reverts": original.id})
        created = await self.store.create(
            proposal, actor=actor, expires_at=utcnow() + timedelta(
                seconds=built.verdict.expire_after or self.settings.expire_after),
            sealed_request=self.sealer.seal(HeldRequest(write.method, write.url, write.headers,
                                                        write.raw_content)),
            sealed_before=self.sealer.seal_data(built.before) if built.before else None)
        await self.store.log_event("revert_proposed", original.id, actor,
                                   {"revert_approval_id": created.id})
        return created

    async def _record(self, approval_id: str, *, status_code: int | None,
                      error: str | None = None) -> None:
        try:
            await self.store.record_result(approval_id, status_code=status_code, error=error)
        except (Conflict, StoreError) as exc:
            logger.error("could not record the result of approval %s: %s", approval_id, exc)

    async def _expire_forever(self, every: float = 1.0) -> None:
        while True:
            try:
                for approval_id in await self.store.due_for_expiry(utcnow()):
                    try:
                        await self.store.expire(approval_id)
                        logger.info("approval %s expired", approval_id)
                    except Conflict:
                        pass
                await self._finish_stuck()
            except StoreError as exc:
                logger.error("expiry sweep failed: %s", exc)
            await asyncio.sleep(every)

    async def _finish_stuck(self) -> None:
        """No approval stays `approved` past limits.send_within: every one reaches an end."""
        within = self.settings.send_within
        if time.monotonic() - self._started < within:
            return  # approvals decided while no proxy ran get their chance to be sent first
        ends = (
            (False, self.store.fail_unsent, f"approved but not sent within {within:g} s "
                                            "(limits.send_within); it was never sent"),
            (True, self.store.mark_outcome_unknown, f"sent, but no answer was recorded within "
                                                    f"{within:g} s; check upstream, then "
                                                    "resolve it"),
        )
        for claimed, end, reason in ends:
            for approval_id in await self.store.approved_older_than(within, claimed=claimed):
                with contextlib.suppress(Conflict):
                    await end(approval_id, reason)
                    logger.error("approval %s: %s", approval_id, reason)
