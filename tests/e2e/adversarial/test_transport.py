"""The transport is HTTP the proxy parsed, to the host reviewed, by methods on an allow-list.

Rules, each tried with spellings nobody expects, through the real `hitl-proxy run`:
- Raw TCP: every byte an intercepted connection carries is parsed as HTTP by the proxy or the
  connection is closed; nothing is piped raw (a request line split across TLS records, a leading
  CRLF, a non-WebSocket `101`), and options that re-open the pipe are refused at start-up.
- Methods: a read is exactly GET, HEAD or OPTIONS; every other token is a write, and an
  override header or `_method` parameter naming anything else (or not one plain token) makes a
  read a write (or is refused).
- Host binding: a request whose `Host`, absolute-form authority or TLS server name differs from
  the tunnel's target is refused with 421 and a JSON reason.
- WebSocket: upgrades only to `websocket_hosts` (403 naming the option otherwise), other
  upgrades refused; both on the traffic record.
- Review port: no spelling of this machine's addresses (mapped and compatible IPv6 included)
  reaches the review API through the proxy.
- Policy: a configured task beats the agent's `X-HITL-Task` header, which is only shown.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.adversarial.conftest import LoopbackServer
from tests.e2e.conftest import ALICE, BOB, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held, hitl_proxy_command
from tests.fakes.server import free_port
from tests.fakes.zendesk import FakeZendesk

AUTH = "Basic " + base64.b64encode(b"agent@acme.test/token:zd-api-token-123").decode()
INVOICER_SECRET = "invoicer-secret-000001"
CONFIG = f"""
reviewers:
  - {{name: alice, token: "{ALICE}", groups: [support]}}
  - {{name: bob, token: "{BOB}", groups: [finance]}}
agents:
  - {{name: invoicer, secret: "{INVOICER_SECRET}", task: invoice-followup}}
  - {{name: helper, secret: "helper-secret-0000002"}}
websocket_hosts: ["ws-allowed.zendesk.com"]
passthrough_hosts: ["passthrough.test"]
policy:
  - name: sandbox-is-free
    match: {{host: sandbox.zendesk.com}}
    action: allow
  - name: triage-may-tag
    match: {{task: ticket-triage}}
    action: allow
"""


class Switcher(LoopbackServer):
    """An upstream that answers any request with a `101` nobody asked for, then keeps every byte
    it is sent: what a raw pipe would deliver."""

    def __init__(self, tls: UpstreamTLS) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(tls.cert_pem), str(tls.key_pem))
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        try:
            with self._context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                self.received += head
                tls.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\n"
                            b"Connection: Upgrade\r\n\r\n")
                while chunk := tls.recv(65536):
                    self.received += chunk
        except ssl.SSLError:
            return


@pytest.fixture(scope="module")
def switcher(upstream_tls: UpstreamTLS) -> Iterator[Switcher]:
    server = Switcher(upstream_tls)
    yield server
    server.close()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor], switcher: Switcher) -> Iterator[ProxyProcess]:
    port = vendors["zendesk"].server.port
    process = start_proxy(tmp_path_factory.mktemp("transport"), upstream_tls, vendors,
                          "--hold-timeout", "30",
                          "--resolve", f"sandbox.zendesk.com=127.0.0.1:{port}",
                          "--resolve", f"ws-allowed.zendesk.com=127.0.0.1:{port}",
                          "--resolve", f"switch.zendesk.com=127.0.0.1:{switcher.port}",
                          "--resolve", f"passthrough.test=127.0.0.1:{port}",
                          config=CONFIG)
    yield process
    assert process.stop() == 0, process.log()


def as_agent(gate: ProxyProcess, name: str = "helper",
             secret: str = "helper-secret-0000002") -> httpx.Client:
    """An agent's client, named by proxy authentication in HTTPS_PROXY's form."""
    trust = ssl.create_default_context(cafile=str(gate.ca_cert))
    return httpx.Client(proxy=f"http://{name}:{secret}@127.0.0.1:{gate.listen_port}",
                        verify=trust, timeout=60, headers={"Authorization": AUTH})


def proxy_auth(name: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{secret}".encode()).decode()


def tunnel(gate: ProxyProcess, host: str = "acme.zendesk.com", *, sni: str | None = None,
           agent: tuple[str, str] = ("helper", "helper-secret-0000002")) -> ssl.SSLSocket:
    """A CONNECT tunnel with TLS to the proxy's certificate, no ALPN: raw bytes from here."""
    raw = socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20)
    raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n"
                f"Proxy-Authorization: {proxy_auth(*agent)}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = raw.recv(4096)
        assert chunk, f"the proxy closed the CONNECT: {answer!r}"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    context = ssl.create_default_context(cafile=str(gate.ca_cert))
    return context.wrap_socket(raw, server_hostname=sni or host)


