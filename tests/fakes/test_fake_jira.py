"""Self-test of the fake Jira: each endpoint and error shape, straight at the fake over HTTPS."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme
from jira import JIRA

from tests.fakes import described
from tests.fakes.jira import (
    ADF_ERROR,
    ISSUE_MISSING,
    TEAMMATE_ID,
    UNAUTHORIZED_TEXT,
    FakeJira,
    text_to_adf,
)
from tests.fakes.server import HTTPSFake

AUTH = "Basic " + base64.b64encode(b"agent@acme.test:jira-api-token-123").decode()
V2, V3 = "/rest/api/2", "/rest/api/3"


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[FakeJira, httpx.Client, str, str]]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    fake = FakeJira()
    with HTTPSFake(fake.app, d / "server.pem", d / "server.pem") as server, httpx.Client(
            base_url=f"https://127.0.0.1:{server.port}",
            verify=ssl.create_default_context(cafile=str(d / "ca.pem")),
            headers={"Authorization": AUTH}) as client:
        yield fake, client, f"https://127.0.0.1:{server.port}", str(d / "ca.pem")


@pytest.fixture(scope="module")
def served(serving: tuple[FakeJira, httpx.Client, str, str]) -> tuple[FakeJira, httpx.Client]:
    return serving[0], serving[1]


@pytest.fixture
def served_url(serving: tuple[FakeJira, httpx.Client, str, str],
               monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The fake's base URL and CA, for an SDK; loopback bypasses any proxy env."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return serving[2], serving[3]


@pytest.fixture
def fake(served: tuple[FakeJira, httpx.Client]) -> FakeJira:
    return served[0]


@pytest.fixture
def client(served: tuple[FakeJira, httpx.Client]) -> httpx.Client:
    return served[1]


def _create(client: httpx.Client, base: str = V2, **fields: Any) -> dict[str, Any]:
    body = {"project": {"key": "OPS"}, "summary": "Disk full on db-1",
            "issuetype": {"name": "Task"}} | fields
    response = client.post(f"{base}/issue", json={"fields": body})
    assert response.status_code == 201, response.text
    return response.json()


def test_auth_failures_are_plain_text_401(fake: FakeJira, client: httpx.Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Basic bm9wZTpub3Bl"},
                    {"Authorization": "Bearer wrong"}):
        response = client.get(f"{V3}/myself", headers=headers)
        assert response.status_code == 401
        assert response.text == UNAUTHORIZED_TEXT
        assert response.headers["content-type"].startswith("text/plain")
    bearer = client.get(f"{V3}/myself", headers={"Authorization": "Bearer jira-oauth-token-123"})
    assert bearer.status_code == 200
    assert fake.log.of("GET", f"{V3}/myself")[-1].headers["authorization"].startswith("Bearer")


def test_myself_and_server_info(client: httpx.Client) -> None:
    me = client.get(f"{V3}/myself").json()
    assert me["accountId"] == "5b10ac8d82e05b22cc7d4ef5"
    assert me["emailAddress"] == "agent@acme.test"
    assert me["self"].startswith("https://acme.atlassian.net/rest/api/3/user?accountId=")
    anonymous = client.get(f"{V2}/serverInfo", headers={"Authorization": ""})
    info = client.get(f"{V2}/serverInfo").json()
    assert info["baseUrl"] == "https://acme.atlassian.net"
    assert info["deploymentType"] == "Cloud"
    assert anonymous.status_code == 401  # an empty Authorization header is a bad credential
    del client.headers["Authorization"]
    try:
        assert client.get(f"{V2}/serverInfo").status_code == 200
    finally:
        client.headers["Authorization"] = AUTH


def test_create_and_get_v2(fake: FakeJira, client: httpx.Client) -> None:
    created = _create(client, description="First line\nsecond line\n\nNext paragraph",
                      labels=["db"], priority={"name": "High"},
                      assignee={"accountId": "5b10a2844c20165700ede21g"})
    key = created["key"]
    assert set(created) == {"id", "key", "self"}
    assert created["self"] == f"https://acme.atlassian.net/rest/api/2/issue/{created['id']}"
    assert key.startswith("OPS-") and int(created["id"]) >= 10001
    stored = fake.issues[key]["fields"]
    assert stored["labels"] == ["db"] and stored["priority"] == "High"
    assert stored["status"] == "To Do" and stored["reporter"] == fake.me

    issue = client.get(f"{V2}/issue/{key}").json()
    assert issue["key"] == key and issue["id"] == created["id"]
    assert issue["expand"].startswith("renderedFields")
    fields = issue["fields"]
    assert fields["summary"] == "Disk full on db-1"
    assert fields["description"] == "First line\nsecond line\n\nNext paragraph"
    assert fields["status"]["name"] == "To Do"
    assert fields["status"]["statusCategory"] == {
        "self": "https://acme.atlassian.net/rest/api/2/statuscategory/2", "id": 2, "key": "new",
        "colorName": "blue-gray", "name": "To Do"}
    assert fields["issuetype"]["name"] == "Task" and fields["project"]["key"] == "OPS"
    assert fields["priority"]["name"] == "High" and fields["priority"]["id"] == "2"
    assert fields["assignee"]["displayName"] == "Mia Krystof"
    assert fields["reporter"]["accountId"] == fake.me
    assert fields["comment"] == {"comments": [], "maxResults": 0, "total": 0, "startAt": 0,
                                 "self": f"https://acme.atlassian.net/rest/api/2/issue/"
                                         f"{created['id']}/comment"}
    by_id = client.get(f"{V2}/issue/{created['id']}").json()
    assert by_id["key"] == key


def test_description_converts_between_versions(client: httpx.Client) -> None:
    key = _create(client, description="Hello\nworld\n\nBye")["key"]
    v3 = client.get(f"{V3}/issue/{key}", params={"fields": "description"}).json()
    assert v3["fields"] == {"description": {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Hello"}, {"type": "hardBreak"},
                                          {"type": "text", "text": "world"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "Bye"}]}]}}
    adf = text_to_adf("Written in ADF")
    key3 = _create(client, V3, description=adf)["key"]
    assert client.get(f"{V3}/issue/{key3}").json()["fields"]["description"] == adf
    latest = client.get(f"/rest/api/latest/issue/{key3}").json()
    assert latest["fields"]["description"] == "Written in ADF"


def test_get_fields_and_expand(client: httpx.Client) -> None:
    key = _create(client, description="Body")["key"]
    partial = client.get(f"{V2}/issue/{key}", params={"fields": "summary,status"}).json()
    assert set(partial["fields"]) == {"summary", "status"}
    without = client.get(f"{V2}/issue/{key}", params={"fields": "*all,-comment"}).json()
    assert "comment" not in without["fields"] and "summary" in without["fields"]
    expanded = client.get(f"{V2}/issue/{key}",
                          params={"expand": "renderedFields,names,transitions"}).json()
    assert expanded["renderedFields"]["description"] == "<p>Body</p>"
    assert expanded["names"]["summary"] == "Summary"
    assert [t["id"] for t in expanded["transitions"]] == ["21", "31"]


def test_create_errors(client: httpx.Client) -> None:
    missing = client.post(f"{V2}/issue", json={"fields": {"project": {"key": "OPS"},
                                                          "issuetype": {"name": "Task"}}})
    assert missing.status_code == 400
    assert missing.json() == {"errorMessages": [],
                              "errors": {"summary": "You must specify a summary of the issue."}}
    no_project = client.post(f"{V2}/issue", json={"fields": {"project": {"key": "NOPE"},
                                                             "summary": "x"}})
    assert no_project.json()["errors"] == {"project": "Specify a valid project ID or key"}
    no_type = client.post(f"{V2}/issue", json={"fields": {"project": {"key": "OPS"},
                                                          "summary": "x"}})
    assert no_type.json()["errors"] == {"issuetype": "Specify an issue type"}
    by_id = client.post(f"{V2}/issue", json={"fields": {
        "project": {"id": "10000"}, "summary": "x", "issuetype": {"id": "10004"}}})
    assert by_id.status_code == 201
    plain_in_v3 = client.post(f"{V3}/issue", json={"fields": {
        "project": {"key": "OPS"}, "summary": "x", "issuetype": {"name": "Task"},
        "description": "plain"}})
    assert plain_in_v3.status_code == 400
    assert plain_in_v3.json()["errors"] == {"description": ADF_ERROR}
    adf_in_v2 = client.post(f"{V2}/issue", json={"fields": {
        "project": {"key": "OPS"}, "summary": "x", "issuetype": {"name": "Task"},
        "description": text_to_adf("x")}})
    assert adf_in_v2.json()["errors"] == {"description": "Operation value must be a string"}
    unknown = client.post(f"{V2}/issue", json={"fields": {
        "project": {"key": "OPS"}, "summary": "x", "issuetype": {"name": "Task"},
        "status": {"name": "Done"}}})
    assert unknown.json()["errors"] == {"status": "Field 'status' cannot be set. It is not on "
                                                  "the appropriate screen, or unknown."}
    assert client.post(f"{V2}/issue", content=b"{}").status_code == 415
    bad_json = client.post(f"{V2}/issue", content=b"nope",
                           headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["errorMessages"]


def test_missing_issue_404(client: httpx.Client) -> None:
    for method, path in (("GET", "issue/OPS-999"), ("PUT", "issue/OPS-999"),
                         ("DELETE", "issue/OPS-999"), ("GET", "issue/OPS-999/transitions"),
                         ("GET", "issue/OPS-999/comment")):
        kwargs: dict[str, Any] = {"json": {"fields": {}}} if method == "PUT" else {}
        response = client.request(method, f"{V3}/{path}", **kwargs)
        assert response.status_code == 404
        assert response.json() == {"errorMessages": [ISSUE_MISSING], "errors": {}}


def test_edit_fields_and_update(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue(labels=["keep", "drop"], summary="Old")
    response = client.put(f"{V2}/issue/{key}", params={"notifyUsers": "false"}, json={
        "fields": {"priority": {"name": "Highest"}, "assignee": {"accountId": fake.me}},
        "update": {"labels": [{"add": "new"}, {"remove": "drop"}],
                   "summary": [{"set": "New summary"}],
                   "comment": [{"add": {"body": "Edited via update"}}]}})
    assert response.status_code == 204 and response.content == b""
    stored = fake.issues[key]
    assert stored["fields"]["labels"] == ["keep", "new"]
    assert stored["fields"]["summary"] == "New summary"
    assert stored["fields"]["priority"] == "Highest" and stored["fields"]["assignee"] == fake.me
    assert [c["body"] for c in stored["comments"]] == ["Edited via update"]
    returned = client.put(f"{V2}/issue/{key}", params={"returnIssue": "true"},
                          json={"fields": {"assignee": None}})
    assert returned.status_code == 200 and returned.json()["fields"]["assignee"] is None


def test_edit_errors(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue(summary="Stays")
    both = client.put(f"{V2}/issue/{key}", json={"fields": {"summary": "a"},
                                                 "update": {"summary": [{"set": "b"}]}})
    assert both.status_code == 400
    assert both.json() == {"errorMessages": ["Field 'summary' cannot appear in both 'fields' "
                                             "and 'update'"], "errors": {}}
    status = client.put(f"{V2}/issue/{key}", json={"fields": {"status": {"name": "Done"}}})
    assert status.status_code == 400
    assert "status" in status.json()["errors"]
    empty = client.put(f"{V2}/issue/{key}", json={"fields": {"summary": ""}})
    assert empty.json()["errors"] == {"summary": "You must specify a summary of the issue."}
    bad_comment = client.put(f"{V3}/issue/{key}",
                             json={"update": {"comment": [{"add": {"body": "plain"}}]}})
    assert bad_comment.json()["errors"] == {"comment": "Comment body is not valid!"}
    bad_priority = client.put(f"{V2}/issue/{key}", json={"fields": {"priority": {"name": "X"}}})
    assert bad_priority.status_code == 400 and "priority" in bad_priority.json()["errors"]
    assert fake.issues[key]["fields"]["summary"] == "Stays"


def test_transitions(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue()
    listed = client.get(f"{V3}/issue/{key}/transitions").json()
    assert listed["expand"] == "transitions"
    assert [(t["id"], t["name"], t["to"]["name"]) for t in listed["transitions"]] == [
        ("21", "In Progress", "In Progress"), ("31", "Done", "Done")]
    first = listed["transitions"][0]
    assert first["hasScreen"] is False and first["isGlobal"] is True
    assert first["to"]["statusCategory"]["key"] == "indeterminate"
    done = client.post(f"{V3}/issue/{key}/transitions", json={
        "transition": {"id": "31"},
        "update": {"comment": [{"add": {"body": text_to_adf("Fixed")}}]}})
    assert done.status_code == 204
    assert fake.issues[key]["fields"]["status"] == "Done"
    assert fake.issues[key]["fields"]["resolution"] == "Done"
    issue = client.get(f"{V2}/issue/{key}").json()["fields"]
    assert issue["status"]["name"] == "Done" and issue["resolution"]["name"] == "Done"
    assert issue["comment"]["comments"][0]["body"] == "Fixed"
    invalid = client.post(f"{V3}/issue/{key}/transitions", json={"transition": {"id": "31"}})
    assert invalid.status_code == 400
    assert invalid.json() == {"errorMessages": ["Transition id '31' is not valid for this issue."],
                              "errors": {}}
    unknown = client.post(f"{V3}/issue/{key}/transitions", json={"transition": {"id": 99}})
    assert unknown.json()["errorMessages"] == ["Transition id '99' is not valid for this issue."]
    no_id = client.post(f"{V3}/issue/{key}/transitions", json={"transition": {"name": "Done"}})
    assert no_id.status_code == 400
    back = client.post(f"{V3}/issue/{key}/transitions", json={"transition": {"id": 11}})
    assert back.status_code == 204 and fake.issues[key]["fields"]["resolution"] is None
    only = client.get(f"{V3}/issue/{key}/transitions", params={"transitionId": "31"}).json()
    assert [t["id"] for t in only["transitions"]] == ["31"]


def test_comments_crud(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue()
    issue_id = fake.issues[key]["id"]
    created = client.post(f"{V3}/issue/{key}/comment", json={
        "body": text_to_adf("Looking into it"),
        "visibility": {"type": "role", "value": "Administrators"}})
    assert created.status_code == 201
    comment = created.json()
    assert comment["self"] == (f"https://acme.atlassian.net/rest/api/3/issue/{issue_id}/comment/"
                               f"{comment['id']}")
    assert comment["author"]["accountId"] == fake.me
    assert comment["body"] == text_to_adf("Looking into it")
    assert comment["visibility"] == {"type": "role", "value": "Administrators"}
    assert {"created", "updated", "updateAuthor"} <= set(comment)

    listed = client.get(f"{V2}/issue/{key}/comment").json()
    assert listed["total"] == 1 and listed["startAt"] == 0
    assert listed["comments"][0]["body"] == "Looking into it"
    one = client.get(f"{V2}/issue/{key}/comment/{comment['id']}")
    assert one.status_code == 200 and one.json()["id"] == comment["id"]

    updated = client.put(f"{V2}/issue/{key}/comment/{comment['id']}", json={"body": "Fixed"})
    assert updated.status_code == 200 and updated.json()["body"] == "Fixed"
    assert fake.issues[key]["comments"][0]["body"] == "Fixed"

    assert client.delete(f"{V2}/issue/{key}/comment/{comment['id']}").status_code == 204
    gone = client.get(f"{V2}/issue/{key}/comment/{comment['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"errorMessages": [f"Can not find a comment for the id: "
                                             f"{comment['id']}."], "errors": {}}


def test_comment_errors(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue()
    plain_v3 = client.post(f"{V3}/issue/{key}/comment", json={"body": "plain"})
    assert plain_v3.status_code == 400
    assert plain_v3.json() == {"errorMessages": [],
                               "errors": {"comment": "Comment body is not valid!"}}
    empty = client.post(f"{V2}/issue/{key}/comment", json={"body": ""})
    assert empty.json()["errors"] == {"comment": "Comment body can not be empty!"}
    missing = client.post(f"{V2}/issue/OPS-9999/comment", json={"body": "x"})
    assert missing.status_code == 404


def test_delete(fake: FakeJira, client: httpx.Client) -> None:
    parent = fake.seed_issue()
    child = _create(client, issuetype={"name": "Subtask"}, parent={"key": parent})["key"]
    assert client.get(f"{V2}/issue/{parent}").json()["fields"]["subtasks"][0]["key"] == child
    refused = client.delete(f"{V2}/issue/{parent}")
    assert refused.status_code == 400 and "deleteSubtasks" in refused.json()["errorMessages"][0]
    done = client.delete(f"{V2}/issue/{parent}", params={"deleteSubtasks": "true"})
    assert done.status_code == 204
    assert parent not in fake.issues and child not in fake.issues
    lone = fake.seed_issue()
    assert client.delete(f"{V3}/issue/{lone}").status_code == 204


def test_search_classic(fake: FakeJira, client: httpx.Client) -> None:
    fake.seed_project("SRCH", "Search")
    a = fake.seed_issue("SRCH", summary="alpha", status="Done")
    b = fake.seed_issue("SRCH", summary="beta", labels=["x"])
    response = client.post(f"{V3}/search", json={"jql": "project = SRCH", "maxResults": 1,
                                                 "fields": ["summary", "status"]})
    body = response.json()
    assert body["expand"] == "schema,names"
    assert body["total"] == 2 and body["maxResults"] == 1 and body["startAt"] == 0
    assert [i["key"] for i in body["issues"]] == [b]  # newest first without ORDER BY
    assert set(body["issues"][0]["fields"]) == {"summary", "status"}
    done = client.post(f"{V3}/search", json={"jql": 'project = SRCH AND status = "Done"'})
    assert [i["key"] for i in done.json()["issues"]] == [a]
    assert "comment" not in done.json()["issues"][0]["fields"]  # *navigable by default
    by_key = client.get(f"{V2}/search", params={"jql": f"key = {a}", "fields": "summary"})
    assert by_key.json()["issues"][0]["fields"] == {"summary": "alpha"}
    ordered = client.post(f"{V2}/search", json={"jql": "project = SRCH ORDER BY key ASC"})
    assert [i["key"] for i in ordered.json()["issues"]] == [a, b]
    richer = client.post(f"{V2}/search", json={
        "jql": "project = SRCH and labels in (x) and summary ~ bet and assignee is EMPTY"})
    assert [i["key"] for i in richer.json()["issues"]] == [b]


def test_search_jql_enhanced(fake: FakeJira, client: httpx.Client) -> None:
    fake.seed_project("ENH", "Enhanced")
    keys = [fake.seed_issue("ENH", summary=f"n{n}") for n in range(3)]
    ids_only = client.post(f"{V3}/search/jql", json={"jql": "project = ENH", "maxResults": 2})
    page = ids_only.json()
    assert page["issues"] == [{"id": fake.issues[k]["id"]} for k in reversed(keys[1:])]
    assert page["isLast"] is False and page["nextPageToken"]
    rest = client.post(f"{V3}/search/jql", json={"jql": "project = ENH", "maxResults": 2,
                                                 "nextPageToken": page["nextPageToken"],
                                                 "fields": ["summary"]}).json()
    assert rest["isLast"] is True and "nextPageToken" not in rest
    assert rest["issues"][0]["key"] == keys[0]
    assert rest["issues"][0]["fields"] == {"summary": "n0"}
    got = client.get(f"{V3}/search/jql", params={"jql": f"key = {keys[0]}",
                                                 "fields": "summary,status"}).json()
    assert got["issues"][0]["fields"]["status"]["name"] == "To Do"
    unbounded = client.post(f"{V3}/search/jql", json={"jql": ""})
    assert unbounded.status_code == 400


def test_search_errors(client: httpx.Client) -> None:
    cases = {
        "project = NOPE": "The value 'NOPE' does not exist for the field 'project'.",
        "key = OPS-99999": "An issue with key 'OPS-99999' does not exist for field 'key'.",
        "status = Nope": "The value 'Nope' does not exist for the field 'status'.",
        "flavour = x": "Field 'flavour' does not exist or you do not have permission to view it.",
    }
    for jql, message in cases.items():
        response = client.post(f"{V2}/search", json={"jql": jql})
        assert response.status_code == 400
        assert response.json() == {"errorMessages": [message], "errors": {}}
    syntax = client.post(f"{V3}/search/jql", json={"jql": "project OPS"})
    assert syntax.status_code == 400
    assert syntax.json()["errorMessages"][0].startswith("Error in the JQL Query:")


def test_unknown_paths_are_recorded(fake: FakeJira, client: httpx.Client) -> None:
    response = client.get(f"{V3}/nothing-here")
    assert response.status_code == 404 and response.json()["errorMessages"]
    assert client.get("/rest/api/9/issue/OPS-1").status_code == 404
    assert client.patch(f"{V3}/issue/OPS-1", json={}).status_code == 405
    assert fake.log.of("GET", f"{V3}/nothing-here")
    assert fake.log.of("PATCH", f"{V3}/issue/OPS-1")[-1].body == b"{}"


# ------------------------------------------------------ watchers, worklogs, users (described)

WATCHERS = "/rest/api/3/issue/{issueIdOrKey}/watchers"
WORKLOG = "/rest/api/3/issue/{issueIdOrKey}/worklog"


def test_watchers_as_described(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue(summary="Watch me")
    listed = client.get(f"{V3}/issue/{key}/watchers")
    described.check("jira", "get", WATCHERS, 200, listed.json())
    assert [w["accountId"] for w in listed.json()["watchers"]] == [fake.me]  # the reporter
    added = client.post(f"{V3}/issue/{key}/watchers", json=TEAMMATE_ID)
    assert (added.status_code, added.content) == (204, b"")
    assert "204" in described.operation("jira", "post", WATCHERS)["responses"]
    again = client.get(f"{V2}/issue/{key}/watchers").json()
    assert (again["watchCount"], again["isWatching"]) == (2, True)
    assert client.post(f"{V3}/issue/{key}/watchers", json="nobody").status_code == 404
    assert client.post(f"{V3}/issue/{key}/watchers", json={"accountId": TEAMMATE_ID}
                       ).status_code == 400
    assert client.post(f"{V3}/issue/OPS-999/watchers", json=TEAMMATE_ID).status_code == 404
    issue = client.get(f"{V3}/issue/{key}", params={"fields": "watches"}).json()
    assert issue["fields"]["watches"]["watchCount"] == 2
    assert client.delete(f"{V3}/issue/{key}/watchers").status_code == 400
    assert client.delete(f"{V3}/issue/{key}/watchers",
                         params={"accountId": fake.me}).status_code == 204
    assert fake.issue(key)["watchers"] == [TEAMMATE_ID]
    # v2 without a body adds the caller
    assert client.post(f"{V2}/issue/{key}/watchers", headers={
        "Content-Type": "application/json"}).status_code == 204
    assert fake.issue(key)["watchers"] == [TEAMMATE_ID, fake.me]


def test_worklogs_as_described(fake: FakeJira, client: httpx.Client) -> None:
    key = fake.seed_issue(summary="Log time", worklogs=[3600])
    created = client.post(f"{V3}/issue/{key}/worklog", json={
        "timeSpentSeconds": 12000, "started": "2021-01-17T12:34:00.000+0000",
        "comment": text_to_adf("I did some work here.")})
    assert created.status_code == 201
    described.check("jira", "post", WORKLOG, 201, created.json())
    worklog = created.json()
    assert (worklog["timeSpent"], worklog["issueId"]) == ("3h 20m", fake.issue(key)["id"])
    v2 = client.post(f"{V2}/issue/{key}/worklog?adjustEstimate=leave",
                     json={"timeSpent": "1d 2h", "comment": "plain text"}).json()
    assert (v2["timeSpentSeconds"], v2["comment"]) == (10 * 3600, "plain text")
    listed = client.get(f"{V3}/issue/{key}/worklog")
    described.check("jira", "get", WORKLOG, 200, listed.json())
    assert listed.json()["total"] == 3
    issue = client.get(f"{V3}/issue/{key}", params={"fields": "worklog,timespent"}).json()
    assert issue["fields"]["timespent"] == 3600 + 12000 + 36000
    assert issue["fields"]["worklog"]["total"] == 3
    one = f"{V3}/issue/{key}/worklog/{worklog['id']}"
    described.check("jira", "get", WORKLOG + "/{id}", 200, client.get(one).json())
    updated = client.put(one, json={"timeSpent": "4h"})
    described.check("jira", "put", WORKLOG + "/{id}", 200, updated.json())
    assert updated.json()["timeSpentSeconds"] == 4 * 3600
    assert client.post(f"{V3}/issue/{key}/worklog", json={}).json()["errors"] == {
        "timeLogged": "You must indicate the time spent working."}
    assert client.post(f"{V3}/issue/{key}/worklog", json={"timeSpent": "soon"}
                       ).json()["errors"] == {"timeLogged": "Invalid time duration entered."}
    assert client.post(f"{V3}/issue/{key}/worklog", json={
        "timeSpent": "1h", "comment": "not ADF"}).json()["errors"] == {"comment": ADF_ERROR}
    assert client.post(f"{V3}/issue/{key}/worklog?adjustEstimate=new",
                       json={"timeSpent": "1h"}).status_code == 400
    assert client.delete(one).status_code == 204
    assert client.get(one).status_code == 404
    assert len(fake.issue(key)["worklogs"]) == 2


def test_user_search_as_described(client: httpx.Client) -> None:
    found = client.get(f"{V3}/user/search", params={"query": "mia"})
    described.check("jira", "get", "/rest/api/3/user/search", 200, found.json())
    assert [u["accountId"] for u in found.json()] == [TEAMMATE_ID]
    assert client.get(f"{V3}/user/search", params={"accountId": TEAMMATE_ID}).json()[0][
        "displayName"] == "Mia Krystof"
    assert client.get(f"{V3}/user/search").status_code == 400


def test_jira_package_watchers_and_worklogs(fake: FakeJira, served_url: tuple[str, str]) -> None:
    base, ca = served_url
    jira = JIRA(server=base, basic_auth=("agent@acme.test", "jira-api-token-123"),
                options={"verify": ca}, max_retries=0)
    key = fake.seed_issue(summary="SDK watchers")
    jira.add_watcher(key, "Mia Krystof")
    assert fake.issue(key)["watchers"] == [fake.me, TEAMMATE_ID]
    assert [w.accountId for w in jira.watchers(key).watchers] == [fake.me, TEAMMATE_ID]
    worklog = jira.add_worklog(key, timeSpent="2h", comment="pairing")
    assert (worklog.timeSpentSeconds, worklog.comment) == (7200, "pairing")
    assert [w.id for w in jira.worklogs(key)] == [worklog.id]
    jira.close()
