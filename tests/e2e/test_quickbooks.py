"""QuickBooks Online through the real proxy: full vs sparse updates, delete, void, send, query.

The python-quickbooks tests drive the real SDK, configured only through HTTPS_PROXY,
REQUESTS_CA_BUNDLE and its own settings (intuitlib's AuthClient with an access token).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, held, triples
from tests.fakes.quickbooks import FakeQuickBooks

REALM = "9130347596283816"
BASE = f"https://quickbooks.api.intuit.com/v3/company/{REALM}"
# intuitlib takes a discovery URL as its environment; Intuit's sits on developer.intuit.com,
# the fake serves it on the API host the tests map to it.
DISCOVERY = "https://quickbooks.api.intuit.com/.well-known/openid_configuration/"


@pytest.fixture
def qbo(vendors: dict[str, Vendor]) -> FakeQuickBooks:
    fake = vendors["quickbooks"].fake
    fake.log.clear()
    return fake


@pytest.fixture
def agent(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with agent_client(proxy, Authorization="Bearer qbo-access-token-123",
                      Accept="application/json") as client:
        yield client


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess,
        qbo: FakeQuickBooks) -> Iterator[QuickBooks]:
    """A python-quickbooks client that reaches QuickBooks through the proxy and trusts its CA."""
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(proxy.ca_cert))
    auth = AuthClient(client_id="ABkJ2lcQ7Nq5xq", client_secret="fake-client-secret",
                      redirect_uri="http://localhost:8000/callback", environment=DISCOVERY,
                      access_token=qbo.access_token, refresh_token="AB11-refresh-token")
    yield QuickBooks(auth_client=auth, refresh_token=auth.refresh_token, company_id=REALM,
                     minorversion=75)
    for approval in proxy.approvals("pending"):
        proxy.decide(approval["id"], "reject", "test cleanup")


def _customer(name: str, **fields: Any) -> dict[str, Any]:
    """A customer as QBO stores one: unset fields are absent, not "" or null."""
    return {"DisplayName": name, "CompanyName": name, "GivenName": "Ada", "FamilyName": "Tern",
            "PrimaryEmailAddr": {"Address": "ada@tern.example"},
            "PrimaryPhone": {"FreeFormNumber": "(650) 555-0100"},
            "BillAddr": {"Line1": "12 Harbour Rd", "City": "Bayshore",
                         "CountrySubDivisionCode": "CA", "PostalCode": "94326"}, **fields}


def test_python_quickbooks_full_update_shows_only_the_one_real_change(
        proxy: ProxyProcess, qbo: FakeQuickBooks, sdk: QuickBooks) -> None:
    """Customer.save() sends every field, unset ones as "": none of those is a change."""
    ident = qbo.seed_customer(**_customer("Tern Supplies"))
    before = len(proxy.approvals())
    customer = Customer.get(ident, qb=sdk)
    assert len(proxy.approvals()) == before  # the SDK's read passed
    sent = json.loads(customer.to_json())
    unset = sorted(key for key, value in sent.items() if value == "")
    assert len(unset) >= 7 and all(key not in qbo.customers[ident] for key in unset)
    customer.CompanyName = "Tern Supplies & Sons"
    qbo.log.clear()

    call, approval = held(proxy, lambda: customer.save(qb=sdk))

    assert (approval["system"], approval["object_type"], approval["operation"],
            approval["record_id"]) == ("QuickBooks", "customer", "update", ident)
    assert triples(approval) == [("CompanyName", "Tern Supplies", "Tern Supplies & Sons")]
    assert not [change for change in approval["changes"]
                if change["old"] is None and change["new"] in ("", None)]
    assert approval["patch"] == [{"op": "replace", "path": "/CompanyName",
                                  "value": "Tern Supplies & Sons"}]
    writes = f"/v3/company/{REALM}/customer"
    assert qbo.log.of("POST", writes) == []
    proxy.decide(approval["id"], "approve")
    saved = call.join().result
    assert call.error is None
    [write] = qbo.log.of("POST", writes)
    assert {key: json.loads(write.body)[key] for key in unset} == dict.fromkeys(unset, "")
    stored = qbo.customers[ident]
    assert (saved.Id, saved.SyncToken, saved.CompanyName) == (
        ident, stored["SyncToken"], "Tern Supplies & Sons")
    assert stored["SyncToken"] == "1"


def test_python_quickbooks_full_update_still_shows_clearing_a_value(
        proxy: ProxyProcess, qbo: FakeQuickBooks, sdk: QuickBooks) -> None:
    """Sending "" for a value the record has is a real clear, flat or nested: it is shown."""
    ident = qbo.seed_customer(**_customer("Heron Freight", Notes="Prefers email"))
    customer = Customer.get(ident, qb=sdk)
    customer.Notes = ""
    customer.BillAddr.City = ""
    qbo.log.clear()

    call, approval = held(proxy, lambda: customer.save(qb=sdk))

    assert sorted(triples(approval)) == [("BillAddr.City", "Bayshore", ""),
                                         ("Notes", "Prefers email", "")]
    assert sorted(approval["patch"], key=lambda op: op["path"]) == [
        {"op": "replace", "path": "/BillAddr/City", "value": ""},
        {"op": "replace", "path": "/Notes", "value": ""}]
    proxy.decide(approval["id"], "reject", "keep the notes")
    call.join()
    assert isinstance(call.error, QuickbooksException)
    assert "403" in str(call.error.message)
    assert qbo.log.of("POST", f"/v3/company/{REALM}/customer") == []
    assert qbo.customers[ident]["Notes"] == "Prefers email"


def test_create_invoice_without_id_is_a_create(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    customer = qbo.seed_customer(DisplayName="Globex Test Corp")
    body = {"CustomerRef": {"value": customer},
            "Line": [{"Amount": 250.0, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1,
                                              "UnitPrice": 250}}]}
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/invoice?minorversion=75", json=body))
    assert (approval["system"], approval["object_type"], approval["operation"]) == (
        "QuickBooks", "invoice", "create")
    assert approval["risk"]["level"] == "high"  # Line moves money
    proxy.decide(approval["id"], "approve")
    response = call.join().result
    assert response.status_code == 200
    assert response.json()["Invoice"]["TotalAmt"] == 250.0


def test_full_update_shows_omitted_writable_fields_going_to_null(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    invoice = qbo.seed_invoice(PrivateNote="call before delivery")
    current = agent.get(f"{BASE}/invoice/{invoice}?minorversion=75").json()["Invoice"]
    full = {key: value for key, value in current.items()
            if key not in ("PrivateNote", "CustomerMemo")}
    full["DueDate"] = "2030-01-31"
    qbo.log.clear()
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/invoice?minorversion=75",
                                                    json=full))
    assert approval["operation"] == "update"
    assert approval["record_id"] == invoice
    changes = {field: (old, new) for field, old, new in triples(approval)}
    assert changes["PrivateNote"] == ("call before delivery", None)
    assert changes["CustomerMemo.value"][1] is None
    assert changes["DueDate"][1] == "2030-01-31"
    assert "SyncToken" not in changes and "MetaData.CreateTime" not in changes
    [fetch] = qbo.log.of("GET", f"/v3/company/{REALM}/invoice/{invoice}")
    assert fetch.query == "minorversion=75"  # kept on the fetch of the current record
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200
    assert "PrivateNote" not in qbo.invoices[invoice]


def test_sparse_update_changes_only_the_fields_sent(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    invoice = qbo.seed_invoice(PrivateNote="keep me")
    token = qbo.invoices[invoice]["SyncToken"]
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/invoice", json={
        "Id": invoice, "SyncToken": token, "sparse": True, "DueDate": "2031-05-01"}))
    assert [field for field, _, _ in triples(approval)] == ["DueDate"]
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200
    assert qbo.invoices[invoice]["PrivateNote"] == "keep me"


def test_delete_void_and_send_are_held_with_their_effect(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    invoice = qbo.seed_invoice()
    token = qbo.invoices[invoice]["SyncToken"]
    call, approval = held(proxy, lambda: agent.post(
        f"{BASE}/invoice?operation=void", json={"Id": invoice, "SyncToken": token}))
    assert (approval["operation"], approval["action"], approval["record_id"]) == (
        "action", "void", invoice)
    assert ("TotalAmt", 100.0, 0) in triples(approval)
    assert "voids a transaction" in " ".join(approval["risk"]["reasons"])
    proxy.decide(approval["id"], "reject", "customer paid already")
    assert call.join().result.status_code == 403

    call, approval = held(proxy, lambda: agent.post(f"{BASE}/invoice/{invoice}/send"))
    assert approval["action"] == "send"
    assert approval["risk"]["level"] == "medium"
    assert "emails the document to the customer" in approval["risk"]["reasons"]
    proxy.decide(approval["id"], "approve")
    assert call.join().result.json()["Invoice"]["EmailStatus"] == "EmailSent"

    token = qbo.invoices[invoice]["SyncToken"]
    call, approval = held(proxy, lambda: agent.post(
        f"{BASE}/invoice?operation=delete", json={"Id": invoice, "SyncToken": token}))
    assert (approval["operation"], approval["record_id"]) == ("delete", invoice)
    assert approval["risk"]["level"] == "high"
    proxy.decide(approval["id"], "approve")
    assert call.join().result.json()["Invoice"]["status"] == "Deleted"


def test_query_sent_as_post_is_a_read(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    invoice = qbo.seed_invoice()
    before = len(proxy.approvals())
    response = agent.post(f"{BASE}/query?minorversion=75",
                          content=f"select * from Invoice where Id = '{invoice}'",
                          headers={"Content-Type": "application/text"})
    assert response.status_code == 200
    assert response.json()["QueryResponse"]["Invoice"][0]["Id"] == invoice
    assert len(proxy.approvals()) == before


def test_batch_is_held_as_a_write_it_cannot_read(
        proxy: ProxyProcess, qbo: FakeQuickBooks, agent: httpx.Client) -> None:
    """A batch may carry creates and deletes: never passed as a read."""
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/batch", json={
        "BatchItemRequest": [{"bId": "1", "operation": "delete",
                              "Invoice": {"Id": "1", "SyncToken": "0"}}]}))
    assert (approval["system"], approval["object_type"], approval["action"]) == (
        "QuickBooks", "batch", "batch")
    assert approval["risk"]["level"] == "high"
    assert approval["request"]["body"]["BatchItemRequest"][0]["operation"] == "delete"
    proxy.decide(approval["id"], "reject")
    assert call.join().result.status_code == 403
    assert qbo.log.of("POST", f"/v3/company/{REALM}/batch") == []
