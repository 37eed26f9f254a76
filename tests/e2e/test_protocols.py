"""HTTP/2 agents are held like any other; WebSocket traffic to a `websocket_hosts` host passes."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held, triples
from tests.fakes.h2_server import H2Fake, with_websocket_echo
from tests.fakes.zendesk import FakeZendesk

HOST = "h2.zendesk.com"
AUTH = ("agent@acme.test/token", "zd-api-token-123")


@pytest.fixture(scope="module")
def upstream(upstream_tls: UpstreamTLS) -> Iterator[tuple[FakeZendesk, H2Fake]]:
    fake = FakeZendesk(subdomain="h2")
    app = with_websocket_echo(fake.app, fake.log)
    with H2Fake(app, upstream_tls.cert_pem, upstream_tls.key_pem) as server:
        yield fake, server


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor],
         upstream: tuple[FakeZendesk, H2Fake]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("protocols"), upstream_tls, vendors,
                          "--resolve", f"{HOST}=127.0.0.1:{upstream[1].port}",
                          config=CONFIG + f"websocket_hosts: [{HOST}]\n")
    yield process
    assert process.stop() == 0, process.log()


def trust(gate: ProxyProcess) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(Path(gate.ca_cert)))


def test_http2_reads_pass_and_writes_are_held(gate: ProxyProcess,
                                              upstream: tuple[FakeZendesk, H2Fake]) -> None:
    fake = upstream[0]
    fake.seed(801, status="open")
    with httpx.Client(proxy=gate.proxy_url, http2=True, verify=trust(gate), auth=AUTH,
                      timeout=60) as client:
        read = client.get(f"https://{HOST}/api/v2/tickets/801.json")
        assert (read.http_version, read.status_code) == ("HTTP/2", 200)
        call, approval = held(gate, lambda: client.put(
            f"https://{HOST}/api/v2/tickets/801.json", json={"ticket": {"status": "solved"}}))
        assert triples(approval) == [("status", "open", "solved")]
        assert fake.log.of("PUT") == []
        gate.decide(approval["id"], "approve")
        answer = call.join().result
        assert (answer.http_version, answer.status_code) == ("HTTP/2", 200)
    assert len(fake.log.of("PUT", "/api/v2/tickets/801")) == 1


def test_websocket_traffic_passes_through_to_a_listed_host(gate: ProxyProcess,
                                          upstream: tuple[FakeZendesk, H2Fake]) -> None:
    before = len(gate.approvals())
    with connect(f"wss://{HOST}/ws/echo", proxy=gate.proxy_url, ssl=trust(gate),
                 open_timeout=10) as socket:
        socket.send("hello")
        assert socket.recv(timeout=10) == "echo: hello"
    assert upstream[0].log.of("WEBSOCKET", "/ws/echo")
    assert len(gate.approvals()) == before
