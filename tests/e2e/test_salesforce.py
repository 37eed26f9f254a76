"""Salesforce through the real proxy with the real simple-salesforce SDK (environment only)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from simple_salesforce import Salesforce

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, changes_by_record, held, triples
from tests.e2e.test_zendesk_zenpy import agent_env
from tests.fakes.salesforce import FakeSalesforce

SESSION = "00Dxx0000001gPL!AQ4AQFakeSession"
INSTANCE = "https://acme.my.salesforce.com"
DATA = f"{INSTANCE}/services/data/v59.0"


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeSalesforce:
    found = vendors["salesforce"].fake
    found.log.clear()
    return found


@pytest.fixture
def sf(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> Salesforce:
    agent_env(monkeypatch, proxy)
    return Salesforce(instance_url=INSTANCE, session_id=SESSION, version="59.0")


@pytest.fixture
def agent(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with agent_client(proxy, Authorization=f"Bearer {SESSION}") as client:
        yield client


def test_lead_update_is_held_and_executes_on_approve(
        proxy: ProxyProcess, fake: FakeSalesforce, sf: Salesforce) -> None:
    lead = fake.seed_lead(LastName="Lovelace", Company="Analytical", Status="Open - Not Contacted")
    call, approval = held(proxy, lambda: sf.Lead.update(lead, {
        "Status": "Working - Contacted", "OwnerId": "005000000000001AAA"}))
    assert (approval["system"], approval["object_type"], approval["record_id"]) == (
        "Salesforce", "Lead", lead)
    assert ("Status", "Open - Not Contacted", "Working - Contacted") in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result == 204
    assert fake.get(lead)["Status"] == "Working - Contacted"


def test_create_and_delete_contact(
        proxy: ProxyProcess, fake: FakeSalesforce, sf: Salesforce) -> None:
    call, approval = held(proxy, lambda: sf.Contact.create({"LastName": "Hopper",
                                                            "Email": "grace@acme.test"}))
    assert (approval["operation"], approval["object_type"]) == ("create", "Contact")
    assert approval["risk"]["level"] == "medium"  # Email is customer-facing
    proxy.decide(approval["id"], "approve")
    contact = call.join().result["id"]
    call, approval = held(proxy, lambda: sf.Contact.delete(contact))
    assert ("LastName", "Hopper", None) in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result == 204
    assert fake.get(contact) is None


def test_external_id_upsert_shows_create_for_a_new_key_and_update_for_a_known_one(
        proxy: ProxyProcess, fake: FakeSalesforce, sf: Salesforce) -> None:
    fake.seed_account(Name="Known Co", External_Id__c="EXT-1")
    call, approval = held(proxy, lambda: sf.Account.upsert("External_Id__c/EXT-1",
                                                           {"Name": "Known Company"}))
    assert (approval["operation"], approval["record_id"]) == ("update", "EXT-1")
    assert triples(approval) == [("Name", "Known Co", "Known Company")]
    proxy.decide(approval["id"], "approve")
    assert call.join().result == 200

    call, approval = held(proxy, lambda: sf.Account.upsert("External_Id__c/EXT-2",
                                                           {"Name": "New Co"}))
    assert approval["operation"] == "create"
    assert approval["old_values"]["known"] is True
    proxy.decide(approval["id"], "approve")
    assert call.join().result == 201


def test_collection_update_is_split_per_record_with_old_values_from_the_retrieve(
        proxy: ProxyProcess, fake: FakeSalesforce, agent: httpx.Client) -> None:
    first = fake.seed_account(Name="Alpha", Industry="Retail")
    second = fake.seed_account(Name="Beta", Industry="Retail")
    call, approval = held(proxy, lambda: agent.patch(f"{DATA}/composite/sobjects", json={
        "allOrNone": False, "records": [
            {"attributes": {"type": "Account"}, "id": first, "Industry": "Banking"},
            {"attributes": {"type": "Account"}, "id": second, "Industry": "Energy"}]}))
    assert changes_by_record(approval) == {first: {"Industry": ("Retail", "Banking")},
                                           second: {"Industry": ("Retail", "Energy")}}
    [retrieve] = fake.log.of("GET", "/services/data/v59.0/composite/sobjects/Account")
    assert first in retrieve.query and second in retrieve.query
    proxy.decide(approval["id"], "approve")
    assert [r["success"] for r in call.join().result.json()] == [True, True]


def test_composite_classifies_each_subrequest_and_gets_pass_through(
        proxy: ProxyProcess, fake: FakeSalesforce, agent: httpx.Client) -> None:
    account = fake.seed_account(Name="Gamma")
    reads_only = {"compositeRequest": [
        {"method": "GET", "url": f"/services/data/v59.0/sobjects/Account/{account}",
         "referenceId": "read"}]}
    before = len(proxy.approvals())
    assert agent.post(f"{DATA}/composite", json=reads_only).status_code == 200
    assert len(proxy.approvals()) == before

    call, approval = held(proxy, lambda: agent.post(f"{DATA}/composite", json={
        "allOrNone": True, "compositeRequest": [
            {"method": "GET", "url": f"/services/data/v59.0/sobjects/Account/{account}",
             "referenceId": "read"},
            {"method": "PATCH", "url": f"/services/data/v59.0/sobjects/Account/{account}",
             "referenceId": "rename", "body": {"Name": "Gamma Inc"}},
            {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact",
             "referenceId": "person", "body": {"LastName": "Curie"}}]}))
    assert [(r["object_type"], r["operation"]) for r in approval["records"]] == [
        ("Account", "update"), ("Contact", "create")]
    assert ("Name", "Gamma", "Gamma Inc") in triples(approval)
    assert ("LastName", None, "Curie") in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200
    assert fake.get(account)["Name"] == "Gamma Inc"


def test_reads_sent_as_post_pass(proxy: ProxyProcess, fake: FakeSalesforce,
                                 agent: httpx.Client) -> None:
    account = fake.seed_account(Name="Searchable Co")
    before = len(proxy.approvals())
    retrieve = agent.post(f"{DATA}/composite/sobjects/Account",
                          json={"ids": [account], "fields": ["Name"]})
    assert retrieve.json()[0]["Name"] == "Searchable Co"
    search = agent.post(f"{DATA}/parameterizedSearch/", json={"q": "Searchable",
                                                              "sobjects": [{"name": "Account"}]})
    assert search.status_code == 200
    assert len(proxy.approvals()) == before
