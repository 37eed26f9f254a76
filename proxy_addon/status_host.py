"""hitl-proxy.status: the agent's own read-only view of its approvals, answered by the proxy.

The host never resolves and nothing sent to it goes upstream. It runs before the hold, so a
request to it is answered here and the hold sees a flow that already has its response.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from mitmproxy import http

from proxy_addon import answers
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.agent_context import context_of
from proxy_addon.flow_note import note
from review_api.metrics import Metrics
from review_api.store import NotFound, Store, StoreError

logger = logging.getLogger("hitl_proxy")

STATUS_HOST = "hitl-proxy.status"


class StatusHost:
    def __init__(self, store: Store, auth: AgentAuth | None = None,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.auth = auth
        self.metrics = metrics

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Synchronous for every other host: one comparison, no task."""
        if flow.response or flow.error or not flow.live:
            return None
        if flow.request.pretty_host != STATUS_HOST:
            return None
        try:
            found = note(flow)
            found.decision = "proxy"
            found.context = context_of(flow, self.auth)
        except Exception:
            self._refuse(flow)
            return None
        return self._answer(flow)

    async def _answer(self, flow: http.HTTPFlow) -> None:
        try:
            flow.response = await self._view(flow)
        except Exception:
            self._refuse(flow)

    def _refuse(self, flow: http.HTTPFlow) -> None:
        """Never let a status request go on to be resolved: an error answers 503 here."""
        logger.exception("the approval status request failed")
        note(flow).decision = "refused"
        if self.metrics is not None:
            self.metrics.counted["refused"].inc()
        flow.response = answers.refused(503, "the approval status could not be read")

    async def _view(self, flow: http.HTTPFlow) -> http.Response:
        parts = flow.request.path.split("?")[0].strip("/").split("/")
        if flow.request.method not in ("GET", "HEAD"):
            return answers.refused(405, "the approval status is read-only")
        if len(parts) != 2 or parts[0] != "approvals":
            return answers.refused(404, "ask for /approvals/<id>")
        try:
            approval = await self.store.get(parts[1])
        except (NotFound, StoreError):
            approval = None
        context = note(flow).context
        # Only the agent that sent the write sees it; to anyone else it does not exist.
        if approval is None or context is None or approval.context.agent != context.agent:
            return answers.refused(404, f"no approval {parts[1]} for this agent")
        return answers.agent_view(approval)
