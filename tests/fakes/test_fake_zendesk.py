"""Self-test of the fake Zendesk: every endpoint and error shape, raw and through zenpy."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import requests
import trustme
from requests.adapters import HTTPAdapter
from zenpy import Zenpy
from zenpy.lib.api_objects import Organization, Ticket, User
from zenpy.lib.exception import APIException, RecordNotFoundException

from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

EMAIL, API_TOKEN = "agent@acme.test", "zd-api-token-123"
AUTH = "Basic " + base64.b64encode(f"{EMAIL}/token:{API_TOKEN}".encode()).decode()
HOST = "acme.zendesk.com"


class Served:
    def __init__(self, fake: FakeZendesk, client: httpx.Client, port: int, ca: Path) -> None:
        self.fake, self.client, self.port, self.ca = fake, client, port, ca


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", HOST)
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    fake = FakeZendesk()
    with HTTPSFake(fake.app, directory / "server.pem", directory / "server.pem") as server:
        trusted = ssl.create_default_context(cafile=str(directory / "ca.pem"))
        with httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=trusted,
                          headers={"Authorization": AUTH}) as client:
            yield Served(fake, client, server.port, directory / "ca.pem")


@pytest.fixture
def fake(served: Served) -> FakeZendesk:
    return served.fake


@pytest.fixture
def api(served: Served) -> httpx.Client:
    return served.client


def job(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    status = response.json()["job_status"]
    assert set(status) >= {"id", "url", "total", "progress", "status", "message", "results"}
    assert status["status"] == "completed"
    assert status["url"] == f"https://{HOST}/api/v2/job_statuses/{status['id']}.json"
    return status


# -- authentication, unknown paths, request log -----------------------------------------------

@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v2/tickets/1.json"), ("POST", "/api/v2/tickets.json"),
    ("GET", "/api/v2/users/1"), ("POST", "/api/v2/users/create_or_update.json"),
    ("GET", "/api/v2/organizations/show_many.json?ids=1"),
    ("PUT", "/api/v2/tickets/update_many.json?ids=1"),
    ("DELETE", "/api/v2/users/destroy_many.json?ids=1"),
    ("GET", "/api/v2/job_statuses/abc.json"), ("GET", "/api/v2/search.json?query=x"),
    ("GET", "/api/v2/tickets/1/comments.json"),
])
def test_every_route_rejects_wrong_credentials(api: httpx.Client, method: str, path: str) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Basic bm9wZQ=="}):
        response = api.request(method, path, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "Couldn't authenticate you"}


def test_unknown_paths_are_recorded_and_answered_404(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.log.clear()
    response = api.post("/api/v2/nothing/here?x=1", content=b"raw")
    assert response.status_code == 404
    assert response.json() == {"error": "InvalidEndpoint", "description": "Not found"}
    [seen] = fake.log.of("POST", "/api/v2/nothing")
    assert (seen.query, seen.body, seen.headers["authorization"]) == ("x=1", b"raw", AUTH)


def test_oauth_bearer_is_accepted(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed(1)
    response = api.get("/api/v2/tickets/1", headers={"Authorization": "Bearer zd-oauth-x"})
    assert response.status_code == 200


# -- tickets ----------------------------------------------------------------------------------

def test_ticket_create_get_update_delete(fake: FakeZendesk, api: httpx.Client) -> None:
    created = api.post("/api/v2/tickets.json", json={"ticket": {
        "subject": "Broken mouse", "comment": {"body": "It squeaks"}, "priority": "high"}})
    assert created.status_code == 201
    ticket = created.json()["ticket"]
    assert created.headers["location"] == ticket["url"]
    assert ticket["url"] == f"https://{HOST}/api/v2/tickets/{ticket['id']}.json"
    assert (ticket["status"], ticket["priority"], ticket["description"]) == (
        "new", "high", "It squeaks")
    assert created.json()["audit"]["events"][-1]["type"] == "Comment"
    tid = ticket["id"]
    assert api.get(f"/api/v2/tickets/{tid}").json()["ticket"]["subject"] == "Broken mouse"

    updated = api.put(f"/api/v2/tickets/{tid}.json", json={"ticket": {
        "status": "open", "tags": ["a", "b"], "id": 1, "comment": {"body": "On it",
                                                                    "public": False}}})
    assert updated.status_code == 200
    body = updated.json()
    assert body["ticket"]["id"] == tid  # read-only fields are ignored
    assert {"id": body["audit"]["events"][0]["id"], "type": "Change", "field_name": "status",
            "value": "open", "previous_value": "new"} in body["audit"]["events"]
    # tags replace the list; additional_tags / remove_tags edit it
    assert api.put(f"/api/v2/tickets/{tid}", json={"ticket": {"tags": ["c"]}}
                   ).json()["ticket"]["tags"] == ["c"]
    edited = api.put(f"/api/v2/tickets/{tid}", json={"ticket": {
        "additional_tags": ["d", "c"], "remove_tags": ["c"]}}).json()["ticket"]
    assert edited["tags"] == ["d"]
    assert fake.tickets[tid]["tags"] == ["d"]

    assert api.delete(f"/api/v2/tickets/{tid}.json").status_code == 204
    assert tid not in fake.tickets
    assert api.get(f"/api/v2/tickets/{tid}").json() == {"error": "RecordNotFound",
                                                        "description": "Not found"}


def test_ticket_created_with_only_a_description_gets_it_as_first_comment(
        fake: FakeZendesk, api: httpx.Client) -> None:
    tid = api.post("/api/v2/tickets", json={"ticket": {"subject": "S", "description": "D"}}
                   ).json()["ticket"]["id"]
    assert [c["body"] for c in fake.comments[tid]] == ["D"]


def test_ticket_errors(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed(10, status="open")
    blank = api.post("/api/v2/tickets", json={"ticket": {"subject": "x"}})
    assert blank.status_code == 422
    assert blank.json()["error"] == "RecordInvalid"
    assert blank.json()["details"]["base"][0]["description"] == "Description: cannot be blank"
    bad = api.put("/api/v2/tickets/10", json={"ticket": {"status": "bogus", "priority": "x"}})
    assert bad.status_code == 422
    assert bad.json()["description"] == "Record validation errors"
    assert set(bad.json()["details"]) == {"status", "priority"}
    assert fake.tickets[10]["status"] == "open"
    assert api.put("/api/v2/tickets/10", content=b"{}",
                   headers={"Content-Type": "text/plain"}).status_code == 415
    assert api.put("/api/v2/tickets/10", content=b"{nope",
                   headers={"Content-Type": "application/json"}).status_code == 400
    assert api.put("/api/v2/tickets/10", json={"status": "open"}).json() == {
        "error": "InvalidEndpoint", "description": "Missing ticket parameter"}
    assert api.put("/api/v2/tickets/999", json={"ticket": {}}).status_code == 404
    fake.seed(11, status="closed")
    closed = api.put("/api/v2/tickets/11", json={"ticket": {"status": "open"}})
    assert closed.status_code == 422
    assert "closed prevents ticket update" in closed.json()["details"]["status"][0]["description"]


def test_ticket_comments_list_in_both_pagination_styles(fake: FakeZendesk,
                                                        api: httpx.Client) -> None:
    fake.seed(20)
    fake.seed_comment(20, "First!", author_id=5)
    api.put("/api/v2/tickets/20", json={"ticket": {"comment": {
        "html_body": "<p>Fixed &amp; done</p>", "public": False}}})
    offset = api.get("/api/v2/tickets/20/comments.json")
    assert offset.status_code == 200
    body = offset.json()
    assert (body["next_page"], body["previous_page"], body["count"]) == (None, None, 2)
    first, second = body["comments"]
    assert set(first) >= {"id", "type", "author_id", "body", "html_body", "plain_body",
                          "public", "created_at", "attachments", "audit_id", "via"}
    assert (first["type"], first["author_id"], first["body"], first["public"]) == (
        "Comment", 5, "First!", True)
    assert "<p dir=\"auto\">First!</p>" in first["html_body"]
    assert (second["body"], second["plain_body"], second["public"]) == (
        "Fixed & done", "Fixed & done", False)
    assert second["html_body"] == "<p>Fixed &amp; done</p>"
    cursor = api.get("/api/v2/tickets/20/comments", params={"page[size]": 100}).json()
    assert cursor["meta"]["has_more"] is False and cursor["links"]["next"] is None
    assert len(cursor["comments"]) == 2
    assert api.get("/api/v2/tickets/998/comments").status_code == 404


def test_ticket_show_many_and_list(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed(30, subject="a")
    fake.seed(31, subject="b")
    many = api.get("/api/v2/tickets/show_many.json", params={"ids": "30,31,997"}).json()
    assert [t["id"] for t in many["tickets"]] == [30, 31]
    assert api.get("/api/v2/tickets/show_many").status_code == 400
    listed = api.get("/api/v2/tickets.json").json()
    assert {30, 31} <= {t["id"] for t in listed["tickets"]}
    assert listed["count"] == len(listed["tickets"])


def test_ticket_update_many_bulk_and_batch_and_job_status(fake: FakeZendesk,
                                                          api: httpx.Client) -> None:
    fake.seed(40, status="open", tags=["x"])
    fake.seed(41, status="open", tags=["y"])
    bulk = job(api.put("/api/v2/tickets/update_many.json?ids=40,41", json={"ticket": {
        "status": "pending", "tags": ["bulk"], "comment": {"body": "Bulk note"}}}))
    assert bulk["total"] == bulk["progress"] == 2
    assert bulk["results"] == [
        {"id": 40, "action": "update", "success": True, "status": "Updated"},
        {"id": 41, "action": "update", "success": True, "status": "Updated"}]
    assert [fake.tickets[i]["status"] for i in (40, 41)] == ["pending", "pending"]
    assert fake.tickets[41]["tags"] == ["bulk"]
    assert fake.comments[40][-1]["body"] == "Bulk note"

    batch = job(api.put("/api/v2/tickets/update_many", json={"tickets": [
        {"id": 40, "priority": "urgent"}, {"id": 41, "status": "bogus"},
        {"id": 996, "status": "open"}]}))
    assert batch["results"][0] == {"id": 40, "action": "update", "success": True,
                                   "status": "Updated"}
    assert batch["results"][1]["success"] is False and batch["results"][1]["status"] == "Failed"
    assert "bogus" in batch["results"][1]["errors"]
    assert batch["results"][2]["success"] is False
    assert fake.tickets[40]["priority"] == "urgent"
    assert fake.tickets[41]["status"] == "pending"

    shown = api.get(f"/api/v2/job_statuses/{batch['id']}.json")
    assert shown.json() == {"job_status": batch}
    assert api.get(f"/api/v2/job_statuses/{batch['id']}").status_code == 200
    assert api.get("/api/v2/job_statuses/nope.json").json()["error"] == "RecordNotFound"
    assert api.put("/api/v2/tickets/update_many.json", json={"ticket": {}}).status_code == 400
    assert api.put("/api/v2/tickets/update_many.json", json={"x": 1}).status_code == 400
    too_many = api.put("/api/v2/tickets/update_many.json",
                       params={"ids": ",".join(map(str, range(1, 102)))},
                       json={"ticket": {"status": "open"}})
    assert too_many.status_code == 400 and too_many.json()["error"] == "TooManyValues"


def test_ticket_create_many_and_destroy_many(fake: FakeZendesk, api: httpx.Client) -> None:
    created = job(api.post("/api/v2/tickets/create_many.json", json={"tickets": [
        {"subject": "one", "comment": {"body": "1"}}, {"subject": "bad"},
        {"subject": "two", "description": "2"}]}))
    first, failed, second = created["results"]
    assert first["index"] == 0 and fake.tickets[first["id"]]["subject"] == "one"
    assert failed["index"] == 1 and failed["error"] == "RecordInvalid" and "id" not in failed
    assert second["index"] == 2 and fake.tickets[second["id"]]["subject"] == "two"
    gone = job(api.delete(f"/api/v2/tickets/destroy_many.json?ids={first['id']},995"))
    assert gone["results"][0] == {"id": first["id"], "action": "delete", "success": True,
                                  "status": "Deleted"}
    assert gone["results"][1]["success"] is False
    assert first["id"] not in fake.tickets and second["id"] in fake.tickets
    assert api.delete("/api/v2/tickets/destroy_many").status_code == 400


# -- users ------------------------------------------------------------------------------------

def test_user_create_get_update_delete(fake: FakeZendesk, api: httpx.Client) -> None:
    created = api.post("/api/v2/users.json", json={"user": {
        "name": "Roger Wilco", "email": "roger@example.org", "role": "agent",
        "user_fields": {"tier": "gold"}}})
    assert created.status_code == 201
    user = created.json()["user"]
    uid = user["id"]
    assert created.headers["location"] == user["url"] == f"https://{HOST}/api/v2/users/{uid}.json"
    assert (user["name"], user["email"], user["role"], user["active"]) == (
        "Roger Wilco", "roger@example.org", "agent", True)
    assert fake.users[uid]["user_fields"] == {"tier": "gold"}
    assert api.get(f"/api/v2/users/{uid}").json()["user"]["email"] == "roger@example.org"
    updated = api.put(f"/api/v2/users/{uid}.json", json={"user": {
        "notes": "VIP", "tags": ["vip"], "user_fields": {"region": "eu"}}}).json()["user"]
    assert (updated["notes"], updated["tags"]) == ("VIP", ["vip"])
    assert updated["user_fields"] == {"tier": "gold", "region": "eu"}
    deleted = api.delete(f"/api/v2/users/{uid}")
    assert deleted.status_code == 200
    assert deleted.json()["user"]["active"] is False
    assert fake.users[uid]["active"] is False  # Zendesk soft-deletes users
    assert api.get("/api/v2/users/1.json").status_code == 404


def test_user_validation(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed_user(50, email="taken@example.org")
    cases = [({"email": "a@b.org"}, "name", "BlankValue"),
             ({"name": "x", "email": "not-an-email"}, "email", "InvalidFormat"),
             ({"name": "x", "email": "TAKEN@example.org"}, "email", "DuplicateValue"),
             ({"name": "x", "role": "boss"}, "role", "InvalidValue")]
    for fields, field, error in cases:
        response = api.post("/api/v2/users", json={"user": fields})
        assert response.status_code == 422, fields
        assert response.json()["error"] == "RecordInvalid"
        assert response.json()["details"][field][0]["error"] == error
    assert api.put("/api/v2/users/50", json={"user": {"name": ""}}).status_code == 422
    assert api.post("/api/v2/users", json={"ticket": {}}).json()["description"] == (
        "Missing user parameter")


def test_user_create_or_update_by_email_and_external_id(fake: FakeZendesk,
                                                        api: httpx.Client) -> None:
    first = api.post("/api/v2/users/create_or_update.json", json={"user": {
        "name": "Ann", "email": "ann@example.org"}})
    assert first.status_code == 201
    uid = first.json()["user"]["id"]
    again = api.post("/api/v2/users/create_or_update", json={"user": {
        "name": "Ann B", "email": "ANN@example.org", "external_id": "crm-7"}})
    assert again.status_code == 200
    assert again.json()["user"]["id"] == uid and fake.users[uid]["name"] == "Ann B"
    by_external = api.post("/api/v2/users/create_or_update", json={"user": {
        "name": "Ann C", "external_id": "crm-7"}})
    assert by_external.status_code == 200 and by_external.json()["user"]["id"] == uid


def test_user_bulk_endpoints(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed_user(60, name="Sixty", external_id="ext-60")
    fake.seed_user(61, name="Sixty-one")
    shown = api.get("/api/v2/users/show_many.json?ids=60,61").json()
    assert [u["id"] for u in shown["users"]] == [60, 61]
    assert [u["id"] for u in api.get("/api/v2/users/show_many.json?external_ids=EXT-60"
                                     ).json()["users"]] == [60]
    bulk = job(api.put("/api/v2/users/update_many.json?ids=60,61",
                       json={"user": {"organization_id": None, "notes": "bulk"}}))
    assert [r["status"] for r in bulk["results"]] == ["Updated", "Updated"]
    assert fake.users[61]["notes"] == "bulk"
    batch = job(api.put("/api/v2/users/update_many.json", json={"users": [
        {"id": 60, "notes": "a"}, {"id": 61, "email": "bad"}]}))
    assert [r["success"] for r in batch["results"]] == [True, False]
    assert fake.users[60]["notes"] == "a"
    gone = job(api.delete("/api/v2/users/destroy_many.json?ids=60,61"))
    assert [r["status"] for r in gone["results"]] == ["Deleted", "Deleted"]
    assert fake.users[60]["active"] is False


# -- organizations ----------------------------------------------------------------------------

def test_organization_crud_and_validation(fake: FakeZendesk, api: httpx.Client) -> None:
    created = api.post("/api/v2/organizations.json", json={"organization": {
        "name": "Initech", "domain_names": ["initech.test"]}})
    assert created.status_code == 201
    org = created.json()["organization"]
    oid = org["id"]
    assert org["url"] == f"https://{HOST}/api/v2/organizations/{oid}.json"
    duplicate = api.post("/api/v2/organizations", json={"organization": {"name": "INITECH"}})
    assert duplicate.status_code == 422
    assert duplicate.json()["details"]["name"][0]["error"] == "DuplicateValue"
    blank = api.post("/api/v2/organizations", json={"organization": {"notes": "x"}})
    assert blank.json()["details"]["name"][0]["error"] == "BlankValue"
    assert api.get(f"/api/v2/organizations/{oid}").json()["organization"]["name"] == "Initech"
    updated = api.put(f"/api/v2/organizations/{oid}.json", json={"organization": {
        "notes": "Priority", "tags": ["big"]}}).json()["organization"]
    assert (updated["notes"], updated["tags"]) == ("Priority", ["big"])
    assert api.delete(f"/api/v2/organizations/{oid}").status_code == 204
    assert oid not in fake.organizations
    assert api.get(f"/api/v2/organizations/{oid}").status_code == 404


def test_organization_create_or_update_matches_id_or_external_id_not_name(
        fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed_organization(70, name="Umbrella", external_id="umb")
    by_external = api.post("/api/v2/organizations/create_or_update.json", json={
        "organization": {"name": "Umbrella Corp", "external_id": "UMB"}})
    assert by_external.status_code == 200
    assert fake.organizations[70]["name"] == "Umbrella Corp"
    by_id = api.post("/api/v2/organizations/create_or_update", json={
        "organization": {"id": 70, "notes": "by id"}})
    assert by_id.status_code == 200 and fake.organizations[70]["notes"] == "by id"
    by_name = api.post("/api/v2/organizations/create_or_update", json={
        "organization": {"name": "Umbrella Corp"}})
    assert by_name.status_code == 422  # the name is taken, and is no matching key
    new = api.post("/api/v2/organizations/create_or_update", json={
        "organization": {"name": "Cyberdyne"}})
    assert new.status_code == 201


def test_organization_bulk_endpoints(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed_organization(80, external_id="e80")
    fake.seed_organization(81)
    assert len(api.get("/api/v2/organizations/show_many?ids=80,81").json()["organizations"]) == 2
    bulk = job(api.put("/api/v2/organizations/update_many.json?ids=80,81",
                       json={"organization": {"notes": "Priority"}}))
    assert [r["success"] for r in bulk["results"]] == [True, True]
    batch = job(api.put("/api/v2/organizations/update_many.json", json={
        "organizations": [{"id": 80, "notes": "Normal"}]}))
    assert batch["results"] == [{"id": 80, "action": "update", "success": True,
                                 "status": "Updated"}]
    assert fake.organizations[80]["notes"] == "Normal"
    created = job(api.post("/api/v2/organizations/create_many", json={
        "organizations": [{"name": "Org A"}, {"name": "Org A"}]}))
    assert "id" in created["results"][0] and created["results"][1]["error"] == "RecordInvalid"
    gone = job(api.delete("/api/v2/organizations/destroy_many.json?external_ids=e80"))
    assert gone["results"] == [{"id": 80, "action": "delete", "success": True,
                                "status": "Deleted"}]
    assert 80 not in fake.organizations and 81 in fake.organizations


# -- search -----------------------------------------------------------------------------------

def test_search(fake: FakeZendesk, api: httpx.Client) -> None:
    fake.seed(90, subject="Toaster on fire", status="open")
    fake.seed(91, subject="Toaster is fine", status="solved")
    fake.seed_user(92, name="Toaster Fan")
    found = api.get("/api/v2/search.json", params={"query": "toaster"}).json()
    assert (found["next_page"], found["previous_page"], found["facets"]) == (None, None, None)
    assert [(r["result_type"], r["id"]) for r in found["results"]] == [
        ("ticket", 90), ("ticket", 91), ("user", 92)]
    assert found["count"] == 3
    tickets = api.get("/api/v2/search", params={"query": "type:ticket status:open toaster"})
    assert [r["id"] for r in tickets.json()["results"]] == [90]
    assert api.get("/api/v2/search.json").status_code == 400


# -- the zenpy SDK ----------------------------------------------------------------------------

class ToFake(HTTPAdapter):
    """Sends requests for https://acme.zendesk.com to the fake, keeping the Host header."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request: requests.PreparedRequest,  # type: ignore[override]
             *args: Any, **kwargs: Any) -> requests.Response:
        original = request.url or ""
        routed = request.copy()
        routed.url = urlunsplit(urlsplit(original)._replace(netloc=f"127.0.0.1:{self.port}"))
        routed.headers["Host"] = urlsplit(original).netloc
        response = super().send(routed, *args, **kwargs)
        response.request, response.url = request, original  # zenpy matches on the real URL
        return response


