"""Reads that carry writes: a request is a read only when every way a server could read it is.

GraphQL documents in the URL, batched bodies, repeated JSON keys, odd subrequest methods and
paths with more than one reading are each tried in many spellings; none may come out a read.
"""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import parse_qsl, quote

import graphql
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors_schemas import (
    READ_METHODS,
    WRITE_METHODS,
    AmbiguousBodyError,
    BodyError,
    Classification,
    Matcher,
    graphql_in_body,
    graphql_in_query,
    load_connectors,
    non_canonical,
    parse_body,
)
from connectors_schemas.models import BodyFormat

MATCHER = Matcher(load_connectors())
LINEAR = ("api.linear.app", "/graphql")
SHOPIFY = ("acme.myshopify.com", "/admin/api/2024-10/graphql.json")
GITHUB = ("api.github.com", "/graphql")
SF = "acme.my.salesforce.com"
DATA = "/services/data/v59.0"
READ_DOC = "{ viewer { id } }"
MUTATION = 'mutation { issueUpdate(id: "I-1", input: {title: "x"}) { success } }'


def classify(host: str, method: str, url: str, body: Any = None,
             content_type: str = "application/json") -> Classification | None:
    path, _, query = url.partition("?")
    content = (b"" if body is None else body if isinstance(body, bytes)
               else json.dumps(body).encode())
    return MATCHER.classify(method, host, path, parse_qsl(query, keep_blank_values=True),
                            content, content_type)


def held(found: Classification | None) -> Classification:
    """A write the proxy holds: classified, not a read, and naming records or a problem."""
    assert found is not None
    assert not found.read
    assert found.records or found.body_problem is not None
    return found


def graphql_post(where: tuple[str, str], body: Any, url_query: str = "",
                 content_type: str = "application/json") -> Classification | None:
    host, path = where
    return classify(host, "POST", f"{path}?{url_query}" if url_query else path, body,
                    content_type)


def q(document: str) -> str:
    return "query=" + quote(document)


# -- 1. GraphQL documents anywhere in a POST ---------------------------------------------------

@pytest.mark.parametrize("where", [LINEAR, SHOPIFY, GITHUB])
@pytest.mark.parametrize(("body", "url_query"), [
    ({"query": READ_DOC}, q(MUTATION)),  # express-graphql lets the URL win
    ({"query": READ_DOC}, q("subscription { issueChanged { id } }")),
    ({"query": READ_DOC}, q(READ_DOC) + "&" + q(MUTATION)),  # the second `query` parameter
    ({"query": READ_DOC}, "Query=" + quote(MUTATION)),
    ({"query": READ_DOC}, q("mutation {")),  # does not parse
    ({"query": READ_DOC}, q("query A { a } mutation B { b(id: 1) { id } }")),
    ({"query": MUTATION}, q(READ_DOC)),
    ({"variables": {"id": "I-1"}}, q(MUTATION)),  # the body carries only the variables
    (None, q(MUTATION)),
    ({"query": READ_DOC, "operationName": "A"}, q(MUTATION) + "&operationName=B"),
])
def test_a_post_is_a_write_when_any_document_in_body_or_url_writes(
        where: tuple[str, str], body: Any, url_query: str) -> None:
    held(graphql_post(where, body, url_query))


def test_the_url_mutation_is_what_the_reviewer_sees() -> None:
    found = held(graphql_post(LINEAR, {"query": READ_DOC}, q(MUTATION)))
    [record] = found.records
    assert (record.object_type, record.record_id, record.values) == (
        "Issue", "I-1", {"title": "x"})
    assert "body and the URL carry different GraphQL documents" in (found.body_problem or "")


@pytest.mark.parametrize(("body", "url_query"), [
    ({"query": READ_DOC}, ""),
    ({"query": READ_DOC}, q(READ_DOC)),
    ({"query": READ_DOC}, q("{ issues { nodes { id } } }")),  # both reads, though they differ
    ({"query": "query A { a } query B { b }"}, ""),  # no operationName: either one only reads
    ({"query": "query A { a } query B { b }", "operationName": "A"}, "operationName=B"),
    (None, q(READ_DOC)),
    ({"query": READ_DOC, "variables": '{"id": "1"}'}, ""),  # variables as a JSON string
    ([{"query": READ_DOC}, {"query": "{ issues { nodes { id } } }"}], ""),
])
def test_a_post_stays_a_read_when_every_document_only_reads(body: Any, url_query: str) -> None:
    found = graphql_post(LINEAR, body, url_query)
    assert found is not None and found.read


