"""GitHub through the real proxy with the real PyGithub SDK (HTTPS_PROXY, REQUESTS_CA_BUNDLE)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github import Auth, Github, GithubException

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, held, triples
from tests.e2e.test_zendesk_zenpy import agent_env
from tests.fakes.github import FakeGitHub


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeGitHub:
    found = vendors["github"].fake
    found.log.clear()
    if "acme/app" not in {f"{o}/{r}" for o, r in found.repos}:
        found.seed_repo("acme", "app")
    return found


@pytest.fixture
def gh(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> Iterator[Github]:
    agent_env(monkeypatch, proxy)
    client = Github(auth=Auth.Token("ghp_fake_token_123"), retry=None,
                    seconds_between_requests=0, seconds_between_writes=0)
    yield client
    client.close()


def test_issue_edit_compares_label_and_assignee_sets_by_name(
        proxy: ProxyProcess, fake: FakeGitHub, gh: Github) -> None:
    number = fake.seed_issue("acme", "app", title="Login fails", labels=["bug", "p2"])
    issue = gh.get_repo("acme/app").get_issue(number)
    call, approval = held(proxy, lambda: issue.edit(title="Login fails on Safari",
                                                    labels=["bug", "p1"]))
    assert (approval["system"], approval["object_type"], approval["record_id"]) == (
        "GitHub", "issue", str(number))
    assert sorted(triples(approval)) == [("labels", ["bug", "p2"], ["bug", "p1"]),
                                         ("title", "Login fails", "Login fails on Safari")]
    proxy.decide(approval["id"], "approve")
    assert call.join().error is None
    assert fake.issue_record("acme", "app", number)["labels"] == ["bug", "p1"]


def test_comment_is_held_and_merge_is_a_destructive_action(
        proxy: ProxyProcess, fake: FakeGitHub, gh: Github) -> None:
    number = fake.seed_issue("acme", "app", title="Docs typo")
    issue = gh.get_repo("acme/app").get_issue(number)
    call, approval = held(proxy, lambda: issue.create_comment("Fixed in #12"))
    assert (approval["object_type"], approval["operation"]) == ("issue_comment", "create")
    assert approval["risk"]["level"] == "medium"  # a public comment
    proxy.decide(approval["id"], "approve")
    assert call.join().result.body == "Fixed in #12"

    pull = gh.get_repo("acme/app").get_pull(fake.seed_pull("acme", "app", title="Fix typo"))
    call, approval = held(proxy, lambda: pull.merge(merge_method="squash"))
    assert (approval["operation"], approval["action"]) == ("action", "merge")
    assert ("merged", False, True) in triples(approval)
    assert approval["risk"]["level"] == "high"
    proxy.decide(approval["id"], "reject", "wait for the release branch")
    assert isinstance(call.join().error, GithubException)
    assert call.error.status == 403


def test_file_update_shows_decoded_text_and_delete_carries_a_json_body(
        proxy: ProxyProcess, fake: FakeGitHub, gh: Github) -> None:
    sha = fake.seed_file("acme", "app", "docs/README.md", "Hello\n")
    repo = gh.get_repo("acme/app")
    call, approval = held(proxy, lambda: repo.update_file(
        "docs/README.md", "Say hi", "Hi there\n", sha))
    assert (approval["object_type"], approval["record_id"], approval["operation"]) == (
        "file", "docs/README.md", "update")
    assert triples(approval) == [("content", "Hello\n", "Hi there\n")]
    proxy.decide(approval["id"], "approve")
    new_sha = call.join().result["content"].sha
    assert fake.file_text("acme", "app", "docs/README.md") == "Hi there\n"

    call, approval = held(proxy, lambda: repo.delete_file("docs/README.md", "Remove", new_sha))
    assert approval["operation"] == "delete"
    assert ("content", "Hi there\n", None) in triples(approval)
    assert approval["request"]["body"]["sha"] == new_sha
    proxy.decide(approval["id"], "approve")
    assert call.join().error is None
    assert fake.file_text("acme", "app", "docs/README.md") is None


def test_graphql_query_passes_and_mutation_is_held_with_its_input(
        proxy: ProxyProcess, fake: FakeGitHub) -> None:
    number = fake.seed_issue("acme", "app", title="GraphQL target")
    with agent_client(proxy, Authorization="Bearer ghp_fake_token_123") as agent:
        query = agent.post("https://api.github.com/graphql", json={
            "query": "query($n: Int!) { repository(owner: \"acme\", name: \"app\") "
                     "{ issue(number: $n) { id title } } }", "variables": {"n": number}})
        node = query.json()["data"]["repository"]["issue"]
        assert node["title"] == "GraphQL target"
        assert not [a for a in proxy.approvals() if a["system"] == "GitHub"
                    and a["object_type"] == "repository"]
        call, approval = held(proxy, lambda: agent.post("https://api.github.com/graphql", json={
            "query": "mutation($input: UpdateIssueInput!) { updateIssue(input: $input) "
                     "{ issue { title } } }",
            "variables": {"input": {"id": node["id"], "title": "Renamed"}}}))
        # no GitHub GraphQL schema is shipped: the mutation is the action it is named, on the
        # id it names, its input shown in the (masked) request; nothing guessed from its name
        assert (approval["object_type"], approval["operation"], approval["action"],
                approval["record_id"]) == ("updateIssue", "action", "updateIssue", node["id"])
        assert approval["request"]["body"]["variables"]["input"]["title"] == "Renamed"
        assert approval["old_values"] == {
            "known": False, "reason": "no GraphQL schema is shipped for this API, so the record "
                                      "is not read"}
        proxy.decide(approval["id"], "approve")
        answer = call.join().result.json()
        assert answer["data"]["updateIssue"]["issue"]["title"] == "Renamed"


def test_revert_says_clearly_where_the_vendor_cannot_recreate(
        proxy: ProxyProcess, fake: FakeGitHub, gh: Github) -> None:
    sha = fake.seed_file("acme", "app", "docs/OLD.md", "old\n")
    repo = gh.get_repo("acme/app")
    call, approval = held(proxy, lambda: repo.delete_file("docs/OLD.md", "Remove", sha))
    proxy.decide(approval["id"], "approve")
    call.join()
    proxy.wait_for_status(approval["id"], "executed")
    refused = proxy.api("POST", f"/api/approvals/{approval['id']}/revert")
    assert refused.status_code == 422
    assert "a deleted file cannot be recreated through GitHub's API" in refused.json()["error"]
