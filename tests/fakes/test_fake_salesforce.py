"""Self-test of the fake Salesforce REST API, directly and through simple-salesforce."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import trustme
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from tests.fakes.salesforce import FakeSalesforce, _to18
from tests.fakes.server import HTTPSFake

SID = "00Dxx0000001gPL!AQ4AQFakeSession"
V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeSalesforce, Any, Any]]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    fake = FakeSalesforce()
    with HTTPSFake(fake.app, d / "server.pem", d / "server.pem") as server:
        base = f"https://127.0.0.1:{server.port}"
        context = ssl.create_default_context(cafile=str(d / "ca.pem"))
        client = httpx.Client(base_url=base, verify=context,
                              headers={"Authorization": f"Bearer {SID}"})
        session = requests.Session()
        session.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment beats verify
        session.verify = str(d / "ca.pem")
        sf = Salesforce(instance_url=base, session_id=SID, session=session)
        yield fake, client, sf
        client.close()
        session.close()


@pytest.fixture
def fake(served: tuple[FakeSalesforce, Any, Any]) -> FakeSalesforce:
    return served[0]


@pytest.fixture
def http(served: tuple[FakeSalesforce, Any, Any]) -> httpx.Client:
    return served[1]


@pytest.fixture
def sf(served: tuple[FakeSalesforce, Any, Any]) -> Salesforce:
    return served[2]


def test_ids_are_18_chars_with_key_prefix_and_checksum(fake: FakeSalesforce) -> None:
    assert _to18("001D000000IqhSL") == "001D000000IqhSLIAZ"  # documented example id
    for kind, prefix in [("Account", "001"), ("Contact", "003"), ("Lead", "00Q"),
                         ("Opportunity", "006")]:
        rid = fake.seed(kind)
        assert len(rid) == 18 and rid.startswith(prefix) and rid == _to18(rid[:15])
        assert fake.records[rid]["Id"] == rid


def test_versions_need_no_auth_and_resources_do(http: httpx.Client) -> None:
    versions = httpx.get(f"{http.base_url}/services/data/", verify=False).json()
    assert {"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"} in versions
    assert http.get(f"{V}/").json()["sobjects"] == f"{V}/sobjects"
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        r = http.get(f"{V}/sobjects/Account/001000000000000AAA", headers=headers)
        assert r.status_code == 401
        assert r.json() == [{"message": "Session expired or invalid",
                             "errorCode": "INVALID_SESSION_ID"}]
    assert http.get("/services/data/v99.0/sobjects").status_code == 404
    assert http.get("/nowhere").json()[0]["errorCode"] == "NOT_FOUND"


def test_create_get_update_delete(fake: FakeSalesforce, http: httpx.Client) -> None:
    r = http.post(f"{V}/sobjects/Account/", json={"Name": "Globex", "Industry": "Energy"})
    assert r.status_code == 201
    body = r.json()
    assert body["success"] is True and body["errors"] == [] and body["id"].startswith("001")
    rid = body["id"]
    got = http.get(f"{V}/sobjects/Account/{rid}").json()
    assert got["attributes"] == {"type": "Account", "url": f"{V}/sobjects/Account/{rid}"}
    assert got["Id"] == rid and got["Name"] == "Globex" and got["Phone"] is None
    got = http.get(f"/services/data/v60.0/sobjects/Account/{rid}?fields=name,Industry").json()
    assert got == {"attributes": {"type": "Account",
                                  "url": f"/services/data/v60.0/sobjects/Account/{rid}"},
                   "Name": "Globex", "Industry": "Energy", "Id": rid}
    r = http.patch(f"{V}/sobjects/Account/{rid}", json={"Phone": "555-0199"})
    assert r.status_code == 204 and r.content == b""
    assert fake.records[rid]["Phone"] == "555-0199" and fake.records[rid]["Name"] == "Globex"
    assert http.get(f"{V}/sobjects/Account/{rid[:15]}").json()["Id"] == rid
    assert http.delete(f"{V}/sobjects/Account/{rid}").status_code == 204
    assert rid not in fake.records and rid in fake.deleted
    r = http.get(f"{V}/sobjects/Account/{rid}")
    assert r.status_code == 404
    assert r.json() == [{"message": "The requested resource does not exist",
                         "errorCode": "NOT_FOUND"}]
    r = http.delete(f"{V}/sobjects/Account/{rid}")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "ENTITY_IS_DELETED"


def test_sobject_errors(fake: FakeSalesforce, http: httpx.Client) -> None:
    r = http.post(f"{V}/sobjects/Account/", json={"Name": "X", "Bogus__c": 1})
    assert r.status_code == 400
    assert r.json() == [{"message": "No such column 'Bogus__c' on sobject of type Account",
                         "errorCode": "INVALID_FIELD", "fields": []}]
    r = http.post(f"{V}/sobjects/Account/", content=b"{not json",
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    r = http.post(f"{V}/sobjects/Account/", content=b"Name=x",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.json()[0]["errorCode"] == "UNSUPPORTED_MEDIA_TYPE"
    r = http.post(f"{V}/sobjects/Contact/", json={"FirstName": "No"})
    assert r.status_code == 400
    assert r.json() == [{"message": "Required fields are missing: [LastName]",
                         "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}]
    r = http.post(f"{V}/sobjects/Contact/", json={"LastName": "A", "Email": "nope"})
    assert r.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    r = http.post(f"{V}/sobjects/Contact/", json={"LastName": "A", "AccountId": "xyz"})
    assert r.json()[0]["errorCode"] == "MALFORMED_ID"
    r = http.post(f"{V}/sobjects/Account/", json={"Name": "A", "CreatedDate": "2020"})
    assert r.json()[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    contact = fake.seed_contact()
    r = http.patch(f"{V}/sobjects/Account/{contact}", json={"Name": "A"})
    assert r.status_code == 400
    assert r.json() == [{"message": f"Account ID: id value of incorrect type: {contact}",
                         "errorCode": "MALFORMED_ID", "fields": ["Id"]}]
    r = http.get(f"{V}/sobjects/Account/abc")
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    r = http.get(f"{V}/sobjects/Contact/{contact}?fields=Nope")
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    assert http.put(f"{V}/sobjects/Contact/{contact}", json={}).status_code == 405
    # types without a declared field set accept any field
    r = http.post(f"{V}/sobjects/Invoice__c/", json={"Total__c": 12})
    assert r.status_code == 201 and r.json()["id"].startswith("a0")


def test_external_id_upsert_and_get(fake: FakeSalesforce, http: httpx.Client) -> None:
    url = f"{V}/sobjects/Contact/External_Id__c/EXT-1"
    assert http.get(url).status_code == 404
    r = http.patch(url, json={"LastName": "Curie", "FirstName": "Marie"})
    assert r.status_code == 201
    rid = r.json()["id"]
    assert r.json() == {"id": rid, "success": True, "errors": [], "created": True}
    r = http.patch(url, json={"Title": "Chemist"})
    assert r.status_code == 200
    assert r.json() == {"id": rid, "success": True, "errors": [], "created": False}
    got = http.get(url).json()
    assert got["Id"] == rid and got["Title"] == "Chemist" and got["Name"] == "Marie Curie"
    assert got["External_Id__c"] == "EXT-1"
    r = http.patch(f"{V}/sobjects/Contact/Email/x", json={"LastName": "Y"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = http.patch(f"{V}/sobjects/Contact/Nope__c/x", json={"LastName": "Y"})
    assert r.status_code == 404 and r.json()[0]["errorCode"] == "NOT_FOUND"
    fake.seed_contact(External_Id__c="DUP")
    fake.seed_contact(External_Id__c="DUP")
    r = http.get(f"{V}/sobjects/Contact/External_Id__c/DUP")
    assert r.status_code == 300 and len(r.json()) == 2


def test_collections_create_update_delete(fake: FakeSalesforce, http: httpx.Client) -> None:
    r = http.post(f"{V}/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Account"}, "Name": "Col A"},
        {"attributes": {"type": "Contact"}, "FirstName": "Nolast"},
    ]})
    assert r.status_code == 200
    ok, bad = r.json()
    assert ok["success"] is True and ok["errors"] == [] and ok["id"] in fake.records
    assert bad == {"success": False, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: "
        "[LastName]", "fields": ["LastName"]}]}
    before = len(fake.records)
    r = http.post(f"{V}/composite/sobjects", json={"allOrNone": True, "records": [
        {"attributes": {"type": "Account"}, "Name": "Rolled"},
        {"attributes": {"type": "Account"}},
    ]})
    first, second = r.json()
    assert first["success"] is False
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert len(fake.records) == before
    r = http.patch(f"{V}/composite/sobjects", json={"records": [
        {"attributes": {"type": "Account"}, "id": ok["id"], "Name": "Col A2"},
        {"attributes": {"type": "Account"}, "Name": "no id"},
    ]})
    updated, missing = r.json()
    assert updated == {"id": ok["id"], "success": True, "errors": []}
    assert missing["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert fake.records[ok["id"]]["Name"] == "Col A2"
    r = http.get(f"{V}/composite/sobjects/Account",
                 params={"ids": f"{ok['id']},001000000000000AAA", "fields": "Id,Name"})
    assert r.json() == [{"attributes": {"type": "Account",
                                        "url": f"{V}/sobjects/Account/{ok['id']}"},
                         "Id": ok["id"], "Name": "Col A2"}, None]
    r = http.post(f"{V}/composite/sobjects/Account", json={"ids": [ok["id"]],
                                                           "fields": ["Name"]})
    assert r.json()[0]["Name"] == "Col A2" and fake.records[ok["id"]]["Name"] == "Col A2"
    r = http.delete(f"{V}/composite/sobjects",
                    params={"ids": f"{ok['id']},bogus", "allOrNone": "false"})
    gone, malformed = r.json()
    assert gone == {"id": ok["id"], "success": True, "errors": []}
    assert malformed == {"success": False, "errors": [
        {"statusCode": "MALFORMED_ID", "message": "malformed id bogus", "fields": []}]}


def test_collections_upsert(fake: FakeSalesforce, http: httpx.Client) -> None:
    existing = fake.seed_account(External_Id__c="ACC-1")
    r = http.patch(f"{V}/composite/sobjects/Account/External_Id__c", json={"records": [
        {"attributes": {"type": "Account"}, "External_Id__c": "ACC-1", "Phone": "1"},
        {"attributes": {"type": "Account"}, "External_Id__c": "ACC-2", "Name": "New"},
    ]})
    updated, created = r.json()
    assert updated == {"id": existing, "success": True, "errors": [], "created": False}
    assert created["created"] is True and fake.records[created["id"]]["Name"] == "New"


def test_composite(fake: FakeSalesforce, http: httpx.Client) -> None:
    r = http.post(f"{V}/composite", json={"allOrNone": False, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "refAccount",
         "body": {"Name": "Composite Co"}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "refContact",
         "body": {"LastName": "Ref", "AccountId": "@{refAccount.id}"}},
        {"method": "GET", "url": f"{V}/sobjects/Account/@{{refAccount.id}}?fields=Name",
         "referenceId": "getAccount"},
        {"method": "PATCH", "url": f"{V}/sobjects/Contact/@{{refContact.id}}",
         "referenceId": "patchContact", "body": {"Title": "Boss"}},
        {"method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "badContact",
         "body": {"FirstName": "x"}},
    ]})
    assert r.status_code == 200
    acc, con, get, patch, bad = r.json()["compositeResponse"]
    aid = acc["body"]["id"]
    assert acc == {"body": {"id": aid, "success": True, "errors": []},
                   "httpHeaders": {"Location": f"{V}/sobjects/Account/{aid}"},
                   "httpStatusCode": 201, "referenceId": "refAccount"}
    assert fake.records[con["body"]["id"]]["AccountId"] == aid
    assert get["httpStatusCode"] == 200 and get["body"]["Name"] == "Composite Co"
    assert patch == {"body": None, "httpHeaders": {}, "httpStatusCode": 204,
                     "referenceId": "patchContact"}
    assert fake.records[con["body"]["id"]]["Title"] == "Boss"
    assert bad["httpStatusCode"] == 400
    assert bad["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"

    before = dict(fake.records)
    r = http.post(f"{V}/composite", json={"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "a",
         "body": {"Name": "Doomed"}},
        {"method": "DELETE", "url": f"{V}/sobjects/Account/{aid}", "referenceId": "d"},
        {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "b", "body": {}},
        {"method": "GET", "url": f"{V}/sobjects/Account/{aid}", "referenceId": "c"},
    ]})
    a, d, b, c = r.json()["compositeResponse"]
    halted = [{"errorCode": "PROCESSING_HALTED", "message": "The transaction was rolled back "
               "since another operation in the same transaction failed."}]
    assert a["body"] == halted and d["body"] == halted and c["body"] == halted
    assert a["httpStatusCode"] == d["httpStatusCode"] == c["httpStatusCode"] == 400
    assert b["body"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert fake.records.keys() == before.keys() and aid in fake.records


def test_query(fake: FakeSalesforce, http: httpx.Client) -> None:
    acc = fake.seed_account(Name="Queryable Inc", Industry="Retail")
    con = fake.seed_contact(LastName="Quinn", AccountId=acc)
    r = http.get(f"{V}/query", params={"q": f"SELECT Id, Name FROM Account WHERE Id = '{acc}'"})
    assert r.json() == {"totalSize": 1, "done": True, "records": [{
        "attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{acc}"},
        "Id": acc, "Name": "Queryable Inc"}]}
    q = ("select lastname, Account.Name from contact where Account.Industry = 'retail' "
         "and (LastName LIKE 'Qu%' or LastName IN ('x')) order by LastName desc limit 5")
    rec = http.get(f"{V}/query/", params={"q": q}).json()["records"][0]
    assert rec["LastName"] == "Quinn" and rec["attributes"]["url"].endswith(con)
    assert rec["Account"]["Name"] == "Queryable Inc"
    assert rec["Account"]["attributes"]["type"] == "Account"
    count = http.get(f"{V}/query", params={"q": "SELECT COUNT() FROM Contact"}).json()
    assert count["totalSize"] == len(fake.of_type("Contact")) and count["records"] == []
    r = http.get(f"{V}/query", params={"q": "SELECT Nope FROM Account"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_FIELD"
    r = http.get(f"{V}/query", params={"q": "SELECT FROM"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_parameterized_search(fake: FakeSalesforce, http: httpx.Client) -> None:
    hit = fake.seed_account(Name="Searchy Widgets")
    fake.seed_account(Name="Other")
    r = http.post(f"{V}/parameterizedSearch/", json={
        "q": "searchy", "sobjects": [{"name": "Account", "fields": ["id", "name"]}]})
    assert r.json() == {"searchRecords": [{
        "attributes": {"type": "Account", "url": f"{V}/sobjects/Account/{hit}"},
        "Id": hit, "Name": "Searchy Widgets"}]}
    r = http.get(f"{V}/parameterizedSearch/", params={"q": "Searchy", "sobject": "Account"})
    assert [x["Id"] for x in r.json()["searchRecords"]] == [hit]
    r = http.get(f"{V}/parameterizedSearch/", params={"q": "s"})
    assert r.status_code == 400 and r.json()[0]["errorCode"] == "INVALID_SEARCH"


def test_every_request_is_logged(fake: FakeSalesforce, http: httpx.Client) -> None:
    fake.log.clear()
    http.post(f"{V}/sobjects/Lead/", json={"LastName": "L", "Company": "C"})
    http.get("/unknown/path?x=1")
    seen = fake.log.seen
    assert [(s.method, s.path) for s in seen] == [("POST", f"{V}/sobjects/Lead/"),
                                                  ("GET", "/unknown/path")]
    assert seen[0].headers["authorization"] == f"Bearer {SID}"
    assert b'"Company"' in seen[0].body and seen[1].query == "x=1"


def test_simple_salesforce_sdk(fake: FakeSalesforce, sf: Salesforce) -> None:
    assert sf.sf_version == "59.0"
    created = sf.Contact.create({"LastName": "Sdk", "FirstName": "Simple"})
    assert created["success"] is True
    cid = created["id"]
    assert sf.Contact.get(cid)["Name"] == "Simple Sdk"
    assert sf.Contact.update(cid, {"Title": "Tester"}) == 204
    assert fake.records[cid]["Title"] == "Tester"
    assert sf.Contact.upsert("External_Id__c/SDK-9", {"LastName": "Upserted"}) == 201
    assert sf.Contact.upsert("External_Id__c/SDK-9", {"Phone": "1"}) == 200
    assert sf.Contact.get_by_custom_id("External_Id__c", "SDK-9")["Phone"] == "1"
    result = sf.query(f"SELECT Id, LastName FROM Contact WHERE Id = '{cid}'")
    assert result["totalSize"] == 1 and result["records"][0]["LastName"] == "Sdk"
    assert sf.Contact.delete(cid) == 204
    with pytest.raises(SalesforceResourceNotFound):
        sf.Contact.get(cid)
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Account.create({"Name": "x", "Nope__c": 1})
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"
    del info  # its traceback holds the response, whose socket would stall server shutdown
    leads = sf.Lead
    leads.create({"LastName": "Usage", "Company": "Acme"})
    assert leads.api_usage["api-usage"].total == 15000  # parsed from Sforce-Limit-Info
