"""Self-test of the fake HubSpot CRM v3 API, driven directly over HTTPS (no proxy involved)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme
from hubspot import HubSpot
from hubspot.crm.associations.v4 import AssociationSpec
from urllib3.util.retry import Retry

from tests.fakes import described
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.server import HTTPSFake

TOKEN = "pat-na1-fake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
C = "/crm/v3/objects/contacts"


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[FakeHubSpot, httpx.Client, str, str]]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    fake = FakeHubSpot()
    tls = ssl.create_default_context(cafile=str(d / "ca.pem"))
    with HTTPSFake(fake.app, d / "server.pem", d / "server.pem") as server, httpx.Client(
            base_url=f"https://127.0.0.1:{server.port}", verify=tls, headers=AUTH) as client:
        yield fake, client, f"https://127.0.0.1:{server.port}", str(d / "ca.pem")


@pytest.fixture(scope="module")
def served(serving: tuple[FakeHubSpot, httpx.Client, str, str]
           ) -> tuple[FakeHubSpot, httpx.Client]:
    return serving[0], serving[1]


@pytest.fixture
def served_base(serving: tuple[FakeHubSpot, httpx.Client, str, str]) -> tuple[str, str]:
    """The fake's base URL and CA, for an SDK configured with them."""
    return serving[2], serving[3]


def _error_shape(body: dict[str, Any], category: str | None) -> None:
    assert body["status"] == "error"
    assert isinstance(body["message"], str) and body["message"]
    assert len(body["correlationId"]) == 36
    assert body.get("category") == category


def test_auth_required(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        r = client.get(C, headers=headers)
        assert r.status_code == 401
        body = r.json()
        _error_shape(body, "INVALID_AUTHENTICATION")
        assert body["message"].startswith("Authentication credentials not found. This API "
                                          "supports OAuth 2.0 authentication")
    assert fake.log.of("GET", C)[-1].headers["authorization"] == "Bearer wrong"


def test_create_get_and_record_shape(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    assoc = [{"to": {"id": "999"}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                              "associationTypeId": 279}]}]
    r = client.post(C, json={"properties": {"email": "Grace@Example.com", "firstname": "Grace",
                                            "phone": 5551234}, "associations": assoc})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "properties", "createdAt", "updatedAt", "archived"}
    assert body["archived"] is False
    props = body["properties"]
    assert props["email"] == "grace@example.com" and props["phone"] == "5551234"
    assert props["hs_object_id"] == body["id"]
    assert props["createdate"] == body["createdAt"] and props["lastmodifieddate"]
    assert fake.objects["contacts"][body["id"]]["properties"]["firstname"] == "Grace"
    assert fake.associations[-1]["fromObjectId"] == body["id"]
    assert fake.associations[-1]["to"] == {"id": "999"}

    got = client.get(f"{C}/{body['id']}").json()
    assert set(got["properties"]) == {"createdate", "email", "firstname", "hs_object_id",
                                      "lastmodifieddate", "lastname"}
    assert got["properties"]["lastname"] is None
    got = client.get(f"{C}/{body['id']}",
                     params={"properties": "phone,company,nonsense", "archived": "false"}).json()
    assert got["properties"] == {"createdate": props["createdate"], "hs_object_id": body["id"],
                                 "lastmodifieddate": props["lastmodifieddate"],
                                 "phone": "5551234", "company": None}
    by_email = client.get(f"{C}/GRACE@example.com", params={"idProperty": "email"})
    assert by_email.status_code == 200 and by_email.json()["id"] == body["id"]
    history = client.get(f"{C}/{body['id']}", params={"propertiesWithHistory": "firstname"})
    assert history.json()["propertiesWithHistory"]["firstname"][0]["value"] == "Grace"


