"""Reads that carry writes: a request is a read only when every way a server could read it is.

Rule, tried through the real `hitl-proxy run` against the fake vendors:
- GraphQL: every document anywhere in the request (the body, each item of a batched body, the
  URL's `query` parameter, on POST and on GET) must hold only queries; a mutation, a
  subscription or a document that does not parse anywhere makes the request a write.
- JSON that servers read differently (a repeated key at any depth, NaN or Infinity) is never a
  read, and is held with the problem shown rather than diffed as if the last key won.
- Subrequests (Salesforce /composite) are reads only for the exact method tokens GET, HEAD or
  OPTIONS to a canonical url; " PATCH", "PATCH\\u0000", MERGE or a method that is not a string
  are held.
- A path with more than one reading (dot segments, `%2e`, `%2F`, `%5C`, `;x`, `//`) matches no
  connector route, so a read route reached through one is held as an unrecognised write.
Each test checks that an approval is pending and that the fake upstream saw no write (the
proxy's own read of the record, a GraphQL query it generates, is the only request it sends).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from connectors_schemas import parse_graphql
from connectors_schemas.graphql_schema import READ_NAME
from tests.e2e.conftest import Vendor
from tests.e2e.harness import Background, ProxyProcess, agent_client, held
from tests.fakes.server import RequestLog, Seen

LINEAR = "https://api.linear.app/graphql"
SHOPIFY = "https://acme.myshopify.com/admin/api/2024-10/graphql.json"
SF = "https://acme.my.salesforce.com"
DATA = "/services/data/v59.0"
SESSION = "00Dxx0000001gPL!AQ4AQFakeSession"
AGENTS = {"linear": {"Authorization": "lin_api_fake_123"},
          "shopify": {"X-Shopify-Access-Token": "shpat_fake_123"},
          "salesforce": {"Authorization": f"Bearer {SESSION}"},
          "hubspot": {"Authorization": "Bearer pat-na1-fake-token"}}
WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def agents(proxy: ProxyProcess, vendors: dict[str, Vendor]) -> Iterator[dict[str, httpx.Client]]:
    """One client per vendor, each fake's request log emptied first."""
    for name in AGENTS:
        vendors[name].fake.log.clear()
    clients = {name: agent_client(proxy, **headers) for name, headers in AGENTS.items()}
    yield clients
    for client in clients.values():
        client.close()


def held_then_rejected(proxy: ProxyProcess, send: Callable[[], httpx.Response]
                       ) -> dict[str, Any]:
    """The approval the request is held as; rejected so the agent gets its 403 and nothing
    is ever sent."""
    call, approval = held(proxy, send)
    proxy.decide(approval["id"], "reject", note="a read that carries a write")
    assert call.join().result.status_code == 403
    return approval


def _proxy_read(seen: Seen) -> bool:
    """The proxy's generated read of the record: a POST holding nothing but a query."""
    try:
        body = json.loads(seen.body)
    except ValueError:
        return False
    return (seen.method == "POST" and not seen.query and isinstance(body, dict)
            and body.get("operationName") == READ_NAME and parse_graphql(body).read)


def reached(log: RequestLog) -> list[Seen]:
    """What reached the upstream besides the proxy's own reads of the record."""
    return [seen for seen in log.seen if not _proxy_read(seen)]


def writes_seen(log: RequestLog) -> list[tuple[str, str, str]]:
    return [(seen.method, seen.path, seen.query) for seen in reached(log)
            if seen.method in WRITES]


def linear_mutation(issue: str, title: str = "Owned") -> str:
    return f'mutation {{ issueUpdate(id: "{issue}", input: {{title: "{title}"}}) {{ success }} }}'


# -- GraphQL --------------------------------------------------------------------------------------

def test_post_with_a_query_in_the_body_and_a_mutation_in_the_url_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Crash on start")
    approval = held_then_rejected(proxy, lambda: agents["linear"].post(
        f"{LINEAR}?query={quote(linear_mutation(issue))}",
        json={"query": "{ viewer { id } }"}))
    assert (approval["system"], approval["object_type"], approval["record_id"]) == (
        "Linear", "Issue", issue)
    assert "different GraphQL documents" in approval["request"]["problem"]
    assert writes_seen(fake.log) == []
    assert fake.issues[issue]["title"] == "Crash on start"


def test_shopify_post_with_a_url_mutation_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    fake = vendors["shopify"].fake
    product = fake.seed_product("Snowboard")
    mutation = (f'mutation {{ productDelete(input: {{id: "{product}"}}) '
                "{ deletedProductId } }")
    approval = held_then_rejected(proxy, lambda: agents["shopify"].post(
        f"{SHOPIFY}?query={quote(mutation)}", json={"query": "{ shop { name } }"}))
    assert (approval["object_type"], approval["operation"]) == ("Product", "delete")
    assert writes_seen(fake.log) == []
    assert fake.product(product) is not None


