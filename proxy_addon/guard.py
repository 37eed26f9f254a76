"""Keeps the review API out of the proxy's reach: an agent must never decide through us.

Any connection to the review port that would land on this machine is refused, whatever the
spelling: loopback, unspecified, any address assigned to an interface here, and the IPv6 forms
that embed one of those (`::ffff:127.0.0.1`, `::ffff:7f00:1`, `::127.0.0.1`, which Python's
`ipaddress` does not call loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable

from mitmproxy import http, proxy
from mitmproxy.proxy import mode_specs

from proxy_addon import answers
from proxy_addon.flow_note import note

logger = logging.getLogger("hitl_proxy")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def normalised(address: str) -> Address | None:
    """The address an IPv6 spelling embeds (mapped, compatible), or the address itself."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if (int(ip) >> 32) == 0xFFFF_0000:  # IPv4-translated ::ffff:0:a.b.c.d (RFC 2765)
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_this_machine(ip: Address) -> bool:
    """True when a connection to `ip` would reach this machine: the kernel lets us bind it."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(ip), 0))
    except OSError:
        return False
    return True


class ReviewApiGuard:
    def __init__(self, review_host: str, review_port: int) -> None:
        self.review_port = review_port
        self._review_host = review_host

    def lands_on_review_api(self, address: str) -> bool:
        ip = normalised(address)
        if ip is None:
            return address.lower() == self._review_host.lower()
        review = normalised(self._review_host)
        return is_this_machine(ip) or (review is not None and ip == review)

    async def _resolved(self, host: str) -> list[str]:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, self.review_port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        return [str(info[4][0]) for info in infos]

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """In upstream mode mitmproxy connects to the upstream proxy, which then connects to
        the request's target: that target is checked here, since server_connect never sees it.
        Synchronous unless there is something to look up: every read passes here."""
        if flow.response is not None or flow.request.port != self.review_port:
            return None
        if not isinstance(flow.client_conn.proxy_mode, mode_specs.UpstreamMode):
            return None
        return self._refuse_review_target(flow)

    async def _refuse_review_target(self, flow: http.HTTPFlow) -> None:
        host = flow.request.host
        addresses = await self._resolved(host)
        if (self.lands_on_review_api(host) or not addresses
                or any(self.lands_on_review_api(address) for address in addresses)):
            logger.warning("refused a request through the upstream proxy to the review API "
                           "(%s:%s)", host, self.review_port)
            note(flow).decision = "refused"
            flow.response = answers.refused(403, "the review API cannot be reached through "
                                                 "the proxy")

    http_connect = requestheaders

    async def server_connect(self, data: proxy.server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None or server.address[1] != self.review_port:
            return  # the only port the review API listens on: everything else is fast-pathed
        host = str(server.address[0])
        addresses = await self._resolved(host)
        if (self.lands_on_review_api(host) or not addresses
                or any(self.lands_on_review_api(address) for address in addresses)):
            logger.warning("refused a connection through the proxy to the review API (%s:%s)",
                           host, self.review_port)
            server.error = "the review API cannot be reached through the proxy"
            return
        if normalised(host) is None:
            # Connect to the address just checked, so a second lookup cannot land elsewhere.
            if server.sni is None:
                server.sni = host
            server.address = (addresses[0], self.review_port)