@pytest.mark.parametrize("batch", [
    [{"query": READ_DOC}, {"query": MUTATION}],
    [{"query": MUTATION}, {"query": READ_DOC}],
    [{"query": MUTATION}],
    [{"query": READ_DOC}, {"query": "subscription { s { id } }"}],
    [{"query": READ_DOC}, {"query": "mutation {"}],
    [{"query": READ_DOC}, "mutation { a }"],
    [{"query": READ_DOC}, {}],
    [{"query": READ_DOC}, {"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}],
    [{"query": READ_DOC}, {"query": 5}],
    [{"query": READ_DOC}, {"query": READ_DOC, "variables": [1]}],
    [],
])
def test_a_batched_body_is_a_read_only_if_every_operation_is_a_query(batch: Any) -> None:
    held(graphql_post(LINEAR, batch))


def test_a_batched_mutation_names_its_record() -> None:
    found = held(graphql_post(LINEAR, [{"query": READ_DOC}, {"query": MUTATION}]))
    assert [(r.object_type, r.record_id) for r in found.records] == [("Issue", "I-1")]
    assert found.body_problem is None


@pytest.mark.parametrize(("document", "name", "expected"), [
    ("query A { a } mutation B { b(id: 1) { id } }", None, ["b"]),
    ("query A { a } mutation B { b(id: 1) { id } }", "A", ["b"]),  # a server may ignore it
    ("mutation A { a(id: 1) { id } } mutation B { b(id: 2) { id } }", "B", ["b"]),
    ("mutation A { a(id: 1) { id } } mutation B { b(id: 2) { id } }", None, ["a", "b"]),
])
def test_several_operations_are_held_when_any_one_writes(document: str, name: str | None,
                                                          expected: list[str]) -> None:
    body = {"query": document} | ({"operationName": name} if name else {})
    found = held(graphql_post(LINEAR, body))
    assert [record.object_type for record in found.records] == expected


@pytest.mark.parametrize(("content", "content_type"), [
    ("query=" + quote(MUTATION), "application/x-www-form-urlencoded"),
    (q(READ_DOC) + "&" + q(MUTATION), "application/x-www-form-urlencoded"),
    (MUTATION, "application/graphql"),
])
def test_other_body_forms_are_read_the_same_way(content: str, content_type: str) -> None:
    held(graphql_post(LINEAR, content.encode(), content_type=content_type))


def test_application_graphql_body_with_a_url_mutation_is_held() -> None:
    held(graphql_post(LINEAR, READ_DOC.encode(), q(MUTATION), "application/graphql"))


@pytest.mark.parametrize(("body", "url_query", "message"), [
    ({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}}, "",
     "persisted GraphQL query"),
    ({"documentId": "abc"}, "", "persisted GraphQL query"),
    (None, "extensions=" + quote('{"persistedQuery": {"sha256Hash": "ab"}}'),
     "persisted GraphQL query"),
    ({"query": READ_DOC, "operationName": 3}, "", "operationName"),
    (None, "", "no GraphQL operation"),
])
def test_documents_the_proxy_cannot_see_are_held_with_the_reason(
        body: Any, url_query: str, message: str) -> None:
    found = held(graphql_post(LINEAR, body, url_query))
    assert message in (found.body_problem or "")


# -- 2. The read path: GET, HEAD and OPTIONS with a `query` parameter -------------------------

WRITE_DOCUMENTS = [
    "mutation{a}", "mutation M { a(id: 1) { id } }", "  mutation { a }",
    "# a comment\nmutation { a }", "query Q { a } mutation M { b }", "subscription { s }",
    "subscription S($id: ID) { s(id: $id) { id } }", "mutation @deprecated { a }",
    "{ a } mutation { b }", "\ufeffmutation { a }",
]


@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("document", WRITE_DOCUMENTS)
def test_a_url_document_that_writes_makes_the_read_a_write(document: str,
                                                           endpoint: bool) -> None:
    assert graphql_in_query([("query", document)], endpoint) is not None
    assert graphql_in_query([("page", "1"), ("Query", document)], endpoint) is not None


@pytest.mark.parametrize("value", [
    "mutation {", "mutation(", "{ a } mutation", "subscription", "x mutation y {",
])
def test_a_url_value_that_names_a_write_but_does_not_parse_is_a_write_anywhere(
        value: str) -> None:
    assert graphql_in_query([("query", value)], False) is not None
    assert graphql_in_query([("query", value)], True) is not None


@pytest.mark.parametrize("value", [
    "hello world", "type:ticket status:open", "mutations are fun", "my_mutation", "{", "",
    "x" * 200,
])
def test_a_url_value_that_does_not_parse_is_a_write_only_on_a_graphql_endpoint(
        value: str) -> None:
    assert graphql_in_query([("query", value)], False) is None
    assert graphql_in_query([("query", value)], True) is not None


@pytest.mark.parametrize("value", [
    "{ a }", "query { a }", "query Q($x: Int) { a(x: $x) }", "query A { a } query B { b }",
    "fragment F on Q { a }",
])
@pytest.mark.parametrize("endpoint", [True, False])
def test_a_url_query_that_only_reads_stays_a_read(value: str, endpoint: bool) -> None:
    assert graphql_in_query([("query", value), ("operationName", "A")], endpoint) is None


@pytest.mark.parametrize("name", ["extensions", "id", "documentId", "doc_id", "queryId"])
def test_a_persisted_query_without_a_document_is_a_write_on_a_graphql_endpoint(
        name: str) -> None:
    query = [(name, '{"persistedQuery": {"version": 1, "sha256Hash": "ab"}}')]
    assert "persisted" in (graphql_in_query(query, True) or "")
    assert graphql_in_query(query, False) is None
    assert graphql_in_query([], True) is None


def test_without_a_query_parameter_nothing_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read asks: one pass over the names, no parser."""
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed a read without a query parameter")

    monkeypatch.setattr(graphql, "parse", refuse)
    assert graphql_in_query([("page", "2"), ("q", "mutation { a }")], True) is None
    assert graphql_in_query([], False) is None


def test_a_deeply_nested_document_is_no_read_on_a_graphql_endpoint() -> None:
    deep = "{ a " * 5000 + "}" * 5000
    assert graphql_in_query([("query", deep)], True) is not None
    held(classify(*LINEAR[:1], "GET", f"{LINEAR[1]}?{q(deep)}"))


@pytest.mark.parametrize(("host", "path", "expected"), [
    (*LINEAR, True), (*SHOPIFY, True), (*GITHUB, True), ("api.github.com", "/api/graphql", True),
    ("api.github.com", "/api/v3/graphql", True), ("api.linear.app", "/graphql/", True),
    ("api.linear.app", "/graphql/.", True), ("api.linear.app", "/x/../graphql", True),
    ("api.linear.app", "/graphql;x", True), ("api.linear.app", "/%67raphql", True),
    ("api.linear.app", "/other", False), ("acme.zendesk.com", "/api/v2/search.json", False),
    ("api.github.com", "/repos/a/b/issues", False), ("example.com", "/graphql", False),
])
def test_graphql_endpoints_are_known_from_the_connectors(host: str, path: str,
                                                         expected: bool) -> None:
    assert MATCHER.is_graphql_endpoint(host, path) is expected


@pytest.mark.parametrize("method", sorted(READ_METHODS))
def test_a_held_get_names_the_mutation_its_url_carries(method: str) -> None:
    found = held(classify(LINEAR[0], method, f"{LINEAR[1]}?{q(MUTATION)}"))
    assert [(r.object_type, r.record_id) for r in found.records] == [("Issue", "I-1")]


# -- 3. JSON that servers read differently -----------------------------------------------------

@pytest.mark.parametrize(("text", "key"), [
    ('{"x": 1, "x": 2}', "x"),
    ('{"a": {"x": 1, "x": 1}}', "x"),
    ('[{"ok": 1}, {"x": 1, "y": 2, "x": 3}]', "x"),
    ('{"a": [[{"b": {"x": null, "x": null}}]]}', "x"),
    ('{"a": 1, "\\u0061": 2}', "a"),  # the same key once decoded
    ('{"query": "mutation { a }", "query": "{ b }"}', "query"),
    ('{"": 1, "": 2}', ""),
])
def test_a_repeated_key_at_any_depth_is_refused_by_name(text: str, key: str) -> None:
    for expected in (BodyFormat.json, BodyFormat.graphql):
        with pytest.raises(AmbiguousBodyError) as caught:
            parse_body(text.encode(), "application/json", expected)
        assert str(caught.value) == f"the JSON body repeats the key {key!r}"


@pytest.mark.parametrize("text", [
    '{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '[1e999]', '{"a": -1e400}', "NaN",
])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(AmbiguousBodyError):
        parse_body(text.encode(), "application/json", BodyFormat.json)


def test_large_but_finite_numbers_and_unicode_keys_still_parse() -> None:
    assert parse_body(b'{"a": 1e300, "b": 123456789012345678901234567890, "\\u00e9": 1, '
                      b'"e\\u0301": 2}', None, BodyFormat.json) == {
        "a": 1e300, "b": 123456789012345678901234567890, "\u00e9": 1, "e\u0301": 2}


DUPLICATED = [
    # GraphQL: the first key is what a first-wins parser runs.
    (LINEAR[0], "POST", LINEAR[1], '{"query": "' + MUTATION.replace('"', '\\"') +
     '", "query": "{ viewer { id } }"}'),
    (SHOPIFY[0], "POST", SHOPIFY[1], '{"query": "{ shop { name } }", "variables": {"a": 1, '
                                     '"a": 2}}'),
    # Read routes: the search a vendor runs is not the one we read.
    ("api.hubapi.com", "POST", "/crm/v3/objects/contacts/search",
     '{"filterGroups": [], "filterGroups": [{"filters": []}]}'),
    ("acme.atlassian.net", "POST", "/rest/api/3/search/jql", '{"jql": "a", "jql": "b"}'),
    (SF, "POST", f"{DATA}/composite/sobjects/Account", '{"ids": ["1"], "ids": ["2"]}'),
    # Subrequests: the list a server keeps may be the one with the write.
    (SF, "POST", f"{DATA}/composite",
     '{"compositeRequest": [{"method": "PATCH", "url": "' + DATA + '/sobjects/Account/001", '
     '"referenceId": "a", "body": {"Name": "x"}}], "compositeRequest": [{"method": "GET", '
     '"url": "' + DATA + '/sobjects/Account/001", "referenceId": "b"}]}'),
    (SF, "POST", f"{DATA}/composite",
     '{"compositeRequest": [{"method": "PATCH", "method": "GET", "url": "' + DATA +
     '/sobjects/Account/001", "referenceId": "a"}]}'),
    # Writes: the diff must not show the last value as if it won.
    ("acme.zendesk.com", "PUT", "/api/v2/tickets/1",
     '{"ticket": {"status": "open", "status": "closed"}}'),
]


@pytest.mark.parametrize(("host", "method", "path", "text"), DUPLICATED)
def test_a_body_with_a_repeated_key_is_held_with_the_problem(host: str, method: str, path: str,
                                                             text: str) -> None:
    found = held(classify(host, method, path, text.encode()))
    assert "repeats the key" in (found.body_problem or "")


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=3)
                    | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=12),
       st.text(max_size=4), st.integers(min_value=0))
def test_any_json_with_a_key_repeated_somewhere_is_never_read(body: Any, key: str,
                                                              depth: int) -> None:
    text = json.dumps({"wrapper": body})
    # Repeat the key inside the innermost object that `depth` picks.
    openings = [i for i, char in enumerate(text) if char == "{" and (
        i == 0 or text[i - 1] in "[{:, ")]
    at = openings[depth % len(openings)] + 1
    dup = json.dumps(key)
    text = text[:at] + f"{dup}: 1, {dup}: 2" + ("" if text[at] == "}" else ", ") + text[at:]
    with pytest.raises(AmbiguousBodyError):
        parse_body(text.encode(), "application/json", BodyFormat.json)
    found = MATCHER.classify("POST", "api.hubapi.com", "/crm/v3/objects/deals/search", [],
                             text.encode(), "application/json")
    assert found is not None and not found.read


# -- 4. Subrequests: only an exact read method is a read --------------------------------------

def composite(*items: dict[str, Any], key: str = "compositeRequest") -> Classification | None:
    return classify(SF, "POST", f"{DATA}/composite", {key: list(items)})


def sub(method: Any, url: str = f"{DATA}/sobjects/Account/001", **extra: Any) -> dict[str, Any]:
    item = {"method": method, "url": url, "referenceId": "r"}
    if not (isinstance(method, str) and method in READ_METHODS):
        item["body"] = {"Name": "New"}
    return item | extra


@pytest.mark.parametrize("method", [
    " PATCH", "PATCH ", "PATCH\u0000", "\tPATCH", "PATCH\r\n", "patch", "Patch", "\u00a0PATCH",
    "PATCH\u200b",
])
def test_a_write_verb_however_spelled_is_classified_as_that_write(method: str) -> None:
    found = held(composite(sub("GET"), sub(method)))
    [record] = found.records
    assert (record.object_type, record.record_id, record.values) == ("Account", "001",
                                                                     {"Name": "New"})


@pytest.mark.parametrize("method", [
    " GET", "GET ", "get", "Get", "GET\u0000", "\u0000GET", "GET\t", "MERGE", "PROPFIND",
    "PURGE", "GETS", "G\u0000ET", "\uff27\uff25\uff34", "-",
])
def test_anything_but_an_exact_read_method_or_a_write_verb_is_held_with_a_problem(
        method: str) -> None:
    found = held(composite(sub("GET"), sub(method)))
    assert "compositeRequest[1]: its method" in (found.body_problem or "")


@pytest.mark.parametrize("method", [5, None, True, ["GET"], {"name": "GET"}, "", 1.5])
def test_a_method_that_is_not_a_string_is_held(method: Any) -> None:
    found = held(composite(sub(method)))
    assert "has no method or url" in (found.body_problem or "")


@pytest.mark.parametrize("method", sorted(READ_METHODS))
def test_exact_read_methods_to_canonical_urls_are_reads(method: str) -> None:
    found = composite(sub(method), sub(method, f"{DATA}/query?q=SELECT+Id+FROM+Account"))
    assert found is not None and found.read and not found.records


@pytest.mark.parametrize("item", [
    sub("GET", url=5),  # type: ignore[arg-type]
    sub("GET", url=f"{DATA}/sobjects/Account/001?_HttpMethod=PATCH"),
    sub("GET", url=f"{DATA}/sobjects/Account/001?_method=DELETE"),
    sub("GET", httpHeaders={"X-HTTP-Method-Override": "PATCH"}),
    sub("GET", Method="PATCH"),
    sub("GET", URL=f"{DATA}/sobjects/Account/002"),
    "GET /sobjects/Account/001",
    [sub("GET")],
])
def test_other_ways_a_subrequest_may_write_are_held(item: Any) -> None:
    held(composite(sub("GET"), item))


def test_keys_that_differ_only_in_case_are_held() -> None:
    found = held(classify(SF, "POST", f"{DATA}/composite", {
        "compositeRequest": [sub("GET")], "CompositeRequest": [sub("PATCH")]}))
    assert "'CompositeRequest' and 'compositeRequest'" in (found.body_problem or "")


@pytest.mark.parametrize("url", [
    f"{DATA}/sobjects/Account/001/.", f"{DATA}/sobjects/Account/%2e%2e/x",
    f"{DATA}/sobjects/Account;x/001", f"{DATA}//sobjects/Account/001",
    f"{DATA}/sobjects/Account%2F001", f"{DATA}/sobjects/Account\\001",
    f"{DATA}/sobjects/Account/001#/../x", "https://evil.test/x", "sobjects/Account/001",
])
def test_a_get_subrequest_must_name_a_canonical_url(url: str) -> None:
    found = held(composite(sub("GET", url)))
    assert "not canonical" in (found.body_problem or "")


def test_a_write_subrequest_to_a_non_canonical_url_shows_the_problem() -> None:
    found = held(composite(sub("GET"), sub("PATCH", f"{DATA}/sobjects/Account/%2e%2e/001")))
    assert "compositeRequest[1]: the path" in (found.body_problem or "")
    assert "not canonical" in (found.body_problem or "")


def test_an_unknown_verb_with_no_route_still_names_the_good_parts() -> None:
    found = held(composite(sub("PATCH"), sub("MERGE", f"{DATA}/nowhere")))
    assert [record.record_id for record in found.records] == ["001"]
    assert found.body_problem is not None and "MERGE" in found.body_problem


def test_read_and_write_method_sets() -> None:
    assert frozenset({"GET", "HEAD", "OPTIONS"}) == READ_METHODS
    assert not READ_METHODS & WRITE_METHODS


# -- 5. Read routes match only canonical paths ------------------------------------------------

NON_CANONICAL_TAILS = [
    "/.", "/..", "/%2e", "/%2E", "/%2e%2e", "/%2E%2e", "/.%2e", "/;x", "/Account;x",
    "/Account;jsessionid=1", "//Account", "/Account%2F..", "/Account%2f..", "/Account%5C..",
    "/Account%5c..", "/Account\\..", "/%41ccount", "/Acc%6Funt", "/Acc%7Eount", "/Acc%2Dount",
    "/Acc%5Fount", "/Account%00", "/Account%0a", "/Account%252e", "/Account%252F", "/Account%zz",
    "/Account%2", "/Account%", "/%C0%AE", "/%C0%AF", "/%EF%BC%8E%EF%BC%8E", "/Account#x",
    "/Account ", "/Acc\u00f6unt", "/Account\u0000", "/Account\t",
]
READ_ROUTES = [
    (SF, f"{DATA}/composite/sobjects/Account", {"ids": ["001"], "fields": ["Name"]}),
    (SF, f"{DATA}/parameterizedSearch", {"q": "Acme"}),
    ("api.hubapi.com", "/crm/v3/objects/contacts/search", {"filterGroups": []}),
    ("acme.atlassian.net", "/rest/api/3/search", {"jql": "project = OPS"}),
    ("quickbooks.api.intuit.com", "/v3/company/1/query", None),
    ("api.stripe.com", "/v1/invoices/create_preview", None),
]


@pytest.mark.parametrize("tail", NON_CANONICAL_TAILS)
def test_a_read_route_reached_through_a_non_canonical_path_is_held(tail: str) -> None:
    # Salesforce's collection read is /composite/sobjects/{type}; /composite/sobjects/. is,
    # once a server removes the dot, the collection create.
    found = held(classify(SF, "POST", f"{DATA}/composite/sobjects{tail}",
                          {"records": [{"attributes": {"type": "Account"}, "Name": "x"}]}))
    assert not found.records and found.body_problem is not None
    assert "is not canonical" in found.body_problem


@pytest.mark.parametrize(("host", "path", "body"), READ_ROUTES)
@pytest.mark.parametrize("spelling", ["/.", "/%2e", ";x", "%2F", "%5C", "/", "%41"])
def test_every_read_route_is_canonical_only(host: str, path: str, body: Any,
                                            spelling: str) -> None:
    assert (found := classify(host, "POST", path, body)) is not None and found.read
    head, _, last = path.rpartition("/")
    twisted = {"/.": f"{path}/.", "/%2e": f"{head}/%2e/{last}", ";x": f"{path};x",
               "%2F": f"{head}%2F{last}", "%5C": f"{head}/x%5C..%5C{last}",
               "/": f"{head}//{last}", "%41": f"{head}/%{ord(last[0]):02X}{last[1:]}"}[spelling]
    held(classify(host, "POST", twisted, body))


@pytest.mark.parametrize(("host", "method", "path", "record_id"), [
    ("acme.zendesk.com", "PUT", "/api/v2/tickets/a%20b", "a b"),
    ("api.hubapi.com", "PATCH", "/crm/v3/objects/contacts/ada%40acme.test", "ada@acme.test"),
    ("api.hubapi.com", "DELETE", "/crm/v3/objects/deals/a%3Ab", "a:b"),
    (SF, "PATCH", f"{DATA}/sobjects/Account/001xx000003DGb2AAG", "001xx000003DGb2AAG"),
    (SF, "PATCH", f"{DATA}/sobjects/Contact/Email__c/a%2Bb%40c.d", "a+b@c.d"),
    ("api.github.com", "PUT", "/repos/a/b/contents/docs/read%20me.md", "docs/read me.md"),
    ("acme.atlassian.net", "PUT", "/rest/api/3/issue/OPS-1", "OPS-1"),
    ("acme.zendesk.com", "PUT", "/api/v2/tickets/%E2%9C%93", "\u2713"),
])
def test_ids_vendors_encode_still_match_write_routes(host: str, method: str, path: str,
                                                     record_id: str) -> None:
    found = classify(host, method, path, {"ticket": {}, "properties": {}, "Name": "x",
                                          "fields": {}, "message": "m", "content": ""})
    assert found is not None and not found.read
    assert [record.record_id for record in found.records] == [record_id]


@pytest.mark.parametrize("path", [
    "/api/v2/tickets/1/%2e%2e/2", "/api/v2/tickets/1;x", "/api/v2/tickets/%31",
    "/api/v2//tickets/1", "/api/v2/tickets/1/.",
])
def test_a_write_through_a_non_canonical_path_names_no_record(path: str) -> None:
    found = held(classify("acme.zendesk.com", "PUT", path, {"ticket": {"status": "solved"}}))
    assert found.records == [] and found.system == "Zendesk"
    assert found.fetch_requests([]) == []


@pytest.mark.parametrize("override", ["_HttpMethod=PATCH", "_method=DELETE",
                                      "X-HTTP-Method-Override=PUT"])
def test_a_method_override_in_the_url_matches_no_route(override: str) -> None:
    found = held(classify(SF, "POST", f"{DATA}/query?{override}", {}))
    assert "overrides the method" in (found.body_problem or "")
    assert classify(SF, "POST", f"{DATA}/query?_HttpMethod=POST", {}).read  # type: ignore


SEGMENT = st.text(string.ascii_letters + string.digits + "-_~", min_size=1, max_size=8)
TWISTS = st.sampled_from(["%2F", "%2f", "%2E", "%2e", "%5C", "%5c", "\\", ";", ";x=1", "%252F",
                          "%41", "%7E", "%00", "%zz"])


@settings(max_examples=300, deadline=None)
@given(host=st.sampled_from([SF, "api.hubapi.com", "acme.atlassian.net",
                             "quickbooks.api.intuit.com", "api.stripe.com", *LINEAR[:1]]),
       segments=st.lists(SEGMENT, min_size=1, max_size=6), twist=TWISTS,
       at=st.integers(min_value=0), dots=st.sampled_from(["", ".", ".."]))
def test_any_path_with_an_encoded_slash_or_dot_is_never_a_read(
        host: str, segments: list[str], twist: str, at: int, dots: str) -> None:
    index = at % len(segments)
    segments[index] = segments[index][: at % 3] + twist + segments[index][at % 3:]
    if dots:
        segments.insert(at % (len(segments) + 1), dots)
    path = "/" + "/".join(segments)
    assert non_canonical(path) is not None
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        found = MATCHER.classify(method, host, path, [], b"{}", "application/json")
        assert found is not None and not found.read and found.records == []


@settings(max_examples=300, deadline=None)
@given(st.lists(SEGMENT | st.sampled_from(["v59.0", "a%40b", "a%20b", "1.json", "%E2%9C%93"]),
                min_size=1, max_size=6), st.booleans())
def test_canonical_paths_have_one_reading(segments: list[str], slash: bool) -> None:
    assert non_canonical("/" + "/".join(segments) + ("/" if slash else "")) is None


def test_problems_are_errors_for_people_not_exceptions() -> None:
    with pytest.raises(BodyError, match="not valid JSON"):
        parse_body(b'{"a": ', "application/json", BodyFormat.json)
    assert non_canonical("/a/%2e/b") == "it encodes '.' as '%2e'"
    assert non_canonical("/a/./b") == "it has a dot segment ('/.')"
    assert non_canonical("/a;b") == "it holds a matrix parameter (';')"


# -- 6. Names given twice or in another case, persisted ids, letter case, bodies of reads -----

FORM = "application/x-www-form-urlencoded"
DELETE = 'mutation { issueDelete(id: "I-1") { success } }'


def form(*pairs: tuple[str, str]) -> bytes:
    return "&".join(f"{quote(name)}={quote(value)}" for name, value in pairs).encode()


@pytest.mark.parametrize("content", [
    # The red team's body: a first-wins server (Java, Go, URLSearchParams) runs the delete.
    b"query=mutation%20%7B%20issueDelete(id%3A%20%22I-1%22)%20%7B%20success%20%7D%20%7D"
    b"&query=%7Ba%7D",
    form(("query", READ_DOC), ("query", DELETE)),
    form(("query", DELETE), ("query", DELETE)),
    form(("Query", DELETE), ("query", "{a}")),
    form(("query", "{a}"), ("QUERY", DELETE)),
    b"%71uery=" + quote(DELETE).encode() + b"&query=%7Ba%7D",
    form(("query", READ_DOC), ("operationName", "A"), ("OperationName", "B")),
    form(("query", READ_DOC), ("variables", "{}"), ("Variables", "{}")),
    form(("query", READ_DOC), ("variables", "{}"), ("variables", "{}")),
])
def test_a_form_body_that_names_a_graphql_field_twice_is_held(content: bytes) -> None:
    found = held(graphql_post(LINEAR, content, content_type=FORM))
    assert "repeats the key" in (found.body_problem or "") or "has both" in (
        found.body_problem or "")


@pytest.mark.parametrize("body", [
    {"Query": DELETE, "query": "{a}"},
    {"query": "{a}", "QUERY": DELETE},
    {"query": READ_DOC, "operationName": "A", "OperationName": "B"},
    {"query": READ_DOC, "variables": {}, "VARIABLES": {}},
    [{"query": READ_DOC}, {"query": READ_DOC, "Query": DELETE}],
])
def test_a_json_body_that_names_a_graphql_field_in_two_spellings_is_held(body: Any) -> None:
    found = held(graphql_post(LINEAR, body))
    assert "has both" in (found.body_problem or "")


@pytest.mark.parametrize("spelling", ["Query", "QUERY", "qUeRy"])
@pytest.mark.parametrize("content_type", ["application/json", FORM])
@pytest.mark.parametrize("url_query", ["", q("{a}")])
def test_query_in_any_case_is_the_document(spelling: str, content_type: str,
                                           url_query: str) -> None:
    """B7: `Query` in the body is a document, not a body without one that the URL fills."""
    content = (form((spelling, DELETE)) if content_type == FORM
               else json.dumps({spelling: DELETE}).encode())
    found = held(graphql_post(LINEAR, content, url_query, content_type))
    assert [(r.object_type, r.record_id, r.action) for r in found.records] == [
        ("Issue", "I-1", "issueDelete")]
    reading = (form((spelling, READ_DOC)) if content_type == FORM
               else json.dumps({spelling: READ_DOC}).encode())
    assert (read := graphql_post(LINEAR, reading, url_query, content_type)) is not None
    assert read.read


@pytest.mark.parametrize("extra", [
    {"id": "x"}, {"ID": "x"}, {"documentId": "d1"}, {"doc_id": "d1"}, {"queryId": "q1"},
    {"hash": "ab"}, {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab"}}},
    {"Extensions": {}},
])
def test_a_persisted_query_id_beside_a_document_is_no_read(extra: dict[str, Any]) -> None:
    """B6: a server that prefers its stored document runs what the proxy never saw."""
    for body in ({"query": READ_DOC} | extra, [{"query": READ_DOC}, {"query": READ_DOC} | extra]):
        found = held(graphql_post(LINEAR, body))
        assert "persisted GraphQL query" in (found.body_problem or "")
    [(name, value)] = extra.items()
    found = held(graphql_post(LINEAR, {"query": READ_DOC}, f"{name}={quote(json.dumps(value))}"))
    assert "persisted GraphQL query" in (found.body_problem or "")
    held(graphql_post(LINEAR, form(("query", READ_DOC), (name, json.dumps(value))),
                      content_type=FORM))


@pytest.mark.parametrize("name", ["id", "documentId", "extensions", "HASH"])
def test_a_url_persisted_id_beside_a_url_document_is_a_write_on_a_graphql_endpoint(
        name: str) -> None:
    query = [("query", READ_DOC), (name, "ab")]
    assert "persisted" in (graphql_in_query(query, True) or "")
    assert graphql_in_query(query, False) is None  # `id` means anything on other hosts


@pytest.mark.parametrize("key", ["httpHeaders", "HttpHeaders", "HTTPHEADERS", "httpheaders",
                                 "HTTPHeaders"])
@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "x-http-method",
                                    "X-Method-Override", "X-METHOD", "Method"])
def test_a_subrequest_header_naming_a_method_is_held_however_the_key_is_spelled(
        key: str, header: str) -> None:
    """B5: Salesforce reads `HttpHeaders` as `httpHeaders`."""
    found = held(composite(sub("GET"), sub("GET", **{key: {header: "PATCH"}})))
    assert "compositeRequest[1]: overrides its method" in (found.body_problem or "")


@pytest.mark.parametrize("headers", [[["X-HTTP-Method-Override", "PATCH"]], "PATCH", 5])
def test_subrequest_headers_that_are_not_an_object_are_held(headers: Any) -> None:
    held(composite(sub("GET", HttpHeaders=headers)))


def test_subrequest_headers_that_name_no_method_stay_a_read() -> None:
    found = composite(sub("GET", httpHeaders={"Accept": "application/json"},
                          HttpHeaders={"If-Match": "x"}))
    assert found is not None and found.read


@pytest.mark.parametrize(("host", "path"), [
    ("api.linear.app", "/GraphQL"), ("api.linear.app", "/GRAPHQL"),
    ("api.linear.app", "/graphQL/"), ("api.linear.app", "/x/../GraphQL"),
    ("acme.myshopify.com", "/ADMIN/API/2024-10/GRAPHQL.JSON"),
    ("api.github.com", "/API/GraphQL"), ("api.github.com", "/Graphql"),
])
def test_a_graphql_endpoint_is_known_in_any_letter_case(host: str, path: str) -> None:
    """B8: Express routes without regard to case, so `/GraphQL` runs the document too."""
    assert MATCHER.is_graphql_endpoint(host, path)


def test_write_routes_still_match_exactly() -> None:
    assert MATCHER.match("POST", "api.linear.app", "/GraphQL") is None
    assert MATCHER.match("PUT", "acme.zendesk.com", "/API/v2/tickets/1") is None


def test_a_url_split_on_semicolons_is_checked_both_ways() -> None:
    """Rack 2 splits on `;` too; the `&`-only reading keeps a `;` inside the document, so
    the caller passes the pairs of both splits."""
    raw = 'query=query A { a(x: ";") } mutation B { b(id: 1) { id } }&operationName=B'
    both = parse_qsl(raw, keep_blank_values=True) + parse_qsl(raw.replace(";", "&"),
                                                              keep_blank_values=True)
    assert graphql_in_query(parse_qsl(raw.replace(";", "&")), False) is None  # the gap
    assert "mutation" in (graphql_in_query(both, False) or "")
    assert graphql_in_query(parse_qsl("query={a};x=1".replace(";", "&")), False) is None


def utf16(body: Any) -> bytes:
    return json.dumps(body).encode("utf-16")


BODY_WRITES = [
    (json.dumps({"query": MUTATION}).encode(), "application/json"),
    (json.dumps({"Query": MUTATION}).encode(), "application/json"),
    (json.dumps({"QUERY": "subscription { s { id } }"}).encode(), None),
    (b'{"\\u0071uery": "mutation { a }"}', "application/json"),
    (('{"query": ' + json.dumps(MUTATION) + ', "query": "{ a }"}').encode(), "application/json"),
    (json.dumps([{"query": READ_DOC}, {"query": MUTATION}]).encode(), "application/json"),
    (json.dumps({"query": "mutation {"}).encode(), "application/json"),  # does not parse
    (json.dumps({"query": READ_DOC, "id": "stored-1"}).encode(), "application/json"),
    (json.dumps({"query": READ_DOC, "extensions": {"persistedQuery": {}}}).encode(), None),
    (b'{"query": "mutation { a }",}', "application/json"),  # JSON5 reads it
    (b'{"query": "mutation { a }", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     "application/json"),
    (form(("query", MUTATION)), FORM),
    (form(("Query", MUTATION)), None),
    (b"%71uery=" + quote(MUTATION).encode(), FORM),
    (form(("query", "{a}"), ("query", MUTATION)), FORM),
    (b"x=1;query=" + quote(MUTATION).encode(), FORM),  # Rack and old Go split on ';'
    (MUTATION.encode(), "application/graphql"),
    (utf16({"query": MUTATION}), "application/json"),
    (json.dumps({"query": MUTATION}).encode("utf-16-le"), "application/json; charset=utf-16le"),
    (json.dumps({"query": MUTATION}).encode("utf-7"), "application/json; charset=UTF-7"),
    (json.dumps({"query": MUTATION}).encode("utf-32"), "application/json"),
    (b"--b\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\n" + MUTATION.encode()
     + b"\r\n--b--\r\n", "multipart/form-data; boundary=b"),
]


@pytest.mark.parametrize(("content", "content_type"), BODY_WRITES)
def test_a_read_body_that_carries_a_graphql_write_is_named(content: bytes,
                                                           content_type: str | None) -> None:
    """B4: to any host; a server may run the document a GET body holds."""
    assert graphql_in_body(content, content_type) is not None


@pytest.mark.parametrize(("content", "content_type"), [
    (b"", None),
    (json.dumps({"query": READ_DOC}).encode(), "application/json"),
    (json.dumps([{"Query": READ_DOC}, {"query": "query A { a }"}]).encode(), None),
    (json.dumps({"query": {"match": {"title": "mutation"}}}).encode(), "application/json"),
    (json.dumps({"search": "mutation { a }"}).encode(), "application/json"),
    (json.dumps({"query": "status:open", "id": 1}).encode(), "application/json"),
    (form(("q", MUTATION)), FORM),
    (form(("query", "type:ticket status:open")), FORM),
    (b"hello", "text/plain"),
    (bytes(range(256)) * 4, "application/octet-stream"),
    (READ_DOC.encode(), "application/graphql"),
])
def test_a_read_body_without_a_graphql_write_is_none(content: bytes,
                                                     content_type: str | None) -> None:
    assert graphql_in_body(content, content_type) is None


def test_a_read_body_in_a_charset_no_one_can_decode_is_named() -> None:
    found = graphql_in_body(b'{"query": "{ a }"}', "application/json; charset=x-nonesuch")
    assert "charset" in (found or "")


def test_a_read_body_that_cannot_name_query_is_not_parsed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("parsed a body that cannot name 'query'")

    monkeypatch.setattr(json, "loads", refuse)
    monkeypatch.setattr(graphql, "parse", refuse)
    assert graphql_in_body(b'{"mutation": "mutation { a }", "q": 1}' * 1000,
                           "application/json") is None


@pytest.mark.parametrize("document", [
    'mutation { issueUpdate(id: "I-1", input: {title: "x"}) { success } '
    '... on Mutation { issueDelete(id: "I-2") { success } } }',
    'mutation { issueUpdate(id: "I-1", input: {title: "x"}) { success } ...F } '
    'fragment F on Mutation { issueDelete(id: "I-2") { success } }',
    'mutation { ... { issueUpdate(id: "I-1", input: {title: "x"}) { success } '
    '...F } } fragment F on Mutation { ...G } fragment G on Mutation { issueDelete(id: "I-2") '
    '{ success } }',
])
def test_a_mutation_in_a_top_level_fragment_is_shown_beside_the_others(document: str) -> None:
    """A server runs the root fields of inline fragments and spreads too: the delete of I-2
    hidden in a fragment must be a record the reviewer sees, not only the update of I-1."""
    found = held(classify(LINEAR[0], "POST", LINEAR[1], {"query": document}))
    assert {(record.record_id, record.operation.value, record.action)
            for record in found.records} == {("I-1", "update", None),
                                             ("I-2", "action", "issueDelete")}


@pytest.mark.parametrize("document", [
    'mutation { issueUpdate(id: "I-1", input: {title: "x"}) { success } ...Missing }',
    'mutation { ...F } fragment F on Mutation { issueDelete(id: "I-2") { success } ...F }',
])
def test_a_fragment_no_server_can_expand_is_a_problem(document: str) -> None:
    found = held(classify(LINEAR[0], "POST", LINEAR[1], {"query": document}))
    assert found.body_problem is not None and "fragment" in found.body_problem
