"""Bodies are bounded while they are read: `limits.max_body` holds for every framing and encoding.

Rules: a request body over `limits.max_body` gets 413 the moment it passes the bound (declared
or chunked, HTTP/1.1 or HTTP/2), before anything reaches the upstream; a compressed body is
bounded once decoded (a gzip bomb is 413), and an encoding the proxy cannot inflate within a
bound is refused (415) instead of reviewed as unreadable bytes.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import zlib
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held
from tests.fakes.zendesk import FakeZendesk

AUTH = ("agent@acme.test/token", "zd-api-token-123")
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("limits"), upstream_tls, vendors,
                          "--hold-timeout", "30",
                          config=CONFIG + f"limits: {{max_body: {LIMIT}}}\n")
    yield process
    assert process.stop() == 0, process.log()


def tls_tunnel(gate: ProxyProcess, host: str = "acme.zendesk.com") -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20)
    raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return ssl.create_default_context(cafile=str(gate.ca_cert)).wrap_socket(
        raw, server_hostname=host)


def test_a_chunked_write_gets_413_as_soon_as_it_passes_the_bound(gate: ProxyProcess,
                                                                  fake: FakeZendesk) -> None:
    """The agent is still sending when the answer comes: the proxy read no more than it had to."""
    with tls_tunnel(gate) as sock:
        sock.sendall(b"PUT /api/v2/tickets/9700.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        sent, answer = 0, b""
        sock.settimeout(0.05)
        while sent < 64 * LIMIT and not answer:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
            sent += len(chunk)
            try:
                answer = sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                pass
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * LIMIT, f"the proxy read {sent} bytes before refusing"
    body = json.loads(answer.partition(b"\r\n\r\n")[2].split(b"\r\n\r\n")[0] or b"{}")
    assert "limits.max_body" in body["message"]
    assert fake.log.of("PUT") == []


def test_a_declared_oversized_write_gets_413_before_its_body(gate: ProxyProcess,
                                                             fake: FakeZendesk) -> None:
    with tls_tunnel(gate) as sock:
        sock.sendall(b"PUT /api/v2/tickets/9701.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n")
        sock.settimeout(10)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert fake.log.of("PUT") == []


def test_an_http2_write_over_the_bound_is_refused(gate: ProxyProcess, fake: FakeZendesk) -> None:
    trust = ssl.create_default_context(cafile=str(gate.ca_cert))

    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"y" * 8192

    with httpx.Client(proxy=gate.proxy_url, verify=trust, http2=True, auth=AUTH,
                      timeout=30) as client:
        try:
            answer = client.put("https://acme.zendesk.com/api/v2/tickets/9702.json",
                                content=body(), headers={"Content-Type": "application/json"})
            assert answer.status_code == 413, answer.text
        except httpx.HTTPError:
            pass  # the stream was reset: refused all the same
    assert fake.log.of("PUT") == []


def test_a_gzip_bomb_is_413_and_a_bounded_gzip_write_is_held(gate: ProxyProcess,
                                                             fake: FakeZendesk) -> None:
    bomb = gzip.compress(b'{"ticket": {"comment": {"body": "' + b"0" * (200 * LIMIT) + b'"}}}')
    assert len(bomb) < LIMIT
    trust = ssl.create_default_context(cafile=str(gate.ca_cert))
    with httpx.Client(proxy=gate.proxy_url, verify=trust, auth=AUTH, timeout=60) as client:
        answer = client.put("https://acme.zendesk.com/api/v2/tickets/9703.json", content=bomb,
                            headers={"Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})
        assert answer.status_code == 413, answer.text
        assert "once decoded" in answer.json()["message"]
        fake.seed(9703, status="open")
        small = zlib.compress(json.dumps({"ticket": {"status": "pending"}}).encode())
        call, approval = held(gate, lambda: client.put(
            "https://acme.zendesk.com/api/v2/tickets/9703.json", content=small,
            headers={"Content-Type": "application/json", "Content-Encoding": "deflate"}))
        assert [(c["field"], c["new"]) for c in approval["changes"]] == [("status", "pending")]
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
    assert fake.log.of("PUT") == []


@pytest.mark.parametrize(("encoding", "status"), [("br", 415), ("zstd", 415),
                                                  ("compress", 415), ("gzip", 400),
                                                  ("gzip, br", 415), ("x-custom", 415)])
def test_encodings_that_cannot_be_inflated_within_a_bound_are_refused(
        gate: ProxyProcess, fake: FakeZendesk, encoding: str, status: int) -> None:
    trust = ssl.create_default_context(cafile=str(gate.ca_cert))
    with httpx.Client(proxy=gate.proxy_url, verify=trust, auth=AUTH, timeout=30) as client:
        answer = client.put("https://acme.zendesk.com/api/v2/tickets/9704.json",
                            content=b"\x1b\x00not-really-compressed",
                            headers={"Content-Type": "application/json",
                                     "Content-Encoding": encoding})
    assert answer.status_code == status, answer.text
    assert answer.json()["status"] == "refused"
    time.sleep(0.1)
    assert fake.log.of("PUT") == []
