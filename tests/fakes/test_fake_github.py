"""Self-test of the fake GitHub (REST + GraphQL), directly and through PyGithub."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from github import Auth, Github, GithubException

from tests.fakes import described
from tests.fakes.github import FakeGitHub, blob_sha
from tests.fakes.server import HTTPSFake

TOKEN = "ghp_fake_token_123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return d / "server.pem", d / "ca.pem"


@pytest.fixture(scope="module")
def served(tls: tuple[Path, Path]) -> Iterator[tuple[FakeGitHub, httpx.Client]]:
    pem, ca = tls
    fake = FakeGitHub()
    fake.seed_repo("acme", "app")
    fake.seed_issue("acme", "app", 1, title="Crash on start", labels=["bug"])
    fake.seed_pull("acme", "app", 2, head="feature-x")
    fake.seed_file("acme", "app", "docs/readme.md", "hello\n")
    with HTTPSFake(fake.app, pem, pem) as server, httpx.Client(
            base_url=f"https://127.0.0.1:{server.port}",
            verify=ssl.create_default_context(cafile=str(ca)), headers=AUTH) as client:
        yield fake, client


def test_auth_errors(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    r = client.get("/repos/acme/app", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert r.json() == {"message": "Bad credentials",
                        "documentation_url": "https://docs.github.com/rest", "status": "401"}
    r = client.get("/user", headers={"Authorization": ""})
    assert r.status_code == 401 and r.json()["message"] == "Requires authentication"
    assert client.get("/user", headers={"Authorization": f"token {TOKEN}"}).json()["login"] \
        == "octocat"
    r = client.post("/graphql", json={"query": "{ viewer { login } }"},
                    headers={"Authorization": "bearer nope"})
    assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
    assert fake.log.of("GET", "/user")


def test_not_found_and_unknown_paths(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    r = client.get("/repos/acme/app/issues/999")
    assert r.status_code == 404
    assert r.json() == {"message": "Not Found", "documentation_url": "https://docs.github.com/rest",
                        "status": "404"}
    assert client.get("/repos/acme/nope").status_code == 404
    assert client.delete("/repos/acme/app/issues/1").status_code == 404
    assert client.get("/api/v3/no/such/thing").status_code == 404
    assert fake.log.of("DELETE", "/repos/acme/app/issues/1")
    assert fake.log.of("GET", "/api/v3/no/such/thing")


def test_repo_and_enterprise_prefix(served: tuple[FakeGitHub, httpx.Client]) -> None:
    _, client = served
    repo = client.get("/repos/acme/app").json()
    assert repo["full_name"] == "acme/app"
    assert repo["url"] == "https://api.github.com/repos/acme/app"
    assert repo["default_branch"] == "main"
    assert client.get("/api/v3/repos/ACME/app").json()["id"] == repo["id"]


def test_issue_create_get_patch(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    r = client.post("/repos/acme/app/issues",
                    json={"title": "New one", "body": "text", "labels": ["triage"],
                          "assignees": ["hubot"]})
    assert r.status_code == 201
    issue = r.json()
    number = issue["number"]
    assert number == 3  # 1 is an issue, 2 a pull request: one number space
    assert issue["labels"][0]["name"] == "triage" and issue["labels"][0]["color"]
    assert issue["assignees"][0]["login"] == "hubot"
    assert issue["html_url"] == f"https://github.com/acme/app/issues/{number}"
    assert r.headers["location"] == issue["url"]

    r = client.patch(f"/repos/acme/app/issues/{number}",
                     json={"title": "Renamed", "labels": ["bug", {"name": "p1"}],
                           "assignees": [], "state": "closed", "state_reason": "not_planned"})
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "Renamed"
    assert [x["name"] for x in body["labels"]] == ["bug", "p1"]
    assert body["assignees"] == [] and body["assignee"] is None
    assert body["state"] == "closed" and body["state_reason"] == "not_planned"
    assert body["closed_at"] and body["closed_by"]["login"] == "octocat"
    assert fake.issues[("acme", "app", number)]["labels"] == ["bug", "p1"]

    reopened = client.patch(f"/repos/acme/app/issues/{number}", json={"state": "open"}).json()
    assert reopened["state_reason"] == "reopened" and reopened["closed_at"] is None
    assert client.get(f"/api/v3/repos/acme/app/issues/{number}").json()["title"] == "Renamed"
    pr_as_issue = client.get("/repos/acme/app/issues/2").json()
    assert pr_as_issue["pull_request"]["url"].endswith("/pulls/2")


def test_issue_validation(served: tuple[FakeGitHub, httpx.Client]) -> None:
    _, client = served
    r = client.post("/repos/acme/app/issues", json={"body": "no title"})
    assert r.status_code == 422
    body = r.json()
    assert body["message"] == "Validation Failed" and body["status"] == "422"
    assert body["errors"] == [{"resource": "Issue", "code": "missing_field", "field": "title"}]
    r = client.patch("/repos/acme/app/issues/1", json={"state": "gone", "assignees": ["ghost"]})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"state", "assignees"}
    r = client.patch("/repos/acme/app/issues/1", json={"milestone": 42})
    assert r.status_code == 422
    r = client.patch("/repos/acme/app/issues/1", content=b"{not json")
    assert r.status_code == 400 and r.json()["message"] == "Problems parsing JSON"


def test_issue_comments(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    r = client.post("/repos/acme/app/issues/1/comments", json={"body": "Me too"})
    assert r.status_code == 201
    comment = r.json()
    assert comment["body"] == "Me too" and comment["user"]["login"] == "octocat"
    assert comment["issue_url"].endswith("/repos/acme/app/issues/1")
    cid = comment["id"]
    assert client.get(f"/repos/acme/app/issues/comments/{cid}").json()["body"] == "Me too"
    edited = client.patch(f"/repos/acme/app/issues/comments/{cid}", json={"body": "Edited"})
    assert edited.status_code == 200 and edited.json()["body"] == "Edited"
    listed = client.get("/repos/acme/app/issues/1/comments").json()
    assert [c["id"] for c in listed] == [cid]
    assert client.get("/repos/acme/app/issues/1").json()["comments"] == 1
    assert client.post("/repos/acme/app/issues/1/comments", json={}).status_code == 422
    assert client.delete(f"/repos/acme/app/issues/comments/{cid}").status_code == 204
    assert client.get(f"/repos/acme/app/issues/comments/{cid}").status_code == 404
    assert fake.comments_of("acme", "app", 1) == []


def test_pulls_patch_and_merge(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    number = fake.seed_pull("acme", "app", head="topic")
    pull = client.get(f"/repos/acme/app/pulls/{number}").json()
    assert pull["head"]["ref"] == "topic" and pull["base"]["ref"] == "main"
    assert pull["merged"] is False and pull["mergeable"] is True
    assert client.get("/repos/acme/app/pulls/1").status_code == 404  # an issue, not a PR
    fake.seed_branch("acme", "app", "develop")
    r = client.patch(f"/repos/acme/app/pulls/{number}", json={"title": "T2", "base": "develop"})
    assert r.json()["title"] == "T2" and r.json()["base"]["ref"] == "develop"
    assert client.patch(f"/repos/acme/app/pulls/{number}",
                        json={"base": "nope"}).status_code == 422

    assert client.get(f"/repos/acme/app/pulls/{number}/merge").status_code == 404
    r = client.put(f"/repos/acme/app/pulls/{number}/merge", json={"sha": "0" * 40})
    assert r.status_code == 409
    r = client.put(f"/repos/acme/app/pulls/{number}/merge",
                   json={"commit_title": "Ship it", "merge_method": "squash",
                         "sha": pull["head"]["sha"]})
    assert r.status_code == 200
    assert r.json()["merged"] is True
    assert r.json()["message"] == "Pull Request successfully merged"
    assert len(r.json()["sha"]) == 40
    assert client.get(f"/repos/acme/app/pulls/{number}/merge").status_code == 204
    merged = client.get(f"/repos/acme/app/pulls/{number}").json()
    assert merged["state"] == "closed" and merged["merged_by"]["login"] == "octocat"
    r = client.put(f"/repos/acme/app/pulls/{number}/merge", json={})
    assert r.status_code == 405
    assert r.json()["message"] == "Pull Request is not mergeable"
    blocked = fake.seed_pull("acme", "app", head="conflict", mergeable=False)
    assert client.put(f"/repos/acme/app/pulls/{blocked}/merge", json={}).status_code == 405


def test_contents(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    got = client.get("/repos/acme/app/contents/docs/readme.md").json()
    assert got["type"] == "file" and got["encoding"] == "base64"
    assert base64.b64decode(got["content"]) == b"hello\n"
    assert got["sha"] == blob_sha(b"hello\n") and got["size"] == 6
    assert got["download_url"] == "https://raw.githubusercontent.com/acme/app/main/docs/readme.md"
    listing = client.get("/repos/acme/app/contents/docs").json()
    assert [e["name"] for e in listing] == ["readme.md"]
    assert client.get("/repos/acme/app/contents/nope.txt").status_code == 404

    new = base64.b64encode(b"v1").decode()
    r = client.put("/repos/acme/app/contents/src/a.txt", json={"message": "add", "content": new})
    assert r.status_code == 201
    created = r.json()
    assert created["content"]["path"] == "src/a.txt"
    assert created["commit"]["message"] == "add" and len(created["commit"]["sha"]) == 40
    r = client.put("/repos/acme/app/contents/src/a.txt",
                   json={"message": "edit", "content": new})
    assert r.status_code == 422 and "sha" in r.json()["message"]
    r = client.put("/repos/acme/app/contents/src/a.txt",
                   json={"message": "edit", "content": new, "sha": "f" * 40})
    assert r.status_code == 409
    r = client.put("/repos/acme/app/contents/src/a.txt",
                   json={"message": "edit", "content": base64.b64encode(b"v2").decode(),
                         "sha": created["content"]["sha"],
                         "committer": {"name": "Bot", "email": "bot@acme.test"}})
    assert r.status_code == 200 and r.json()["commit"]["committer"]["name"] == "Bot"
    assert fake.file_text("acme", "app", "src/a.txt") == "v2"
    assert client.put("/repos/acme/app/contents/src/b.txt",
                      json={"message": "m", "content": "***"}).status_code == 422
    r = client.request("DELETE", "/repos/acme/app/contents/src/a.txt",
                       json={"message": "rm", "sha": "e" * 40})
    assert r.status_code == 409
    r = client.request("DELETE", "/repos/acme/app/contents/src/a.txt",
                       json={"message": "rm", "sha": blob_sha(b"v2")})
    assert r.status_code == 200 and r.json()["content"] is None
    assert r.json()["commit"]["message"] == "rm"
    assert fake.file_text("acme", "app", "src/a.txt") is None
    assert [c["action"] for c in fake.commits if c.get("path") == "src/a.txt"] == \
        ["create", "update", "delete"]


def _gql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None,
         path: str = "/graphql") -> dict[str, Any]:
    r = client.post(path, json={"query": query, "variables": variables or {}})
    assert r.status_code == 200, r.text
    return r.json()


def test_graphql_query_and_mutations(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    number = fake.seed_issue("acme", "app", title="GQL", labels=["bug"])
    q = """query($o: String!, $n: String!, $num: Int!) {
      repository(owner: $o, name: $n) { issue(number: $num) {
        id number title state labels(first: 10) { nodes { id name } totalCount } } } }"""
    data = _gql(client, q, {"o": "acme", "n": "app", "num": number})["data"]
    issue = data["repository"]["issue"]
    assert issue["title"] == "GQL" and issue["state"] == "OPEN"
    assert issue["labels"]["nodes"][0]["name"] == "bug"
    node_id = issue["id"]

    m = """mutation($input: UpdateIssueInput!) { updateIssue(input: $input) {
      issue { title body state } } }"""
    out = _gql(client, m, {"input": {"id": node_id, "title": "GQL2", "body": "b"}},
               path="/api/graphql")
    assert out["data"]["updateIssue"]["issue"] == {"title": "GQL2", "body": "b", "state": "OPEN"}
    assert fake.issues[("acme", "app", number)]["title"] == "GQL2"

    out = _gql(client, 'mutation { addComment(input: {subjectId: "' + node_id + '", body: "hi"})'
               " { commentEdge { node { body author { login } } } subject { id } } }")
    edge = out["data"]["addComment"]["commentEdge"]
    assert edge["node"] == {"body": "hi", "author": {"login": "octocat"}}
    assert fake.comments_of("acme", "app", number)[0]["body"] == "hi"

    out = _gql(client, """mutation($id: ID!) { closeIssue(input: {issueId: $id,
      stateReason: NOT_PLANNED}) { issue { state stateReason closed } } }""", {"id": node_id})
    assert out["data"]["closeIssue"]["issue"] == {"state": "CLOSED", "stateReason": "NOT_PLANNED",
                                                  "closed": True}
    assert fake.issues[("acme", "app", number)]["state_reason"] == "not_planned"

    out = _gql(client, "mutation { updateIssue(input: {id: \"I_nope\", state: OPEN}) "
                       "{ issue { id } } }")
    assert out["data"] == {"updateIssue": None}
    assert out["errors"][0]["type"] == "NOT_FOUND"
    assert out["errors"][0]["path"] == ["updateIssue"]
    assert out["errors"][0]["locations"]


def test_graphql_errors(served: tuple[FakeGitHub, httpx.Client]) -> None:
    _, client = served
    out = _gql(client, "{ repository(owner: \"acme\", name: \"app\") { issue(number: 999) "
                       "{ id } } }")
    assert out["data"] == {"repository": {"issue": None}}
    assert out["errors"][0]["type"] == "NOT_FOUND"
    assert out["errors"][0]["path"] == ["repository", "issue"]
    out = _gql(client, "{ repository(owner: \"acme\", name: \"app\") { nope } }")
    assert "data" not in out
    assert out["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Repository'"
    assert out["errors"][0]["extensions"]["code"] == "undefinedField"
    assert out["errors"][0]["locations"] == [{"line": 1, "column": 44}]
    out = _gql(client, "{ repository(")
    assert out["errors"][0]["message"].startswith("Parse error")
    out = _gql(client, "{ repository(owner: \"acme\", name: \"app\") { issue(number: 1) "
                       "{ labels { totalCount } } } }")
    assert out["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    r = client.post("/graphql", json={"variables": {}})
    assert "query attribute" in r.json()["errors"][0]["message"]


@pytest.fixture(scope="module")
def sdk(tls: tuple[Path, Path]) -> Iterator[tuple[FakeGitHub, Github]]:
    pem, ca = tls
    fake = FakeGitHub()
    fake.seed_repo("acme", "app")
    fake.seed_issue("acme", "app", 1, title="SDK issue", labels=["bug"])
    fake.seed_pull("acme", "app", 2, head="feature-x")
    fake.seed_file("acme", "app", "README.md", "# app\n")
    with HTTPSFake(fake.app, pem, pem) as server:
        # Responses carry absolute URLs that PyGithub follows; point them at the fake.
        fake.host = f"127.0.0.1:{server.port}"
        gh = Github(base_url=f"https://127.0.0.1:{server.port}", auth=Auth.Token(TOKEN),
                    verify=str(ca), retry=None, seconds_between_requests=0,
                    seconds_between_writes=0)
        yield fake, gh
        gh.close()


def test_pygithub_issues_pulls_contents(sdk: tuple[FakeGitHub, Github]) -> None:
    fake, gh = sdk
    repo = gh.get_repo("acme/app")
    assert repo.full_name == "acme/app" and repo.default_branch == "main"
    issue = repo.get_issue(1)
    assert issue.title == "SDK issue"
    issue.edit(title="Edited by SDK", labels=["bug", "p2"], state="closed")
    assert issue.title == "Edited by SDK" and issue.state == "closed"
    assert [label.name for label in issue.labels] == ["bug", "p2"]
    assert fake.issues[("acme", "app", 1)]["title"] == "Edited by SDK"
    comment = issue.create_comment("from the SDK")
    assert comment.body == "from the SDK" and comment.user.login == "octocat"
    comment.edit("edited")
    assert fake.comments[comment.id]["body"] == "edited"
    comment.delete()
    assert comment.id not in fake.comments

    pull = repo.get_pull(2)
    assert pull.head.ref == "feature-x" and not pull.is_merged()
    status = pull.merge(commit_message="done")
    assert status.merged is True and status.sha
    assert pull.is_merged()
    with pytest.raises(GithubException) as exc:
        pull.merge()
    assert exc.value.status == 405

    readme = repo.get_contents("README.md")
    assert not isinstance(readme, list)
    assert readme.decoded_content == b"# app\n"
    updated = repo.update_file("README.md", "update readme", "# app v2\n", readme.sha)
    assert updated["commit"].sha and updated["content"].path == "README.md"
    assert fake.file_text("acme", "app", "README.md") == "# app v2\n"
    created = repo.create_file("docs/new.md", "add doc", "new")
    assert created["content"].sha == blob_sha(b"new")
    repo.delete_file("docs/new.md", "remove doc", created["content"].sha)
    assert fake.file_text("acme", "app", "docs/new.md") is None
    with pytest.raises(GithubException) as exc:
        repo.update_file("README.md", "stale", "x", readme.sha)
    assert exc.value.status == 409


def test_pygithub_graphql_and_enterprise(sdk: tuple[FakeGitHub, Github],
                                         tls: tuple[Path, Path]) -> None:
    fake, gh = sdk
    _, data = gh.requester.graphql_query(
        "query($n: Int!) { repository(owner: \"acme\", name: \"app\") { issue(number: $n) "
        "{ title } } }", {"n": 1})
    assert data["data"]["repository"]["issue"]["title"] == "Edited by SDK"
    port = fake.host.rsplit(":", 1)[1]
    ghe = Github(base_url=f"https://127.0.0.1:{port}/api/v3", auth=Auth.Token(TOKEN),
                 verify=str(tls[1]), retry=None, seconds_between_requests=0,
                 seconds_between_writes=0)
    assert ghe.get_repo("acme/app").get_issue(1).title == "Edited by SDK"
    _, data = ghe.requester.graphql_query("{ viewer { login } }", {})
    assert data["data"]["viewer"]["login"] == "octocat"
    assert fake.log.of("POST", "/api/graphql")
    ghe.close()


# ------------------------------------------------------ issue labels and reviews (described)

LABELS = "/repos/{owner}/{repo}/issues/{issue_number}/labels"
REVIEWS = "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"


def test_issue_labels_add_set_remove_as_described(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    number = fake.seed_issue("acme", "app", title="Label me", labels=["bug"])
    base = f"/repos/acme/app/issues/{number}/labels"
    listed = client.get(base)
    described.check("github", "get", LABELS, 200, listed.json())
    assert [label["name"] for label in listed.json()] == ["bug"]
    added = client.post(base, json={"labels": ["triage", {"name": "BUG"}]})
    described.check("github", "post", LABELS, 200, added.json())
    assert [label["name"] for label in added.json()] == ["bug", "triage"]
    bare = client.post(base, json=["p1"])  # a bare array, as PyGithub sends it
    assert [label["name"] for label in bare.json()] == ["bug", "triage", "p1"]
    assert client.post(base, json={"labels": []}).status_code == 422
    replaced = client.put(base, json={"labels": ["p2"]})
    described.check("github", "put", LABELS, 200, replaced.json())
    assert fake.issue_record("acme", "app", number)["labels"] == ["p2"]
    assert [x["name"] for x in client.put(base, json="wontfix").json()] == ["wontfix"]
    removed = client.delete(f"{base}/wontfix")
    described.check("github", "delete", LABELS + "/{name}", 200, removed.json())
    assert removed.json() == []
    assert client.delete(f"{base}/wontfix").json()["message"] == "Label does not exist"
    assert client.put(base, json=["a", "b"]).status_code == 200
    assert client.delete(base).status_code == 204
    assert fake.issue_record("acme", "app", number)["labels"] == []
    assert client.post("/repos/acme/app/issues/999/labels", json=["x"]).status_code == 404
    # the issue's own answer carries the labels the same way
    issue = client.get(f"/repos/acme/app/issues/{number}").json()
    described.check("github", "get", "/repos/{owner}/{repo}/issues/{issue_number}", 200, issue)


def test_pull_reviews_as_described(served: tuple[FakeGitHub, httpx.Client]) -> None:
    fake, client = served
    mine = fake.seed_pull("acme", "app", head="mine")
    theirs = fake.seed_pull("acme", "app", head="theirs", user="monalisa")
    base = f"/repos/acme/app/pulls/{theirs}/reviews"
    approved = client.post(base, json={"event": "APPROVE", "body": "LGTM"})
    assert approved.status_code == 200  # the description documents 200, not 201
    described.check("github", "post", REVIEWS, 200, approved.json())
    review = approved.json()
    assert (review["state"], review["body"], review["user"]["login"]) == (
        "APPROVED", "LGTM", "octocat")
    assert review["commit_id"] == fake.pulls[("acme", "app", theirs)]["head_sha"]
    pending = client.post(base, json={"comments": [{"path": "a.py", "position": 1,
                                                    "body": "nit"}]}).json()
    assert pending["state"] == "PENDING" and "submitted_at" not in pending
    again = client.post(base, json={})
    assert again.status_code == 422
    described.check("github", "post", REVIEWS, 422, again.json())
    assert again.json()["errors"] == ["User can only have one pending review per pull request"]
    assert client.post(base, json={"event": "COMMENT"}).status_code == 422
    own = client.post(f"/repos/acme/app/pulls/{mine}/reviews", json={"event": "APPROVE"})
    assert own.json()["errors"] == ["Review Can not approve your own pull request"]
    listed = client.get(base)
    described.check("github", "get", REVIEWS, 200, listed.json())
    assert [r["state"] for r in listed.json()] == ["APPROVED", "PENDING"]
    one = client.get(f"{base}/{review['id']}")
    described.check("github", "get", REVIEWS + "/{review_id}", 200, one.json())
    assert client.get(f"/repos/acme/app/pulls/{mine}/reviews/{review['id']}").status_code == 404
    assert [r["state"] for r in fake.reviews_of("acme", "app", theirs)] == [
        "APPROVED", "PENDING"]


def test_pygithub_labels_and_review(sdk: tuple[FakeGitHub, Github]) -> None:
    fake, gh = sdk
    repo = gh.get_repo("acme/app")
    number = fake.seed_issue("acme", "app", title="SDK labels", labels=["bug"])
    issue = repo.get_issue(number)
    issue.add_to_labels("needs-triage", "p1")
    assert fake.issue_record("acme", "app", number)["labels"] == ["bug", "needs-triage", "p1"]
    issue.set_labels("p3")
    assert fake.issue_record("acme", "app", number)["labels"] == ["p3"]
    assert [label.name for label in issue.get_labels()] == ["p3"]
    pull = repo.get_pull(fake.seed_pull("acme", "app", head="sdk-review", user="hubot"))
    review = pull.create_review(body="Please add a test", event="REQUEST_CHANGES")
    assert (review.state, review.body, review.user.login) == (
        "CHANGES_REQUESTED", "Please add a test", "octocat")
    assert [r.id for r in pull.get_reviews()] == [review.id]
