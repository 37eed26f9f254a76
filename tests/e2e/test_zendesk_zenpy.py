"""The whole product shape through the real proxy process, driven by the real zenpy SDK.

zenpy is configured only through HTTPS_PROXY and REQUESTS_CA_BUNDLE, as an agent would be.
"""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
from collections.abc import Iterator

import pytest
import requests
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment, Ticket, User
from zenpy.lib.exception import APIException

from tests.e2e.conftest import ALICE, BOB, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess, changes_by_record, held, triples
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

EMAIL, API_TOKEN = "agent@acme.test", "zd-api-token-123"


def agent_env(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(proxy.ca_cert))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
           zendesk: tuple[FakeZendesk, HTTPSFake]) -> Iterator[Zenpy]:
    agent_env(monkeypatch, proxy)
    zendesk[0].log.clear()
    yield Zenpy(subdomain="acme", email=EMAIL, token=API_TOKEN)
    for approval in proxy.approvals("pending"):
        proxy.decide(approval["id"], "reject", "test cleanup")


def test_read_passes_untouched_and_creates_no_approval(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(1, subject="Printer on fire", status="open")
    before = len(proxy.approvals())

    ticket = client.tickets(id=1)

    assert ticket.subject == "Printer on fire"
    assert ticket.status == "open"
    assert len(fake.log.of("GET", "/api/v2/tickets/1")) == 1
    assert len(proxy.approvals()) == before
    entries = proxy.api("GET", "/api/audit").json()["entries"]
    assert not any(entry["detail"].get("method") == "GET" for entry in entries)


def test_update_is_held_shows_old_and_new_and_executes_once_on_approve(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(2, status="open", subject="Refund request")
    ticket = client.tickets(id=2)
    ticket.status = "solved"
    fake.log.clear()

    agent = Background(lambda: client.tickets.update(ticket))
    [approval] = proxy.wait_for_pending()

    assert fake.log.of("PUT") == [], "nothing may reach upstream before approval"
    assert approval["system"] == "Zendesk"
    assert approval["object_type"] == "ticket"
    assert approval["operation"] == "update"
    assert approval["record_id"] == "2"
    assert approval["method"] == "PUT"
    assert approval["url"] == "https://acme.zendesk.com/api/v2/tickets/2.json"
    assert ("status", "open", "solved") in triples(approval)
    assert {"op": "replace", "path": "/status", "value": "solved"} in approval["patch"]
    assert approval["old_values"] == {"known": True, "reason": None}
    # The current record was fetched with the agent's own credentials.
    [fetch] = fake.log.of("GET", "/api/v2/tickets/2")
    expected = "Basic " + base64.b64encode(f"{EMAIL}/token:{API_TOKEN}".encode()).decode()
    assert fetch.headers["authorization"] == expected
    assert approval["request"]["headers"]["Authorization"] == "Basic ***"

    decided = proxy.decide(approval["id"], "approve", "customer confirmed")
    assert decided.status_code == 200
    assert decided.json()["status"] == "approved"
    assert decided.json()["decided_by"] == "alice"

    agent.join()
    assert agent.error is None, agent.error
    assert agent.result.ticket.status == "solved"  # zenpy's TicketAudit from the fake's answer
    assert len(fake.log.of("PUT")) == 1
    assert fake.tickets[2]["status"] == "solved"
    executed = proxy.wait_for_status(approval["id"], "executed")
    assert executed["result"]["status_code"] == 200
    events = [e["event"] for e in proxy.api(
        "GET", "/api/audit", params={"approval_id": approval["id"]}).json()["entries"]]
    assert events == ["held", "approved", "sending", "executed"]


def test_rejected_update_raises_in_zenpy_and_never_reaches_upstream(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(3, status="open")
    ticket = client.tickets(id=3)
    ticket.status = "solved"

    agent = Background(lambda: client.tickets.update(ticket))
    [approval] = proxy.wait_for_pending()
    assert proxy.decide(approval["id"], "reject", "wrong ticket, ask the customer first"
                        ).status_code == 200

    agent.join()
    assert isinstance(agent.error, APIException)
    answer = json.loads(str(agent.error))
    assert answer == {
        "status": "rejected", "approval_id": approval["id"],
        "note": "wrong ticket, ask the customer first", "decided_by": "alice",
        "message": "a reviewer rejected this write; nothing was sent upstream",
        "error": {"type": "hitl_proxy", "code": "approval_rejected",
                  "message": "a reviewer rejected this write; nothing was sent upstream"},
        "status_url": f"http://hitl-proxy.status/approvals/{approval['id']}",
    }
    assert agent.error.response.status_code == 403
    assert fake.log.of("PUT") == []
    assert fake.tickets[3]["status"] == "open"
    entries = proxy.api("GET", "/api/audit", params={"approval_id": approval["id"]}).json()
    rejected = [e for e in entries["entries"] if e["event"] == "rejected"]
    assert len(rejected) == 1
    assert rejected[0]["actor"] == "alice"
    assert rejected[0]["detail"]["note"] == "wrong ticket, ask the customer first"
    assert proxy.decide(approval["id"], "approve").status_code == 409


def test_create_and_delete_are_held_with_the_right_shape(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    agent = Background(lambda: client.tickets.create(
        Ticket(subject="New laptop", description="Please order one", priority="high")))
    [create] = proxy.wait_for_pending()
    assert create["operation"] == "create"
    assert create["record_id"] is None
    assert ("subject", None, "New laptop") in triples(create)
    assert all(change["old"] is None for change in create["changes"])
    proxy.decide(create["id"], "approve")
    agent.join()
    assert agent.error is None, agent.error
    created_id = agent.result.ticket.id
    assert fake.tickets[created_id]["subject"] == "New laptop"

    fake.seed(4, subject="Spam", status="new")
    agent = Background(lambda: client.tickets.delete(client.tickets(id=4)))
    [delete] = proxy.wait_for_pending()
    assert delete["operation"] == "delete"
    assert delete["record_id"] == "4"
    assert ("subject", "Spam", None) in triples(delete)
    assert all(change["new"] is None for change in delete["changes"])
    assert delete["risk"]["level"] == "high"
    assert "deletes a record" in delete["risk"]["reasons"]
    assert 4 in fake.tickets
    proxy.decide(delete["id"], "approve")
    agent.join()
    assert agent.error is None, agent.error
    assert 4 not in fake.tickets
    assert proxy.wait_for_status(delete["id"], "executed")["result"]["status_code"] == 204


def test_update_of_a_missing_record_is_still_held_and_says_why(
        monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
        zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    agent_env(monkeypatch, proxy)
    fake = zendesk[0]
    auth = (f"{EMAIL}/token", API_TOKEN)
    agent = Background(lambda: requests.put(
        "https://acme.zendesk.com/api/v2/tickets/999.json", auth=auth,
        json={"ticket": {"status": "solved"}}, timeout=60))
    [approval] = proxy.wait_for_pending()
    assert approval["old_values"]["known"] is False
    assert "404" in approval["old_values"]["reason"]
    assert ("status", None, "solved") in triples(approval)
    assert any("old values unknown" in reason for reason in approval["risk"]["reasons"])
    proxy.decide(approval["id"], "approve")
    response = agent.join().result
    assert response.status_code == 404  # the vendor's own answer, unchanged
    assert response.json() == {"error": "RecordNotFound", "description": "Not found"}
    assert len(fake.log.of("PUT", "/api/v2/tickets/999")) == 1


def test_unknown_host_write_is_held_with_its_raw_body_and_context_headers_stripped(
        monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
        zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    agent_env(monkeypatch, proxy)
    fake = zendesk[0]
    fake.log.clear()
    agent = Background(lambda: requests.post(
        "https://api.unknown-vendor.test/v1/things?api_key=canary-query-secret",
        data=b"name=widget&password=canary-form-secret", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-HITL-Reason": "restock the widget", "X-HITL-Task": "inventory",
            "X-HITL-Agent": "stock-bot", "X-Api-Key": "canary-header-secret"},
        timeout=60))
    [approval] = proxy.wait_for_pending()
    assert approval["system"] is None
    assert approval["old_values"]["known"] is False
    assert approval["request"]["body"] == {"name": "widget", "password": "***"}
    assert approval["context"] == {"reason": "restock the widget", "task": "inventory",
                                   "agent": "stock-bot", "claimed_task": None,
                                   "claimed_agent": None, "trigger": None}
    assert "canary" not in json.dumps(approval)
    assert approval["risk"]["level"] == "medium"
    proxy.decide(approval["id"], "approve")
    assert agent.join().result.status_code == 404  # the fake knows no such path
    [seen] = fake.log.of("POST", "/v1/things")
    assert not any(name.startswith("x-hitl-") for name in seen.headers)
    assert seen.headers["x-api-key"] == "canary-header-secret"
    assert "canary-query-secret" in seen.query


def test_secrets_never_reach_the_database(proxy: ProxyProcess) -> None:
    database = proxy.data_dir / "hitl.sqlite3"
    with sqlite3.connect(database) as db:
        dump = "\n".join(db.iterdump())
    for secret in ("canary-header-secret", "canary-query-secret", "canary-form-secret", API_TOKEN,
                   base64.b64encode(f"{EMAIL}/token:{API_TOKEN}".encode()).decode()):
        assert secret not in dump


def test_review_api_requires_a_reviewer_token_on_every_route(proxy: ProxyProcess) -> None:
    routes = [("GET", "/api/approvals"), ("GET", "/api/approvals/x"),
              ("POST", "/api/approvals/x/approve"), ("POST", "/api/approvals/x/reject"),
              ("GET", "/api/audit")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer not-a-token"},
                        {"Authorization": f"Basic {ALICE}"}):
            response = requests.request(method, f"{proxy.review_url}{path}", headers=headers,
                                        timeout=10)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert requests.get(f"{proxy.review_url}/healthz", timeout=10).status_code == 200
    assert proxy.api("GET", "/api/approvals", token=BOB).status_code == 200


def test_undecided_write_gets_202_after_the_hold_timeout_and_executes_once_when_approved(
        tmp_path, monkeypatch: pytest.MonkeyPatch, upstream_tls: UpstreamTLS,
        vendors: dict[str, Vendor], zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    short = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "1")
    try:
        agent_env(monkeypatch, short)
        fake.seed(5, status="open")
        statuses: list[int] = []
        session = requests.Session()
        session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
        client = Zenpy(subdomain="acme", email=EMAIL, token=API_TOKEN, session=session)
        ticket = client.tickets(id=5)
        ticket.status = "pending"
        fake.log.clear()

        agent = Background(lambda: client.tickets.update(ticket)).join()

        assert statuses[-1] == 202
        assert fake.log.of("PUT") == []
        [approval] = short.approvals("pending")
        assert short.decide(approval["id"], "approve").status_code == 200
        executed = short.wait_for_status(approval["id"], "executed")
        assert executed["result"]["status_code"] == 200
        assert len(fake.log.of("PUT", "/api/v2/tickets/5")) == 1
        assert fake.tickets[5]["status"] == "pending"
        assert agent.error is None or "202" not in str(agent.error)
    finally:
        assert short.stop() == 0, short.log()


def test_reverse_mode_holds_writes_and_sigint_stops_cleanly(
        tmp_path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    reverse = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "30",
                          "--mode", "reverse:https://acme.zendesk.com")
    try:
        fake.seed(6, status="open")
        auth = (f"{EMAIL}/token", API_TOKEN)
        url = f"http://127.0.0.1:{reverse.listen_port}/api/v2/tickets/6.json"
        assert requests.get(url, auth=auth, timeout=30).json()["ticket"]["status"] == "open"
        agent = Background(lambda: requests.put(url, auth=auth, timeout=60,
                                                json={"ticket": {"priority": "urgent"}}))
        [approval] = reverse.wait_for_pending()
        assert approval["url"] == "https://acme.zendesk.com/api/v2/tickets/6.json"
        assert triples(approval) == [("priority", "normal", "urgent")]
        reverse.decide(approval["id"], "approve")
        assert agent.join().result.status_code == 200
        assert fake.tickets[6]["priority"] == "urgent"
    finally:
        assert reverse.process is not None
        reverse.process.send_signal(signal.SIGINT)
        assert reverse.process.wait(15) == 0, reverse.log()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2", "[::1]"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_review_api_cannot_be_reached_through_the_proxy(
        proxy: ProxyProcess, host: str, scheme: str) -> None:
    proxies = {"http": proxy.proxy_url, "https": proxy.proxy_url}
    url = f"{scheme}://{host}:{proxy.review_port}/api/approvals"
    try:
        response = requests.get(url, proxies=proxies, verify=str(proxy.ca_cert), timeout=10,
                                headers={"Authorization": f"Bearer {ALICE}"})
    except requests.exceptions.ProxyError as exc:
        assert "502" in str(exc)  # the proxy refused the CONNECT
    else:
        assert response.status_code == 502
        assert "review API cannot be reached" in response.text


def test_a_hold_survives_kill_9_and_is_sent_once_when_approved_after_restart(
        tmp_path, monkeypatch: pytest.MonkeyPatch, upstream_tls: UpstreamTLS,
        vendors: dict[str, Vendor], zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    first = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "30")
    agent_env(monkeypatch, first)
    fake.seed(7, status="open")
    fake.log.clear()
    agent = Background(lambda: requests.put(
        "https://acme.zendesk.com/api/v2/tickets/7.json", auth=(f"{EMAIL}/token", API_TOKEN),
        json={"ticket": {"status": "solved"}}, timeout=60))
    [held] = first.wait_for_pending()
    assert first.process is not None
    first.process.kill()
    first.process.wait(10)
    assert isinstance(agent.join().error, requests.exceptions.RequestException)

    second = ProxyProcess(tmp_path, first.extra_args, token=ALICE)
    second.start()
    try:
        [pending] = second.approvals("pending")
        assert pending["id"] == held["id"]
        assert pending["fingerprint"] == held["fingerprint"]
        assert fake.log.of("PUT") == []
        second.decide(held["id"], "approve", "after the crash")
        executed = second.wait_for_status(held["id"], "executed")
        assert executed["result"]["status_code"] == 200
        assert len(fake.log.of("PUT", "/api/v2/tickets/7")) == 1
        assert fake.tickets[7]["status"] == "solved"
    finally:
        assert second.stop() == 0, second.log()


def test_bulk_update_and_destroy_many_are_split_per_ticket(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(21, status="new", priority="low")
    fake.seed(22, status="open", priority="low")
    first, second = client.tickets(id=21), client.tickets(id=22)
    first.priority = second.priority = "high"
    agent, approval = held(proxy, lambda: client.tickets.update([first, second]))
    assert [r["record_id"] for r in approval["records"]] == ["21", "22"]
    assert changes_by_record(approval) == {"21": {"priority": ("low", "high")},
                                           "22": {"priority": ("low", "high")}}
    assert fake.log.of("GET", "/api/v2/tickets/show_many")  # old values from show_many
    proxy.decide(approval["id"], "approve")
    assert agent.join().error is None
    assert fake.tickets[22]["priority"] == "high"

    agent, approval = held(proxy, lambda: client.tickets.delete([first, second]))
    assert approval["operation"] == "delete"
    assert set(changes_by_record(approval)) == {"21", "22"}
    proxy.decide(approval["id"], "reject", "keep them")
    assert agent.join().error is not None
    assert 21 in fake.tickets and 22 in fake.tickets


def test_update_many_with_ids_query_applies_one_change_to_each(
        monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
        zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    agent_env(monkeypatch, proxy)
    fake = zendesk[0]
    fake.seed(31, tags=["a"])
    fake.seed(32, tags=["b"])
    agent, approval = held(proxy, lambda: requests.put(
        "https://acme.zendesk.com/api/v2/tickets/update_many.json?ids=31,32",
        auth=(f"{EMAIL}/token", API_TOKEN), json={"ticket": {"tags": ["triaged"]}}, timeout=60))
    assert changes_by_record(approval) == {"31": {"tags": (["a"], ["triaged"])},
                                           "32": {"tags": (["b"], ["triaged"])}}
    proxy.decide(approval["id"], "approve")
    assert agent.join().result.status_code == 200


def test_comment_is_shown_as_an_added_item_with_its_public_flag(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(41, status="open")
    ticket = client.tickets(id=41)
    ticket.comment = Comment(body="We shipped a fix", public=True)
    ticket.status = "solved"
    agent, approval = held(proxy, lambda: client.tickets.update(ticket))
    comment = next(c for c in approval["changes"] if c["field"] == "comment")
    assert comment["kind"] == "add"
    assert comment["old"] is None
    assert comment["new"]["body"] == "We shipped a fix"
    assert comment["new"]["public"] is True
    assert "customer-visible: added comment" in approval["risk"]["reasons"]
    proxy.decide(approval["id"], "approve")
    assert agent.join().error is None
    assert fake.comments[41][-1]["body"] == "We shipped a fix"


def test_user_create_or_update_shows_an_update_for_a_known_email(
        client: Zenpy, proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed_user(501, name="Old Name", email="known@acme.test")
    agent, approval = held(proxy, lambda: client.users.create_or_update(
        User(name="New Name", email="known@acme.test")))
    assert (approval["object_type"], approval["operation"], approval["record_id"]) == (
        "user", "update", "known@acme.test")
    assert ("name", "Old Name", "New Name") in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert agent.join().error is None
    assert fake.users[501]["name"] == "New Name"
