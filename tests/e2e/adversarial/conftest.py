"""What every adversarial module shares: the Zendesk fake with an empty log, raw servers."""

from __future__ import annotations

import socket
import threading

import pytest

from tests.e2e.conftest import Vendor
from tests.fakes.zendesk import FakeZendesk


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeZendesk:
    """The Zendesk fake, its request log emptied: what it sees from here on is this test's."""
    found = vendors["zendesk"].fake
    found.log.clear()
    return found


class LoopbackServer:
    """A TCP server on a free loopback port, one thread per connection, for peers that must
    misbehave in ways no HTTP framework would (a `101` nobody asked for, an upstream proxy)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._guarded, args=(conn,), daemon=True).start()

    def _guarded(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._sock.close()