@pytest.fixture
def zenpy(served: Served) -> Iterator[Zenpy]:
    session = requests.Session()
    session.trust_env = False  # no HTTPS_PROXY / REQUESTS_CA_BUNDLE from the environment
    session.verify = str(served.ca)
    session.mount(f"https://{HOST}/", ToFake(served.port))
    yield Zenpy(subdomain="acme", email=EMAIL, token=API_TOKEN, session=session,
                disable_cache=True)
    session.close()  # an open keep-alive connection would hold up the server's shutdown


def test_zenpy_single_ticket_round_trip(fake: FakeZendesk, zenpy: Zenpy) -> None:
    fake.log.clear()
    audit = zenpy.tickets.create(Ticket(subject="From zenpy", description="Hello"))
    tid = audit.ticket.id
    assert fake.tickets[tid]["subject"] == "From zenpy"
    ticket = zenpy.tickets(id=tid)
    assert ticket.description == "Hello"
    ticket.status = "pending"
    assert zenpy.tickets.update(ticket).ticket.status == "pending"
    assert fake.log.of("PUT")[0].headers["host"] == HOST
    assert fake.log.of("PUT")[0].path == f"/api/v2/tickets/{tid}.json"
    assert zenpy.tickets.delete(ticket).status_code == 204
    with pytest.raises(RecordNotFoundException):
        zenpy.tickets(id=tid)
    with pytest.raises(APIException) as caught:
        zenpy.tickets.create(Ticket(subject="No description"))
    assert caught.value.response.status_code == 422


