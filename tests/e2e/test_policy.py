"""Policy per task type through the real proxy: agents by proxy auth, rules, quorum, routing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import requests

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held
from tests.fakes.zendesk import FakeZendesk

SUPPORT_A, SUPPORT_B = "sam-support-token-00001", "sue-support-token-00002"
FINANCE = "fin-finance-token-000003"
AUDITOR = "ada-auditor-token-00004"
TRIAGE_SECRET, LEADS_SECRET = "triage-bot-secret-0001", "lead-bot-secret-000002"
CONFIG = f"""
reviewers:
  - {{name: sam, token: "{SUPPORT_A}", groups: [support]}}
  - {{name: sue, token: "{SUPPORT_B}", groups: [support]}}
  - {{name: fin, token: "{FINANCE}", groups: [finance]}}
  - {{name: ada, token: "{AUDITOR}", groups: [auditor]}}
agents:
  - {{name: triage-bot, secret: "{TRIAGE_SECRET}", task: ticket-triage}}
  - {{name: lead-bot, secret: "{LEADS_SECRET}", task: lead-routing}}
policy:
  - name: tagging-is-safe
    match: {{task: ticket-triage, system: Zendesk, object: ticket, fields: [tags]}}
    action: allow
  - name: never-delete-tickets
    match: {{system: Zendesk, operation: delete}}
    action: deny
  - name: solving-needs-two
    match:
      system: Zendesk
      changes: [{{field: status, to: solved}}]
    action: hold
    reviewers: [support]
    quorum: 2
  - name: urgent-is-quick
    match: {{changes: [{{field: priority, to: urgent}}]}}
    action: hold
    reviewers: [support]
    hold_timeout: 1
  - name: subject-expires
    match: {{changes: [{{field: subject, from: Expiring}}]}}
    action: hold
    reviewers: [support]
    expire_after: 2s
  - name: support-reviews-zendesk
    match: {{system: Zendesk}}
    action: hold
    reviewers: [support]
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("policy"), upstream_tls, vendors,
                          "--hold-timeout", "30", config=CONFIG)
    process.token = SUPPORT_A
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeZendesk:
    found = vendors["zendesk"].fake
    found.log.clear()
    return found


