"""Self-test of the fake Shopify Admin GraphQL and Linear GraphQL APIs."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme

from tests.fakes.graphql_apis import FakeLinear, FakeShopify
from tests.fakes.server import HTTPSFake

SHOPIFY_PATH = "/admin/api/2024-10/graphql.json"
SHOPIFY_AUTH = {"X-Shopify-Access-Token": "shpat_fake_123"}
LINEAR_AUTH = {"Authorization": "lin_api_fake_123"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[FakeShopify, FakeLinear, httpx.Client, httpx.Client]]:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    context = ssl.create_default_context(cafile=str(d / "ca.pem"))
    shopify, linear = FakeShopify(), FakeLinear()
    with HTTPSFake(shopify.app, d / "server.pem", d / "server.pem") as s_server, \
            HTTPSFake(linear.app, d / "server.pem", d / "server.pem") as l_server, \
            httpx.Client(base_url=f"https://127.0.0.1:{s_server.port}", verify=context,
                         headers=SHOPIFY_AUTH) as s_client, \
            httpx.Client(base_url=f"https://127.0.0.1:{l_server.port}", verify=context,
                         headers=LINEAR_AUTH) as l_client:
        yield shopify, linear, s_client, l_client


def _shop(client: httpx.Client, query: str, variables: dict[str, Any] | None = None
          ) -> dict[str, Any]:
    r = client.post(SHOPIFY_PATH, json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    return r.json()


def _lin(client: httpx.Client, query: str, variables: dict[str, Any] | None = None
         ) -> httpx.Response:
    return client.post("/graphql", json={"query": query, "variables": variables})


# ------------------------------------------------------------------------------- Shopify

def test_shopify_auth_and_unknown_paths(served: Any) -> None:
    shopify, _, client, _ = served
    r = client.post(SHOPIFY_PATH, json={"query": "{ products(first: 1) { nodes { id } } }"},
                    headers={"X-Shopify-Access-Token": "shpat_wrong"})
    assert r.status_code == 401
    assert r.json() == {"errors": "[API] Invalid API key or access token (unrecognized login "
                                  "or wrong password)"}
    r = client.get("/admin/api/2024-10/products.json")
    assert r.status_code == 404 and r.json() == {"errors": "Not Found"}
    assert shopify.log.of("GET", "/admin/api/2024-10/products.json")
    r = client.post(SHOPIFY_PATH, json={"variables": {}})
    assert r.status_code == 400
    assert r.json() == {"errors": {"query": "Required parameter missing or invalid"}}


def test_shopify_queries(served: Any) -> None:
    shopify, _, client, _ = served
    gid = shopify.seed_product("Red Shirt", vendor="Acme", tags=["summer"], status="DRAFT")
    shopify.seed_product("Blue Shirt")
    out = _shop(client, "query($id: ID!) { product(id: $id) { id title status vendor tags } }",
                {"id": gid})
    assert out["data"]["product"] == {"id": gid, "title": "Red Shirt", "status": "DRAFT",
                                      "vendor": "Acme", "tags": ["summer"]}
    assert out["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000.0
    out = _shop(client, "{ products(first: 1) { edges { cursor node { title } } "
                        "pageInfo { hasNextPage endCursor } } }")
    page = out["data"]["products"]
    assert page["edges"][0]["node"]["title"] == "Red Shirt" and page["pageInfo"]["hasNextPage"]
    out = _shop(client, "query($after: String) { products(first: 5, after: $after) "
                        "{ nodes { title } } }", {"after": page["pageInfo"]["endCursor"]})
    assert [p["title"] for p in out["data"]["products"]["nodes"]] == ["Blue Shirt"]
    missing = _shop(client, '{ product(id: "gid://shopify/Product/1") { id } }')
    assert missing["data"] == {"product": None} and "errors" not in missing
    bad = _shop(client, '{ product(id: "42") { id } }')
    assert bad["errors"][0]["message"] == "Invalid global id '42'"
    assert bad["errors"][0]["path"] == ["product"]
    unknown = _shop(client, "{ products(first: 1) { nodes { colour } } }")
    assert unknown["errors"][0]["message"] == "Field 'colour' doesn't exist on type 'Product'"
    assert unknown["errors"][0]["extensions"]["code"] == "undefinedField"
    assert "data" not in unknown
    parse = _shop(client, "{ products(first: ")
    assert parse["errors"][0]["locations"]


def test_shopify_mutations(served: Any) -> None:
    shopify, _, client, _ = served
    out = _shop(client, """mutation($product: ProductCreateInput!) {
        productCreate(product: $product) { product { id title handle status } userErrors {
        field message } } }""", {"product": {"title": "Green Hat", "tags": ["hat"]}})
    created = out["data"]["productCreate"]
    assert created["userErrors"] == []
    gid = created["product"]["id"]
    assert gid.startswith("gid://shopify/Product/")
    assert created["product"]["handle"] == "green-hat"
    assert created["product"]["status"] == "ACTIVE"

    # the 2024-10 `product:` argument and the deprecated `input:` argument both work
    update = """mutation($input: ProductUpdateInput!) { productUpdate(product: $input) {
        product { id title status tags } userErrors { field message } } }"""
    out = _shop(client, update, {"input": {"id": gid, "title": "Lime Hat", "status": "ARCHIVED"}})
    assert out["data"]["productUpdate"] == {
        "product": {"id": gid, "title": "Lime Hat", "status": "ARCHIVED", "tags": ["hat"]},
        "userErrors": []}
    legacy = """mutation($input: ProductInput!) { productUpdate(input: $input) {
        product { vendor } userErrors { field message } } }"""
    out = _shop(client, legacy, {"input": {"id": gid, "vendor": "Hatter"}})
    assert out["data"]["productUpdate"]["product"] == {"vendor": "Hatter"}
    assert shopify.products[gid]["title"] == "Lime Hat"
    assert shopify.products[gid]["vendor"] == "Hatter"

    out = _shop(client, update, {"input": {"id": "gid://shopify/Product/9", "title": "x"}})
    assert out["data"]["productUpdate"] == {
        "product": None, "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}
    out = _shop(client, update, {"input": {"id": gid, "title": " "}})
    assert out["data"]["productUpdate"]["userErrors"] == [
        {"field": ["title"], "message": "Title can't be blank"}]

    delete = """mutation($id: ID!) { productDelete(input: {id: $id}) { deletedProductId
        userErrors { field message } } }"""
    out = _shop(client, delete, {"id": gid})
    assert out["data"]["productDelete"] == {"deletedProductId": gid, "userErrors": []}
    assert gid not in shopify.products and shopify.deleted[-1] == gid
    out = _shop(client, delete, {"id": gid})
    assert out["data"]["productDelete"]["deletedProductId"] is None
    assert out["data"]["productDelete"]["userErrors"][0]["field"] == ["id"]


# ------------------------------------------------------------------------------- Linear

ISSUE_FIELDS = """id identifier title description priority state { id name }
    assignee { id name } labels { nodes { id name } }"""


def test_linear_auth_and_errors(served: Any) -> None:
    _, linear, _, client = served
    query = "{ viewer { id name } }"
    r = client.post("/graphql", json={"query": query}, headers={"Authorization": "wrong"})
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["message"] == "Authentication required, not authenticated"
    assert error["extensions"]["type"] == "authentication error"
    assert error["extensions"]["code"] == "AUTHENTICATION_ERROR"
    assert error["extensions"]["userPresentableMessage"]
    r = client.post("/graphql", json={"query": query},
                    headers={"Authorization": "Bearer lin_api_fake_123"})
    assert r.status_code == 400  # personal keys are sent without "Bearer"
    r = client.post("/graphql", json={"query": query},
                    headers={"Authorization": "Bearer lin_oauth_fake_123"})
    assert r.status_code == 200 and r.json()["data"]["viewer"]["name"] == "Ada Lovelace"
    r = _lin(client, "{ issue(id: \"ENG-999\") { id } }")
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None
    assert body["errors"][0]["message"] == "Entity not found: Issue"
    assert body["errors"][0]["path"] == ["issue"]
    assert body["errors"][0]["extensions"]["code"] == "INPUT_ERROR"
    assert body["errors"][0]["extensions"]["userPresentableMessage"] == \
        "Could not find referenced Issue."
    r = _lin(client, "{ issue(id: \"ENG-1\") { nope } }")
    assert r.status_code == 400
    assert r.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert client.get("/issues").status_code == 404
    assert linear.log.of("GET", "/issues")


def test_linear_issue_query_and_update(served: Any) -> None:
    _, linear, _, client = served
    issue_id = linear.seed_issue("Broken login", description="500 on submit", state="Todo",
                                 assignee="Ada Lovelace", labels=["Bug"], priority=2.0)
    identifier = linear.issues[issue_id]["identifier"]
    for ref in (issue_id, identifier):
        r = _lin(client, "query($id: String!) { issue(id: $id) { " + ISSUE_FIELDS + " } }",
                 {"id": ref})
        issue = r.json()["data"]["issue"]
        assert issue["id"] == issue_id and issue["title"] == "Broken login"
        assert issue["state"]["name"] == "Todo" and issue["assignee"]["name"] == "Ada Lovelace"
        assert issue["labels"]["nodes"][0]["name"] == "Bug" and issue["priority"] == 2

    done, grace = linear.state_id("Done"), linear.user_id("Grace Hopper")
    feature = linear.label_id("Feature")
    r = _lin(client, """mutation($id: String!, $input: IssueUpdateInput!) {
        issueUpdate(id: $id, input: $input) { success issue { """ + ISSUE_FIELDS + " } } }",
             {"id": identifier, "input": {"title": "Login fixed", "stateId": done,
                                          "assigneeId": grace, "addedLabelIds": [feature],
                                          "priority": 1}})
    payload = r.json()["data"]["issueUpdate"]
    assert payload["success"] is True
    assert payload["issue"]["title"] == "Login fixed"
    assert payload["issue"]["state"] == {"id": done, "name": "Done"}
    assert payload["issue"]["assignee"]["name"] == "Grace Hopper"
    assert [x["name"] for x in payload["issue"]["labels"]["nodes"]] == ["Bug", "Feature"]
    record = linear.issues[issue_id]
    assert record["stateId"] == done and record["completedAt"] and record["priority"] == 1.0

    r = _lin(client, 'mutation { issueUpdate(id: "' + issue_id + '", input: {priority: 9}) '
                     "{ success } }")
    error = r.json()["errors"][0]
    assert error["message"] == "Argument Validation Error"
    assert error["extensions"]["type"] == "invalid input"
    assert r.json()["data"] is None
    r = _lin(client, 'mutation { issueUpdate(id: "' + issue_id + '", input: {stateId: "x"}) '
                     "{ success } }")
    assert r.json()["errors"][0]["extensions"]["userPresentableMessage"] == \
        "stateId must be a UUID."


def test_linear_create_and_delete(served: Any) -> None:
    _, linear, _, client = served
    r = _lin(client, """mutation($input: IssueCreateInput!) { issueCreate(input: $input) {
        success issue { id identifier title state { name } labels { nodes { name } } } } }""",
             {"input": {"teamId": linear.team_id, "title": "New thing",
                        "labelIds": [linear.label_id("Feature")]}})
    payload = r.json()["data"]["issueCreate"]
    assert payload["success"] is True
    issue = payload["issue"]
    assert issue["identifier"].startswith("ENG-") and issue["state"]["name"] == "Backlog"
    assert issue["labels"]["nodes"] == [{"name": "Feature"}]
    assert linear.issues[issue["id"]]["title"] == "New thing"
    r = _lin(client, "mutation { issueCreate(input: {title: \"x\"}) { success } }")
    assert r.status_code == 400  # teamId is required by the schema

    r = _lin(client, "mutation($id: String!) { issueDelete(id: $id) { success } }",
             {"id": issue["id"]})
    assert r.json()["data"]["issueDelete"] == {"success": True}
    assert linear.issues[issue["id"]]["trashed"] is True
    r = _lin(client, "mutation { issueDelete(id: \"ENG-404\") { success } }")
    assert r.json()["errors"][0]["message"] == "Entity not found: Issue"
