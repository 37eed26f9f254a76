"""Serves an ASGI app over TLS with HTTP/2 and WebSockets (hypercorn), for protocol tests."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.routing import Mount, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from tests.fakes.server import RequestLog, Seen


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except Exception:  # the client went away
        return


def with_websocket_echo(app: ASGIApp, log: RequestLog) -> Starlette:
    """The vendor app, plus /ws/echo, as a vendor's streaming endpoint would be."""

    async def echo(websocket: WebSocket) -> None:
        log.add(Seen("WEBSOCKET", websocket.url.path, websocket.url.query,
                     dict(websocket.headers), b""))
        await _echo(websocket)

    return Starlette(routes=[WebSocketRoute("/ws/echo", echo), Mount("/", app)])


class H2Fake:
    def __init__(self, app: ASGIApp, certfile: Path, keyfile: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._config = Config()
        self._config.bind = [f"127.0.0.1:{self.port}"]
        self._config.certfile, self._config.keyfile = str(certfile), str(keyfile)
        self._config.alpn_protocols = ["h2", "http/1.1"]
        self._config.loglevel = "WARNING"
        self._app = app
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self._app, self._config, shutdown_trigger=self._stop.wait)  # type: ignore[arg-type]

        asyncio.run(main())

    def __enter__(self) -> H2Fake:
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("hypercorn fake did not start")

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