def agent_session(gate: ProxyProcess, user: str, secret: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    proxy = f"http://{user}:{secret}@127.0.0.1:{gate.listen_port}"
    session.proxies = {"https": proxy, "http": proxy}
    session.verify = str(gate.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    return session


def ticket_url(ticket: int) -> str:
    return f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json"


def test_unknown_agents_get_407_and_nothing_reaches_upstream(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(601)
    for user, secret in (("triage-bot", "wrong-secret-000000000"), ("nobody", TRIAGE_SECRET)):
        with pytest.raises(requests.exceptions.ProxyError, match="407"):
            agent_session(gate, user, secret).get(ticket_url(601), timeout=10)
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.ProxyError, match="407"):
        session.get(ticket_url(601), proxies={"https": gate.proxy_url},
                    verify=str(gate.ca_cert), timeout=10)
    assert fake.log.seen == []


def test_agent_is_named_by_proxy_auth_and_headers_never_reach_upstream(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(602, subject="Printer")
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    session.headers.update({"X-HITL-Reason": "duplicate of 601"})
    call, approval = held(gate, lambda: session.put(
        ticket_url(602), json={"ticket": {"subject": "Printer (dup)"}}, timeout=60))
    assert approval["context"] == {"reason": "duplicate of 601", "task": "ticket-triage",
                                   "agent": "triage-bot", "claimed_task": None,
                                   "claimed_agent": None, "trigger": None}
    assert approval["rule"] == "support-reviews-zendesk"
    assert approval["reviewer_groups"] == ["support"]
    assert "Proxy-Authorization" not in approval["request"]["headers"]
    gate.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200
    for seen in fake.log.seen:
        assert "proxy-authorization" not in seen.headers
        assert not any(name.startswith("x-hitl-") for name in seen.headers)
    assert TRIAGE_SECRET not in (gate.data_dir / "hitl.sqlite3").read_bytes().decode(
        errors="replace")


def test_allow_rule_lets_a_tags_only_triage_write_through_and_audits_it(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(603, tags=["new"])
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    response = session.put(ticket_url(603), json={"ticket": {"tags": ["printer"]}}, timeout=30)
    assert response.status_code == 200
    assert fake.tickets[603]["tags"] == ["printer"]
    # A write a rule allowed belongs to no group: auditors read it.
    allowed = [e for e in gate.api("GET", "/api/audit", token=AUDITOR).json()["entries"]
               if e["event"] == "allowed"]
    assert allowed[-1]["detail"]["rule"] == "tagging-is-safe"
    # the same write from another task type is held
    other = agent_session(gate, "lead-bot", LEADS_SECRET)
    call, approval = held(gate, lambda: other.put(
        ticket_url(603), json={"ticket": {"tags": ["sales"]}}, timeout=60))
    assert approval["context"]["task"] == "lead-routing"
    gate.decide(approval["id"], "reject")
    assert call.join().result.status_code == 403


def test_deny_rule_refuses_without_asking_anyone(gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(604)
    response = agent_session(gate, "triage-bot", TRIAGE_SECRET).delete(ticket_url(604),
                                                                        timeout=30)
    assert response.status_code == 403
    assert response.json()["status"] == "denied"
    assert response.json()["rule"] == "never-delete-tickets"
    assert 604 in fake.tickets
    assert gate.api("GET", f"/api/approvals/{response.json()['approval_id']}").json()[
        "status"] == "denied"


def test_quorum_needs_two_distinct_reviewers_and_routing_hides_it_from_finance(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(605, status="open")
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    call, approval = held(gate, lambda: session.put(
        ticket_url(605), json={"ticket": {"status": "solved"}}, timeout=60))
    assert (approval["rule"], approval["quorum"]) == ("solving-needs-two", 2)
    # finance neither sees nor decides it
    assert gate.api("GET", f"/api/approvals/{approval['id']}", token=FINANCE).status_code == 404
    assert approval["id"] not in [a["id"] for a in gate.api(
        "GET", "/api/approvals", token=FINANCE).json()["approvals"]]
    assert gate.decide(approval["id"], "approve", token=FINANCE).status_code == 403
    # one approval, twice from the same reviewer, counts once
    first = gate.decide(approval["id"], "approve", "looks right", token=SUPPORT_A)
    assert first.status_code == 200 and first.json()["status"] == "pending"
    again = gate.decide(approval["id"], "approve", token=SUPPORT_A)
    assert again.status_code == 409
    assert "already approved" in again.json()["error"]
    assert call.running and fake.log.of("PUT") == []
    second = gate.decide(approval["id"], "approve", token=SUPPORT_B)
    assert second.json()["status"] == "approved"
    assert [v["reviewer"] for v in second.json()["votes"]] == ["sam", "sue"]
    assert call.join().result.status_code == 200
    assert len(fake.log.of("PUT", "/api/v2/tickets/605")) == 1


def test_any_rejection_rejects_a_quorum_approval(gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(606, status="open")
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    call, approval = held(gate, lambda: session.put(
        ticket_url(606), json={"ticket": {"status": "solved"}}, timeout=60))
    gate.decide(approval["id"], "approve", token=SUPPORT_A)
    rejected = gate.decide(approval["id"], "reject", "not solved yet", token=SUPPORT_B)
    assert rejected.json()["status"] == "rejected"
    assert call.join().result.status_code == 403
    assert fake.log.of("PUT") == []


def test_per_rule_hold_timeout_answers_202_early(gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(607, priority="normal")
    started = time.monotonic()
    response = agent_session(gate, "triage-bot", TRIAGE_SECRET).put(
        ticket_url(607), json={"ticket": {"priority": "urgent"}}, timeout=60)
    assert response.status_code == 202
    assert time.monotonic() - started < 15  # the rule's 1 s, not the global 30 s
    gate.decide(response.json()["approval_id"], "reject")


def test_expired_write_never_reaches_upstream(gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(608, subject="Expiring")
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    call, approval = held(gate, lambda: session.put(
        ticket_url(608), json={"ticket": {"subject": "Renewed"}}, timeout=60))
    assert approval["rule"] == "subject-expires"
    expired = gate.wait_for_status(approval["id"], "expired", timeout=10)
    assert expired["decided_by"] == "proxy"
    assert call.join().result.json()["status"] == "expired"
    assert gate.decide(approval["id"], "approve").status_code == 409
    time.sleep(0.5)
    assert fake.log.of("PUT") == []


def test_stats_report_decisions_per_task(gate: ProxyProcess) -> None:
    stats = gate.api("GET", "/api/stats").json()
    by_task = {row["key"]: row for row in stats["by_task"]}
    triage = by_task["ticket-triage"]
    assert triage["approved"] >= 2 and triage["rejected"] >= 1
    assert triage["disagreements"] >= 1
    assert triage["ready_to_loosen"] is False
    assert any("disagreed" in reason for reason in triage["reasons"])
    assert gate.api("GET", "/api/stats", token="nope").status_code == 401


def test_unrouted_reviewer_cannot_use_an_agent_secret(gate: ProxyProcess) -> None:
    response = httpx.get(f"{gate.review_url}/api/approvals",
                         headers={"Authorization": f"Bearer {TRIAGE_SECRET}"})
    assert response.status_code == 401


def test_stats_command_agrees_with_the_api(gate: ProxyProcess) -> None:
    import json
    import subprocess

    from tests.e2e.harness import hitl_proxy_command

    result = subprocess.run([*hitl_proxy_command(), "stats", "--data-dir", str(gate.data_dir),
                             "--format", "json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    from_cli = {row["key"]: row["approved"] for row in json.loads(result.stdout)["by_task"]}
    from_api = {row["key"]: row["approved"]
                for row in gate.api("GET", "/api/stats").json()["by_task"]}
    assert from_cli == from_api
    table = subprocess.run([*hitl_proxy_command(), "stats", "--data-dir", str(gate.data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert "ticket-triage" in table.stdout and "keep:" in table.stdout


def test_the_agent_polls_its_own_approval_through_the_proxy_and_nobody_else_can(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(609, priority="normal")
    triage = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    answer = triage.put(ticket_url(609), json={"ticket": {"priority": "urgent"}}, timeout=60)
    assert answer.status_code == 202
    status_url = answer.json()["status_url"]
    approval_id = answer.json()["approval_id"]
    assert status_url == f"http://hitl-proxy.status/approvals/{approval_id}"
    own = triage.get(status_url, timeout=10)
    assert own.status_code == 200
    assert own.json()["status"] == "pending"
    assert triage.post(status_url + "/approve", timeout=10).status_code == 405
    other = agent_session(gate, "lead-bot", LEADS_SECRET).get(status_url, timeout=10)
    assert other.status_code == 404
    gate.decide(approval_id, "reject", "urgent is for outages")
    seen = triage.get(status_url, timeout=10).json()
    assert (seen["status"], seen["note"]) == ("rejected", "urgent is for outages")
    assert gate.api("GET", f"/api/approvals/{approval_id}").json()["status"] == "rejected"


def test_metrics_parse_and_move_with_traffic(gate: ProxyProcess, fake: FakeZendesk) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = httpx.get(f"{gate.review_url}/metrics", timeout=10).text
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples}

    before = scrape()
    fake.seed(610, tags=["x"])
    session = agent_session(gate, "triage-bot", TRIAGE_SECRET)
    assert session.get(ticket_url(610), timeout=30).status_code == 200
    assert session.put(ticket_url(610), json={"ticket": {"tags": ["y"]}},
                       timeout=30).status_code == 200
    assert session.delete(ticket_url(610), timeout=30).status_code == 403
    after = scrape()

    def moved(decision: str) -> float:
        key = ("hitl_requests_total", (("decision", decision),))
        return after[key] - before.get(key, 0.0)

    assert moved("passed") >= 1 and moved("allowed") == 1 and moved("denied") == 1
    assert after[("hitl_holds_pending", ())] == len(gate.approvals("pending"))
    assert after[("hitl_time_to_decision_seconds_count", ())] >= 1  # earlier tests decided
    assert ("hitl_webhook_failures_total", ()) in after
