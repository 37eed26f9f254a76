"""Protocol upgrades: WebSocket only, and only to hosts the config lists.

WebSocket messages are not reviewed (a GraphQL subscription or mutation over a socket would
write unseen), so an upgrade is allowed only where `websocket_hosts` says its messages may pass;
any other `Upgrade` (h2c, a custom protocol) would end in bytes the proxy does not parse.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from mitmproxy import http

from proxy_addon import answers
from proxy_addon.flow_note import note


class WebSocketGate:
    def __init__(self, websocket_hosts: list[str]) -> None:
        self.hosts = [glob.lower() for glob in websocket_hosts]

    def _allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return any(fnmatchcase(name, glob) for glob in self.hosts)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if flow.response is not None:
            return
        extended = request.method == "CONNECT" and request.is_http2  # RFC 8441
        upgrade = request.headers.get_all("upgrade")
        # An upstream may switch to WebSocket on the Sec-WebSocket-* headers alone.
        handshake = any(name.lower().startswith("sec-websocket-") for name in request.headers)
        if not upgrade and not extended and not handshake:
            return
        protocols = {token.strip().lower() for value in upgrade for token in value.split(",")}
        if handshake and not upgrade:
            protocols = {"websocket"}
        host = request.pretty_host
        if protocols - {"websocket"} or extended:
            message = (f"protocol upgrades other than WebSocket are refused "
                       f"(Upgrade: {', '.join(upgrade) or 'extended CONNECT'})")
        elif not self._allowed(host):
            message = (f"WebSocket connections are allowed only to hosts in the config's "
                       f"websocket_hosts, and {host} is not one (their messages are not "
                       "reviewed)")
        else:
            note(flow).websocket = True
            return
        note(flow).decision = "refused"
        flow.response = answers.refused(403, message)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """A switch nobody allowed here (an upstream's own 101) ends the connection."""
        response = flow.response
        if response is not None and response.status_code == 101 and not note(
                flow).websocket:
            note(flow).decision = "refused"
            flow.kill()
