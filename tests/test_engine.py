"""The one matching engine: bodies as vendors read them, bulk, subrequests, new systems as data."""

import json
from pathlib import Path

import pytest

from connectors_schemas import Matcher, Operation, load_connectors
from connectors_schemas.bodies import AmbiguousBodyError, BodyError, at_path, parse_body, parse_form
from connectors_schemas.graphql_request import parse_graphql
from connectors_schemas.models import BodyFormat


def test_form_bodies_become_nested_values_like_stripe_reads_them() -> None:
    assert parse_form("metadata[plan]=pro&items[0][price]=p1&items[1][price]=p2"
                      "&items[1][quantity]=2&expand[]=customer&expand[]=x&email=a%40b.c") == {
        "metadata": {"plan": "pro"},
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "2"}],
        "expand": ["customer", "x"], "email": "a@b.c"}
    with pytest.raises(BodyError):
        parse_form("a=1&a[b]=2")


@pytest.mark.parametrize("text", [
    "query=a&query=b", "a=1&a=1", "a=&a=", "%71uery=a&query=b", "q+x=1&q%20x=2",
    "a[b]=1&a[b]=2", "a[0]=1&a[0]=2", "a[b][c]=1&a[b][c]=2", "a[b]=1&a=2", "a=1&a[b]=2",
    "a[]=1&a=2", "a[]=1&a[b]=2", "a[b]=1&a[b][]=2",
])
def test_a_form_name_given_twice_is_ambiguous(text: str) -> None:
    """First-wins (Java, Go, URLSearchParams) and last-wins (PHP, Rack) servers disagree."""
    with pytest.raises(AmbiguousBodyError):
        parse_form(text)
    with pytest.raises(AmbiguousBodyError):
        parse_body(text.encode(), "application/x-www-form-urlencoded", BodyFormat.graphql)


def test_only_a_list_may_repeat_in_a_form() -> None:
    assert parse_form("expand[]=a&expand[]=b&a[][b]=1&a[][b]=2") == {
        "expand": ["a", "b"], "a": [{"b": "1"}, {"b": "2"}]}


def test_graphql_operations_resolve_variables() -> None:
    request = parse_graphql({"query": "mutation M($id: ID!) { a: productDelete(input: "
                                      "{id: $id}) { deletedProductId } }",
                             "variables": {"id": "gid://shopify/Product/1"}})
    [operation] = request.writes()
    assert (operation.kind, operation.name, request.read) == ("mutation", "M", False)
    assert operation.fields[0].arguments == {"input": {"id": "gid://shopify/Product/1"}}
    assert parse_graphql({"query": "{ shop { name } }"}).read
    # Several queries and no operationName: whichever a server picks, it only reads.
    assert parse_graphql({"query": "query A { a } query B { b }"}).read
    for bad in ({"query": "mutation {"}, {"variables": {}}, "text", {"query": "fragment F on Q "
                                                                               "{ a }"}):
        with pytest.raises(BodyError):
            parse_graphql(bad)


def test_bodies_fail_with_reasons() -> None:
    assert parse_body(b"", None, BodyFormat.json) is None
    with pytest.raises(BodyError, match="not JSON"):
        parse_body(b"hello", "text/plain", BodyFormat.json)
    with pytest.raises(BodyError, match="UTF-8"):
        parse_body(b"\xff", "application/json", BodyFormat.json)
    assert at_path({"Invoice": {"Id": "1"}}, "invoice.Id") == "1"
    assert at_path({"inputs": [{"id": "7"}]}, "inputs.0.id") == "7"


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_connectors())


def classify(matcher: Matcher, method: str, host: str, url: str, body: object = None,
             content_type: str = "application/json"):
    path, _, query = url.partition("?")
    content = b"" if body is None else (body if isinstance(body, bytes)
                                        else json.dumps(body).encode())
    from urllib.parse import parse_qsl
    return matcher.classify(method, host, path, parse_qsl(query), content, content_type)


@pytest.mark.parametrize(("method", "host", "url", "body", "content_type"), [
    ("POST", "quickbooks.api.intuit.com", "/v3/company/1/query", b"select * from Invoice",
     "application/text"),
    ("POST", "api.hubapi.com", "/crm/v3/objects/deals/search", {"filterGroups": []},
     "application/json"),
    ("POST", "api.hubapi.com", "/crm/v3/objects/deals/batch/read", {"inputs": []},
     "application/json"),
    ("POST", "acme.atlassian.net", "/rest/api/3/search/jql", {"jql": "project = OPS"},
     "application/json"),
    ("POST", "acme.atlassian.net", "/rest/api/2/search", {"jql": "project = OPS"},
     "application/json"),
    ("POST", "acme.my.salesforce.com", "/services/data/v60.0/composite/sobjects/Account",
     {"ids": ["001"], "fields": ["Name"]}, "application/json"),
    ("POST", "acme.my.salesforce.com", "/services/data/v60.0/parameterizedSearch/",
     {"q": "x"}, "application/json"),
    ("POST", "api.stripe.com", "/v1/invoices/create_preview", b"customer=cus_1",
     "application/x-www-form-urlencoded"),
    ("POST", "api.linear.app", "/graphql", {"query": "{ viewer { id } }"}, "application/json"),
    ("POST", "api.github.com", "/graphql", {"query": "query { viewer { login } }"},
     "application/json"),
])
def test_reads_sent_as_post(matcher: Matcher, method: str, host: str, url: str, body: object,
                            content_type: str) -> None:
    found = classify(matcher, method, host, url, body, content_type)
    assert found is not None and found.read


