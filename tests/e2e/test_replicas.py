"""Two `hitl-proxy run` replicas on one PostgreSQL (issue 16), each a real process with real TLS.

Replica A and replica B share the database, the CA agents trust, the sealing key and the config;
nothing else. A decision taken on either must reach the held request on the other, every
approved write must reach upstream at most once whichever replica sends it, and the death of one
replica (or of PostgreSQL itself) must lose nothing. The pair is started once for the module; a
test that kills a replica starts it again for the next.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from cryptography.fernet import Fernet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.conftest import UpstreamTLS, Vendor
from tests.e2e.harness import Background, ProxyProcess, held, hitl_proxy_command
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk
from tests.postgres_server import PostgresServer

ALICE = "alice-replica-token-00001"  # support and auditor: decides anything, reads traffic
BOB = "bob-replica-token-0000002"
AUTH = ("agent@acme.test/token", "zd-api-token-123")
LEASE = 3.0  # limits.replica_lease at its minimum: a dead replica's claims run out in a test
GONE = {"X-HITL-Task": "gone"}  # policy holds these one second: the agent leaves with a 202
TERMINAL = {"executed", "failed", "rejected", "expired", "stale", "outcome_unknown", "denied"}


def config(webhook: str) -> str:
    return f"""
reviewers:
  - {{name: alice, token: "{ALICE}", groups: [support, auditor]}}
  - {{name: bob, token: "{BOB}", groups: [finance]}}
policy:
  - {{match: {{task: gone}}, action: hold, hold_timeout: 1}}
limits: {{replica_lease: {LEASE}, store_timeout: 3s}}
notifications:
  review_url: https://review.example.test
  webhooks:
    - {{url: "{webhook}", format: json}}
"""


def url(ticket: int) -> str:
    return f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json"


def session_for(proxy: ProxyProcess, headers: dict[str, str] | None = None) -> requests.Session:
    """An agent using `proxy` (a replica, as a load balancer would hand it out)."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": proxy.proxy_url, "http": proxy.proxy_url}
    session.verify = str(proxy.ca_cert)
    session.auth = AUTH
    session.headers.update(headers or {})
    return session


def put(proxy: ProxyProcess, ticket: int, status: str,
        headers: dict[str, str] | None = None) -> Callable[[], requests.Response]:
    return lambda: session_for(proxy, headers).put(
        url(ticket), json={"ticket": {"status": status}}, timeout=60)


def puts(fake: FakeZendesk, ticket: int) -> int:
    """How many times upstream received a write of this ticket."""
    return len(fake.log.of("PUT", f"/api/v2/tickets/{ticket}"))


def audit_events(proxy: ProxyProcess, approval_id: str) -> list[str]:
    response = proxy.api("GET", "/api/audit", params={"approval_id": approval_id})
    assert response.status_code == 200, response.text
    return [entry["event"] for entry in response.json()["entries"]]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a command-line tool gets: no proxy settings, only the given key."""
    found = {k: v for k, v in os.environ.items()
             if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
             and k != "HITL_PROXY_KEY"}
    return {**found, **extra}


def ends(proxy: ProxyProcess, ids: list[str], timeout: float = 20) -> dict[str, str]:
    """Each approval's status once none is still on its way; a status that is not the one
    expected then shows with the audit's last word on it."""
    deadline = time.monotonic() + timeout
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        found = {i: proxy.api("GET", f"/api/approvals/{i}").json()["status"] for i in ids}
        if all(status in TERMINAL for status in found.values()):
            break
        time.sleep(0.1)
    return found


def why(proxy: ProxyProcess, approval_id: str) -> str:
    entries = proxy.api("GET", "/api/audit", params={"approval_id": approval_id}).json()
    if not entries["entries"]:
        return "no audit entries"
    last = entries["entries"][-1]
    return f"{last['event']}: {last['detail']}"


def sent_by(replicas: Replicas, approval_id: str) -> str:
    """Which replica's background sender (the agent-gone path) sent it, from their logs."""
    line = f"sent approved write {approval_id}"
    found = [name for name, proxy in (("A", replicas.a), ("B", replicas.b))
             if line in proxy.log()]
    return f"sent in the background by {'+'.join(found)}" if found else "released"


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout}s")


