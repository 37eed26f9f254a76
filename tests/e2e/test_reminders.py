"""Reminders, escalation, delegation and the owner rule through the real proxy: a write held by
a rule with remind_after 1s and escalate_after 2s is reminded and escalated once each (the
webhooks say so), the escalate_to group may decide only from then on, an agent's owner may not
approve it, and a reviewer away hands their writes to their delegate."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held
from tests.e2e.test_notifications import Receiver
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

SAM = "sam-support-token-000001"  # support; owns triage-bot
LEE = "lee-leads-token-00000002"  # leads: decides after escalation
ADA = "ada-finance-token-000003"  # finance: named delegate by sam
AGENT_SECRET = "triage-bot-secret-00001"


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, HTTPSFake]]:
    found = Receiver()
    with HTTPSFake(found.app) as server:
        yield found, server


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor],
         receiver: tuple[Receiver, HTTPSFake]) -> Iterator[ProxyProcess]:
    config = f"""
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support]}}
  - {{name: lee, token: "{LEE}", groups: [leads]}}
  - {{name: ada, token: "{ADA}", groups: [finance]}}
agents:
  - {{name: triage-bot, secret: "{AGENT_SECRET}", owner: sam}}
policy:
  - match: {{system: Zendesk}}
    action: hold
    reviewers: [support]
    remind_after: 1s
    escalate_after: 2s
    escalate_to: [leads]
notifications:
  review_url: https://review.example.test
  webhooks:
    - {{url: "http://127.0.0.1:{receiver[1].port}/generic", format: json}}
"""
    process = start_proxy(tmp_path_factory.mktemp("reminders"), upstream_tls, vendors,
                          "--hold-timeout", "1", config=config)
    process.token = SAM
    yield process
    assert process.stop() == 0, process.log()


def _write(gate: ProxyProcess, ticket: int) -> dict:
    """An update from triage-bot (named by proxy authentication), answered 202 after the
    one-second hold."""
    proxy = gate.proxy_url.replace("://", f"://triage-bot:{AGENT_SECRET}@")
    trust = ssl.create_default_context(cafile=str(gate.ca_cert))
    with httpx.Client(proxy=proxy, verify=trust, timeout=60) as agent:
        call, approval = held(gate, lambda: agent.put(
            f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json",
            json={"ticket": {"status": "solved"}},
            auth=("agent@acme.test/token", "zd-api-token-123")))
        call.join()
    assert call.error is None and call.result.status_code == 202, call.result
    return approval


def test_reminded_then_escalated_once_and_leads_decide_only_after(
        gate: ProxyProcess, vendors: dict[str, Vendor],
        receiver: tuple[Receiver, HTTPSFake]) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(961, status="open")
    hooks = receiver[0]
    start = time.monotonic()
    approval = _write(gate, 961)
    assert approval["context"]["agent"] == "triage-bot"
    assert (approval["remind_after"], approval["escalate_after"]) == (1.0, 2.0)
    early = gate.decide(approval["id"], "approve", token=LEE)
    if time.monotonic() - start < 1.8:  # still before escalate_after: leads may not yet
        assert early.status_code == 403 and "after 2 s pending" in early.json()["error"]
    events = [body["event"] for body in hooks.wait("generic", 3)
              if body["approval"]["id"] == approval["id"]]
    assert events == ["approval.pending", "approval.reminder", "approval.escalated"]
    bodies = [body for body in hooks.received if body[1]["approval"]["id"] == approval["id"]]
    assert bodies[2][1]["groups"] == ["leads"]
    # The owner may not approve their agent's write; the escalated group may.
    owner = gate.decide(approval["id"], "approve")
    assert owner.status_code == 403 and "owns the agent 'triage-bot'" in owner.json()["error"]
    decided = gate.decide(approval["id"], "approve", "escalated, fine", token=LEE)
    assert decided.status_code == 200, decided.text
    gate.wait_for_status(approval["id"], "executed")
    time.sleep(1.5)  # more ticks: nothing is reminded twice, nor after the decision
    again = [body["event"] for _, body in hooks.received
             if body["approval"]["id"] == approval["id"]]
    assert again == ["approval.pending", "approval.reminder", "approval.escalated",
                     "approval.approved"]


def test_a_delegate_decides_for_someone_away_in_one_bulk_request(
        gate: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(962, status="open")
    fake.seed(963, status="open")
    first, second = _write(gate, 962), _write(gate, 963)
    bulk = {"ids": [first["id"], second["id"]], "decision": "reject", "note": "not today"}
    refused = gate.api("POST", "/api/approvals/decide", token=ADA, json=bulk).json()["results"]
    assert [r["ok"] for r in refused] == [False, False]  # not routed to finance
    until = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    away = gate.api("PUT", "/api/reviewers/me/away", json={"until": until, "delegate": "ada"})
    assert away.status_code == 200, away.text
    assert [a["reviewer"] for a in gate.api("GET", "/api/reviewers/away",
                                            token=LEE).json()["away"]] == ["sam"]
    answer = gate.api("POST", "/api/approvals/decide", token=ADA, json=bulk)
    assert answer.status_code == 200
    assert [(r["ok"], r["status"]) for r in answer.json()["results"]] == [
        (True, "rejected"), (True, "rejected")]
    audit = gate.api("GET", f"/api/audit?approval_id={first['id']}", token=ADA).json()
    assert [e["detail"]["on_behalf_of"] for e in audit["entries"]
            if e["event"] == "delegated_vote"] == ["sam"]
    assert gate.api("DELETE", "/api/reviewers/me/away").status_code == 200
