"""Fail closed, execute exactly once, never lose a hold: each guarantee against a real process."""

from __future__ import annotations

import gzip
import json
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
import requests

from proxy_addon.sealing import audit_key, load_key
from review_api import Decision
from review_api.store import SqliteStore as Store
from tests.e2e.conftest import ALICE, CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held
from tests.fakes.zendesk import FakeZendesk

AUTH = ("agent@acme.test/token", "zd-api-token-123")


def url(ticket: int) -> str:
    return f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json"


def session_for(proxy: ProxyProcess) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": proxy.proxy_url, "http": proxy.proxy_url}
    session.verify = str(proxy.ca_cert)
    session.auth = AUTH
    return session


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeZendesk:
    found = vendors["zendesk"].fake
    found.log.clear()
    return found


def test_kill_9_with_writes_in_every_state(tmp_path: Path, upstream_tls: UpstreamTLS,
                                           vendors: dict[str, Vendor],
                                           fake: FakeZendesk) -> None:
    first = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "30")
    session = session_for(first)
    for ticket in (701, 702, 703):
        fake.seed(ticket, status="open")
    fake.slow_updates[703] = 4.0
    _, pending = held(first, lambda: session.put(url(701), json={"ticket": {"status": "hold"}},
                                                 timeout=60))
    _, unsent = held(first, lambda: session.put(url(702), json={"ticket": {"status": "hold"}},
                                                timeout=60))
    _, in_flight = held(first, lambda: session.put(url(703), json={"ticket": {"status": "hold"}},
                                                   timeout=60))
    first.decide(in_flight["id"], "approve")
    deadline = time.monotonic() + 5
    while not fake.log.of("PUT", "/api/v2/tickets/703") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.process is not None
    first.process.kill()
    first.process.wait(10)

    # While no proxy runs, a reviewer's approval lands in the store (as from another node).
    async def approve_offline() -> None:
        store = Store(first.data_dir / "hitl.sqlite3",
                      audit_key=audit_key(load_key(first.data_dir)))
        await store.open()
        await store.decide(unsent["id"], Decision.approve, "alice", "approved offline")
        await store.close()

    import asyncio
    asyncio.run(approve_offline())

    second = ProxyProcess(tmp_path, first.extra_args, token=ALICE).start()
    try:
        still = second.api("GET", f"/api/approvals/{pending['id']}").json()
        assert (still["status"], still["fingerprint"]) == ("pending", pending["fingerprint"])
        sent = second.wait_for_status(unsent["id"], "executed")
        assert sent["result"]["status_code"] == 200
        assert len(fake.log.of("PUT", "/api/v2/tickets/702")) == 1
        unknown = second.wait_for_status(in_flight["id"], "outcome_unknown")
        assert unknown["result"] is None
        time.sleep(4.5)  # the slow upstream finishes the one PUT it got; nothing is resent
        assert len(fake.log.of("PUT", "/api/v2/tickets/703")) == 1
        resolved = second.api("POST", f"/api/approvals/{in_flight['id']}/resolve",
                              json={"outcome": "executed", "note": "checked in Zendesk"})
        assert resolved.json()["status"] == "executed"
        key_file = second.data_dir / "seal.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert b"zd-api-token-123" not in (second.data_dir / "hitl.sqlite3").read_bytes()
        verify = second.api("GET", "/api/audit").json()["entries"]
        assert [e["event"] for e in verify if e["approval_id"] == in_flight["id"]][-2:] == [
            "outcome_unknown", "executed"]
    finally:
        fake.slow_updates.pop(703, None)
        assert second.stop() == 0, second.log()