class Receiver:
    """A webhook endpoint counting deliveries by (approval id, event)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        body = await request.json()
        with self.lock:
            self.counts[(body["approval"]["id"], body["event"])] += 1
        return JSONResponse({"ok": True})

    def of(self, approval_id: str) -> dict[str, int]:
        with self.lock:
            return {event: n for (found, event), n in self.counts.items() if found == approval_id}

    def duplicates(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return {key: n for key, n in self.counts.items() if n > 1}


@dataclass
class Replicas:
    a: ProxyProcess
    b: ProxyProcess
    store: str  # the PostgreSQL URL both use
    key: str  # the sealing key both use (HITL_PROXY_KEY)

    def start_any_stopped(self) -> None:
        """A test that killed a replica leaves it dead; the next one gets it back (a new
        replica id, the same ports, data dir and log). One that died on its own is a bug."""
        for replica in (self.a, self.b):
            if not replica.running:
                assert_killed(replica)
                replica.start()


def assert_killed(replica: ProxyProcess) -> None:
    """A replica that is not running was killed by a test, or it crashed: say which."""
    assert replica.process is not None
    assert replica.process.returncode == -signal.SIGKILL, (
        f"replica exited with {replica.process.returncode} on its own:\n{replica.log()}")


@pytest.fixture(scope="module")
def database(postgres_server: PostgresServer) -> Iterator[str]:
    """One database for the module's pair: other modules' tests never see these approvals."""
    postgres_server.start()
    found = postgres_server.create_database()
    yield found
    with contextlib.suppress(Exception):
        postgres_server.start()  # a test may have left it stopped
    postgres_server.drop_database(found.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, HTTPSFake]]:
    found = Receiver()
    with HTTPSFake(found.app) as server:
        yield found, server


def replica_process(workdir: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
                    store: str, key: str, text: str,
                    certs_dir: Path | None = None) -> ProxyProcess:
    """A replica as an operator runs one: the shared config, CA, key and store URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "hitl.yaml").write_text(text)
    resolve = [arg for vendor in vendors.values() for host in vendor.hosts
               for arg in ("--resolve", f"{host}=127.0.0.1:{vendor.server.port}")]
    return ProxyProcess(workdir, [
        "--config", str(workdir / "hitl.yaml"), "--upstream-ca", str(upstream_tls.ca_pem),
        "--hold-timeout", "30", *resolve,
    ], token=ALICE, store=store, certs_dir=certs_dir, env={"HITL_PROXY_KEY": key})


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor], database: str,
         receiver: tuple[Receiver, HTTPSFake]) -> Iterator[Replicas]:
    base = tmp_path_factory.mktemp("replicas")
    key = Fernet.generate_key().decode()
    text = config(f"http://127.0.0.1:{receiver[1].port}/hook")
    a = replica_process(base / "a", upstream_tls, vendors, database, key, text).start()
    # B starts once A made the CA, so agents trust one CA whichever replica they reach.
    b = replica_process(base / "b", upstream_tls, vendors, database, key, text,
                        certs_dir=a.certs_dir).start()
    found = Replicas(a, b, database, key)
    yield found
    stopping = {replica: Background(replica.stop) for replica in (a, b) if replica.running}
    for replica in (a, b):
        if replica in stopping:  # both at once: each waits for its own clean shutdown
            assert stopping[replica].join(30).result == 0, replica.log()
        else:
            assert_killed(replica)


@pytest.fixture
def replicas(pair: Replicas) -> Replicas:
    pair.start_any_stopped()
    return pair


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> Iterator[FakeZendesk]:
    found: FakeZendesk = vendors["zendesk"].fake
    found.log.clear()
    yield found
    found.slow_updates.clear()


