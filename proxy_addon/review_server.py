"""Serves the review API on mitmproxy's event loop, from the `running` hook to `done`."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger("hitl_proxy")


class ReviewServer:
    def __init__(self, app: ASGIApp, sock: socket.socket, ready_message: str,
                 closing: asyncio.Event | None = None) -> None:
        self._closing = closing
        # The socket is bound before mitmproxy starts, so a busy port fails start-up cleanly.
        self._socket = sock
        self._ready_message = ready_message
        self._server = uvicorn.Server(uvicorn.Config(
            app, lifespan="off", log_level="warning", access_log=False,
            timeout_graceful_shutdown=3,
        ))
        self._task: asyncio.Task[None] | None = None

    async def running(self) -> None:
        self._task = asyncio.ensure_future(self._server.serve(sockets=[self._socket]))
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # uvicorn offers no event for "started"
        if self._server.started:
            print(self._ready_message, flush=True)

    async def done(self) -> None:
        if self._task is None:
            return
        if self._closing is not None:
            self._closing.set()  # ends open event streams, or shutdown would wait for them
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except (TimeoutError, SystemExit) as exc:
            logger.warning("the review API did not stop cleanly: %r", exc)
