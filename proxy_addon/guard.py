"""Keeps the review API out of the proxy's reach: an agent must never decide through us."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket

from mitmproxy import proxy

logger = logging.getLogger("hitl_proxy")


def _local_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(ipaddress.ip_address(info[4][0]))
    except OSError:
        pass
    return addresses


class ReviewApiGuard:
    def __init__(self, review_host: str, review_port: int) -> None:
        self.review_port = review_port
        self._review_host = review_host
        self._local = _local_addresses()

    def _lands_on_review_api(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return (ip.is_loopback or ip.is_unspecified or ip in self._local
                or address == self._review_host)

    async def server_connect(self, data: proxy.server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.address is None or server.address[1] != self.review_port:
            return  # the only port the review API listens on: everything else is fast-pathed
        host = str(server.address[0])
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, self.review_port, type=socket.SOCK_STREAM)
            addresses = [str(info[4][0]) for info in infos]
        except OSError:
            addresses = [host]
        if any(self._lands_on_review_api(address) for address in addresses):
            logger.warning("refused a connection through the proxy to the review API (%s:%s)",
                           host, self.review_port)
            server.error = "the review API cannot be reached through the proxy"
