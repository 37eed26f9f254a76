"""GraphQL APIs (Shopify Admin, Linear) through the real proxy: queries pass, mutations held."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, agent_client, held, triples

SHOPIFY = "https://acme.myshopify.com/admin/api/2024-10/graphql.json"
LINEAR = "https://api.linear.app/graphql"


def test_shopify_query_passes_and_product_update_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor]) -> None:
    fake = vendors["shopify"].fake
    product = fake.seed_product("Snowboard", status="ACTIVE")
    with agent_client(proxy, **{"X-Shopify-Access-Token": "shpat_fake_123"}) as agent:
        before = len(proxy.approvals())
        read = agent.post(SHOPIFY, json={"query": "query($id: ID!) { product(id: $id) "
                                                  "{ id title } }", "variables": {"id": product}})
        assert read.json()["data"]["product"]["title"] == "Snowboard"
        assert len(proxy.approvals()) == before
        mutation = ("mutation update($input: ProductInput!) { productUpdate(input: $input) "
                    "{ product { id title } userErrors { field message } } }")
        call, approval = held(proxy, lambda: agent.post(SHOPIFY, json={
            "query": mutation, "operationName": "update",
            "variables": {"input": {"id": product, "title": "Snowboard Pro"}}}))
        assert (approval["system"], approval["object_type"], approval["record_id"]) == (
            "Shopify", "productUpdate", product)
        assert ("title", None, "Snowboard Pro") in triples(approval)
        proxy.decide(approval["id"], "approve")
        answer = call.join().result.json()
        assert answer["data"]["productUpdate"]["product"]["title"] == "Snowboard Pro"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_linear_issue_update_is_held(proxy: ProxyProcess, vendors: dict[str, Vendor],
                                     decision: str) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Crash on start")
    with agent_client(proxy, Authorization="lin_api_fake_123") as agent:
        call, approval = held(proxy, lambda: agent.post(LINEAR, json={
            "query": "mutation($id: String!) { issueUpdate(id: $id, input: "
                     "{title: \"Crash on cold start\", priority: 1}) { success } }",
            "variables": {"id": issue}}))
        assert (approval["system"], approval["object_type"], approval["record_id"]) == (
            "Linear", "issueUpdate", issue)
        assert set(triples(approval)) == {("title", None, "Crash on cold start"),
                                          ("priority", None, 1)}
        proxy.decide(approval["id"], decision)
        response = call.join().result
        if decision == "approve":
            assert response.json()["data"]["issueUpdate"]["success"] is True
            assert fake.issues[issue]["title"] == "Crash on cold start"
        else:
            assert response.status_code == 403
            assert fake.issues[issue]["title"] == "Crash on start"