def read_answer(sock: socket.socket, timeout: float = 20) -> bytes:
    """One HTTP answer (head and Content-Length body), or what came before the close."""
    sock.settimeout(timeout)
    data = b""
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if len(body) >= length:
                return data
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


def put_request(ticket: int, host: str = "acme.zendesk.com", **extra: str) -> bytes:
    body = json.dumps({"ticket": {"status": "solved"}}).encode()
    headers = {"Host": host, "Authorization": AUTH, "Content-Type": "application/json",
               "Content-Length": str(len(body)), **extra}
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"PUT /api/v2/tickets/{ticket}.json HTTP/1.1\r\n{lines}\r\n").encode() + body


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def pending_for(gate: ProxyProcess, url_part: str) -> list[dict]:
    return [a for a in gate.approvals("pending") if url_part in a["url"]]


# -- raw TCP ---------------------------------------------------------------------------------

SENDS = {
    "request-line-split-after-the-verb":
        lambda s, r: (s.sendall(r[:3]), time.sleep(0.3), s.sendall(r[3:])),
    "one-byte-first-record": lambda s, r: (s.sendall(r[:1]), time.sleep(0.3), s.sendall(r[1:])),
    "verb-and-space-first": lambda s, r: (s.sendall(r[:4]), time.sleep(0.3), s.sendall(r[4:])),
    "leading-crlf": lambda s, r: s.sendall(b"\r\n" + r),
    "two-leading-crlfs": lambda s, r: s.sendall(b"\r\n\r\n" + r),
    "leading-crlf-own-record": lambda s, r: (s.sendall(b"\r\n"), time.sleep(0.3), s.sendall(r)),
    "leading-lf": lambda s, r: s.sendall(b"\n" + r),
    "head-split-mid-header":
        lambda s, r: (s.sendall(r[:40]), time.sleep(0.3), s.sendall(r[40:])),
}


