"""`--resolve HOST=ADDR:PORT` for the agent's own connections, like curl's --resolve."""

from __future__ import annotations

from collections.abc import Mapping

from mitmproxy import connection, proxy


class Resolve:
    def __init__(self, resolve: Mapping[str, tuple[str, int]]) -> None:
        self._resolve = {host.lower(): address for host, address in resolve.items()}

    def server_connect(self, data: proxy.server_hooks.ServerConnectionHookData) -> None:
        server: connection.Server = data.server
        if server.address is None:
            return
        target = self._resolve.get(str(server.address[0]).lower())
        if target is not None:
            # Only where we connect changes; SNI and Host stay the name the agent asked for.
            if server.sni is None:
                server.sni = str(server.address[0])
            server.address = target
