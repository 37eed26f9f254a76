"""Requests the proxy itself sends upstream (current-record fetches, sends after the agent left).

They take the same route as the agent's own traffic: `--resolve` overrides and `--upstream-ca`
added to the public roots.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certifi
import httpcore
import httpx

from proxy_addon.sealing import HeldRequest

# Never forwarded on our own requests: hop-by-hop, framing, and what only the proxy may see.
_DROP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "content-length", "host",
})


def forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers
            if name.lower() not in _DROP_HEADERS and not name.lower().startswith("x-hitl-")]


def trust_context(upstream_ca: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if upstream_ca is not None:
        context.load_verify_locations(cafile=str(upstream_ca))
    return context


def combined_ca_bundle(upstream_ca: Path, target: Path) -> Path:
    """mitmproxy's trusted-CA option replaces the public roots, so give it both."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + upstream_ca.read_bytes())
    return target


class _ResolvingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, resolve: Mapping[str, tuple[str, int]]) -> None:
        self._resolve = resolve
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        host, port = self._resolve.get(host.lower(), (host, port))
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Fetched:
    record: Any | None  # parsed JSON body on success
    status_code: int | None
    problem: str | None  # why there is no record, for the reviewer


class UpstreamClient:
    def __init__(self, resolve: Mapping[str, tuple[str, int]], upstream_ca: Path | None,
                 timeout: float) -> None:
        context = trust_context(upstream_ca)
        transport = httpx.AsyncHTTPTransport(verify=context)
        # httpx has no public hook for the connect address; swap the pool for one that resolves
        # like mitmproxy does, keeping TLS SNI and certificate checks on the requested host.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, network_backend=_ResolvingBackend(dict(resolve))
        )
        self._client = httpx.AsyncClient(transport=transport, trust_env=False, timeout=timeout,
                                         follow_redirects=False)
        self._timeout = timeout

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch_json(self, url: str, headers: list[tuple[str, str]], method: str = "GET",
                         json_body: Any = None) -> Fetched:
        """A read with the agent's own credentials; a POST only for the vendor's read endpoints."""
        # Any header naming a method (X-HTTP-Method-Override, X-Original-Method...) could turn
        # this GET into the very write under review.
        request_headers = [(n, v) for n, v in forwardable(headers)
                           if n.lower() not in ("content-type", "content-encoding",
                                                "idempotency-key") and "method" not in n.lower()]
        try:
            response = await self._read(method, url, request_headers, json_body)
        except httpx.TimeoutException:
            return Fetched(None, None, f"the upstream did not answer within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return Fetched(None, None, f"the upstream could not be reached: {exc}")
        if not 200 <= response.status_code < 300:  # 207: some records found, some not
            return Fetched(None, response.status_code,
                           f"the upstream answered {response.status_code} "
                           f"{response.reason_phrase} to {method} {httpx.URL(url).path}")
        try:
            return Fetched(response.json(), response.status_code, None)
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            return Fetched(None, response.status_code,
                           f"the upstream's answer is not JSON ({kind})")

    async def _read(self, method: str, url: str, headers: list[tuple[str, str]],
                    json_body: Any) -> httpx.Response:
        """A read, tried once more on a broken connection: a pooled connection the upstream
        closed while idle fails with "Server disconnected without sending a response", and
        a read is safe to repeat. A timeout is not repeated (the upstream is slow, not gone)."""
        try:
            return await self._client.request(method, url, headers=headers, json=json_body)
        except httpx.TimeoutException:
            raise
        except httpx.TransportError:
            return await self._client.request(method, url, headers=headers, json=json_body)

    async def post(self, url: str, headers: list[tuple[str, str]],
                   content: bytes) -> httpx.Response:
        """A POST the proxy makes itself (an MCP read tool's call); headers as given."""
        return await self._client.post(url, headers=headers, content=content)

    async def send(self, held: HeldRequest) -> httpx.Response:
        return await self._client.request(held.method, held.url, headers=forwardable(held.headers),
                                          content=held.content)