def test_zenpy_bulk_ticket_update_and_delete(fake: FakeZendesk, zenpy: Zenpy) -> None:
    fake.seed(100, status="open")
    fake.seed(101, status="open")
    first, second = zenpy.tickets(id=100), zenpy.tickets(id=101)
    first.status, second.priority = "solved", "urgent"
    fake.log.clear()
    status = zenpy.tickets.update([first, second])
    [seen] = fake.log.of("PUT")
    assert seen.path == "/api/v2/tickets/update_many.json"
    assert status.status == "completed" and status.total == 2
    assert [(r.id, r.status, r.success) for r in status.results] == [
        (100, "Updated", True), (101, "Updated", True)]
    assert fake.tickets[100]["status"] == "solved"
    assert fake.tickets[101]["priority"] == "urgent"
    assert zenpy.job_status(id=status.id).status == "completed"

    deleted = zenpy.tickets.delete([first, second])
    [seen] = fake.log.of("DELETE")
    assert (seen.path, seen.query) == ("/api/v2/tickets/destroy_many.json", "ids=100,101")
    assert [r.status for r in deleted.results] == ["Deleted", "Deleted"]
    assert 100 not in fake.tickets and 101 not in fake.tickets


def test_zenpy_comments_users_organizations_and_search(fake: FakeZendesk,
                                                       zenpy: Zenpy) -> None:
    fake.seed(110, subject="Zenpy searchable")
    fake.seed_comment(110, "Seeded")
    ticket = zenpy.tickets(id=110)
    ticket.comment = {"body": "Added by zenpy", "public": False}  # type: ignore[attr-defined]
    zenpy.tickets.update(ticket)
    comments = list(zenpy.tickets.comments(ticket=110))
    assert [(c.body, c.public) for c in comments] == [("Seeded", True), ("Added by zenpy", False)]

    created = zenpy.users.create_or_update(User(name="Zed", email="zed@example.org"))
    again = zenpy.users.create_or_update(User(name="Zed Z", email="zed@example.org"))
    assert again.id == created.id and fake.users[created.id]["name"] == "Zed Z"
    assert [u.id for u in zenpy.users(ids=[created.id])] == [created.id]

    org = zenpy.organizations.create(Organization(name="Zenpy Org"))
    assert fake.organizations[org.id]["name"] == "Zenpy Org"

    results = list(zenpy.search("Zenpy searchable", type="ticket"))
    assert [r.id for r in results] == [110]