def test_type_aliases_and_other_types(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    deal = client.post("/crm/v3/objects/0-3", json={"properties": {
        "dealname": "Big one", "amount": "5000", "dealstage": "qualifiedtobuy"}})
    assert deal.status_code == 201
    assert deal.json()["properties"]["pipeline"] == "default"
    assert deal.json()["properties"]["hs_lastmodifieddate"]
    assert deal.json()["id"] in fake.objects["deals"]
    ticket = client.post("/crm/v3/objects/ticket", json={"properties": {
        "subject": "Help", "hs_pipeline_stage": "1", "hs_ticket_priority": "HIGH"}})
    assert ticket.status_code == 201 and ticket.json()["properties"]["hs_pipeline"] == "0"
    company = client.get(f"/crm/v3/objects/0-2/{fake.seed('companies', name='Initech')}")
    assert company.json()["properties"]["name"] == "Initech"
    assert set(company.json()["properties"]) == {"createdate", "domain", "hs_lastmodifieddate",
                                                 "hs_object_id", "name"}
    r = client.get("/crm/v3/objects/widgets")
    assert r.status_code == 400
    assert r.json()["message"] == "Unable to infer object type from: widgets"


def test_validation_errors(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    _, client = served
    r = client.post(C, json={"properties": {"email": "x@example.com", "favourite_colour": "red"}})
    assert r.status_code == 400
    body = r.json()
    _error_shape(body, "VALIDATION_ERROR")
    assert body["message"].startswith("Property values were not valid: [")
    detail = json.loads(body["message"].removeprefix("Property values were not valid: "))
    assert detail[0]["error"] == "PROPERTY_DOESNT_EXIST" and detail[0]["name"] == "favourite_colour"
    assert body["errors"][0]["code"] == "PROPERTY_DOESNT_EXIST"
    assert body["errors"][0]["context"] == {"propertyName": ["favourite_colour"]}

    bad_option = client.post(C, json={"properties": {"lifecyclestage": "whale"}}).json()
    assert '"error":"INVALID_OPTION"' in bad_option["message"]
    bad_email = client.post(C, json={"properties": {"email": "not-an-email"}}).json()
    assert '"error":"INVALID_EMAIL"' in bad_email["message"]
    read_only = client.post(C, json={"properties": {"hs_object_id": "1"}}).json()
    assert '"error":"READ_ONLY_VALUE"' in read_only["message"]
    bad_amount = client.post("/crm/v3/objects/deals", json={"properties": {"amount": "lots"}})
    assert bad_amount.status_code == 400

    broken = client.post(C, content=b'{"properties": ', headers={"Content-Type":
                                                                 "application/json"})
    assert broken.status_code == 400
    _error_shape(broken.json(), "VALIDATION_ERROR")
    assert broken.json()["message"].startswith("Invalid input JSON on line 1, column")
    missing = client.post(C, json={})
    assert missing.status_code == 400
    assert "some of required attributes are not set [properties]" in missing.json()["message"]
    not_json = client.post(C, content=b"email=x", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415


def test_duplicate_email_conflict(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    existing = fake.seed("contacts", email="taken@example.com")
    r = client.post(C, json={"properties": {"email": "TAKEN@example.com"}})
    assert r.status_code == 409
    _error_shape(r.json(), "CONFLICT")
    assert r.json()["message"] == f"Contact already exists. Existing ID: {existing}"


def test_patch_partial_and_clear(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    cid = fake.seed("contacts", firstname="Linus", phone="111", company="Oy")
    r = client.patch(f"{C}/{cid}", json={"properties": {"phone": "", "lastname": "T"}})
    assert r.status_code == 200
    props = r.json()["properties"]
    assert props["phone"] == "" and props["lastname"] == "T" and "firstname" not in props
    stored = fake.objects["contacts"][cid]["properties"]
    assert stored["firstname"] == "Linus" and stored["company"] == "Oy" and stored["phone"] == ""
    by_email = client.patch(f"{C}/{stored['email']}", params={"idProperty": "email"},
                            json={"properties": {"company": "Linux"}})
    assert by_email.status_code == 200 and stored["company"] == "Linux"
    invalid = client.patch(f"{C}/{cid}", json={"properties": {"shoe_size": "44"}})
    assert invalid.status_code == 400 and stored.get("shoe_size") is None
    missing = client.patch(f"{C}/424242", json={"properties": {"phone": "1"}})
    assert missing.status_code == 404


def test_not_found_and_archive(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    r = client.get(f"{C}/424242")
    assert r.status_code == 404
    body = r.json()
    _error_shape(body, "OBJECT_NOT_FOUND")
    assert body["message"] == "Object not found.  objectId are usually numeric."
    assert body["context"] == {"id": ["424242"]}

    tid = fake.seed("tickets")
    assert client.delete(f"/crm/v3/objects/tickets/{tid}").status_code == 204
    assert fake.objects["tickets"][tid]["archived"] is True
    assert client.get(f"/crm/v3/objects/tickets/{tid}").status_code == 404
    archived = client.get(f"/crm/v3/objects/tickets/{tid}", params={"archived": "true"}).json()
    assert archived["archived"] is True and archived["archivedAt"]
    assert client.delete(f"/crm/v3/objects/tickets/{tid}").status_code == 404
    assert client.patch(f"/crm/v3/objects/tickets/{tid}",
                        json={"properties": {"subject": "x"}}).status_code == 404


def test_list_with_paging(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    ids = [fake.seed("companies", name=f"Co {n}") for n in range(3)]
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2", "properties": "industry"}
    while True:
        page = client.get("/crm/v3/objects/companies", params=params).json()
        seen += [r["id"] for r in page["results"]]
        assert all("industry" in r["properties"] for r in page["results"])
        if "paging" not in page:
            break
        nxt = page["paging"]["next"]
        assert nxt["link"].startswith("https://api.hubapi.com/crm/v3/objects/companies?")
        params["after"] = nxt["after"]
    assert set(ids) <= set(seen)
    client.delete(f"/crm/v3/objects/companies/{ids[0]}")
    archived = client.get("/crm/v3/objects/companies", params={"archived": "true"}).json()
    assert [r["id"] for r in archived["results"]] == [ids[0]]


def test_batch_create_update_archive(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    r = client.post(f"{C}/batch/create", json={"inputs": [
        {"properties": {"email": "b1@example.com"}}, {"properties": {"email": "b2@example.com"}}]})
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "COMPLETE" and body["startedAt"] and body["completedAt"]
    first, second = (x["id"] for x in body["results"])

    r = client.post(f"{C}/batch/update", json={"inputs": [
        {"id": first, "properties": {"firstname": "B1"}},
        {"id": "b2@example.com", "idProperty": "email", "properties": {"firstname": "B2"}}]})
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    assert fake.objects["contacts"][second]["properties"]["firstname"] == "B2"

    r = client.post(f"{C}/batch/update", json={"inputs": [
        {"id": first, "properties": {"lastname": "One"}}, {"id": "777777", "properties": {}}]})
    assert r.status_code == 207
    body = r.json()
    assert body["numErrors"] == 1 and len(body["results"]) == 1
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    assert body["errors"][0]["context"] == {"ids": ["777777"]}
    assert body["errors"][0]["message"].startswith("Could not get some CONTACT objects")

    dup = client.post(f"{C}/batch/update", json={"inputs": [
        {"id": first, "properties": {}}, {"id": first, "properties": {}}]})
    assert dup.status_code == 400
    invalid = client.post(f"{C}/batch/create", json={"inputs": [{"properties": {"bogus": "1"}}]})
    assert invalid.status_code == 400
    assert invalid.json()["message"].startswith("Property values were not valid")

    traced = client.post(f"{C}/batch/create", json={"inputs": [
        {"properties": {"firstname": "ok"}, "objectWriteTraceId": "t1"},
        {"properties": {"bogus": "1"}, "objectWriteTraceId": "t2"}]})
    assert traced.status_code == 207
    assert traced.json()["results"][0]["objectWriteTraceId"] == "t1"
    assert traced.json()["errors"][0]["context"] == {"objectWriteTraceId": ["t2"]}

    r = client.post(f"{C}/batch/archive", json={"inputs": [{"id": first}, {"id": second}]})
    assert r.status_code == 204 and r.content == b""
    assert fake.objects["contacts"][first]["archived"] is True


def test_batch_upsert(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    existing = fake.seed("contacts", email="upsert-old@example.com", firstname="Old")
    r = client.post(f"{C}/batch/upsert", json={"inputs": [
        {"id": "upsert-old@example.com", "idProperty": "email",
         "properties": {"firstname": "Renamed"}},
        {"id": "upsert-new@example.com", "idProperty": "email",
         "properties": {"firstname": "New"}}]})
    assert r.status_code == 200
    old, new = r.json()["results"]
    assert old["id"] == existing and old["new"] is False
    assert new["new"] is True and new["properties"]["email"] == "upsert-new@example.com"
    assert fake.objects["contacts"][existing]["properties"]["firstname"] == "Renamed"
    no_id_property = client.post(f"{C}/batch/upsert", json={"inputs": [
        {"id": "x@example.com", "properties": {}}]})
    assert no_id_property.status_code == 400


def test_batch_read(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    cid = fake.seed("contacts", email="reader@example.com", phone="42")
    r = client.post(f"{C}/batch/read", json={"properties": ["phone"], "propertiesWithHistory": [],
                                             "inputs": [{"id": cid}]})
    assert r.status_code == 200
    assert r.json()["results"][0]["properties"]["phone"] == "42"
    r = client.post(f"{C}/batch/read", json={
        "properties": ["email"], "propertiesWithHistory": [], "idProperty": "email",
        "inputs": [{"id": "reader@example.com"}, {"id": "ghost@example.com"}]})
    assert r.status_code == 207
    assert r.json()["results"][0]["id"] == cid
    assert r.json()["errors"][0]["context"] == {"ids": ["ghost@example.com"]}
    incomplete = client.post(f"{C}/batch/read", json={"properties": [], "inputs": [{"id": cid}]})
    assert incomplete.status_code == 400
    assert "[propertiesWithHistory]" in incomplete.json()["message"]
    assert fake.objects["contacts"][cid]["properties"]["phone"] == "42"


def test_search(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    path = "/crm/v3/objects/deals/search"
    for n in range(3):
        fake.seed("deals", dealname=f"Searchable widget deal {n}", amount=str(100 * (n + 1)),
                  dealstage="closedwon")
    eq = client.post(path, json={"filterGroups": [{"filters": [
        {"propertyName": "dealname", "operator": "EQ", "value": "searchable widget deal 1"}]}]})
    assert eq.status_code == 200
    assert eq.json()["total"] == 1
    assert eq.json()["results"][0]["properties"]["dealname"] == "Searchable widget deal 1"
    token = {"filterGroups": [{"filters": [
        {"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "widget"}]}],
        "properties": ["amount"], "limit": 2,
        "sorts": [{"propertyName": "amount", "direction": "DESCENDING"}]}
    page = client.post(path, json=token).json()
    assert page["total"] == 3 and page["paging"] == {"next": {"after": "2"}}
    assert [r["properties"]["amount"] for r in page["results"]] == ["300", "200"]
    assert set(page["results"][0]["properties"]) == {"amount", "createdate",
                                                     "hs_lastmodifieddate", "hs_object_id"}
    rest = client.post(path, json={**token, "after": "2"}).json()
    assert [r["properties"]["amount"] for r in rest["results"]] == ["100"] and "paging" not in rest
    ored = client.post(path, json={"filterGroups": [
        {"filters": [{"propertyName": "amount", "operator": "GTE", "value": "300"},
                     {"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": "wid*"}]},
        {"filters": [{"propertyName": "amount", "operator": "EQ", "value": "100"}]}]}).json()
    assert sorted(r["properties"]["amount"] for r in ored["results"]) == ["100", "300"]
    query = client.post(path, json={"query": "searchable"}).json()
    assert query["total"] == 3
    bad = client.post(path, json={"filterGroups": [{"filters": [
        {"propertyName": "amount", "operator": "LIKE", "value": "1"}]}]})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"


def test_unknown_path_is_recorded(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    r = client.put("/crm/v3/nowhere?x=1", content=b"hello")
    assert r.status_code == 404
    seen = fake.log.of("PUT", "/crm/v3/nowhere")[-1]
    assert seen.query == "x=1" and seen.body == b"hello"


# ---------------------------------------------------------------- v4 associations (described)

ASSOC = "hubspot-associations-v4"
LABELLED = "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}/{toObjectId}"
LISTED = "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}"
DEFAULT = ("/crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/"
           "{toObjectType}/{toObjectId}")


def test_v4_associations_as_described(served: tuple[FakeHubSpot, httpx.Client]) -> None:
    fake, client = served
    contact = fake.seed("contacts", email="assoc@acme.test")
    company, other = fake.seed("companies", name="Initech"), fake.seed("companies", name="Hooli")
    v4 = f"/crm/v4/objects/contacts/{contact}/associations"
    empty = client.get(f"{v4}/companies")
    described.check(ASSOC, "get", LISTED, 200, empty.json())
    assert empty.json() == {"results": []}
    created = client.put(f"{v4}/companies/{company}", json=[
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}])
    assert created.status_code == 201
    described.check(ASSOC, "put", LABELLED, 201, created.json())
    assert created.json() == {"fromObjectTypeId": "0-1", "fromObjectId": contact,
                              "toObjectTypeId": "0-2", "toObjectId": company,
                              "labels": ["Primary"]}
    unlabelled = client.put(f"{v4}/company/{other}", json=[
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]).json()
    assert unlabelled["labels"] == []
    listed = client.get(f"{v4}/companies")
    described.check(ASSOC, "get", LISTED, 200, listed.json())
    assert listed.json()["results"] == [
        {"toObjectId": company, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}]},
        {"toObjectId": other, "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 279}]}]
    # read from the other end, with that direction's type ids
    reverse = client.get(f"/crm/v4/objects/companies/{company}/associations/contacts").json()
    assert reverse["results"] == [{"toObjectId": contact, "associationTypes": [
        {"category": "HUBSPOT_DEFINED", "typeId": 2, "label": "Primary"}]}]
    paged = client.get(f"{v4}/companies", params={"limit": 1}).json()
    assert paged["paging"]["next"]["after"] == "1"
    default = client.put(f"/crm/v4/objects/deals/{fake.seed('deals')}/associations/default/"
                         f"companies/{company}")
    described.check(ASSOC, "put", DEFAULT, 200, default.json())
    assert default.json()["results"][0]["associationSpec"]["associationTypeId"] == 341
    assert client.delete(f"{v4}/companies/{other}").status_code == 204
    assert fake.associated("contacts", contact, "companies") == {company: [1]}

    bad_type = client.put(f"{v4}/companies/{company}", json=[
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}])
    assert bad_type.status_code == 400
    assert client.put(f"{v4}/companies/{company}", json=[{"associationTypeId": 1}]
                      ).status_code == 400
    assert client.put(f"{v4}/companies/999999", json=[
        {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]).status_code == 404
    assert client.get(f"{v4}/widgets").status_code == 400
    assert client.get(f"{v4}/companies", headers={"Authorization": ""}).status_code == 401


def test_hubspot_api_client_v4_associations(
        served: tuple[FakeHubSpot, httpx.Client], served_base: tuple[str, str]) -> None:
    fake, _ = served
    host, ca = served_base
    contact, company = fake.seed("contacts"), fake.seed("companies", name="Globex")
    client = HubSpot(access_token=TOKEN, host=host, ssl_ca_cert=ca, retry=Retry(0))
    basic = client.crm.associations.v4.basic_api
    pair = basic.create("contacts", contact, "companies", company, [AssociationSpec(
        association_category="HUBSPOT_DEFINED", association_type_id=279)])
    assert (pair.from_object_id, pair.to_object_id, pair.labels) == (contact, company, [])
    page = basic.get_page("contacts", contact, "companies")
    assert [(r.to_object_id, [t.type_id for t in r.association_types])
            for r in page.results] == [(company, [279])]
    assert fake.associated("companies", company, "contacts") == {contact: [280]}
