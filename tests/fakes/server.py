"""Runs a fake vendor API over HTTPS on a free loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@dataclass
class Seen:
    """A request as the fake received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.perf_counter)


@dataclass
class RequestLog:
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, entry: Seen) -> None:
        with self.lock:
            self.seen.append(entry)

    def of(self, method: str, path_prefix: str = "") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    def clear(self) -> None:
        with self.lock:
            self.seen.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class HTTPSFake:
    """Over TLS with the given certificate, or plain HTTP when none is given."""

    def __init__(self, app: ASGIApp, certfile: Path | None = None,
                 keyfile: Path | None = None, lifespan: str = "off") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan,
                                ssl_certfile=str(certfile) if certfile else None,
                                ssl_keyfile=str(keyfile) if keyfile else None)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def __enter__(self) -> HTTPSFake:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