def test_batched_body_is_a_read_only_when_every_operation_is_a_query(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Batch me")
    approval = held_then_rejected(proxy, lambda: agents["linear"].post(LINEAR, json=[
        {"query": "{ viewer { id } }"}, {"query": linear_mutation(issue)}]))
    assert (approval["object_type"], approval["record_id"]) == ("Issue", issue)
    assert writes_seen(fake.log) == []
    # Every item a query: it passes (the fake answers that it does not take batches).
    before = len(proxy.approvals())
    agents["linear"].post(LINEAR, json=[{"query": "{ viewer { id } }"},
                                        {"query": "{ viewer { name } }"}])
    assert len(proxy.approvals()) == before
    assert [seen.method for seen in reached(fake.log)] == ["POST"]
    assert fake.issues[issue]["title"] == "Batch me"


def test_get_with_a_mutation_in_the_url_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    """Needs the read path to ask `graphql_in_query` (proxy_addon/hold.py)."""
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Read me only")
    approval = held_then_rejected(proxy, lambda: agents["linear"].get(
        LINEAR, params={"query": linear_mutation(issue)}))
    assert (approval["system"], approval["method"], approval["object_type"],
            approval["record_id"]) == ("Linear", "GET", "Issue", issue)
    assert reached(fake.log) == []
    assert fake.issues[issue]["title"] == "Read me only"


# -- JSON read two ways -------------------------------------------------------------------------

@pytest.mark.parametrize(("vendor", "url", "text", "key"), [
    # A first-wins parser runs the mutation; a last-wins one (ours, before) saw a query.
    ("linear", LINEAR, '{{"query": {mutation}, "query": "{{ viewer {{ id }} }}"}}', "query"),
    ("hubspot", "https://api.hubapi.com/crm/v3/objects/contacts/search",
     '{{"filterGroups": [], "limit": 1, "limit": 2}}', "limit"),
])
def test_a_body_a_connector_reads_as_a_query_with_a_repeated_key_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        vendor: str, url: str, text: str, key: str) -> None:
    issue = vendors["linear"].fake.seed_issue("Keys")
    content = text.format(mutation=json.dumps(linear_mutation(issue))).encode()
    approval = held_then_rejected(proxy, lambda: agents[vendor].post(
        url, content=content, headers={"Content-Type": "application/json"}))
    assert approval["request"]["problem"] == f"the JSON body repeats the key {key!r}"
    assert vendors[vendor].fake.log.seen == []
    assert vendors["linear"].fake.issues[issue]["title"] == "Keys"


# -- Salesforce composite -----------------------------------------------------------------------

def composite(account: str, method: Any) -> dict[str, Any]:
    return {"compositeRequest": [
        {"method": "GET", "url": f"{DATA}/sobjects/Account/{account}", "referenceId": "look"},
        {"method": method, "url": f"{DATA}/sobjects/Account/{account}", "referenceId": "edit",
         "body": {"Name": "Owned"}}]}


@pytest.mark.parametrize("method", [" PATCH", "PATCH\u0000", "MERGE", ["PATCH"]])
def test_composite_subrequest_methods_other_than_exactly_get_are_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        method: Any) -> None:
    fake = vendors["salesforce"].fake
    account = fake.seed_account(Name="Gamma")
    approval = held_then_rejected(proxy, lambda: agents["salesforce"].post(
        f"{SF}{DATA}/composite", json=composite(account, method)))
    assert approval["system"] == "Salesforce"
    if isinstance(method, str) and method.strip("\u0000 ") == "PATCH":
        assert [(r["object_type"], r["record_id"]) for r in approval["records"]] == [
            ("Account", account)]
    else:
        assert "compositeRequest[1]" in approval["request"]["problem"]
    assert writes_seen(fake.log) == []
    assert fake.get(account)["Name"] == "Gamma"


def test_composite_with_a_repeated_composite_request_key_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    fake = vendors["salesforce"].fake
    account = fake.seed_account(Name="Delta")
    writes = json.dumps(composite(account, "PATCH")["compositeRequest"][1:])
    reads = json.dumps(composite(account, "PATCH")["compositeRequest"][:1])
    content = f'{{"compositeRequest": {writes}, "compositeRequest": {reads}}}'.encode()
    approval = held_then_rejected(proxy, lambda: agents["salesforce"].post(
        f"{SF}{DATA}/composite", content=content, headers={"Content-Type": "application/json"}))
    assert approval["request"]["problem"] == "the JSON body repeats the key 'compositeRequest'"
    assert writes_seen(fake.log) == []
    assert fake.get(account)["Name"] == "Delta"


# -- Paths with more than one reading -----------------------------------------------------------

@pytest.mark.parametrize("tail", ["%2e", "%2E%2E", ";x", "Account%2F..", "Account%5C..",
                                  "/Account"])
def test_a_read_route_reached_through_a_non_canonical_path_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        tail: str) -> None:
    """POST /composite/sobjects/{type} reads; once a server removes the dot segment that
    `/composite/sobjects/%2e` decodes to, it is the collection create."""
    fake = vendors["salesforce"].fake
    before = len(fake.of_type("Account"))
    approval = held_then_rejected(proxy, lambda: agents["salesforce"].post(
        f"{SF}{DATA}/composite/sobjects/{tail}", json={
            "allOrNone": False, "records": [{"attributes": {"type": "Account"}, "Name": "X"}]}))
    assert (approval["system"], approval["records"]) == ("Salesforce", [])
    assert "is not canonical" in approval["request"]["problem"]
    assert fake.log.seen == []
    assert len(fake.of_type("Account")) == before


