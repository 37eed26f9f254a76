"""`--resolve HOST=ADDR:PORT` for the agent's own connections, like curl's --resolve."""

from __future__ import annotations

from collections.abc import Mapping

from mitmproxy import connection, http, proxy


class Resolve:
    def __init__(self, resolve: Mapping[str, tuple[str, int]]) -> None:
        self._resolve = {host.lower(): address for host, address in resolve.items()}
        # server connection id -> the (host, port) the agent asked for
        self._requested: dict[str, tuple[str, int]] = {}

    def server_connect(self, data: proxy.server_hooks.ServerConnectionHookData) -> None:
        server: connection.Server = data.server
        if server.address is None:
            return
        requested = (str(server.address[0]), int(server.address[1]))
        target = self._resolve.get(requested[0].lower())
        if target is not None:
            # Only where we connect changes; SNI and Host stay the name the agent asked for.
            if server.sni is None:
                server.sni = requested[0]
            self._requested[server.id] = requested
            server.address = target

    def server_disconnected(self, data: proxy.server_hooks.ServerConnectionHookData) -> None:
        self._requested.pop(data.server.id, None)

    def __bool__(self) -> bool:
        """False when nothing is redirected, so callers can skip asking."""
        return bool(self._resolve)

    def requested_address(self, flow: http.HTTPFlow) -> tuple[str, int] | None:
        """What the agent asked for, if we connected elsewhere; asked while connected."""
        return self._requested.get(flow.server_conn.id)

    def requested_url(self, flow: http.HTTPFlow) -> tuple[str, str]:
        """Host and URL as the agent asked for them, whatever address we connected to."""
        request = flow.request
        requested = self._requested.get(flow.server_conn.id)
        if requested is None:
            return request.host, request.url
        host, port = requested
        default_port = 443 if request.scheme == "https" else 80
        authority = host if port == default_port else f"{host}:{port}"
        return host, f"{request.scheme}://{authority}{request.path}"
