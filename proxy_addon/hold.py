"""The addon that holds every write until a reviewer decides.

Reads pass with nothing but the removal of our X-HITL-* headers. A write becomes a proposal,
is committed to the store, and its agent waits here (`waiting.Waiters`) until the decision
comes through the store's change feed; the executor then releases the agent's own request, or
sends the sealed one after the agent left. Every error on the write path refuses the write:
mitmproxy would otherwise send a request upstream when a hook raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from mitmproxy import connection, http

from proxy_addon import answers, mcp_hold
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.agent_context import context_of
from proxy_addon.decoding import DecodingError, decoded
from proxy_addon.executor import Executor, HoldSettings
from proxy_addon.flow_note import Decided, note, peek
from proxy_addon.hidden_writes import write_in_read
from proxy_addon.joining import Refusal, join_or_create
from proxy_addon.mcp import Classified, McpRules
from proxy_addon.mcp_hold import McpHold
from proxy_addon.methods import (
    MethodOverrideError,
    body_may_override,
    effective_method,
    is_read,
)
from proxy_addon.offload import OFF_LOOP_BYTES, off_loop
from proxy_addon.proposals import Built, ProposalBuilder, WriteRequest
from proxy_addon.resolve import Resolve
from proxy_addon.revert_proposals import RevertProposals
from proxy_addon.sealing import Sealer
from proxy_addon.status_host import StatusHost
from proxy_addon.sweeper import Sweeper
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.upstream import UpstreamClient
from proxy_addon.waiting import Detached, Waiters
from review_api.feed import ChangeFeed
from review_api.lifecycle import TRANSITIONS
from review_api.metrics import Metrics
from review_api.models import Approval, Context, Status
from review_api.store import StatusChange, Store, StoreError

logger = logging.getLogger("hitl_proxy")
# Where an approved write goes once one connection of it claimed the send (review_api.lifecycle).
SENT_BY_ANOTHER = TRANSITIONS[Status.approved] | TRANSITIONS[Status.sending]

__all__ = ["HoldAddons", "HoldSettings", "HoldWrites", "hold_addons"]


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


class HoldWrites:
    def __init__(self, store: Store, feed: ChangeFeed, builder: ProposalBuilder,
                 executor: Executor, resolve: Resolve, settings: HoldSettings,
                 auth: AgentAuth | None = None, metrics: Metrics | None = None,
                 recorder: TrafficRecorder | None = None, mcp: McpHold | None = None) -> None:
        self.store = store
        self.feed = feed
        self.builder = builder
        self.executor = executor
        self.resolve = resolve
        self.settings = settings
        self.auth = auth
        self.metrics = metrics
        self.recorder = recorder
        self.mcp = mcp
        self.waiters = Waiters()
        self._following: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

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

    def response(self, flow: http.HTTPFlow) -> None:
        # Synchronous on purpose: every read passes here, and only released writes need work.
        found = peek(flow)
        if found is None or found.released is None or flow.response is None:
            return
        self._spawn(self.executor.record(found.released, status_code=flow.response.status_code))

    def error(self, flow: http.HTTPFlow) -> None:
        found = peek(flow)
        response = flow.response
        if found is None or found.released is None or (
                response is not None and response.timestamp_end):
            return  # the response hook recorded a whole answer
        message = flow.error.msg if flow.error else "unknown error"
        if response is not None:  # upstream answered, then the answer broke off: it landed
            message = f"upstream answered {response.status_code}, then: {message}"
        self._spawn(self.executor.record(found.released, status_code=response.status_code
                                         if response else None, error=message))

    def client_disconnected(self, client: connection.Client) -> None:
        self.waiters.detach(client.id)

    async def running(self) -> None:
        self._following = asyncio.ensure_future(self._follow_decisions())

    async def done(self) -> None:
        tasks = [*self._tasks, *([self._following] if self._following else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.executor.close()
        await self.executor.upstream.close()

    # -- decisions, from the change feed ------------------------------------------------------

    async def _follow_decisions(self) -> None:
        """Every decision, taken on any replica: an agent waiting here is answered; an
        approved write whose agent is not here goes to the executor (the claim decides which
        replica sends it)."""
        after: int | None = None
        while True:
            try:
                async for change in self.feed.follow(after):
                    await self._on_change(change)
                    after = change.seq  # handled: a failure resumes from the next one
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is down: catch up from `after` once it is back
                logger.error("reading the change feed failed: %s", exc)
                await asyncio.sleep(1.0)

    async def _on_change(self, change: StatusChange) -> None:
        if change.status is Status.pending:
            return  # a vote short of the quorum
        if self.waiters.waiting(change.approval_id):
            self.waiters.settle(await self.store.get(change.approval_id))
        elif change.status is Status.approved:
            self.executor.send_later(change.approval_id)

    # -- deciding -----------------------------------------------------------------------------

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

    def _refuse(self, flow: http.HTTPFlow, status_code: int, message: str,
                approval_id: str | None = None) -> None:
        self._decided(flow, "refused")
        flow.response = answers.refused(status_code, message, approval_id)

    def _passed(self) -> None:
        if self.metrics is not None:
            self.metrics.counted["passed"].inc()

    def _decide(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live:
            return None
        context = context_of(flow, self.auth)
        if self.recorder is not None:  # only the traffic record reads it
            note(flow).context = context
        flow.request.headers.pop("Proxy-Authorization", None)
        if flow.request.trailers:
            # Sent upstream after this hook and never reviewed: refused, whatever they say.
            self._refuse(flow, 400, "requests with trailers are refused")
            return None
        try:
            method = effective_method(flow.request)
        except MethodOverrideError as exc:
            self._refuse(flow, 400, str(exc))
            return None
        if self.mcp is not None and (mcp := self._mcp(flow, method, context)) is not False:
            return mcp
        if is_read(method) and (carried := write_in_read(
                flow, self.resolve, self.builder.matcher, self.settings.max_body)) is not None:
            logger.info("%s %s is held as a write: %s", method, flow.request.pretty_host,
                        carried)
            return self._request_write(flow, method, context)
        if is_read(method):
            self._passed()
            return None  # no decision noted: "passed" is what the traffic record assumes
        return self._request_write(flow, method, context)

    def _mcp(self, flow: http.HTTPFlow, method: str,
             context: Context) -> Awaitable[None] | bool | None:
        """The MCP reading of the request: its hold, None when it passes, False when it is
        no MCP message and the usual rules decide."""
        assert self.mcp is not None
        if legacy := self.mcp.legacy(flow, method):
            self._refuse(flow, 400, legacy)
            return None
        found = self.mcp.message(flow, method)
        if found is None:
            return False
        note(flow).mcp = found
        if found.verdict == "write" and self.mcp.unlisted(found):
            return self._list_then_decide(flow, method, context, found)
        if found.verdict == "write":
            return self._request_write(flow, method, context)
        if found.methods == ("tools/list",):
            note(flow).tools_list = found.endpoint  # learn its tools' annotations
        self._passed()
        return None

    async def _list_then_decide(self, flow: http.HTTPFlow, method: str, context: Context,
                                found: Classified) -> None:
        """Fetch the server's tools/list with the agent's credentials, then decide again; a
        fetch that fails leaves the call held."""
        assert self.mcp is not None
        await self.mcp.list_tools(flow, found)
        again = self.mcp.message(flow, method)
        if again is not None:
            note(flow).mcp = again
        if again is not None and again.verdict == "pass":
            self._passed()
            return
        await self._request_write(flow, method, context)

    def _decided(self, flow: http.HTTPFlow, decision: Decided) -> None:
        """For /metrics and the traffic record."""
        note(flow).decision = decision
        if self.metrics is not None:
            self.metrics.counted[decision].inc()

    async def _request_write(self, flow: http.HTTPFlow, method: str, context: Context) -> None:
        try:
            await self._hold(flow, method, context)
        except DecodingError as exc:
            self._refuse(flow, exc.status_code, str(exc))
        except StoreError as exc:
            if self.metrics is not None:
                self.metrics.store_errors.inc()
            logger.error("refused %s %s: the store cannot record it: %s", method,
                         flow.request.pretty_host, exc)
            self._refuse(flow, 503, "the approvals store is unavailable, so this write was "
                                    "refused")
        except Exception:
            logger.exception("refused %s %s: holding it failed", method, flow.request.pretty_host)
            self._refuse(flow, 503, "the proxy could not hold this write for review, so it was "
                                    "refused")
        found = note(flow).mcp
        if found is not None and flow.response is not None:
            # An MCP client reads an HTTP error as a broken transport: a tool failure instead.
            flow.response = mcp_hold.as_tool_result(flow.response, found)

    # -- holding --------------------------------------------------------------------------------

    async def _built(self, flow: http.HTTPFlow, write: WriteRequest,
                     context: Context) -> Built | None:
        found = note(flow).mcp
        if found is not None and self.mcp is not None:
            return await self.mcp.built(found, write, context, self.builder.policy)
        return await self.builder.build(write, context)

    async def _hold(self, flow: http.HTTPFlow, method: str, context: Context) -> None:
        large = len(flow.request.raw_content or b"") > OFF_LOOP_BYTES
        write = await off_loop(large, _write_request, flow, method, self.resolve,
                               self.settings.max_body)
        built = await self._built(flow, write, context)
        if built is None and is_read(method):
            # The read path found a write in it; a classification that disagrees is not trusted.
            self._refuse(flow, 403, "this request reads as a write (a GraphQL mutation in its "
                                    "URL) that the proxy cannot describe, so it was refused")
            return
        if built is None and body_may_override(flow.request):
            self._refuse(flow, 403, "this read carries a method override in its body (a "
                                    "`_method` field) that a server may act on, so it was "
                                    "refused")
            return
        if built is None:
            self._decided(flow, "passed")
            return  # a read sent as POST (a search, a batch read, a GraphQL query)
        proposal, verdict = built.proposal, built.verdict
        note(flow).proposal = proposal
        if reason := self.executor.unrecordable():
            # Every write is on the record, or it does not happen.
            logger.error("refused %s %s: the traffic record cannot be written: %s", method,
                         proposal.url, reason)
            self._refuse(flow, 503, "the traffic record cannot be written (is the disk full?), "
                                    "so this write was refused")
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
            note(flow).held = approval.id
            flow.response = answers.denied(approval)
            return
        if self._answer_kept(flow, proposal.context.agent, proposal.fingerprint):
            return
        approval = await join_or_create(self.store, self.executor.sealer, self.settings,
                                        flow.request.headers.get("Idempotency-Key"), write,
                                        built, large)
        if isinstance(approval, Refusal):
            self._refuse(flow, approval.status_code, approval.message, approval.approval_id)
            if approval.retry_after is not None and flow.response is not None:
                flow.response.headers["Retry-After"] = approval.retry_after
            return
        self._decided(flow, "held")
        note(flow).held = approval.id
        await self._wait_and_answer(flow, approval, verdict.hold_timeout
                                    or self.settings.hold_timeout)

    def _answer_kept(self, flow: http.HTTPFlow, agent: str | None, fingerprint: str) -> bool:
        """The same MCP call from the same agent, run by the proxy after it left: its result."""
        found = note(flow).mcp
        if found is None or self.mcp is None or not (
                kept := self.mcp.kept.take(agent, fingerprint)):
            return False
        logger.info("MCP call %s answered with the result of approval %s",
                    found.call.tool if found.call else "?", kept[0])
        note(flow).decision = "proxy"
        flow.response = mcp_hold.kept_answer(kept[1], found.request_id)
        return True

    async def _wait_and_answer(self, flow: http.HTTPFlow, approval: Approval,
                               hold_timeout: float) -> None:
        """Hold the agent until the decision, its hang-up or the end of the hold window."""
        waiter = self.waiters.register(approval.id, flow.client_conn.id)
        try:
            try:
                # A decision may have landed between the commit and this waiter's registration.
                latest = await self.store.get(approval.id)
                if latest.status is not Status.pending:
                    waiter.settle(latest)
            except StoreError as exc:
                logger.warning("could not re-read approval %s: %s", approval.id, exc)
            outcome = await self.waiters.wait(waiter, hold_timeout)
            self.waiters.end(approval.id, waiter)
            await self._answer(flow, approval, outcome)
        finally:
            self.waiters.end(approval.id, waiter)
            if not self.waiters.waiting(approval.id):
                # No agent waits here any more: any replica's sender may claim it now.
                with contextlib.suppress(StoreError):
                    await self.store.unhold(approval.id)

    async def _answer(self, flow: http.HTTPFlow, approval: Approval,
                      outcome: Approval | Detached | None) -> None:
        if outcome is None or isinstance(outcome, Detached):
            flow.response = answers.pending(approval, self.settings.review_url)
        elif outcome.status is Status.rejected:
            flow.response = answers.rejected(outcome)
        elif outcome.status is Status.expired:
            flow.response = answers.expired(outcome)
        elif outcome.status is Status.approved:
            await self.executor.release(flow, outcome)
        elif outcome.status in SENT_BY_ANOTHER:
            # Another connection of this write (a retry, maybe on another replica) already
            # claimed it: this older one learns where it stands, never a conflict.
            flow.response = answers.handled_elsewhere(outcome)
        else:
            flow.response = answers.refused(409, f"approval is {outcome.status}", approval.id)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- for the composition root -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HoldAddons:
    """The hold's addons, in the order mitmproxy must run them relative to each other (the
    status host answers before the hold decides; the sweeper stops before the hold closes
    the executor), and the review API's revert."""

    addons: tuple[object, ...]
    propose_revert: Callable[[str, str], Awaitable[Approval]]
    hold: HoldWrites
    executor: Executor
    sweeper: Sweeper


def hold_addons(store: Store, feed: ChangeFeed, builder: ProposalBuilder, sealer: Sealer,
                upstream: UpstreamClient, resolve: Resolve, settings: HoldSettings,
                auth: AgentAuth | None = None, metrics: Metrics | None = None,
                recorder: TrafficRecorder | None = None,
                mcp: McpRules | None = None) -> HoldAddons:
    """Build the hold from its parts: one executor shared by the hold (agent still here) and
    the sweeper (agent gone), one MCP step for both."""
    mcp_steps = McpHold(mcp, resolve, upstream, settings.max_body) if mcp is not None else None
    executor = Executor(store, builder, sealer, upstream, resolve, settings, recorder,
                        mcp_steps)
    hold = HoldWrites(store, feed, builder, executor, resolve, settings, auth, metrics,
                      recorder, mcp_steps)
    sweeper = Sweeper(store, executor, settings.send_within)
    reverts = RevertProposals(store, builder, sealer, settings)
    # The sweeper's `done` runs before the hold's, which closes the executor and upstream.
    return HoldAddons(addons=(StatusHost(store, auth, metrics), sweeper, hold),
                      propose_revert=reverts.propose, hold=hold, executor=executor,
                      sweeper=sweeper)