# -- Names given twice or in another case, persisted ids, letter case, bodies of reads -----------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(("first", "problem"), [
    ("query", "the form body repeats the key 'query'"),
    ("Query", "the body has both 'Query' and 'query'; servers differ on which one they read"),
])
def test_a_form_body_that_gives_query_twice_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        first: str, problem: str) -> None:
    """A first-wins server (Java, Go, URLSearchParams) runs the mutation; we read the last."""
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Twice")
    content = f"{first}={quote(linear_mutation(issue))}&query=%7Ba%7D".encode()
    approval = held_then_rejected(proxy, lambda: agents["linear"].post(
        LINEAR, content=content, headers=FORM))
    assert approval["request"]["problem"] == problem
    assert fake.log.seen == []
    assert fake.issues[issue]["title"] == "Twice"


def test_a_body_query_in_another_case_is_the_document_the_reviewer_sees(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Case")
    approval = held_then_rejected(proxy, lambda: agents["linear"].post(
        f"{LINEAR}?query=%7Ba%7D", json={"Query": linear_mutation(issue)}))
    assert (approval["object_type"], approval["record_id"]) == ("Issue", issue)
    assert reached(fake.log) == []
    assert fake.issues[issue]["title"] == "Case"


@pytest.mark.parametrize("extra", [{"id": "stored-1"}, {"documentId": "d1"},
                                   {"extensions": {"persistedQuery": {"version": 1,
                                                                      "sha256Hash": "ab"}}}])
def test_a_persisted_query_id_beside_a_document_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        extra: dict[str, Any]) -> None:
    """A server that prefers its stored document runs what the proxy never saw."""
    fake = vendors["linear"].fake
    approval = held_then_rejected(proxy, lambda: agents["linear"].post(
        LINEAR, json={"query": "{ viewer { id } }"} | extra))
    assert "persisted GraphQL query" in approval["request"]["problem"]
    assert fake.log.seen == []


@pytest.mark.parametrize("key", ["HttpHeaders", "HTTPHEADERS"])
def test_a_composite_get_with_a_method_override_header_in_any_case_is_held(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        key: str) -> None:
    fake = vendors["salesforce"].fake
    account = fake.seed_account(Name="Epsilon")
    body = {"compositeRequest": [
        {"method": "GET", "url": f"{DATA}/sobjects/Account/{account}", "referenceId": "look",
         key: {"X-HTTP-Method-Override": "PATCH"}}]}
    approval = held_then_rejected(proxy, lambda: agents["salesforce"].post(
        f"{SF}{DATA}/composite", json=body))
    assert "compositeRequest[0]: overrides its method" in approval["request"]["problem"]
    assert fake.log.seen == []
    assert fake.get(account)["Name"] == "Epsilon"


@pytest.mark.parametrize("path", ["/GraphQL", "/GRAPHQL"])
def test_a_get_with_a_body_to_the_graphql_endpoint_in_another_case_does_not_pass(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client],
        path: str) -> None:
    """Express routes without regard to case, so `/GraphQL` runs the body's document."""
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Upper")
    approval = held_then_rejected(proxy, lambda: agents["linear"].request(
        "GET", f"https://api.linear.app{path}",
        content=json.dumps({"query": linear_mutation(issue)}).encode(),
        headers={"Content-Type": "application/json"}))
    assert (approval["system"], approval["method"]) == ("Linear", "GET")
    assert fake.log.seen == []
    assert fake.issues[issue]["title"] == "Upper"


def held_or_refused(proxy: ProxyProcess, send: Callable[[], httpx.Response]) -> httpx.Response:
    """The answer to a request that must not pass: refused at once, or held and rejected."""
    before = {approval["id"] for approval in proxy.approvals("pending")}
    agent = Background(send)
    deadline = time.monotonic() + 15
    while agent.running and time.monotonic() < deadline:
        if new := [a for a in proxy.approvals("pending") if a["id"] not in before]:
            proxy.decide(new[0]["id"], "reject", note="a read that carries a write")
            break
        time.sleep(0.02)
    result: httpx.Response = agent.join().result
    return result


def test_a_get_whose_body_carries_a_mutation_does_not_pass_to_any_path(
        proxy: ProxyProcess, vendors: dict[str, Vendor], agents: dict[str, httpx.Client]) -> None:
    """No connector knows `/other` as GraphQL, but a server may still run a GET body."""
    fake = vendors["linear"].fake
    issue = fake.seed_issue("Anywhere")
    answer = held_or_refused(proxy, lambda: agents["linear"].request(
        "GET", "https://api.linear.app/other",
        content=json.dumps({"Query": linear_mutation(issue)}).encode(),
        headers={"Content-Type": "application/json"}))
    assert answer.status_code == 403
    assert fake.log.seen == []