def test_a_write_held_on_a_and_approved_on_b_returns_the_upstream_answer_to_a_agent(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    fake.seed(16001, status="open")
    call, approval = held(a, put(a, 16001, "solved"))
    seen_on_b = b.api("GET", f"/api/approvals/{approval['id']}").json()
    assert (seen_on_b["status"], seen_on_b["record_id"]) == ("pending", "16001")

    decided = b.decide(approval["id"], "approve", "fine by me")
    assert decided.status_code == 200, decided.text
    answer = call.join(15).result
    assert answer is not None, call.error
    assert answer.status_code == 200, answer.text
    assert answer.json()["ticket"]["status"] == "solved"  # Zendesk's own answer
    assert fake.tickets[16001]["status"] == "solved"
    executed = a.wait_for_status(approval["id"], "executed")
    assert executed["result"]["status_code"] == 200
    time.sleep(0.5)  # neither replica sends it a second time
    assert puts(fake, 16001) == 1
    assert audit_events(b, approval["id"]).count("executed") == 1


def test_a_reviewer_signed_in_through_a_is_signed_in_on_b_and_sees_a_holds_live(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    signed_in = httpx.post(f"{a.review_url}/login", data={"token": ALICE}, timeout=10)
    assert signed_in.status_code == 303, signed_in.text
    cookie = {"Cookie": f"hitl_session={signed_in.cookies['hitl_session']}"}
    on_b = httpx.get(f"{b.review_url}/", headers=cookie, timeout=10)
    assert on_b.status_code == 200, on_b.headers
    assert "Waiting for your review" in on_b.text
    stranger = httpx.get(f"{b.review_url}/", headers={"Cookie": "hitl_session=made-up"},
                         timeout=10)
    assert (stranger.status_code, stranger.headers.get("location")) == (303, "/login")

    # B's live queue (the page's event stream) shows a hold A made and A's decision on it.
    connected = threading.Event()
    messages: list[dict[str, str]] = []

    def listen() -> None:
        with httpx.stream("GET", f"{b.review_url}/events", headers=cookie,
                          timeout=httpx.Timeout(10, read=30)) as stream:
            for line in stream.iter_lines():
                connected.set()
                if line.startswith("data: "):
                    messages.append(json.loads(line.removeprefix("data: ")))
                    if messages[-1]["status"] == "rejected":
                        return

    listener = Background(listen)
    assert connected.wait(10), listener.error
    fake.seed(16031, status="open")
    call, approval = held(a, put(a, 16031, "solved"))
    wait_until(lambda: {"id": approval["id"], "status": "pending"} in messages,
               f"B's event stream never showed A's hold: {messages}")
    assert a.decide(approval["id"], "reject").status_code == 200
    assert call.join(15).result.status_code == 403
    assert listener.join(15).error is None, listener.error
    assert {"id": approval["id"], "status": "rejected"} in messages


def test_the_traffic_record_on_b_lists_the_requests_a_proxied(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    fake.seed(16011, status="open")
    assert session_for(a).get(url(16011), timeout=30).status_code == 200
    call, approval = held(a, put(a, 16011, "hold"))
    assert b.decide(approval["id"], "reject", "no").status_code == 200
    assert call.join(15).result.status_code == 403

    def both_listed() -> list[dict[str, Any]]:
        found = b.api("GET", "/api/traffic", params={"record_id": "16011", "order": "asc"})
        assert found.status_code == 200, found.text
        entries = found.json()["entries"]
        return entries if len(entries) >= 2 else []

    read, write = wait_until(both_listed, "B's /api/traffic did not list A's two requests")
    assert (read["method"], read["decision"], read["status"]) == ("GET", "passed", 200)
    assert (write["method"], write["decision"], write["status"]) == ("PUT", "held", 403)
    assert write["approval_id"] == approval["id"]
    assert puts(fake, 16011) == 0


def test_a_retry_through_b_of_a_write_held_on_a_joins_its_approval(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    fake.seed(16021, status="open")
    first, approval = held(a, put(a, 16021, "pending"))
    retry = Background(put(b, 16021, "pending"))  # the agent's retry reached the other replica
    wait_until(lambda: "retry_joined" in audit_events(b, approval["id"]),
               "the retry through B never joined A's approval")
    mine = [p for p in b.approvals("pending") if p["record_id"] == "16021"]
    assert [p["id"] for p in mine] == [approval["id"]]

    assert a.decide(approval["id"], "approve").status_code == 200
    answers = [first.join(15).result, retry.join(15).result]
    assert all(answer is not None for answer in answers), (first.error, retry.error)
    codes = sorted(answer.status_code for answer in answers)
    # One connection is released upstream; the other is told the approval (never sent twice).
    assert codes[0] == 200 and codes[1] in (202, 409), [a.text for a in answers]
    assert all(answer.json().get("approval_id", approval["id"]) == approval["id"]
               for answer in answers if answer.status_code != 200)
    a.wait_for_status(approval["id"], "executed")
    time.sleep(0.5)
    assert puts(fake, 16021) == 1


def test_racing_approves_and_rejects_across_replicas_leave_one_decision_and_one_call(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    tickets = range(16100, 16150)
    for ticket in tickets:
        fake.seed(ticket, status="open")
    # Half the agents reach A, half B, as a load balancer spreads them.
    agents = {ticket: Background(put(a if ticket % 2 else b, ticket, "solved"))
              for ticket in tickets}

    def all_held() -> dict[str, str]:
        found = {p["record_id"]: p["id"] for p in a.approvals("pending")}
        return found if all(str(t) in found for t in tickets) else {}

    by_ticket = wait_until(all_held, "not every write was held", timeout=30)
    barrier = threading.Barrier(100)
    codes: dict[str, dict[str, int]] = collections.defaultdict(dict)

    def decide(where: ProxyProcess, approval_id: str, decision: str) -> None:
        barrier.wait(30)
        codes[approval_id][decision] = where.decide(approval_id, decision).status_code

    threads = [threading.Thread(target=decide, args=(where, by_ticket[str(t)], decision))
               for t in tickets for where, decision in ((a, "approve"), (b, "reject"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(sorted(c.values()) for c in codes.values()) == [[200, 409]] * 50, codes

    problems: list[str] = []  # every broken guarantee, not just the first
    for ticket in tickets:
        approval_id = by_ticket[str(ticket)]
        approved = codes[approval_id]["approve"] == 200
        answer = agents[ticket].join(30).result
        decisions = [e for e in audit_events(b, approval_id) if e in ("approved", "rejected")]
        if decisions != ["approved" if approved else "rejected"]:
            problems.append(f"{ticket}: decisions {decisions}")
        if answer is None:
            problems.append(f"{ticket}: the agent got no answer: {agents[ticket].error!r}")
        elif answer.status_code != (200 if approved else 403):
            # Approved while the agent was held: it must get upstream's own answer.
            problems.append(f"{ticket} ({'approved' if approved else 'rejected'}, held on "
                            f"{'A' if ticket % 2 else 'B'}, {sent_by(replicas, approval_id)}):"
                            f" agent got {answer.status_code} {answer.text[:80]}")
    won = {by_ticket[str(t)]: t for t in tickets if codes[by_ticket[str(t)]]["approve"] == 200}
    for approval_id, status in ends(b, list(won)).items():
        if status != "executed":
            problems.append(f"{won[approval_id]}: {status} ({why(b, approval_id)})")
    time.sleep(0.5)
    for ticket in tickets:
        expected = 1 if codes[by_ticket[str(ticket)]]["approve"] == 200 else 0
        if (calls := puts(fake, ticket)) != expected:
            problems.append(f"{ticket}: upstream received it {calls} times, not {expected}")
    assert not problems, "\n".join(problems)


def test_audit_verify_is_intact_after_both_replicas_wrote_concurrently(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    tickets = range(16200, 16212)
    for ticket in tickets:
        fake.seed(ticket, status="open")
    agents = [Background(put(a if t % 2 else b, t, "pending", GONE)) for t in tickets]
    reads = [Background(lambda r=r: [session_for(r).get(url(16200), timeout=30)
                                     for _ in range(5)]) for r in (a, b)]
    ids = [agent.join(30).result.json()["approval_id"] for agent in agents]
    for read in reads:
        assert read.join(30).error is None, read.error
    deciders = [Background(lambda i=i, n=n: (a if n % 2 else b).decide(
        i, "approve" if n % 3 else "reject")) for n, i in enumerate(ids)]
    assert all(d.join(30).result.status_code == 200 for d in deciders)
    expected = {i: "executed" if n % 3 else "rejected" for n, i in enumerate(ids)}
    found = ends(b, ids)
    assert {i: (s, why(b, i)) for i, s in found.items() if s != expected[i]} == {}

    entries = a.api("GET", "/api/audit").json()["entries"]
    assert entries == b.api("GET", "/api/audit").json()["entries"]  # one chain, not two
    verify = subprocess.run(
        [*hitl_proxy_command(), "audit", "verify", "--store", replicas.store,
         "--data-dir", str(a.data_dir)], capture_output=True, text=True, timeout=60,
        check=False, env=clean_env(HITL_PROXY_KEY=replicas.key))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit log intact:"), verify.stdout
    counted = int(verify.stdout.split(":")[1].split()[0])
    assert counted >= len(entries)  # the replicas may have added entries since
    assert replicas.key not in verify.stdout + verify.stderr

    wrong = subprocess.run(
        [*hitl_proxy_command(), "audit", "verify", "--store", replicas.store,
         "--data-dir", str(a.data_dir)], capture_output=True, text=True, timeout=60,
        check=False, env=clean_env(HITL_PROXY_KEY=Fernet.generate_key().decode()))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr  # the key does matter


def test_each_webhook_event_is_delivered_once_whichever_replica_commits_it(
        replicas: Replicas, fake: FakeZendesk, receiver: tuple[Receiver, HTTPSFake]) -> None:
    a, b = replicas.a, replicas.b
    hooks = receiver[0]
    for ticket in (16301, 16302, 16303):
        fake.seed(ticket, status="open")
    call, on_a = held(a, put(a, 16301, "solved"))
    assert b.decide(on_a["id"], "approve").status_code == 200
    assert call.join(15).result.status_code == 200
    call, on_b = held(b, put(b, 16302, "solved"))
    assert a.decide(on_b["id"], "reject", "no").status_code == 200
    assert call.join(15).result.status_code == 403
    gone = put(a, 16303, "solved", GONE)()
    assert gone.status_code == 202
    later = gone.json()["approval_id"]
    assert b.decide(later, "approve").status_code == 200
    b.wait_for_status(later, "executed")

    expected = {on_a["id"]: {"approval.pending": 1, "approval.approved": 1},
                on_b["id"]: {"approval.pending": 1, "approval.rejected": 1},
                later: {"approval.pending": 1, "approval.approved": 1}}
    wait_until(lambda: all(set(hooks.of(i)) >= set(e) for i, e in expected.items()),
               f"not every event reached the webhook: {hooks.counts}")
    time.sleep(1.5)  # a second delivery from the other replica would have arrived by now
    assert {i: hooks.of(i) for i in expected} == expected
    assert hooks.duplicates() == {}  # nor for anything else this module did


def test_kill_9_of_a_with_writes_in_every_state(
        replicas: Replicas, fake: FakeZendesk) -> None:
    a, b = replicas.a, replicas.b
    pending_t, unsent_t, in_flight_t, theirs_t, orphan_t = 16401, 16402, 16403, 16404, 16406
    tickets = (pending_t, unsent_t, in_flight_t, theirs_t, orphan_t)
    for ticket in tickets:
        fake.seed(ticket, status="open")
    fake.slow_updates[in_flight_t] = 8.0  # accepts A's request and answers long after A died
    fake.slow_updates[theirs_t] = 4.0  # B's own send, in flight while A dies

    _, pending = held(a, put(a, pending_t, "hold"))  # its agent waits on A
    gone = put(a, unsent_t, "hold", GONE)()
    assert gone.status_code == 202  # its agent has gone
    unsent = gone.json()["approval_id"]
    _, in_flight = held(a, put(a, in_flight_t, "hold"))
    _, orphan = held(a, put(a, orphan_t, "hold"))  # approved while A holds its agent, dying
    _, theirs = held(b, put(b, theirs_t, "hold"))
    assert b.decide(in_flight["id"], "approve").status_code == 200
    assert a.decide(theirs["id"], "approve").status_code == 200
    wait_until(lambda: puts(fake, in_flight_t) and puts(fake, theirs_t),
               "the in-flight writes never reached upstream")
    assert a.api("GET", f"/api/approvals/{in_flight['id']}").json()["status"] == "sending"

    a.pause()  # A does nothing from here: the approval below is one it never sees
    paused_at = time.monotonic()
    try:
        assert b.decide(unsent, "approve").status_code == 200
        assert b.decide(orphan["id"], "approve").status_code == 200
    finally:
        a.kill()
    assert b.api("GET", f"/api/approvals/{in_flight['id']}").json()["status"] == "sending"

    # B sends the approved write whose agent had gone, once.
    sent = b.wait_for_status(unsent, "executed")
    assert sent["result"]["status_code"] == 200
    # A's in-flight write: outcome_unknown once A's lease ran out, never resent.
    unknown = b.wait_for_status(in_flight["id"], "outcome_unknown", timeout=LEASE * 5)
    assert time.monotonic() - paused_at >= LEASE * 2 / 3 - 0.1  # not before A's lease ended
    assert unknown["result"] is None
    # B's own in-flight write is B's: A's death never touches it.
    assert b.api("GET", f"/api/approvals/{theirs['id']}").json()["status"] in (
        "sending", "executed")
    assert b.wait_for_status(theirs["id"], "executed")["result"]["status_code"] == 200
    # Approved while A held its agent: once A's lease ran out, B sends it (A never could).
    assert b.wait_for_status(orphan["id"], "executed", timeout=LEASE * 5)[
        "result"]["status_code"] == 200
    # The pending write stays pending, and B sends it once it is approved there.
    still = b.api("GET", f"/api/approvals/{pending['id']}").json()
    assert (still["status"], still["fingerprint"]) == ("pending", pending["fingerprint"])
    assert b.decide(pending["id"], "approve").status_code == 200
    assert b.wait_for_status(pending["id"], "executed", timeout=LEASE * 5)[
        "result"]["status_code"] == 200
    time.sleep(1.0)
    assert {t: puts(fake, t) for t in tickets} == dict.fromkeys(tickets, 1)
    assert b.api("GET", f"/api/approvals/{in_flight['id']}").json()["status"] == (
        "outcome_unknown")
    assert audit_events(b, in_flight["id"]).count("sending") <= 1

    # A starts again (a new replica id): it resends nothing and holds writes as before.
    a.start()
    fake.seed(16405, status="open")
    call, again = held(a, put(a, 16405, "solved"))
    assert b.decide(again["id"], "approve").status_code == 200
    assert call.join(15).result.status_code == 200
    assert {t: puts(fake, t) for t in (*tickets, 16405)} == dict.fromkeys((*tickets, 16405), 1)


def test_postgresql_restarted_mid_hold_refuses_writes_while_down_and_loses_nothing(
        replicas: Replicas, fake: FakeZendesk, postgres_server: PostgresServer) -> None:
    a, b = replicas.a, replicas.b
    for ticket in (16501, 16502, 16503, 16504):
        fake.seed(ticket, status="open")
    call, waiting = held(a, put(a, 16501, "solved"))  # held on A when PostgreSQL goes
    postgres_server.stop("fast")
    try:
        tries = [Background(put(proxy, 16502, "solved")) for proxy in (a, b)]
        read = session_for(b).get(url(16502), timeout=30)
        for refused in (t.join(30).result for t in tries):
            assert refused.status_code == 503, refused.text
            assert refused.json()["status"] == "refused"
        assert read.status_code == 200  # reads flow
    finally:
        postgres_server.start()
    assert puts(fake, 16502) == 0

    def holds_again() -> str | None:
        answer = put(b, 16503, "solved", GONE)()
        return answer.json()["approval_id"] if answer.status_code == 202 else None

    fresh = wait_until(holds_again, "B never held a write again after PostgreSQL came back")
    earlier = b.api("GET", f"/api/approvals/{waiting['id']}").json()
    assert earlier["status"] == "pending", earlier  # nothing was lost
    assert b.decide(waiting["id"], "approve").status_code == 200
    answer = call.join(30).result
    assert answer is not None, call.error
    if answer.status_code != 200:
        # The outage outlasted A's lease, so B may have taken the send over (409: it went),
        # or A's traffic record was still reconnecting (202 approved: A sends it itself once
        # it can record it): never sent twice either way.
        assert answer.status_code in (202, 409), answer.text
        assert answer.json()["approval_id"] == waiting["id"], answer.text
    else:  # A's feed caught up after the reconnect and released the agent's own request
        assert answer.json()["ticket"]["status"] == "solved"
    assert b.wait_for_status(waiting["id"], "executed")["result"]["status_code"] == 200
    assert b.decide(fresh, "reject").status_code == 200
    call, on_a = held(a, put(a, 16504, "solved"))  # A holds again too
    assert b.decide(on_a["id"], "approve").status_code == 200
    assert call.join(15).result.status_code == 200
    time.sleep(0.5)
    assert {t: puts(fake, t) for t in (16501, 16502, 16503, 16504)} == {
        16501: 1, 16502: 0, 16503: 0, 16504: 1}
