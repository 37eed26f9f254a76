"""GraphQL APIs (Shopify Admin, Linear) through the real proxy: queries pass, mutations are held
with the object, operation and record the vendor's schema gives them, and the old values the
proxy reads with a query it generates, sent with the agent's own credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, held, triples
from tests.fakes.server import RequestLog

SHOPIFY = "https://acme.myshopify.com/admin/api/2024-10/graphql.json"
LINEAR = "https://api.linear.app/graphql"
SHOPIFY_TOKEN = {"X-Shopify-Access-Token": "shpat_fake_123"}
LINEAR_KEY = {"Authorization": "lin_api_fake_123"}


def documents(log: RequestLog, since: int = 0) -> list[tuple[str | None, str, Any]]:
    """(operationName, query, variables) of each GraphQL request the fake received."""
    found = []
    for seen in log.seen[since:]:
        body = json.loads(seen.body)
        found.append((body.get("operationName"), body["query"], body.get("variables")))
    return found


def proxy_reads(log: RequestLog, since: int = 0) -> list[tuple[str, Any]]:
    return [(query, variables) for name, query, variables in documents(log, since)
            if name == "HitlProxyRead"]


def mutations(log: RequestLog, since: int = 0) -> list[str]:
    return [query for _, query, _ in documents(log, since) if query.lstrip().startswith(
        "mutation")]


def test_shopify_query_passes_and_product_update_is_held_with_old_values(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["shopify"].fake
    product = fake.seed_product("Snowboard", status="ACTIVE", vendor="Acme")
    with agent_client(proxy, **SHOPIFY_TOKEN) as agent:
        before = len(proxy.approvals())
        read = agent.post(SHOPIFY, json={"query": "query($id: ID!) { product(id: $id) "
                                                  "{ id title } }", "variables": {"id": product}})
        assert read.json()["data"]["product"]["title"] == "Snowboard"
        assert len(proxy.approvals()) == before
        since = len(fake.log.seen)
        mutation = ("mutation update($input: ProductInput!) { productUpdate(input: $input) "
                    "{ product { id title } userErrors { field message } } }")
        call, approval = held(proxy, lambda: agent.post(SHOPIFY, json={
            "query": mutation, "operationName": "update",
            "variables": {"input": {"id": product, "title": "Snowboard Pro",
                                    "vendor": "Acme"}}}))
        assert (approval["system"], approval["object_type"], approval["operation"],
                approval["record_id"]) == ("Shopify", "Product", "update", product)
        assert approval["old_values"] == {"known": True, "reason": None}
        assert triples(approval) == [("title", "Snowboard", "Snowboard Pro")]  # vendor: same
        [(query, variables)] = proxy_reads(fake.log, since)
        assert "product(id: $id)" in query and variables == {"id": product}
        # the read went with the agent's own credentials; nothing was written yet
        assert fake.log.seen[since].headers["x-shopify-access-token"] == "shpat_fake_123"
        assert mutations(fake.log, since) == []
        proxy.decide(approval["id"], "approve")
        answer = call.join().result.json()
        assert answer["data"]["productUpdate"]["product"]["title"] == "Snowboard Pro"
        assert len(mutations(fake.log, since)) == 1  # executed once
        assert fake.product(product)["title"] == "Snowboard Pro"


def test_shopify_product_update_through_the_product_argument_reads_nested_fields(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["shopify"].fake
    product = fake.seed_product("Wax", seo={"title": "Wax | Acme", "description": None})
    with agent_client(proxy, **SHOPIFY_TOKEN) as agent:
        call, approval = held(proxy, lambda: agent.post(SHOPIFY, json={
            "query": f'mutation {{ renamed: productUpdate(product: {{id: "{product}", '
                     'status: DRAFT, seo: {title: "Wax for boards"}}) { product { id } } }'}))
        assert (approval["object_type"], approval["operation"], approval["record_id"]) == (
            "Product", "update", product)
        assert set(triples(approval)) == {("status", "ACTIVE", "DRAFT"),
                                          ("seo.title", "Wax | Acme", "Wax for boards")}
        proxy.decide(approval["id"], "reject")
        assert call.join().result.status_code == 403
        assert fake.product(product)["status"] == "ACTIVE"


def test_shopify_product_delete_shows_what_is_lost(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["shopify"].fake
    product = fake.seed_product("Old board", vendor="Burton", tags=["winter"])
    with agent_client(proxy, **SHOPIFY_TOKEN) as agent:
        call, approval = held(proxy, lambda: agent.post(SHOPIFY, json={
            "query": "mutation($id: ID!) { productDelete(input: {id: $id}) "
                     "{ deletedProductId } }", "variables": {"id": product}}))
        assert (approval["object_type"], approval["operation"], approval["record_id"]) == (
            "Product", "delete", product)
        assert approval["old_values"]["known"] is True
        shown = {field: old for field, old, new in triples(approval) if new is None}
        assert shown["title"] == "Old board" and shown["vendor"] == "Burton"
        assert shown["tags"] == ["winter"]
        proxy.decide(approval["id"], "approve")
        assert call.join().result.json()["data"]["productDelete"]["deletedProductId"] == product
        assert fake.product(product) is None


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_linear_issue_update_is_held_with_old_values(proxy: ProxyProcess,
                                                     vendors: dict[str, Vendor],
                                                     decision: str) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Crash on start", state="Todo")
    done = fake.state_id("Done")
    todo = fake.state_id("Todo")
    with agent_client(proxy, **LINEAR_KEY) as agent:
        since = len(fake.log.seen)
        call, approval = held(proxy, lambda: agent.post(LINEAR, json={
            "query": "mutation($id: String!, $input: IssueUpdateInput!) { issueUpdate(id: $id, "
                     "input: $input) { success } }",
            "variables": {"id": issue, "input": {"title": "Crash on cold start", "priority": 1,
                                                 "stateId": done}}}))
        assert (approval["system"], approval["object_type"], approval["operation"],
                approval["record_id"]) == ("Linear", "Issue", "update", issue)
        assert approval["old_values"] == {"known": True, "reason": None}
        assert set(triples(approval)) == {("title", "Crash on start", "Crash on cold start"),
                                          ("priority", 0, 1), ("stateId", todo, done)}
        [(query, _)] = proxy_reads(fake.log, since)
        assert "issue(id: $id)" in query and "state { id }" in query
        assert fake.log.seen[since].headers["authorization"] == "lin_api_fake_123"
        proxy.decide(approval["id"], decision)
        response = call.join().result
        if decision == "approve":
            assert response.json()["data"]["issueUpdate"]["success"] is True
            assert fake.issues[issue]["title"] == "Crash on cold start"
            assert fake.issues[issue]["stateId"] == done
            assert len(mutations(fake.log, since)) == 1
        else:
            assert response.status_code == 403
            assert fake.issues[issue]["title"] == "Crash on start"
            assert mutations(fake.log, since) == []


def test_linear_create_fetches_nothing_and_actions_are_named_by_the_schema(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Stale")
    bug = fake.label_id("Bug")
    with agent_client(proxy, **LINEAR_KEY) as agent:
        since = len(fake.log.seen)
        call, approval = held(proxy, lambda: agent.post(LINEAR, json={
            "query": f'mutation {{ issueCreate(input: {{teamId: "{fake.team_id}", '
                     'title: "New"}) { success } }'}))
        assert (approval["object_type"], approval["operation"], approval["record_id"]) == (
            "Issue", "create", None)
        assert proxy_reads(fake.log, since) == []
        proxy.decide(approval["id"], "reject")
        call.join()
        for mutation, action in ((f'issueArchive(id: "{issue}")', "issueArchive"),
                                 (f'issueUnarchive(id: "{issue}")', "issueUnarchive"),
                                 (f'issueAddLabel(id: "{issue}", labelId: "{bug}")',
                                  "issueAddLabel")):
            call, approval = held(proxy, lambda m=mutation: agent.post(LINEAR, json={
                "query": f"mutation {{ {m} {{ success }} }}"}))
            assert (approval["object_type"], approval["operation"], approval["action"],
                    approval["record_id"]) == ("Issue", "action", action, issue)
            assert approval["old_values"]["known"] is True  # the issue was read: it exists
            proxy.decide(approval["id"], "approve")
            assert call.join().result.json()["data"]
        assert fake.issues[issue]["labelIds"] == [bug]


def test_a_record_the_vendor_cannot_find_leaves_old_values_unknown(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["linear"].fake
    missing = "00000000-0000-4000-8000-000000000000"
    with agent_client(proxy, **LINEAR_KEY) as agent:
        call, approval = held(proxy, lambda: agent.post(LINEAR, json={
            "query": f'mutation {{ issueUpdate(id: "{missing}", input: {{title: "x"}}) '
                     "{ success } }"}))
        assert (approval["object_type"], approval["record_id"]) == ("Issue", missing)
        assert approval["old_values"] == {
            "known": False,
            "reason": "the upstream answered the generated GraphQL read with 1 error "
                      "(INPUT_ERROR)"}
        assert triples(approval) == [("title", None, "x")]
        proxy.decide(approval["id"], "reject")
        call.join()
    assert missing not in fake.issues