def test_racing_decisions_leave_one_and_upstream_is_called_at_most_once(
        proxy: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(711, status="open")
    call, approval = held(proxy, lambda: session_for(proxy).put(
        url(711), json={"ticket": {"status": "solved"}}, timeout=60))
    barrier = threading.Barrier(100)
    codes: list[int] = []

    def decide(decision: str) -> None:
        barrier.wait()
        codes.append(proxy.decide(approval["id"], decision).status_code)

    threads = [threading.Thread(target=decide, args=("approve" if i % 2 else "reject",))
               for i in range(100)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(codes) == [200] + [409] * 99
    call.join()
    decided = [e for e in proxy.api("GET", "/api/audit", params={
        "approval_id": approval["id"]}).json()["entries"] if e["event"] in (
        "approved", "rejected")]
    assert len(decided) == 1
    assert len(fake.log.of("PUT", "/api/v2/tickets/711")) == (
        1 if decided[0]["event"] == "approved" else 0)


def test_a_retried_write_joins_its_approval_and_executes_once(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    short = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "1")
    try:
        fake.seed(721, status="open")
        session = session_for(short)
        body = {"ticket": {"status": "pending"}}
        first = session.put(url(721), json=body, timeout=60)
        assert first.status_code == 202
        assert first.headers["Stripe-Should-Retry"] == "false"
        again = session.put(url(721), json=body, timeout=60)
        keyed = session.put(url(721), json={"ticket": {"status": "pending", "x": 1}},
                            headers={"Idempotency-Key": "k-1"}, timeout=60)
        keyed_again = session.put(url(721), json={"ticket": {"status": "pending", "x": 1}},
                                  headers={"Idempotency-Key": "k-1"}, timeout=60)
        assert again.json()["approval_id"] == first.json()["approval_id"]  # same bytes
        assert keyed.json()["approval_id"] != first.json()["approval_id"]  # other bytes
        assert keyed_again.json()["approval_id"] == keyed.json()["approval_id"]  # same key
        assert len(short.approvals("pending")) == 2
        short.decide(keyed.json()["approval_id"], "reject")
        short.decide(first.json()["approval_id"], "approve")
        short.wait_for_status(first.json()["approval_id"], "executed")
        time.sleep(0.3)
        assert len(fake.log.of("PUT", "/api/v2/tickets/721")) == 1
    finally:
        assert short.stop() == 0, short.log()


def test_a_record_changed_since_review_is_not_sent(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    short = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "1")
    try:
        fake.seed(731, status="open", priority="low")
        answer = session_for(short).put(url(731), json={"ticket": {"priority": "high"}},
                                        timeout=60)
        assert answer.status_code == 202
        fake.tickets[731]["priority"] = "urgent"  # someone else changed it meanwhile
        short.decide(answer.json()["approval_id"], "approve")
        stale = short.wait_for_status(answer.json()["approval_id"], "stale")
        entries = short.api("GET", "/api/audit", params={
            "approval_id": stale["id"]}).json()["entries"]
        assert "priority changed since review" in entries[-1]["detail"]["reason"]
        assert fake.log.of("PUT") == []
    finally:
        assert short.stop() == 0, short.log()


def test_a_locked_store_refuses_writes_with_503_while_reads_flow(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    config = CONFIG + "limits: {store_timeout: 1s}\n"
    gate = start_proxy(tmp_path, upstream_tls, vendors, config=config)
    try:
        fake.seed(741, status="open")
        session = session_for(gate)
        with sqlite3.connect(gate.data_dir / "hitl.sqlite3", timeout=5) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            refused = session.put(url(741), json={"ticket": {"status": "solved"}}, timeout=60)
            read = session.get(url(741), timeout=30)
            locker.rollback()
        assert refused.status_code == 503
        assert refused.json()["status"] == "refused"
        assert "store is unavailable" in refused.json()["message"]
        assert read.status_code == 200
        assert fake.log.of("PUT") == []
        assert "the store cannot record it" in gate.log()
    finally:
        assert gate.stop() == 0, gate.log()


def test_a_flood_of_writes_is_bounded_and_nothing_held_is_lost(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    config = CONFIG + "limits: {max_pending: 5}\n"
    gate = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "1", config=config)
    try:
        for ticket in range(751, 759):
            fake.seed(ticket, status="open")
        session = session_for(gate)
        answers = [session.put(url(t), json={"ticket": {"status": "hold"}}, timeout=60)
                   for t in range(751, 759)]
        assert [a.status_code for a in answers] == [202] * 5 + [429] * 3
        assert answers[-1].headers["Retry-After"] == "60"
        assert "too many writes wait for review" in answers[-1].json()["message"]
        assert session.get(url(758), timeout=30).status_code == 200
        assert len(gate.approvals("pending")) == 5
        assert fake.log.of("PUT") == []
    finally:
        assert gate.stop() == 0, gate.log()


CANARIES = {
    "authorization": "zd-oauth-canary-auth-7f3a",
    "cookie": "canary-cookie-91bc",
    "proxy": "canary-proxy-secret-5d2e",
    "apikey": "canary-api-key-44aa",
    "query_key": "canary-query-key-0c1d",
    "query_token": "canary-query-token-8e8e",
    "password": "canary-body-password-1111",
    "secret": "canary-body-secret-2222",
    "token": "canary-body-token-3333",
}


def test_secret_canaries_never_land_anywhere_but_upstream(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    config = CONFIG + f"agents: [{{name: canary-bot, secret: {CANARIES['proxy']}}}]\n"
    gate = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "30", config=config)
    answers: list[str] = []
    try:
        fake.seed(761, status="open")
        fake.seed(762, status="open")
        fake.failing_updates.add(762)
        session = requests.Session()
        session.trust_env = False
        proxy = f"http://canary-bot:{CANARIES['proxy']}@127.0.0.1:{gate.listen_port}"
        session.proxies = {"https": proxy}
        session.verify = str(gate.ca_cert)
        session.headers.update({"Authorization": f"Bearer {CANARIES['authorization']}",
                                "Cookie": f"session={CANARIES['cookie']}",
                                "X-Api-Key": CANARIES["apikey"]})
        query = f"?api_key={CANARIES['query_key']}&access_token={CANARIES['query_token']}"
        body = {"ticket": {"status": "solved", "password": CANARIES["password"],
                           "secret": CANARIES["secret"], "api_token": CANARIES["token"]}}
        for ticket in (761, 762, 999):  # 200, 500, 404 from upstream
            call, approval = held(gate, lambda t=ticket: session.put(
                url(t) + query, json=body, timeout=60))
            gate.decide(approval["id"], "approve")
            call.join()
        # and a crash while one is held
        call, approval = held(gate, lambda: session.put(url(761) + query, json=body, timeout=60))
        assert gate.process is not None
        gate.process.kill()
        gate.process.wait(10)
        gate = ProxyProcess(tmp_path, gate.extra_args, token=ALICE).start()
        for path in ("/api/approvals", "/api/audit", "/api/stats",
                     f"/api/approvals/{approval['id']}"):
            answers.append(gate.api("GET", path).text)
    finally:
        fake.failing_updates.discard(762)
        gate.stop()
    upstream_saw = [s for s in fake.log.seen if s.method == "PUT"]
    assert {s.path for s in upstream_saw} >= {"/api/v2/tickets/761.json",
                                              "/api/v2/tickets/762.json"}
    assert all(s.headers["authorization"] == f"Bearer {CANARIES['authorization']}"
               for s in upstream_saw)
    assert CANARIES["password"].encode() in upstream_saw[0].body
    places = {"api answers": "\n".join(answers), "proxy log": gate.log()}
    for file in sorted(gate.data_dir.rglob("*")):
        if file.is_file():
            places[str(file)] = file.read_bytes().decode("latin-1")
    for where, text in places.items():
        for name, canary in CANARIES.items():
            assert canary not in text, f"{name} canary found in {where}"


def test_bad_bodies_are_held_or_refused_never_passed(
        proxy: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(771, status="open")
    session = session_for(proxy)
    cases = [
        (b'{"ticket": ', {"Content-Type": "application/json"}, "not valid JSON"),
        (b'{"ticket": {"status": "solved"}}', {"Content-Type": "text/plain"}, None),
        (b"\xff\xfe\x00", {"Content-Type": "application/json"}, "UTF-8"),
    ]
    for content, headers, problem in cases:
        call, approval = held(proxy, lambda c=content, h=headers: session.put(
            url(771), data=c, headers=h, timeout=60))
        assert approval["request"]["problem"] == problem or (
            problem and problem in (approval["request"]["problem"] or ""))
        proxy.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
    # gzip: diffed decoded, forwarded as sent
    packed = gzip.compress(json.dumps({"ticket": {"status": "pending"}}).encode())
    call, approval = held(proxy, lambda: session.put(
        url(771), data=packed, timeout=60,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}))
    assert ("status", "open", "pending") in [(c["field"], c["old"], c["new"])
                                             for c in approval["changes"]]
    proxy.decide(approval["id"], "approve")
    call.join()
    assert fake.log.of("PUT", "/api/v2/tickets/771")[-1].body == packed
    assert fake.log.of("PUT")[:-1] == []


def test_oversized_writes_get_413_and_chunked_writes_are_held(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    gate = start_proxy(tmp_path, upstream_tls, vendors,
                       config=CONFIG + "limits: {max_body: 2048}\n")
    try:
        fake.seed(781, status="open")
        session = session_for(gate)
        big = json.dumps({"ticket": {"comment": {"body": "x" * 5000}}}).encode()
        declared = session.put(url(781), data=big, timeout=30,
                               headers={"Content-Type": "application/json"})
        assert declared.status_code == 413
        assert "limits.max_body" in declared.json()["message"]
        assert fake.log.of("PUT") == []
        assert len(gate.approvals()) == 0
        small = json.dumps({"ticket": {"status": "solved"}}).encode()
        call, approval = held(gate, lambda: session.put(
            url(781), data=iter([small[:10], small[10:]]), timeout=60,
            headers={"Content-Type": "application/json"}))
        assert ("status", "open", "solved") in [(c["field"], c["old"], c["new"])
                                                for c in approval["changes"]]
        gate.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
        assert fake.log.of("PUT") == []
        big_read = session.get(url(781), timeout=30)  # large answers are not limited
        assert big_read.status_code == 200
    finally:
        assert gate.stop() == 0, gate.log()
