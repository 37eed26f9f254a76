"""Self-test of the fake QuickBooks Online API, driven directly over HTTPS (no proxy)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.fakes.quickbooks import FakeQuickBooks
from tests.fakes.server import HTTPSFake

REALM = "9130347596283816"
BASE = f"/v3/company/{REALM}"
AUTH = {"Authorization": "Bearer qbo-access-token-123", "Accept": "application/json"}
JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeQuickBooks,
                                                                      httpx.Client]]:
    d: Path = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    fake = FakeQuickBooks()
    with HTTPSFake(fake.app, d / "server.pem", d / "server.pem") as server:
        with httpx.Client(base_url=f"https://127.0.0.1:{server.port}",
                          verify=ssl.create_default_context(cafile=str(d / "ca.pem"))) as client:
            yield fake, client


def _fault(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["Fault"]["type"] == "ValidationFault"
    assert isinstance(body["time"], str)
    return body["Fault"]["Error"][0]


def _post(client: httpx.Client, path: str, body: dict[str, Any], **params: str) -> httpx.Response:
    return client.post(BASE + path, json=body, headers=JSON,
                       params={"minorversion": "75", **params})


def test_create_invoice_computes_totals(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    customer = fake.seed_customer(DisplayName="Create Co",
                                  PrimaryEmailAddr={"Address": "ap@create.example"})
    response = _post(client, "/invoice", {
        "CustomerRef": {"value": customer},
        "Line": [
            {"Amount": 150.0, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "Qty": 3, "UnitPrice": 50}},
            {"Amount": 25.5, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}}},
        ],
        "TxnDate": "2024-05-01",
    })
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    invoice = response.json()["Invoice"]
    assert isinstance(response.json()["time"], str)
    assert invoice["SyncToken"] == "0" and invoice["domain"] == "QBO"
    assert invoice["TotalAmt"] == 175.5 and invoice["Balance"] == 175.5
    assert invoice["CustomerRef"] == {"value": customer, "name": "Create Co"}
    assert invoice["BillEmail"] == {"Address": "ap@create.example"}
    assert invoice["DueDate"] == "2024-05-31"
    assert invoice["DocNumber"] and invoice["EmailStatus"] == "NotSet"
    assert set(invoice["MetaData"]) == {"CreateTime", "LastUpdatedTime"}
    sales = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [(line["Id"], line["LineNum"]) for line in sales] == [("1", 1), ("2", 2)]
    assert sales[0]["SalesItemLineDetail"]["ItemRef"] == {"value": "2", "name": "Hours"}
    assert invoice["Line"][-1] == {"Amount": 175.5, "DetailType": "SubTotalLineDetail",
                                   "SubTotalLineDetail": {}}
    assert fake.invoices[invoice["Id"]]["TotalAmt"] == 175.5
    assert fake.log.of("POST", BASE + "/invoice")[-1].query == "minorversion=75"


def test_create_validation_errors(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    customer = fake.seed_customer(DisplayName="Validation Co")
    no_line = _post(client, "/invoice", {"CustomerRef": {"value": customer}})
    assert no_line.status_code == 400 and _fault(no_line)["code"] == "2020"
    assert "Line" in _fault(no_line)["Detail"]
    bad_ref = _post(client, "/invoice", {"CustomerRef": {"value": "99999"}, "Line": [
        {"Amount": 1, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]})
    assert _fault(bad_ref)["code"] == "2500"
    unknown = _post(client, "/invoice", {"CustomerRef": {"value": customer}, "Bogus": 1})
    assert unknown.status_code == 400 and _fault(unknown)["code"] == "2010"
    mismatch = _post(client, "/invoice", {"CustomerRef": {"value": customer}, "Line": [
        {"Amount": 10, "DetailType": "SalesItemLineDetail",
         "SalesItemLineDetail": {"Qty": 2, "UnitPrice": 3}}]})
    assert _fault(mismatch)["code"] == "6070"
    not_json = client.post(BASE + "/invoice", content=b"<Invoice/>",
                           headers={**AUTH, "Content-Type": "application/xml"})
    assert not_json.status_code == 415


def test_read_and_not_found(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice(PrivateNote="seeded")
    response = client.get(f"{BASE}/invoice/{ident}", headers=AUTH,
                          params={"minorversion": "65"})
    assert response.status_code == 200
    assert response.json()["Invoice"]["PrivateNote"] == "seeded"
    assert response.json()["Invoice"]["CustomerRef"]["value"] == "1"
    missing = client.get(f"{BASE}/invoice/424242", headers=AUTH)
    assert missing.status_code == 400
    error = _fault(missing)
    assert error["code"] == "610" and error["Message"] == "Object Not Found"


def test_full_update_clears_omitted_fields(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice(PrivateNote="keep?", CustomerMemo={"value": "memo"},
                              BillEmail={"Address": "x@y.example"})
    current = fake.invoices[ident]
    response = _post(client, "/invoice", {
        "Id": ident, "SyncToken": current["SyncToken"],
        "CustomerRef": {"value": "1"},
        "Line": [{"Id": "1", "Amount": 80.0, "DetailType": "SalesItemLineDetail",
                  "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
    })
    assert response.status_code == 200, response.text
    invoice = response.json()["Invoice"]
    assert invoice["SyncToken"] == "1"
    assert "PrivateNote" not in invoice and "CustomerMemo" not in invoice
    assert "BillEmail" not in invoice and "DocNumber" not in invoice
    assert invoice["TotalAmt"] == 80.0 and invoice["Balance"] == 80.0
    assert invoice["EmailStatus"] == "NotSet" and invoice["CurrencyRef"]["value"] == "USD"
    assert fake.invoices[ident]["SyncToken"] == "1"


def test_sparse_update_and_stale_token(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice(PrivateNote="original", DueDate="2030-01-01")
    sparse = _post(client, "/invoice", {"Id": ident, "SyncToken": "0", "sparse": True,
                                        "DueDate": "2030-02-01"})
    assert sparse.status_code == 200
    invoice = sparse.json()["Invoice"]
    assert invoice["DueDate"] == "2030-02-01" and invoice["PrivateNote"] == "original"
    assert invoice["SyncToken"] == "1" and invoice["TotalAmt"] == 100.0
    stale = _post(client, "/invoice", {"Id": ident, "SyncToken": "0", "sparse": True,
                                       "PrivateNote": "late"})
    assert stale.status_code == 400
    error = _fault(stale)
    assert error == {"Message": "Stale Object Error", "code": "5010", "element": "",
                     "Detail": "Stale Object Error : You and root were working on this at the "
                     "same time. root finished before you did, so your work was not saved."}
    assert fake.invoices[ident]["PrivateNote"] == "original"
    no_token = _post(client, "/invoice", {"Id": ident, "sparse": True, "PrivateNote": "x"})
    assert _fault(no_token)["code"] == "2020"
    unknown = _post(client, "/invoice", {"Id": "777777", "SyncToken": "0", "sparse": True})
    assert _fault(unknown)["code"] == "610"


def test_delete_invoice(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice()
    stale = _post(client, "/invoice", {"Id": ident, "SyncToken": "5"}, operation="delete")
    assert _fault(stale)["code"] == "5010"
    response = _post(client, "/invoice", {"Id": ident, "SyncToken": "0"}, operation="delete")
    assert response.status_code == 200
    assert response.json()["Invoice"] == {"status": "Deleted", "domain": "QBO", "Id": ident}
    assert ident not in fake.invoices
    gone = client.get(f"{BASE}/invoice/{ident}", headers=AUTH)
    assert _fault(gone)["Detail"] == "Object Not Found : Another user has deleted this transaction."


def test_void_invoice(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice()
    response = _post(client, "/invoice", {"Id": ident, "SyncToken": "0"}, operation="void")
    assert response.status_code == 200
    invoice = response.json()["Invoice"]
    assert invoice["TotalAmt"] == 0 and invoice["Balance"] == 0
    assert invoice["PrivateNote"] == "Voided" and invoice["SyncToken"] == "1"
    assert all(line["Amount"] == 0 for line in invoice["Line"])
    assert fake.invoices[ident]["PrivateNote"] == "Voided"


def test_send_invoice(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice()
    response = client.post(f"{BASE}/invoice/{ident}/send", headers={
        **AUTH, "Content-Type": "application/octet-stream"}, params={"sendTo": "a@b.example"})
    assert response.status_code == 200
    invoice = response.json()["Invoice"]
    assert invoice["EmailStatus"] == "EmailSent"
    assert invoice["DeliveryInfo"]["DeliveryType"] == "Email"
    assert invoice["BillEmail"] == {"Address": "a@b.example"}
    assert fake.sent_emails[-1]["to"] == "a@b.example"
    missing = client.post(f"{BASE}/invoice/9999999/send", headers=AUTH)
    assert _fault(missing)["code"] == "610"


def test_query_get_and_post(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice(DocNumber="Q-1")
    text = f"select * from Invoice where Id = '{ident}'"
    posted = client.post(BASE + "/query", content=text,
                         headers={**AUTH, "Content-Type": "application/text"})
    assert posted.status_code == 200, posted.text
    response = posted.json()["QueryResponse"]
    assert [inv["Id"] for inv in response["Invoice"]] == [ident]
    assert response["startPosition"] == 1 and response["maxResults"] == 1
    got = client.get(BASE + "/query", headers=AUTH,
                     params={"query": "SELECT * FROM Invoice WHERE DocNumber = 'Q-1'",
                             "minorversion": "75"})
    assert [inv["Id"] for inv in got.json()["QueryResponse"]["Invoice"]] == [ident]
    empty = client.get(BASE + "/query", headers=AUTH,
                       params={"query": "select * from Invoice where Id = '0'"})
    assert empty.json()["QueryResponse"] == {}
    count = client.get(BASE + "/query", headers=AUTH,
                       params={"query": "select count(*) from Invoice"})
    assert count.json()["QueryResponse"]["totalCount"] == len(fake.invoices)
    paged = client.get(BASE + "/query", headers=AUTH, params={
        "query": "select * from Invoice startposition 1 maxresults 2"})
    assert paged.json()["QueryResponse"]["maxResults"] == 2
    bad = client.get(BASE + "/query", headers=AUTH, params={"query": "select from"})
    assert _fault(bad)["code"] == "4000"
    bad_entity = client.get(BASE + "/query", headers=AUTH,
                            params={"query": "select * from Nope"})
    assert _fault(bad_entity)["code"] == "4001"


def test_customer_lifecycle(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    created = _post(client, "/customer", {"DisplayName": "King's Groceries",
                                          "GivenName": "James", "Notes": "first"})
    assert created.status_code == 200, created.text
    customer = created.json()["Customer"]
    ident = customer["Id"]
    assert customer["Active"] is True and customer["SyncToken"] == "0"
    assert customer["FullyQualifiedName"] == "King's Groceries"
    duplicate = _post(client, "/customer", {"DisplayName": "King's Groceries"})
    assert _fault(duplicate)["code"] == "6240"
    sparse = _post(client, "/customer", {"Id": ident, "SyncToken": "0", "sparse": True,
                                         "MiddleName": "B"})
    assert sparse.json()["Customer"]["Notes"] == "first"
    full = _post(client, "/customer", {"Id": ident, "SyncToken": "1",
                                       "DisplayName": "King's Groceries"})
    body = full.json()["Customer"]
    assert "Notes" not in body and "GivenName" not in body and body["SyncToken"] == "2"
    refused = _post(client, "/customer", {"Id": ident, "SyncToken": "2"}, operation="delete")
    assert refused.status_code == 400 and _fault(refused)["code"] == "500"
    assert ident in fake.customers
    inactive = _post(client, "/customer", {"Id": ident, "SyncToken": "2", "sparse": True,
                                           "Active": False})
    assert inactive.json()["Customer"]["Active"] is False
    assert fake.customers[ident]["DisplayName"] == "King's Groceries (deleted)"
    listed = client.get(BASE + "/query", headers=AUTH,
                        params={"query": "select * from Customer"})
    assert ident not in [c["Id"] for c in listed.json()["QueryResponse"]["Customer"]]
    with_inactive = client.get(BASE + "/query", headers=AUTH, params={
        "query": f"select * from Customer where Active = false and Id = '{ident}'"})
    assert with_inactive.json()["QueryResponse"]["Customer"][0]["Id"] == ident
    blocked = _post(client, "/invoice", {"CustomerRef": {"value": ident}, "Line": [
        {"Amount": 1, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {}}]})
    assert _fault(blocked)["code"] == "610"
    read = client.get(f"{BASE}/customer/{ident}", headers=AUTH)
    assert read.json()["Customer"]["Id"] == ident


def test_payment_applies_to_invoice(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    invoice = fake.seed_invoice()
    paid = _post(client, "/payment", {"CustomerRef": {"value": "1"}, "TotalAmt": 60.0,
                                      "Line": [{"Amount": 40.0, "LinkedTxn": [
                                          {"TxnId": invoice, "TxnType": "Invoice"}]}]})
    assert paid.status_code == 200, paid.text
    payment = paid.json()["Payment"]
    assert payment["UnappliedAmt"] == 20.0
    assert fake.invoices[invoice]["Balance"] == 60.0
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in fake.invoices[invoice]["LinkedTxn"]
    locked = _post(client, "/invoice", {"Id": invoice, "SyncToken": "0"}, operation="delete")
    assert _fault(locked)["code"] == "6000"
    voided = _post(client, "/payment", {"Id": payment["Id"], "SyncToken": "0"},
                   operation="void")
    assert voided.json()["Payment"]["TotalAmt"] == 0
    assert fake.invoices[invoice]["Balance"] == 100.0
    deleted = _post(client, "/payment", {"Id": payment["Id"], "SyncToken": "1"},
                    operation="delete")
    assert deleted.json()["Payment"]["status"] == "Deleted"


def test_item_create_and_read(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    _, client = served
    created = _post(client, "/item", {"Name": "Gardening", "Type": "Service",
                                      "UnitPrice": 25})
    assert created.status_code == 200
    item = created.json()["Item"]
    assert item["UnitPrice"] == 25.0 and item["IncomeAccountRef"]["value"] == "79"
    read = client.get(f"{BASE}/item/{item['Id']}", headers=AUTH)
    assert read.json()["Item"]["Name"] == "Gardening"


def test_requestid_replays_the_first_answer(served: tuple[FakeQuickBooks,
                                                          httpx.Client]) -> None:
    fake, client = served
    body = {"DisplayName": "Idempotent Inc"}
    first = _post(client, "/customer", body, requestid="req-1")
    before = len(fake.customers)
    second = _post(client, "/customer", body, requestid="req-1")
    assert second.json()["Customer"]["Id"] == first.json()["Customer"]["Id"]
    assert len(fake.customers) == before


def test_auth_and_realm_errors(served: tuple[FakeQuickBooks, httpx.Client]) -> None:
    fake, client = served
    bad = client.get(f"{BASE}/invoice/1", headers={"Authorization": "Bearer nope",
                                                   "Accept": "application/json"})
    assert bad.status_code == 401
    fault = bad.json()["fault"]
    assert fault["type"] == "AUTHENTICATION"
    assert fault["error"][0]["code"] == "3200"
    assert "AuthenticationFailed" in fault["error"][0]["message"]
    assert fault["error"][0]["detail"].startswith("Token expired")
    missing = client.post(f"{BASE}/invoice", json={}, headers={"Accept": "application/json"})
    assert missing.status_code == 401
    other = client.get("/v3/company/123/invoice/1", headers=AUTH)
    assert other.status_code == 403 and other.json()["fault"]["error"][0]["code"] == "3100"
    assert fake.log.of("GET", "/v3/company/123/")


def test_xml_by_default_and_unknown_paths(served: tuple[FakeQuickBooks,
                                                        httpx.Client]) -> None:
    fake, client = served
    ident = fake.seed_invoice()
    xml = client.get(f"{BASE}/invoice/{ident}",
                     headers={"Authorization": "Bearer qbo-access-token-123"})
    assert xml.status_code == 200
    assert xml.headers["content-type"].startswith("application/xml")
    assert "<IntuitResponse" in xml.text and f"<Id>{ident}</Id>" in xml.text
    assert '<Invoice domain="QBO" sparse="false">' in xml.text
    unknown = client.get("/v3/company/x/nowhere/at/all", headers=AUTH)
    assert unknown.status_code == 400 and _fault(unknown)["Message"] == "Unsupported Operation"
    vendor = client.get(f"{BASE}/vendor/1", headers=AUTH)
    assert _fault(vendor)["code"] == "500"
    assert fake.log.of("GET", "/v3/company/x/nowhere")