@pytest.mark.parametrize("way", list(SENDS))
def test_split_and_padded_requests_are_parsed_and_held(gate: ProxyProcess, fake: FakeZendesk,
                                                       way: str) -> None:
    send = SENDS[way]
    ticket = 9100 + list(SENDS).index(way)
    fake.seed(ticket, status="open")
    with tunnel(gate) as sock:
        send(sock, put_request(ticket))
        deadline = time.monotonic() + 10
        while not pending_for(gate, f"/tickets/{ticket}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.log.of("PUT") == [], "the split request reached the upstream unheld"
        [approval] = pending_for(gate, f"/tickets/{ticket}")
        gate.decide(approval["id"], "reject", note="no")
        answer = read_answer(sock)
    assert status_of(answer) == 403, answer
    assert fake.log.of("PUT") == []


@pytest.mark.parametrize("garbage", [
    b"\x00\x01\x02\x03 binary\r\n\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b"12345 67890\r\n\r\n",
    b"PUT\r\n\r\n", b"\x16\x03\x01\x00\x05hello",
])
def test_bytes_that_are_not_http_get_an_error_and_reach_nothing(
        gate: ProxyProcess, fake: FakeZendesk, garbage: bytes) -> None:
    with tunnel(gate) as sock:
        sock.sendall(garbage)
        answer = read_answer(sock, timeout=10)
    assert answer == b"" or status_of(answer) == 400, answer
    time.sleep(0.2)
    assert fake.log.seen == []


def test_a_flood_of_empty_lines_or_an_endless_head_is_refused(gate: ProxyProcess,
                                                               fake: FakeZendesk) -> None:
    with tunnel(gate) as sock:
        sock.sendall(b"\r\n" * 64 + put_request(9202))
        assert status_of(read_answer(sock)) == 400
    with tunnel(gate) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: acme.zendesk.com\r\nX-Big: ")
        try:
            for _ in range(16):
                sock.sendall(b"a" * 16384)
        except (OSError, ssl.SSLError):
            pass
        answer = read_answer(sock)
    assert answer == b"" or status_of(answer) == 431, answer[:200]
    assert fake.log.seen == []


@pytest.mark.parametrize("header", [
    b"X-Foo: a\r\n X-HTTP-Method-Override: DELETE",  # obsolete line folding
    b"X-Foo: a\rTransfer-Encoding: chunked",  # a bare CR
    b"X-Foo: a\x00b",
    b"X-Foo: a\r\n\tX-Original-Method: PUT",
])
def test_header_values_that_span_lines_are_refused(gate: ProxyProcess, fake: FakeZendesk,
                                                   header: bytes) -> None:
    fake.seed(9203, status="open")
    with tunnel(gate) as sock:
        sock.sendall(b"GET /api/v2/tickets/9203.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     + header + b"\r\nContent-Length: 0\r\n\r\n")
        answer = read_answer(sock)
    assert status_of(answer) == 400, answer
    assert fake.log.seen == []


def test_websocket_headers_without_upgrade_are_an_upgrade(gate: ProxyProcess,
                                                          fake: FakeZendesk) -> None:
    with tunnel(gate) as sock:
        sock.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     b"Sec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        answer = read_answer(sock)
    assert status_of(answer) == 403 and b"websocket_hosts" in answer, answer
    assert fake.log.seen == []


def test_later_requests_on_a_connection_are_parsed_too(gate: ProxyProcess,
                                                       fake: FakeZendesk) -> None:
    fake.seed(9201, status="open")
    with tunnel(gate) as sock:
        sock.sendall(b"GET /api/v2/tickets/9201.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     b"Authorization: " + AUTH.encode() + b"\r\n\r\n")
        assert status_of(read_answer(sock)) == 200
        request = put_request(9201)
        sock.sendall(b"\r\n" + request[:2])
        time.sleep(0.3)
        sock.sendall(request[2:])
        deadline = time.monotonic() + 10
        while not pending_for(gate, "/tickets/9201") and time.monotonic() < deadline:
            time.sleep(0.05)
        [approval] = pending_for(gate, "/tickets/9201")
        assert fake.log.of("PUT") == []
        gate.decide(approval["id"], "reject")
        assert status_of(read_answer(sock)) == 403


def test_a_passthrough_host_named_inside_another_tunnel_opens_no_pipe(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    """Passthrough follows the CONNECT's authority only, never the Host or SNI the agent sends."""
    fake.seed(9205, status="open")
    with tunnel(gate) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: passthrough.test\r\n\r\n"
                     + put_request(9205))
        first = read_answer(sock)
        assert status_of(first) == 421, first
    raw = socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20)
    raw.sendall(b"CONNECT acme.zendesk.com:443 HTTP/1.1\r\nHost: acme.zendesk.com:443\r\n"
                + f"Proxy-Authorization: {proxy_auth('helper', 'helper-secret-0000002')}"
                  "\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    careless = ssl.create_default_context()
    careless.check_hostname = False
    careless.verify_mode = ssl.CERT_NONE
    with careless.wrap_socket(raw, server_hostname="passthrough.test") as sock:
        sock.sendall(put_request(9205))
        answer = read_answer(sock)
    assert status_of(answer) == 421, answer
    time.sleep(0.2)
    assert fake.log.of("PUT") == []


def test_a_passthrough_host_is_piped_unopened(gate: ProxyProcess, fake: FakeZendesk,
                                              upstream_tls: UpstreamTLS) -> None:
    raw = socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20)
    raw.sendall(b"CONNECT passthrough.test:443 HTTP/1.1\r\nHost: passthrough.test:443\r\n"
                + f"Proxy-Authorization: {proxy_auth('helper', 'helper-secret-0000002')}"
                  "\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    # The upstream's own certificate, not the proxy's: the tunnel was not opened.
    upstream_only = ssl.create_default_context(cafile=str(upstream_tls.ca_pem))
    with upstream_only.wrap_socket(raw, server_hostname="acme.zendesk.com") as sock:
        sock.sendall(b"GET /api/v2/tickets/9205.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     b"Authorization: " + AUTH.encode() + b"\r\n\r\n")
        assert status_of(read_answer(sock)) == 200


def test_an_unasked_for_101_does_not_open_a_pipe(gate: ProxyProcess,
                                                 switcher: Switcher) -> None:
    with tunnel(gate, "switch.zendesk.com") as sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: switch.zendesk.com\r\n\r\n")
        answer = read_answer(sock, timeout=5)
        try:
            sock.sendall(put_request(1, host="switch.zendesk.com"))
            rest = read_answer(sock, timeout=3)
        except (OSError, ssl.SSLError):
            rest = b""
    time.sleep(0.3)
    assert b"PUT" not in bytes(switcher.received), bytes(switcher.received)
    assert not rest.startswith(b"HTTP/1.1 200"), (answer, rest)


def _start_refused(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`hitl-proxy run` with these flags, which must stop before listening (exit 2)."""
    done = subprocess.run([*hitl_proxy_command(), "run", "--data-dir", str(tmp_path / "d"),
                           "--certs-dir", str(tmp_path / "c"), "--listen-port", str(free_port()),
                           "--review-port", str(free_port()), *flags],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("option", ["rawtcp=true", "tcp_hosts=.*", "ignore_hosts=.*",
                                    "allow_hosts=example\\.com", "udp_hosts=.*",
                                    "keep_host_header=true"])
def test_options_that_open_a_pipe_are_refused_at_start(tmp_path: Path, option: str) -> None:
    done = _start_refused(tmp_path, "--set", option)
    assert option.split("=")[0] in done.stderr


@pytest.mark.parametrize("mode", ["reverse:tcp://127.0.0.1:9", "reverse:tls://127.0.0.1:9",
                                  "reverse:dns://127.0.0.1:9", "dns"])
def test_modes_that_are_not_http_are_refused_at_start(tmp_path: Path, mode: str) -> None:
    done = _start_refused(tmp_path, "--mode", mode)
    assert "--mode" in done.stderr


# -- methods ---------------------------------------------------------------------------------

WRITE_VERBS = ["MERGE", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PURGE",
               "UPDATE", "SAVE", "X-WRITE", "get", "Get", "REPORT", "SEARCH", "BIND", "LINK",
               "QUERY"]


@pytest.mark.parametrize("verb", WRITE_VERBS)
@pytest.mark.parametrize("host", ["acme.zendesk.com", "api.unknown-vendor.test"])
def test_every_method_but_get_head_options_is_held(gate: ProxyProcess, fake: FakeZendesk,
                                                  verb: str, host: str) -> None:
    with tunnel(gate, host) as sock:
        sock.sendall(f"{verb} /api/v2/tickets/9300.json HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: {AUTH}\r\nContent-Length: 2\r\n\r\n{{}}".encode())
        deadline = time.monotonic() + 10
        found: list[dict] = []
        while not found and time.monotonic() < deadline:
            found = [a for a in gate.approvals("pending") if a["method"] == verb.upper()
                     or a["method"] == verb]
            time.sleep(0.03)
        assert found, f"{verb} to {host} was not held"
        assert fake.log.seen == []
        gate.decide(found[0]["id"], "reject")
        assert status_of(read_answer(sock)) == 403


OVERRIDES = [
    ({"X-HTTP-Method-Override": "MERGE"}, ""),
    ({"X-HTTP-Method-Override": "PATCH"}, ""),
    ({"X-HTTP-Method": "DELETE"}, ""),
    ({"X-Method-Override": "PUT"}, ""),
    ({"X-Original-Method": "DELETE"}, ""),
    ({"X-Forwarded-Method": "POST"}, ""),
    ({"x-http-method-override": "delete"}, ""),
    ({}, "?_method=DELETE"),
    ({}, "?_METHOD=put"),
    ({}, "?x-http-method-override=PATCH"),
    ({}, "?_HttpMethod=PATCH"),
    ({}, "?_m%65thod=DELETE"),
]


@pytest.mark.parametrize(("headers", "query"), OVERRIDES)
def test_an_override_naming_a_write_makes_a_get_a_write(gate: ProxyProcess, fake: FakeZendesk,
                                                        headers: dict, query: str) -> None:
    fake.seed(9400, status="open")
    with as_agent(gate) as client:
        call, approval = held(gate, lambda: client.get(
            f"https://acme.zendesk.com/api/v2/tickets/9400.json{query}", headers=headers))
        assert approval["method"] != "GET"
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
    # Only the proxy's own fetch of the record reached upstream, a GET with no override.
    assert all(seen.method == "GET" and not any("method" in name for name in seen.headers)
               and "method" not in seen.query.lower() for seen in fake.log.seen), fake.log.seen


@pytest.mark.parametrize("value", ["GET, PATCH", "GET PATCH", "PATCH\tGET", "", "GE T",
                                   "PATCH,", "\"PATCH\""])
def test_an_override_that_is_not_one_token_is_refused(gate: ProxyProcess, fake: FakeZendesk,
                                                      value: str) -> None:
    with tunnel(gate) as sock:
        sock.sendall(f"GET /api/v2/tickets/9401.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     f"Authorization: {AUTH}\r\nX-HTTP-Method-Override: {value}\r\n\r\n"
                     .encode())
        answer = read_answer(sock)
    assert status_of(answer) == 400, answer
    assert b"exactly one method" in answer
    assert fake.log.seen == []


def test_an_override_naming_a_read_keeps_a_read_a_read(gate: ProxyProcess,
                                                       fake: FakeZendesk) -> None:
    fake.seed(9402, status="open")
    with as_agent(gate) as client:
        answer = client.get("https://acme.zendesk.com/api/v2/tickets/9402.json",
                            headers={"X-HTTP-Method-Override": "HEAD"})
    assert answer.status_code == 200


def test_a_read_post_with_a_method_override_in_its_body_is_not_passed(
        gate: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["hubspot"].fake
    fake.log.clear()
    with as_agent(gate) as client:
        for body in ({"_method": "DELETE", "filterGroups": []},
                     {"_METHOD": "PATCH", "filterGroups": []}):
            answer = client.post("https://api.hubapi.com/crm/v3/objects/contacts/search",
                                 json=body, headers={"Authorization": "Bearer pat-na1-x"})
            assert answer.status_code == 403, answer.text
            assert "method override" in answer.json()["message"]
        plain = client.post("https://api.hubapi.com/crm/v3/objects/contacts/search",
                            json={"filterGroups": []},
                            headers={"Authorization": "Bearer pat-na1-x"})
        assert plain.status_code != 403  # the same search without one is a read
    assert all(seen.path.endswith("/search") for seen in fake.log.seen)
    assert len(fake.log.seen) == 1


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded, text/plain",
                                          None, "text/plain"])
def test_a_method_override_in_a_form_body_rack_would_read_is_held(
        gate: ProxyProcess, vendors: dict[str, Vendor], content_type: str | None) -> None:
    fake = vendors["hubspot"].fake
    fake.log.clear()
    headers = {"Authorization": "Bearer pat-na1-x"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    with as_agent(gate) as client:
        call = lambda: client.post(  # noqa: E731
            "https://api.hubapi.com/crm/v3/objects/contacts/search", content=b"_method=DELETE",
            headers=headers)
        if content_type == "text/plain":  # not a form: refused as a read that may override
            answer = call()
            assert answer.status_code == 403, answer.text
        else:
            agent, approval = held(gate, call)
            assert approval["method"] == "DELETE"
            gate.decide(approval["id"], "reject")
            assert agent.join().result.status_code == 403
    assert [seen for seen in fake.log.seen if seen.method != "GET"] == []


def test_graphql_in_a_query_split_on_semicolons_is_held(gate: ProxyProcess) -> None:
    with as_agent(gate) as client:
        call, approval = held(gate, lambda: client.get(
            "https://api.linear.app/graphql?a=1;query=mutation%20%7B%20issueDelete(id%3A%20"
            "%22I-1%22)%20%7B%20success%20%7D%20%7D"))
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403


def test_a_get_with_a_body_to_a_graphql_endpoint_is_held(gate: ProxyProcess,
                                                         vendors: dict[str, Vendor]) -> None:
    with as_agent(gate) as client:
        call, approval = held(gate, lambda: client.request(
            "GET", "https://api.linear.app/graphql",
            json={"query": 'mutation { issueUpdate(id: "X-1", input: {title: "t"}) { success } }'}))
        assert approval["method"] == "GET"
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403


# -- host binding ----------------------------------------------------------------------------

@pytest.mark.parametrize(("request_line_host", "host_header"), [
    (None, "acme.zendesk.com"),
    (None, "ACME.zendesk.com."),
    (None, "acme.zendesk.com:443"),
    (None, "sandbox.zendesk.com:444"),
    ("https://acme.zendesk.com", "sandbox.zendesk.com"),
    ("https://acme.zendesk.com", None),
    (None, "sandbox.zendesk.com\r\nHost: acme.zendesk.com"),
    (None, "not a host"),
])
def test_a_request_for_another_host_than_the_tunnel_is_421(
        gate: ProxyProcess, fake: FakeZendesk, request_line_host: str | None,
        host_header: str | None) -> None:
    fake.seed(9500, status="open")
    body = b'{"ticket": {"status": "solved"}}'
    target = f"{request_line_host or ''}/api/v2/tickets/9500.json"
    host_line = f"Host: {host_header}\r\n" if host_header is not None else ""
    with tunnel(gate, "sandbox.zendesk.com") as sock:
        sock.sendall(f"PUT {target} HTTP/1.1\r\n{host_line}Authorization: {AUTH}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        answer = read_answer(sock)
    assert status_of(answer) == 421, answer
    message = json.loads(answer.partition(b"\r\n\r\n")[2])["message"]
    assert "misdirected" in message
    assert fake.log.seen == []
    assert gate.approvals("pending") == [] or all(
        "9500" not in a["url"] for a in gate.approvals("pending"))


def test_a_tls_server_name_other_than_the_tunnels_is_421(gate: ProxyProcess,
                                                         fake: FakeZendesk) -> None:
    with tunnel(gate, "sandbox.zendesk.com", sni="acme.zendesk.com") as sock:
        sock.sendall(put_request(9501, host="sandbox.zendesk.com"))
        answer = read_answer(sock)
    assert status_of(answer) == 421, answer
    assert fake.log.seen == []


def test_the_tunnels_own_host_is_allowed_by_its_rule(gate: ProxyProcess,
                                                     fake: FakeZendesk) -> None:
    fake.seed(9502, status="open")
    with tunnel(gate, "sandbox.zendesk.com") as sock:
        sock.sendall(put_request(9502, host="sandbox.zendesk.com"))
        answer = read_answer(sock)
    assert status_of(answer) == 200, answer
    assert len(fake.log.of("PUT", "/api/v2/tickets/9502")) == 1
    assert fake.log.of("PUT")[0].headers["host"] == "sandbox.zendesk.com"


def test_a_rule_never_allows_a_write_the_proxy_could_not_read(gate: ProxyProcess,
                                                              fake: FakeZendesk) -> None:
    """The sandbox rule allows writes there, but not one whose JSON a server may read
    differently (a repeated key) or whose path has two readings."""
    fake.seed(9504, status="open")
    for target, body in (("/api/v2/tickets/9504.json",
                          b'{"ticket": {"status": "open", "status": "solved"}}'),
                         ("/api/v2/tickets/9504.json/.", b'{"ticket": {"status": "solved"}}'),
                         ("/api/v2/tickets/%39504.json", b'{"ticket": {"status": "solved"}}')):
        with tunnel(gate, "sandbox.zendesk.com") as sock:
            sock.sendall(f"PUT {target} HTTP/1.1\r\nHost: sandbox.zendesk.com\r\n"
                         f"Authorization: {AUTH}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            deadline = time.monotonic() + 10
            found: list[dict] = []
            while not found and time.monotonic() < deadline:
                found = [a for a in gate.approvals("pending") if "sandbox" in a["url"]]
                time.sleep(0.03)
            assert found, f"{target} {body!r} was allowed unread"
            assert fake.log.of("PUT") == []
            gate.decide(found[0]["id"], "reject")
            assert status_of(read_answer(sock)) == 403


def test_a_plain_http_request_whose_host_header_differs_is_421(gate: ProxyProcess,
                                                               fake: FakeZendesk) -> None:
    with socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20) as sock:
        sock.sendall(b"PUT http://sandbox.zendesk.com/api/v2/tickets/9503.json HTTP/1.1\r\n"
                     b"Host: acme.zendesk.com\r\nProxy-Authorization: "
                     + proxy_auth("helper", "helper-secret-0000002").encode()
                     + b"\r\nContent-Length: 2\r\n\r\n{}")
        answer = read_answer(sock)
    assert status_of(answer) == 421, answer
    assert fake.log.seen == []


# -- WebSocket and other upgrades ------------------------------------------------------------

def upgrade(gate: ProxyProcess, host: str, protocol: str = "websocket") -> bytes:
    with tunnel(gate, host) as sock:
        sock.sendall(f"GET /ws/echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: {protocol}\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        return read_answer(sock)


def test_websocket_upgrades_are_refused_unless_the_host_is_listed(gate: ProxyProcess,
                                                                  fake: FakeZendesk) -> None:
    answer = upgrade(gate, "acme.zendesk.com")
    assert status_of(answer) == 403, answer
    assert b"websocket_hosts" in answer
    assert fake.log.seen == []
    rows = _traffic_rows(gate)
    assert any(row["path"].startswith("/ws/echo") and row["decision"] == "refused"
               for row in rows), rows


@pytest.mark.parametrize("protocol", ["h2c", "tcp", "websocket, h2c", "TLS/1.2"])
def test_upgrades_other_than_websocket_are_refused(gate: ProxyProcess, fake: FakeZendesk,
                                                   protocol: str) -> None:
    answer = upgrade(gate, "ws-allowed.zendesk.com", protocol)
    assert status_of(answer) == 403, answer
    assert b"other than WebSocket" in answer
    assert fake.log.seen == []


def test_a_listed_host_may_upgrade(gate: ProxyProcess, fake: FakeZendesk) -> None:
    answer = upgrade(gate, "ws-allowed.zendesk.com")
    assert b"hitl_proxy" not in answer, answer  # the fake's own answer: it has no socket there
    assert fake.log.of("WEBSOCKET") or status_of(answer) in (101, 403, 404)


def _traffic_rows(gate: ProxyProcess) -> list[dict]:
    import sqlite3
    deadline = time.monotonic() + 10
    rows: list[dict] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(gate.data_dir / "traffic.sqlite3") as db:
            db.row_factory = sqlite3.Row
            rows = [dict(row) for row in db.execute("SELECT * FROM traffic")]
        if any(row["path"].startswith("/ws/") for row in rows):
            return rows
        time.sleep(0.1)
    return rows


# -- the review port -------------------------------------------------------------------------

@pytest.mark.parametrize("address", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
                                     "[0:0:0:0:0:ffff:127.0.0.1]", "[::ffff:0.0.0.0]",
                                     "[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "127.1",
                                     "0x7f.0.0.1", "2130706433", "[::1]", "0", "localhost",
                                     "127.0.0.2"])
def test_no_spelling_of_this_machine_reaches_the_review_port(gate: ProxyProcess,
                                                             address: str) -> None:
    with as_agent(gate) as client:
        answer = client.get(f"http://{address}:{gate.review_port}/metrics")
    assert answer.status_code != 200 or b"hitl_" not in answer.content, answer.text
    with socket.create_connection(("127.0.0.1", gate.listen_port), timeout=20) as sock:
        sock.sendall(f"CONNECT {address}:{gate.review_port} HTTP/1.1\r\nHost: {address}\r\n"
                     f"Proxy-Authorization: {proxy_auth('helper', 'helper-secret-0000002')}"
                     "\r\n\r\n".encode())
        answer = read_answer(sock)
        if answer.startswith(b"HTTP/1.1 200"):
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"hitl_" not in read_answer(sock, timeout=5)


class Recorder(LoopbackServer):
    """A stand-in upstream proxy: keeps what it is sent and answers 502."""

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        self.received += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


def test_upstream_mode_never_forwards_to_the_review_port(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor]) -> None:
    recorder = Recorder()
    chained = start_proxy(tmp_path, upstream_tls, vendors,
                          "--mode", f"upstream:http://127.0.0.1:{recorder.port}")
    try:
        for address in ("127.0.0.1", "[::ffff:127.0.0.1]", "localhost"):
            answer = httpx.get(f"http://{address}:{chained.review_port}/healthz",
                               proxy=chained.proxy_url, timeout=10)
            # 400: httpx writes the mapped address unbracketed, which mitmproxy cannot parse.
            assert answer.status_code in (400, 403), answer.text
        assert bytes(recorder.received) == b""
    finally:
        recorder.close()
        assert chained.stop() == 0, chained.log()


def test_reverse_mode_refuses_an_absolute_target_naming_another_host(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    reverse = start_proxy(tmp_path, upstream_tls, vendors,
                          "--mode", "reverse:https://api.unknown-vendor.test")
    try:
        with socket.create_connection(("127.0.0.1", reverse.listen_port), timeout=20) as sock:
            sock.sendall(b"PUT https://acme.zendesk.com/api/v2/tickets/77.json HTTP/1.1\r\n"
                         b"Host: api.unknown-vendor.test\r\nContent-Length: 2\r\n\r\n{}")
            answer = read_answer(sock)
        assert status_of(answer) == 421, answer
        assert fake.log.seen == []
    finally:
        assert reverse.stop() == 0, reverse.log()


def test_without_proxy_authentication_an_agent_header_is_only_a_claim(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    """Reverse mode (like SOCKS5) has no proxy credentials: X-HITL-Agent and X-HITL-Task must
    not pick the configured agent's or task's allow rules."""
    config = CONFIG + """  - name: invoicer-may
    match: {agent: invoicer}
    action: allow
"""
    reverse = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "30",
                          "--mode", "reverse:https://acme.zendesk.com", config=config)
    try:
        fake.seed(9601, status="open")
        url = f"http://127.0.0.1:{reverse.listen_port}/api/v2/tickets/9601.json"
        for claim in ({"X-HITL-Agent": "invoicer"}, {"X-HITL-Task": "ticket-triage"}):
            call, approval = held(reverse, lambda claim=claim: httpx.put(
                url, json={"ticket": {"tags": ["x"]}}, timeout=60,
                headers={"Authorization": AUTH, **claim}))
            assert approval["context"]["agent"] is None
            assert approval["context"]["task"] is None
            assert (approval["context"]["claimed_agent"], approval["context"]["claimed_task"]) \
                == (claim.get("X-HITL-Agent"), claim.get("X-HITL-Task"))
            reverse.decide(approval["id"], "reject")
            assert call.join().result.status_code == 403
        assert fake.log.of("PUT") == []
    finally:
        assert reverse.stop() == 0, reverse.log()


# -- the agent's claimed task ----------------------------------------------------------------

def test_a_task_header_never_widens_a_configured_agents_policy(gate: ProxyProcess,
                                                               fake: FakeZendesk) -> None:
    fake.seed(9600, status="open")
    with as_agent(gate, "invoicer", INVOICER_SECRET) as client:
        call, approval = held(gate, lambda: client.put(
            "https://acme.zendesk.com/api/v2/tickets/9600.json",
            json={"ticket": {"tags": ["x"]}}, headers={"X-HITL-Task": "ticket-triage"}))
        assert approval["context"]["task"] == "invoice-followup"
        assert approval["context"]["claimed_task"] == "ticket-triage"
        assert fake.log.of("PUT") == []
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
    page = httpx.get(f"{gate.review_url}/api/stats", headers={
        "Authorization": f"Bearer {ALICE}"}, timeout=10)
    assert "ticket-triage" not in page.text


@pytest.mark.parametrize("headers", [
    "Mcp-Method: ping\r\nMCP-Protocol-Version: 2025-06-18\r\n",
    "Mcp-Session-Id: s1\r\nAccept: application/json, text/event-stream\r\n",
])
def test_mcp_headers_and_a_json_rpc_body_never_pass_a_rest_write(
        gate: ProxyProcess, fake: FakeZendesk, headers: str) -> None:
    # Zendesk routes on the path: `method: ping` in the body does not stop the ticket.
    body = json.dumps({"jsonrpc": "2.0", "method": "ping", "id": 1,
                       "ticket": {"subject": "mcp-smuggled"}})
    with tunnel(gate) as sock:
        sock.sendall(f"POST /api/v2/tickets.json HTTP/1.1\r\nHost: acme.zendesk.com\r\n"
                     f"Authorization: {AUTH}\r\nContent-Type: application/json\r\n{headers}"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        deadline = time.monotonic() + 10
        found: list[dict] = []
        while not found and time.monotonic() < deadline:
            found = pending_for(gate, "/api/v2/tickets.json")
            time.sleep(0.03)
        assert found, "the POST with MCP headers was not held"
        assert fake.log.seen == []
        gate.decide(found[0]["id"], "reject")
        assert status_of(read_answer(sock)) == 403