def test_zendesk_update_many_has_two_forms(matcher: Matcher) -> None:
    by_query = classify(matcher, "PUT", "acme.zendesk.com",
                        "/api/v2/tickets/update_many.json?ids=1,2", {"ticket": {"status": "open"}})
    assert [(r.record_id, r.values) for r in by_query.records] == [
        ("1", {"status": "open"}), ("2", {"status": "open"})]
    by_list = classify(matcher, "PUT", "acme.zendesk.com", "/api/v2/tickets/update_many.json",
                       {"tickets": [{"id": 3, "status": "solved"}]})
    assert [(r.record_id, r.values) for r in by_list.records] == [("3", {"status": "solved"})]
    [fetch] = by_query.fetch_requests([])
    assert (fetch.path, fetch.query) == ("/api/v2/tickets/show_many.json", [("ids", "1,2")])


def test_quickbooks_create_route_becomes_an_update_when_the_body_names_the_record(
        matcher: Matcher) -> None:
    create = classify(matcher, "POST", "quickbooks.api.intuit.com", "/v3/company/1/invoice",
                      {"Line": []})
    update = classify(matcher, "POST", "quickbooks.api.intuit.com",
                      "/v3/company/1/invoice?minorversion=75", {"Id": "9", "SyncToken": "2"})
    assert create.records[0].operation is Operation.create
    assert (update.records[0].operation, update.records[0].record_id) == (Operation.update, "9")
    [fetch] = update.fetch_requests([("minorversion", "75"), ("requestid", "x")])
    assert (fetch.path, fetch.query) == ("/v3/company/1/invoice/9", [("minorversion", "75")])


def test_a_new_system_is_one_yaml_file(tmp_path: Path) -> None:
    (tmp_path / "acmecrm.yaml").write_text("""
system: AcmeCRM
hosts: [api.acmecrm.test]
base_path: /v2
objects:
  lead:
    values_path: data
    fetch: {path: "/leads/{id}"}
    routes:
      - {method: PUT, path: "/leads/{id}", operation: update}
""")
    matcher = Matcher(load_connectors(extra_directory=tmp_path))
    found = classify(matcher, "PUT", "api.acmecrm.test", "/v2/leads/L1",
                     {"data": {"owner": "sam"}})
    assert (found.system, found.object_type, found.records[0].record_id) == (
        "AcmeCRM", "lead", "L1")
    assert found.records[0].values == {"owner": "sam"}
    assert matcher.connector_for("acme.zendesk.com") is not None  # built-ins still load


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b"{}", b"\"text\"", b"{\"ticket\": []}", b"{\"records\": {}}",
    b"{\"inputs\": [1, null]}", b"{\"query\": 5}", b"{\"query\": \"mutation { }\"}",
    b"{\"compositeRequest\": [{\"method\": \"PATCH\"}]}", b"\x00\xff", b"a[=1&]]=2",
    b"{\"fields\": null, \"update\": []}", b"{\"Id\": {}}",
])
def test_no_body_makes_the_matcher_raise(matcher: Matcher, body: bytes) -> None:
    """Whatever an agent sends, classification answers; a problem is reported, never raised."""
    samples = [
        ("PUT", "acme.zendesk.com", "/api/v2/tickets/update_many.json"),
        ("PUT", "acme.zendesk.com", "/api/v2/tickets/1"),
        ("POST", "api.hubapi.com", "/crm/v3/objects/contacts/batch/upsert"),
        ("POST", "acme.my.salesforce.com", "/services/data/v59.0/composite"),
        ("PATCH", "acme.my.salesforce.com", "/services/data/v59.0/composite/sobjects"),
        ("POST", "quickbooks.api.intuit.com", "/v3/company/1/invoice"),
        ("POST", "quickbooks.api.intuit.com", "/v3/company/1/invoice?operation=delete"),
        ("PUT", "acme.atlassian.net", "/rest/api/3/issue/OPS-1"),
        ("POST", "api.stripe.com", "/v1/customers/cus_1"),
        ("POST", "api.linear.app", "/graphql"),
    ]
    for method, host, url in samples:
        for content_type in ("application/json", "application/x-www-form-urlencoded", None):
            path, _, query = url.partition("?")
            from urllib.parse import parse_qsl
            found = matcher.classify(method, host, path, parse_qsl(query), body, content_type)
            assert found is not None
            assert found.read or found.records or found.body_problem is not None
            found.fetch_requests([])
