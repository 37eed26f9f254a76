"""The hold's parts built as the composition root builds them, on a real SQLite store, and a
tiny upstream that counts what reaches it: shared by the unit tests of the hold's addons."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from connectors_schemas import Matcher, load_connectors
from proxy_addon.hold import HoldAddons, HoldSettings, hold_addons
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import Sealer
from proxy_addon.upstream import UpstreamClient
from review_api.feed import ChangeFeed
from review_api.models import Approval, Status
from review_api.store import SqliteStore, Store

HOST = "acme.zendesk.com"
TICKET = {"id": 1, "status": "open", "subject": "Printer"}


@dataclass
class Upstream:
    """A Zendesk-shaped HTTP/1.1 server: GET answers the ticket, every write is counted."""

    ticket: dict[str, object] = field(default_factory=lambda: dict(TICKET))
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    port: int = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method = head.split(" ", 1)[0]
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length) if length else b""
            if method != "GET":
                self.writes.append((method, body))
            answer = json.dumps({"ticket": self.ticket}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                         % (len(answer), answer))
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Upstream]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


@functools.cache
def matcher() -> Matcher:
    """Every shipped connector, loaded once for the whole run (it takes seconds)."""
    return Matcher(load_connectors())


def settings(**changes: object) -> HoldSettings:
    base: dict[str, object] = {"hold_timeout": 2, "expire_after": 3600,
                               "review_url": "http://127.0.0.1:8081"}
    return HoldSettings(**{**base, **changes})  # type: ignore[arg-type]


async def build(path: Path, port: int = 9, hold_settings: HoldSettings | None = None,
                store: Store | None = None) -> tuple[HoldAddons, Store, UpstreamClient]:
    """The hold's addons on a store (a new one at `path` unless given). Port 9 of loopback:
    nothing listens, every fetch and send fails fast."""
    if store is None:
        store = SqliteStore(path)
        await store.open()
    upstream = UpstreamClient({HOST: ("127.0.0.1", port)}, None, timeout=2)
    addons = hold_addons(
        store, ChangeFeed(store, poll=0.05),
        ProposalBuilder(matcher(), upstream, Policy([])),
        Sealer(KEY), upstream, Resolve({}), hold_settings or settings())
    return addons, store, upstream


KEY = Fernet.generate_key()


def write_flow(method: bytes = b"PUT", body: bytes = b'{"ticket": {"status": "solved"}}',
               scheme: bytes = b"https") -> http.HTTPFlow:
    request = tutils.treq(method=method, scheme=scheme, host=HOST,
                          port=443 if scheme == b"https" else 80,
                          path=b"/api/v2/tickets/1.json", content=body,
                          headers=((b"content-type", b"application/json"),
                                   (b"x-hitl-reason", b"customer asked")))
    return tflow.tflow(req=request)


async def run_hook(addon: object, flow: http.HTTPFlow) -> None:
    """As mitmproxy does: await what the hook returns, if anything."""
    result = addon.request(flow)  # type: ignore[attr-defined]
    if result is not None:
        await result


async def first_pending(store: Store, besides: tuple[str, ...] = ()) -> Approval:
    """Waits for the hook under test to commit its approval."""
    for _ in range(500):
        if pending := [a for a in await store.list(Status.pending) if a.id not in besides]:
            return pending[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no approval was held")


async def status_becomes(store: Store, approval_id: str, *wanted: Status,
                         within: float = 5.0) -> Status:
    for _ in range(int(within / 0.02)):
        status = (await store.get(approval_id)).status
        if status in wanted:
            return status
        await asyncio.sleep(0.02)
    return (await store.get(approval_id)).status
