"""Names the agent from proxy authentication, so agents need no code change to be told apart.

`HTTPS_PROXY=http://triage-bot:secret@127.0.0.1:8080`: the secret is checked against the config,
the name lands in flow.metadata, and neither Proxy-Authorization nor the secret goes further.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import weakref
from collections.abc import MutableMapping

from mitmproxy import connection, http
from mitmproxy.proxy import mode_specs

from proxy_addon.config import Agent
from proxy_addon.flow_note import note

REALM = "hitl-proxy"


def _credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, secret) if sep else None


class AgentAuth:
    def __init__(self, agents: list[Agent]) -> None:
        self._agents = {agent.name: agent for agent in agents}
        # Requests inside a CONNECT tunnel carry no Proxy-Authorization: remember the tunnel.
        self._tunnels: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()

    def agent(self, name: str) -> Agent | None:
        return self._agents.get(name)

    @property
    def configured(self) -> bool:
        """Agents are named by proxy authentication only, never by a header they send."""
        return bool(self._agents)

    def _verify(self, flow: http.HTTPFlow) -> str | None:
        found = _credentials(flow.request.headers.get("Proxy-Authorization", ""))
        flow.request.headers.pop("Proxy-Authorization", None)
        if found is None:
            return None
        digest = hashlib.sha256(found[1].encode()).digest()
        name = None
        # Compare with every agent so timing tells nothing about which names exist.
        for agent in self._agents.values():
            if hmac.compare_digest(agent.name.encode(), found[0].encode()) & hmac.compare_digest(
                    agent.digest, digest):
                name = agent.name
        return name

    def _required(self, flow: http.HTTPFlow) -> bool:
        # Only a forward proxy can ask for proxy credentials; reverse mode has none to give.
        mode = flow.client_conn.proxy_mode
        forward = (mode_specs.RegularMode, mode_specs.UpstreamMode)
        return bool(self._agents) and isinstance(mode, forward)

    def _challenge(self, flow: http.HTTPFlow) -> None:
        note(flow).decision = "refused"
        flow.response = http.Response.make(
            407, b'{"status": "refused", "message": "proxy authentication required: '
                 b'HTTPS_PROXY=http://<agent>:<secret>@host:port"}',
            {"Proxy-Authenticate": f'Basic realm="{REALM}"', "Content-Type": "application/json"})

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if not self._required(flow):
            return
        name = self._verify(flow)
        if name is None:
            self._challenge(flow)
            return
        self._tunnels[flow.client_conn] = name
        note(flow).agent = name

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self._required(flow):
            flow.request.headers.pop("Proxy-Authorization", None)
            return
        name = self._tunnels.get(flow.client_conn) or self._verify(flow)
        flow.request.headers.pop("Proxy-Authorization", None)
        if name is None:
            self._challenge(flow)
            return
        note(flow).agent = name
