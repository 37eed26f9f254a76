"""A request goes to the host the tunnel was opened to, and only there.

`flow.request.host` inside a CONNECT tunnel is the tunnel's target, but the upstream routes on
the `Host` header (and the TLS SNI): an agent could open a tunnel to a sandbox tenant that a rule
allows and write to the production tenant. The reviewer sees, and the proxy fetches old values
from, the tunnel's host; so every other spelling of a destination must agree with it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import MutableMapping

from mitmproxy import connection, http
from mitmproxy.net.http import url
from mitmproxy.proxy import mode_specs

from proxy_addon import answers
from proxy_addon.flow_note import note
from proxy_addon.resolve import Resolve

logger = logging.getLogger("hitl_proxy")


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _authority(value: str) -> tuple[str, int | None] | None:
    """(host, port) of a Host header or authority; port None when it names none."""
    try:
        host, port = url.parse_authority(value.strip(), check=True)
    except ValueError:
        return None
    return _normal(host), port


class HostBinding:
    def __init__(self, resolve: Resolve | None = None) -> None:
        self._resolve = resolve
        # client connection -> (host, port) its CONNECT named
        self._tunnels: MutableMapping[connection.Client, tuple[str, int]] = (
            weakref.WeakKeyDictionary())

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return  # refused already (proxy authentication)
        if flow.client_conn in self._tunnels:
            self._refuse(flow, 421, "a CONNECT inside a tunnel is refused")
            return
        self._tunnels[flow.client_conn] = (_normal(flow.request.host), flow.request.port)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        if (problem := self._misdirected(flow)) is not None:
            logger.warning("refused %s %s: %s", flow.request.method, flow.request.pretty_host,
                           problem)
            self._refuse(flow, 421, problem)

    def _misdirected(self, flow: http.HTTPFlow) -> str | None:
        request = flow.request
        requested = self._resolve.requested_address(flow) if self._resolve else None
        if isinstance(flow.client_conn.proxy_mode, mode_specs.ReverseMode):
            # mitmproxy wrote Host itself (keep_host_header is refused): from the address it
            # connected to, which --resolve may have changed; put back the name reviewed.
            target_host = requested[0] if requested is not None else request.host
            if request.authority and (found := _authority(request.authority)) is not None \
                    and found[0] != _normal(target_host):
                return (f"the request target names {request.authority!r}, but this proxy "
                        f"sends to {target_host}")
            if request.authority and not request.is_http2:
                request.authority = ""  # origin-form upstream: only Host names the host
            if requested is not None:
                request.host_header = url.hostport(request.scheme, *requested)
            return None
        tunnel = self._tunnels.get(flow.client_conn)
        # Not in a CONNECT tunnel: where mitmproxy connects (the absolute-form URL, the SOCKS
        # target), as the agent named it before --resolve redirected it.
        if tunnel is not None:
            target = tunnel
        elif requested is not None:
            target = (_normal(requested[0]), requested[1])
        else:
            target = (_normal(request.host), request.port)
        named = []
        hosts = request.headers.get_all("host")
        if len(hosts) > 1:
            return "the request carries more than one Host header"
        named += [("Host header", value) for value in hosts]
        if request.authority:
            named.append(("request target", request.authority))
        for where, value in named:
            found = _authority(value)
            if found is None:
                return f"the {where} {value!r} is not a valid host"
            # The host names the tenant; a port, when given, must be the connection's too
            # (clients often leave a non-default port out of Host).
            if found[0] != target[0] or found[1] not in (None, target[1]):
                return (f"the {where} names {value!r}, but this connection goes to "
                        f"{target[0]}:{target[1]}; open a tunnel to that host instead")
        sni = flow.client_conn.sni
        # The upstream TLS connection carries the agent's SNI, and some hosts route by it.
        if sni and _normal(sni) != target[0]:
            return (f"the TLS server name {sni!r} differs from the tunnel's host {target[0]!r}")
        return None

    @staticmethod
    def _refuse(flow: http.HTTPFlow, status_code: int, message: str) -> None:
        note(flow).decision = "refused"
        flow.response = answers.refused(status_code, f"misdirected request: {message}")
