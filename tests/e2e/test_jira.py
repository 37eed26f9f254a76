"""Jira Cloud through the real proxy: fields and update operations, transitions, comments."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, held, triples
from tests.fakes.jira import FakeJira

BASE = "https://acme.atlassian.net/rest/api/3"


@pytest.fixture
def jira(vendors: dict[str, Vendor]) -> FakeJira:
    fake = vendors["jira"].fake
    fake.log.clear()
    return fake


@pytest.fixture
def agent(proxy: ProxyProcess) -> Iterator[httpx.Client]:
    with agent_client(proxy) as client:
        client.auth = ("agent@acme.test", "jira-api-token-123")
        yield client


def test_create_issue(proxy: ProxyProcess, jira: FakeJira, agent: httpx.Client) -> None:
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/issue", json={"fields": {
        "project": {"key": "OPS"}, "summary": "Rotate the API keys",
        "issuetype": {"name": "Task"}}}))
    assert (approval["system"], approval["object_type"], approval["operation"]) == (
        "Jira", "issue", "create")
    assert ("summary", None, "Rotate the API keys") in triples(approval)
    proxy.decide(approval["id"], "approve")
    response = call.join().result
    assert response.status_code == 201
    assert jira.issues[response.json()["key"]]["fields"]["summary"] == "Rotate the API keys"


def test_edit_with_fields_and_label_operations(
        proxy: ProxyProcess, jira: FakeJira, agent: httpx.Client) -> None:
    key = jira.seed_issue(summary="Printer broken", labels=["hardware", "urgent"],
                          priority="Medium")
    call, approval = held(proxy, lambda: agent.put(
        f"{BASE}/issue/{key}?notifyUsers=false",
        json={"fields": {"summary": "Printer broken on floor 3", "priority": {"name": "High"}},
              "update": {"labels": [{"add": "floor-3"}, {"remove": "urgent"}]}}))
    assert approval["record_id"] == key
    changes = approval["changes"]
    assert {(c["field"], c["old"], c["new"], c["kind"]) for c in changes} == {
        ("summary", "Printer broken", "Printer broken on floor 3", "set"),
        ("priority.name", "Medium", "High", "set"),
        ("labels", None, "floor-3", "add"),
        ("labels", "urgent", None, "remove"),
    }
    assert any("notifyUsers" in reason for reason in approval["risk"]["reasons"])
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 204
    assert sorted(jira.issues[key]["fields"]["labels"]) == ["floor-3", "hardware"]


def test_transition_shows_the_current_status_as_old_value(
        proxy: ProxyProcess, jira: FakeJira, agent: httpx.Client) -> None:
    key = jira.seed_issue(summary="Ship it", status="In Progress")
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/issue/{key}/transitions",
                                                    json={"transition": {"id": "31"}}))
    assert (approval["operation"], approval["action"]) == ("action", "transition")
    assert triples(approval) == [("status.name", "In Progress", "transition 31")]
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 204
    assert jira.issues[key]["fields"]["status"] == "Done"


def test_comment_create_edit_delete_and_issue_delete(
        proxy: ProxyProcess, jira: FakeJira, agent: httpx.Client) -> None:
    key = jira.seed_issue(summary="Noisy alert")
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/issue/{key}/comment", json={
        "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "Silenced for a week"}]}]}}))
    assert (approval["object_type"], approval["operation"]) == ("comment", "create")
    proxy.decide(approval["id"], "approve")
    comment_id = call.join().result.json()["id"]

    call, approval = held(proxy, lambda: agent.put(
        f"{BASE}/issue/{key}/comment/{comment_id}", json={"body": {
            "type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "Silenced for a day"}]}]}}))
    assert approval["record_id"] == comment_id
    assert any(field.startswith("body.content") and old is not None
               for field, old, _ in triples(approval))
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 200

    call, approval = held(proxy, lambda: agent.delete(f"{BASE}/issue/{key}"))
    assert (approval["operation"], approval["risk"]["level"]) == ("delete", "high")
    assert ("summary", "Noisy alert", None) in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result.status_code == 204
    assert key not in jira.issues


@pytest.mark.parametrize("path", ["/search", "/search/jql"])
def test_search_sent_as_post_is_a_read(
        proxy: ProxyProcess, jira: FakeJira, agent: httpx.Client, path: str) -> None:
    key = jira.seed_issue(summary="Findable")
    before = len(proxy.approvals())
    response = agent.post(f"{BASE}{path}", json={"jql": f"key = {key}", "fields": ["summary"]})
    assert response.status_code == 200
    assert response.json()["issues"][0]["key"] == key
    assert len(proxy.approvals()) == before


def test_bulk_create_is_split_per_issue(proxy: ProxyProcess, jira: FakeJira,
                                        agent: httpx.Client) -> None:
    call, approval = held(proxy, lambda: agent.post(f"{BASE}/issue/bulk", json={
        "issueUpdates": [
            {"fields": {"project": {"key": "OPS"}, "summary": "First",
                        "issuetype": {"name": "Task"}}},
            {"fields": {"project": {"key": "OPS"}, "summary": "Second",
                        "issuetype": {"name": "Task"}}}]}))
    assert [r["operation"] for r in approval["records"]] == ["create", "create"]
    assert [new for field, _, new in triples(approval) if field == "summary"] == [
        "First", "Second"]
    proxy.decide(approval["id"], "reject", "one at a time, please")
    assert call.join().result.status_code == 403
    assert jira.log.of("POST", "/rest/api/3/issue/bulk") == []
