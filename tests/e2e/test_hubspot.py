"""HubSpot CRM v3 through the real proxy: an agent's httpx client, a fake api.hubapi.com."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, changes_by_record, held, triples
from tests.fakes.hubspot import FakeHubSpot

BASE = "https://api.hubapi.com/crm/v3/objects"


@pytest.fixture
def hubspot(vendors: dict[str, Vendor]) -> FakeHubSpot:
    fake = vendors["hubspot"].fake
    fake.log.clear()
    return fake


@pytest.fixture
def agent(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with agent_client(proxy, Authorization="Bearer pat-na1-fake-token") as client:
        yield client


def test_create_contact_is_held_with_old_values_null(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client) -> None:
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/contacts", json={
        "properties": {"email": "new@acme.test", "firstname": "Ada"}}))
    assert (approval["system"], approval["object_type"], approval["operation"]) == (
        "HubSpot", "contacts", "create")
    assert set(triples(approval)) == {("email", None, "new@acme.test"), ("firstname", None, "Ada")}
    proxy.decide(approval["id"], "approve")
    response = call.join().result
    assert response.status_code == 201
    assert hubspot.get("contacts", response.json()["id"])["properties"]["firstname"] == "Ada"


def test_deal_amount_update_fetches_only_the_sent_properties_and_flags_money(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client) -> None:
    deal = hubspot.seed("deals", dealname="Renewal", amount="1200",
                        dealstage="appointmentscheduled")
    call, approval = held(proxy, lambda: agent.patch(f"{BASE}/deals/{deal}", json={
        "properties": {"amount": "12000", "dealname": "Renewal"}}))
    assert triples(approval) == [("amount", "1200", "12000")]  # dealname is unchanged
    [fetch] = hubspot.log.of("GET", f"/crm/v3/objects/deals/{deal}")
    assert "properties=amount%2Cdealname" in fetch.query or "properties=amount,dealname" in (
        fetch.query)
    assert approval["risk"]["level"] == "high"
    assert "moves money: amount" in approval["risk"]["reasons"][0]
    proxy.decide(approval["id"], "reject", "amount looks off by 10x")
    response = call.join().result
    assert response.status_code == 403
    assert response.json()["note"] == "amount looks off by 10x"
    assert hubspot.log.of("PATCH") == []
    assert hubspot.get("deals", deal)["properties"]["amount"] == "1200"


def test_delete_archives_after_approval(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client) -> None:
    company = hubspot.seed("companies", name="Initech", domain="initech.test")
    call, approval = held(proxy, lambda: agent.delete(f"{BASE}/companies/{company}"))
    assert approval["operation"] == "delete"
    assert ("name", "Initech", None) in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 204
    assert hubspot.objects["companies"][company]["archived"] is True


def test_batch_update_is_split_per_record_with_old_values_from_batch_read(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client) -> None:
    first = hubspot.seed("contacts", email="a@acme.test", lifecyclestage="lead")
    second = hubspot.seed("contacts", email="b@acme.test", lifecyclestage="subscriber")
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/contacts/batch/update", json={
        "inputs": [{"id": first, "properties": {"lifecyclestage": "customer"}},
                   {"id": second, "properties": {"lifecyclestage": "customer"}}]}))
    assert approval["record_id"] is None
    assert [r["record_id"] for r in approval["records"]] == [first, second]
    assert changes_by_record(approval) == {
        first: {"lifecyclestage": ("lead", "customer")},
        second: {"lifecyclestage": ("subscriber", "customer")},
    }
    assert approval["old_values"]["known"] is True
    assert len(hubspot.log.of("POST", "/crm/v3/objects/contacts/batch/read")) == 1
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200
    assert hubspot.get("contacts", second)["properties"]["lifecyclestage"] == "customer"


def test_batch_upsert_shows_an_update_for_the_known_email_and_a_create_for_the_new_one(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client) -> None:
    hubspot.seed("contacts", email="known@acme.test", firstname="Old")
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/contacts/batch/upsert", json={
        "inputs": [
            {"id": "known@acme.test", "idProperty": "email", "properties": {"firstname": "New"}},
            {"id": "fresh@acme.test", "idProperty": "email", "properties": {"firstname": "Fay"}},
        ]}))
    operations = {r["record_id"]: r["operation"] for r in approval["records"]}
    assert operations == {"known@acme.test": "update", "fresh@acme.test": "create"}
    by_record = changes_by_record(approval)
    assert by_record["known@acme.test"] == {"firstname": ("Old", "New")}
    assert by_record["fresh@acme.test"] == {"firstname": (None, "Fay")}
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200


@pytest.mark.parametrize("path", ["/contacts/search", "/contacts/batch/read"])
def test_reads_sent_as_post_pass_untouched(
        proxy: ProxyProcess, hubspot: FakeHubSpot, agent: httpx.Client, path: str) -> None:
    contact = hubspot.seed("contacts", email="find@acme.test")
    before = len(proxy.approvals())
    body = ({"filterGroups": [{"filters": [
        {"propertyName": "email", "operator": "EQ", "value": "find@acme.test"}]}]}
        if path.endswith("search") else
        {"inputs": [{"id": contact}], "properties": ["email"], "propertiesWithHistory": []})
    response = agent.post(f"{BASE}{path}", json=body)
    assert response.status_code == 200
    assert response.json()["results"][0]["id"] == contact
    assert len(proxy.approvals()) == before
