"""Reviewer edits and partial approvals reach upstream in the vendor's own format."""

from __future__ import annotations

import pytest
import stripe
from zenpy import Zenpy

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, held, triples
from tests.e2e.test_zendesk_zenpy import API_TOKEN, EMAIL, agent_env
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.zendesk import FakeZendesk


@pytest.fixture
def zenpy_client(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> Zenpy:
    agent_env(monkeypatch, proxy)
    return Zenpy(subdomain="acme", email=EMAIL, token=API_TOKEN)


def approve(proxy: ProxyProcess, approval_id: str, **body: object) -> dict:
    answer = proxy.api("POST", f"/api/approvals/{approval_id}/approve", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_edited_zendesk_update_sends_the_reviewers_value_and_keeps_both_in_the_audit(
        proxy: ProxyProcess, vendors: dict[str, Vendor], zenpy_client: Zenpy) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(961, status="open", priority="low")
    ticket = zenpy_client.tickets(id=961)
    ticket.status = "solved"
    fake.log.clear()
    call, approval = held(proxy, lambda: zenpy_client.tickets.update(ticket))
    assert approval["edit"] == {"edits": True, "partial": True, "reason": None}
    decided = approve(proxy, approval["id"], note="pending, not solved",
                      edits=[{"field": "status", "new": "pending"}])
    assert decided["edits"] == [{"field": "status", "new": "pending"}]
    assert call.join().error is None
    assert fake.tickets[961]["status"] == "pending"
    [put] = fake.log.of("PUT", "/api/v2/tickets/961")
    assert b'"pending"' in put.body and b'"solved"' not in put.body
    entries = proxy.api("GET", "/api/audit", params={"approval_id": approval["id"]}).json()
    events = {e["event"]: e for e in entries["entries"]}
    assert events["approved"]["detail"]["edits"] == [{"field": "status", "new": "pending"}]
    assert events["edited"]["detail"]["fingerprint"] != approval["fingerprint"]
    assert ("status", "open", "solved") in triples(  # the agent's proposal is kept
        proxy.api("GET", f"/api/approvals/{approval['id']}").json())


def test_a_partial_approval_sends_only_the_approved_fields(
        proxy: ProxyProcess, vendors: dict[str, Vendor], zenpy_client: Zenpy) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(962, status="open", priority="low")
    ticket = zenpy_client.tickets(id=962)
    ticket.status = "solved"
    ticket.priority = "urgent"
    call, approval = held(proxy, lambda: zenpy_client.tickets.update(ticket))
    approve(proxy, approval["id"], approve_fields=["priority"])
    assert call.join().error is None
    assert (fake.tickets[962]["status"], fake.tickets[962]["priority"]) == ("open", "urgent")


def test_edits_that_cannot_be_expressed_are_refused_with_422(
        proxy: ProxyProcess, vendors: dict[str, Vendor], zenpy_client: Zenpy) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(963, status="open")
    call, approval = held(proxy, lambda: zenpy_client.tickets.delete(
        zenpy_client.tickets(id=963)))
    refused = proxy.api("POST", f"/api/approvals/{approval['id']}/approve",
                        json={"edits": [{"field": "status", "new": "x"}]})
    assert refused.status_code == 422
    assert "cannot be edited" in refused.json()["error"]
    unknown = proxy.api("POST", f"/api/approvals/{approval['id']}/reject",
                        json={"edits": []})
    assert unknown.status_code == 400
    proxy.decide(approval["id"], "reject")
    call.join()


def test_an_edited_stripe_form_update_is_re_encoded(
        monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
        vendors: dict[str, Vendor]) -> None:
    fake: FakeStripe = vendors["stripe"].fake
    customer = fake.seed_customer(email="a@acme.test", metadata={"plan": "basic"})
    monkeypatch.setenv("HTTPS_PROXY", proxy.proxy_url)
    monkeypatch.setattr(stripe, "ca_bundle_path", str(proxy.ca_cert))
    client = stripe.StripeClient("sk_test_fake_123", max_network_retries=0)
    call, approval = held(proxy, lambda: client.v1.customers.update(
        customer, {"metadata": {"plan": "enterprise"}, "email": "b@acme.test"}))
    approve(proxy, approval["id"], edits=[{"field": "metadata.plan", "new": "team"}])
    assert call.join().error is None
    assert fake.get(customer)["metadata"]["plan"] == "team"
    assert fake.get(customer)["email"] == "b@acme.test"


def test_revert_of_an_executed_update_restores_the_old_values_after_its_own_approval(
        proxy: ProxyProcess, vendors: dict[str, Vendor], zenpy_client: Zenpy) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(971, status="open", priority="low")
    ticket = zenpy_client.tickets(id=971)
    ticket.status = "solved"
    call, approval = held(proxy, lambda: zenpy_client.tickets.update(ticket))
    approve(proxy, approval["id"])
    call.join()
    proxy.wait_for_status(approval["id"], "executed")
    assert fake.tickets[971]["status"] == "solved"

    answer = proxy.api("POST", f"/api/approvals/{approval['id']}/revert")
    assert answer.status_code == 201, answer.text
    revert = answer.json()
    assert (revert["status"], revert["reverts"]) == ("pending", approval["id"])
    assert triples(revert) == [("status", "solved", "open")]
    assert fake.tickets[971]["status"] == "solved"  # nothing happens before review
    approve(proxy, revert["id"])
    proxy.wait_for_status(revert["id"], "executed")
    assert fake.tickets[971]["status"] == "open"


def test_revert_of_a_delete_recreates_where_the_api_allows_and_says_where_it_does_not(
        proxy: ProxyProcess, vendors: dict[str, Vendor], zenpy_client: Zenpy) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(972, status="open", subject="Keep this one", description="Keep this one")
    call, approval = held(proxy, lambda: zenpy_client.tickets.delete(
        zenpy_client.tickets(id=972)))
    approve(proxy, approval["id"])
    call.join()
    proxy.wait_for_status(approval["id"], "executed")
    assert 972 not in fake.tickets
    revert = proxy.api("POST", f"/api/approvals/{approval['id']}/revert").json()
    assert (revert["operation"], revert["reverts"]) == ("create", approval["id"])
    assert ("subject", None, "Keep this one") in triples(revert)
    approve(proxy, revert["id"])
    proxy.wait_for_status(revert["id"], "executed")
    assert any(t["subject"] == "Keep this one" for t in fake.tickets.values())

    rejected = held(proxy, lambda: zenpy_client.tickets.delete(zenpy_client.tickets(
        id=fake.seed(973)["id"])))[1]
    proxy.decide(rejected["id"], "reject")
    refused = proxy.api("POST", f"/api/approvals/{rejected['id']}/revert")
    assert refused.status_code == 422
    assert "only an executed write can be reverted" in refused.json()["error"]
