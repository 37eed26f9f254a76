"""Which route a request matches: precedence a reader can predict, and an index that agrees."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors_schemas import Matcher, Operation, load_connectors
from connectors_schemas.matcher import _ANY, _GRAPHQL, IDENTIFIED_REMEMBERED, Identified
from connectors_schemas.models import PLACEHOLDER, WRITE_METHODS, Connector

JIRA_HOST = "acme.atlassian.net"


def _connector(routes: list[dict[str, Any]], base_path: str | list[str] = "",
               suffixes: list[str] | None = None, system: str = "Fixture",
               host: str = "api.fixture.test") -> Connector:
    return Connector.model_validate({
        "system": system, "hosts": [host], "base_path": base_path,
        "path_suffixes": suffixes or [""], "objects": {"thing": {"routes": routes}}})


@pytest.fixture(scope="module")
def jira_wrong_order() -> Matcher:
    """The placeholder route listed first: file order alone would take `archive` for an id."""
    return Matcher({"jira": Connector.model_validate({
        "system": "Jira", "hosts": ["*.atlassian.net"], "base_path": "/rest/api/{api_version}",
        "objects": {"issue": {"values_path": "fields", "routes": [
            {"method": "PUT", "path": "/issue/{id}", "operation": "update"},
            {"method": "PUT", "path": "/issue/archive", "operation": "action",
             "action": "archive", "no_fetch": True},
        ]}}})})


def test_a_literal_segment_beats_a_placeholder_whatever_the_file_order(
        jira_wrong_order: Matcher) -> None:
    found = jira_wrong_order.classify("PUT", JIRA_HOST, "/rest/api/3/issue/archive", [],
                                      b'{"issueIdsOrKeys": ["P-1", "P-2"]}', "application/json")
    assert found is not None and found.route.path == "/issue/archive"
    assert [(r.operation, r.action, r.record_id) for r in found.records] == [
        (Operation.action, "archive", None)]
    other = jira_wrong_order.classify("PUT", JIRA_HOST, "/rest/api/2/issue/P-1", [],
                                      b'{"fields": {"summary": "x"}}', "application/json")
    assert other is not None and other.route.path == "/issue/{id}"
    assert other.base == "/rest/api/2" and other.records[0].record_id == "P-1"


def _route_of(matcher: Matcher, method: str, path: str, host: str = "api.fixture.test",
              query: list[tuple[str, str]] | None = None) -> str | None:
    found = matcher.classify(method, host, path, query or [])
    return None if found is None else f"{found.route.path} {found.params}"


def test_literal_then_placeholder_then_greedy_compared_from_the_left() -> None:
    matcher = Matcher({"fixture": _connector([
        {"method": "POST", "path": "/files/{path+}", "operation": "create"},
        {"method": "POST", "path": "/{kind}/search", "operation": "read"},
        {"method": "POST", "path": "/files/{id}", "operation": "create"},
        {"method": "POST", "path": "/files/{id}.json", "operation": "create"},
        {"method": "POST", "path": "/files/search", "operation": "read"},
        {"method": "POST", "path": "/files/{id}/search", "operation": "read"},
        {"method": "POST", "path": "/files/{path+}/raw", "operation": "create"},
    ], base_path="/v1")})
    assert _route_of(matcher, "POST", "/v1/files/search") == "/files/search {}"
    assert _route_of(matcher, "POST", "/v1/notes/search") == "/{kind}/search {'kind': 'notes'}"
    # `{id}.json` is a placeholder segment like `{id}`: the earlier in the file wins.
    assert _route_of(matcher, "POST", "/v1/files/a.json") == "/files/{id} {'id': 'a.json'}"
    assert _route_of(matcher, "POST", "/v1/files/a/search") == "/files/{id}/search {'id': 'a'}"
    assert _route_of(matcher, "POST", "/v1/files/a/b") == "/files/{path+} {'path': 'a/b'}"
    # Both greedy: the template that goes on (`/raw`) is the more specific.
    assert _route_of(matcher, "POST", "/v1/files/a/b/raw") == (
        "/files/{path+}/raw {'path': 'a/b'}")


def test_ties_keep_file_order_so_a_hand_written_route_beats_a_derived_one() -> None:
    """Derived routes carry full paths (`/rest/api/3/...`) and are listed after the connector's
    own; the base path's placeholder counts as literal, so the two are the same template."""
    matcher = Matcher({"jira": Connector.model_validate({
        "system": "Jira", "hosts": ["*.atlassian.net"],
        "base_path": ["/rest/api/{api_version}", ""],
        "objects": {
            "issue": {"values_path": "fields", "routes": [
                {"method": "PUT", "path": "/issue/{id}", "operation": "update"}]},
            "derived_issue": {"routes": [
                {"method": "PUT", "path": "/rest/api/3/issue/{id}", "operation": "update"},
                {"method": "PUT", "path": "/rest/api/3/issue/archive", "operation": "action",
                 "action": "archive", "no_fetch": True}]},
        }})})
    found = matcher.classify("PUT", JIRA_HOST, "/rest/api/3/issue/P-1", [])
    assert found is not None and (found.spec.values_path, found.base) == ("fields", "/rest/api/3")
    archived = matcher.classify("PUT", JIRA_HOST, "/rest/api/3/issue/archive", [])
    assert archived is not None and archived.route.action == "archive"


def test_the_same_template_with_query_conditions_keeps_file_order() -> None:
    """The first in the file whose query matches wins; a route without conditions listed first
    takes every request, as before."""
    conditional = {"method": "POST", "path": "/t/{id}", "operation": "delete",
                   "query": {"operation": "delete"}}
    plain = {"method": "POST", "path": "/t/{id}", "operation": "update"}
    first = Matcher({"fixture": _connector([conditional, plain])})
    deleted = first.classify("POST", "api.fixture.test", "/t/1", [("operation", "DELETE")])
    assert deleted is not None and deleted.route.operation is Operation.delete
    updated = first.classify("POST", "api.fixture.test", "/t/1", [])
    assert updated is not None and updated.route.operation is Operation.update
    last = Matcher({"fixture": _connector([plain, conditional])})
    shadowed = last.classify("POST", "api.fixture.test", "/t/1", [("operation", "delete")])
    assert shadowed is not None and shadowed.route.operation is Operation.update
    # A literal route with a condition that does not hold falls through to the placeholder one.
    literal = Matcher({"fixture": _connector([
        plain, {**conditional, "path": "/t/archive", "operation": "action", "action": "a",
                "no_fetch": True}])})
    assert _route_of(literal, "POST", "/t/archive") == "/t/{id} {'id': 'archive'}"
    assert _route_of(literal, "POST", "/t/archive", query=[("operation", "delete")]) == (
        "/t/archive {}")


def test_base_paths_suffixes_trailing_slashes_and_segments_with_placeholders() -> None:
    matcher = Matcher({"fixture": _connector([
        {"method": "PUT", "path": "/tickets/{id}", "operation": "update"},
        {"method": "PUT", "path": "/docs/{id}.txt", "operation": "update"},
        {"method": "PUT", "path": "/v{major}/{id}", "operation": "update"},
    ], base_path=["/admin/api/{version}", "/api/v2"], suffixes=["", ".json"])})
    assert _route_of(matcher, "PUT", "/admin/api/2024-01/tickets/7.json/") == (
        "/tickets/{id} {'version': '2024-01', 'id': '7'}")
    assert _route_of(matcher, "PUT", "/api/v2/tickets/7/") == "/tickets/{id} {'id': '7'}"
    assert _route_of(matcher, "PUT", "/api/v2/docs/a.txt.json") == "/docs/{id}.txt {'id': 'a'}"
    assert _route_of(matcher, "PUT", "/api/v2/v3/x") == "/v{major}/{id} {'major': '3', 'id': 'x'}"
    for unmatched in ("/api/v2/tickets/7/x", "/api/v2/tickets/", "/api/v2/docs/a.md",
                      "/api/v3/tickets/7", "/admin/api/tickets/7"):
        assert _route_of(matcher, "PUT", unmatched) is None, unmatched


def test_identify_follows_precedence_and_remembers_a_bounded_number_of_paths() -> None:
    matcher = Matcher({"fixture": _connector([
        {"method": "PATCH", "path": "/t/{id}", "operation": "update"},
        {"method": "POST", "path": "/t/search", "operation": "read"},
        {"method": "POST", "path": "/t/{thing}/notes", "operation": "create"},
    ])})
    host = "api.fixture.test"
    assert matcher.identify(host, "/t/42") == Identified("Fixture", "thing", "42")
    assert matcher.identify(host, "/t/42") == Identified("Fixture", "thing", "42")  # remembered
    assert matcher.identify(host, "/t/42/notes") == Identified("Fixture", "thing", None)
    # A route naming a record still beats a collection route, as before.
    assert matcher.identify(host, "/t/search") == Identified("Fixture", "thing", "search")
    assert matcher.identify(host, "/nothing") == Identified("Fixture", None, None)
    assert matcher.identify("example.com", "/t/42") is None
    for n in range(IDENTIFIED_REMEMBERED + 10):
        assert matcher.identify(host, f"/t/{n}") == Identified("Fixture", "thing", str(n))
    assert len(matcher._identified) <= IDENTIFIED_REMEMBERED


# The index is a prefilter: whatever it returns, in whatever order, must be exactly what trying
# every route in precedence order returns.

TRICKY = ["", "archive", "search", "update_many", "graphql", "GraphQL", "3", "v59.0", "a.json",
          ".json", "contents", "a%20b", "%2F", "..", ".", "x/y"]


def _scanning(connectors: dict[str, Connector]) -> Matcher:
    """A matcher whose index hands back every route: the exhaustive scan to compare with."""
    matcher = Matcher(connectors)
    for index in matcher._routes.values():
        index.candidates = (  # type: ignore[method-assign]
            lambda path, among, index=index: index.scan(among))
    return matcher


def _templates(connector: Connector) -> list[str]:
    return [base + route.path for base in connector.base_paths
            for spec in connector.objects.values() for route in spec.routes]


def _literals(connector: Connector) -> list[str]:
    return sorted({segment for template in _templates(connector)
                   for segment in template.split("/") if not PLACEHOLDER.search(segment)})


@st.composite
def _paths(draw: st.DrawFn, connector: Connector) -> str:
    """A route's template filled with values that collide with other routes' literals, then
    cut short, lengthened or given a suffix or slash; or segments drawn at random."""
    value = st.sampled_from(_literals(connector) + TRICKY) | st.text("ab9._-~%", max_size=4)
    if draw(st.integers(0, 4)) == 0:
        return "/" + "/".join(draw(st.lists(value, max_size=6)))

    def fill(found: Any) -> str:
        return "/".join(draw(st.lists(value, min_size=1, max_size=3))) if found[2] else draw(
            value)

    path = PLACEHOLDER.sub(fill, draw(st.sampled_from(_templates(connector))))
    if cut := draw(st.integers(0, 2)):
        path = "/".join(path.split("/")[:-cut]) or "/"
    return path + draw(st.sampled_from(["", "", "/", ".json", ".json/", "//", "/x", "/search"]))


def _agree(fast: Matcher, slow: Matcher, connector: Connector, path: str,
           query: list[tuple[str, str]]) -> None:
    index = fast._routes[connector.system]
    for among in [*sorted(WRITE_METHODS), _ANY, _GRAPHQL]:
        assert [c for c in index.candidates(path, among) if c.pattern.match(path)] == [
            c for c in index.scan(among) if c.pattern.match(path)], (among, path)
    host = connector.hosts[0].replace("*", "acme")
    assert fast.identify(host, path) == slow.identify(host, path), path
    for method in [*sorted(WRITE_METHODS), "GET"]:
        assert fast.classify(method, host, path, query) == slow.classify(
            method, host, path, query), (method, path)


SHIPPED = load_connectors()
SHIPPED_FAST, SHIPPED_SLOW = Matcher(SHIPPED), _scanning(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_index_agrees_with_a_scan_for_the_shipped_connectors(name: str,
                                                                  data: st.DataObject) -> None:
    connector = SHIPPED[name]
    query = data.draw(st.sampled_from([[], [("ids", "1,2")], [("operation", "delete")]]))
    _agree(SHIPPED_FAST, SHIPPED_SLOW, connector, data.draw(_paths(connector)), query)


SEGMENT_KINDS = ["a", "b", "archive", "{}", "{}", "{}.json", "v{}", "{+}", ""]


@st.composite
def _connectors(draw: st.DrawFn) -> Connector:
    """Routes of random shapes under random base paths, suffixes and query conditions."""
    routes = []
    for _ in range(draw(st.integers(1, 30))):
        names = iter(["id", *(f"p{n}" for n in range(10))])
        kinds = draw(st.lists(st.sampled_from(SEGMENT_KINDS), min_size=1, max_size=4))
        path = "/" + "/".join(kind.replace("{}", f"{{{next(names)}}}").replace(
            "{+}", f"{{{next(names)}+}}") for kind in kinds)
        route: dict[str, Any] = {"method": draw(st.sampled_from(["POST", "PUT"])),
                                 "path": path, "operation": "create"}
        if draw(st.integers(0, 5)) == 0:
            route["query"] = {"operation": draw(st.sampled_from(["delete", "*"]))}
        routes.append(route)
    bases = draw(st.lists(st.sampled_from(["", "/v1", "/api/{ver}", "/api/v2", "/{tenant}"]),
                          min_size=1, max_size=2, unique=True))
    suffixes = draw(st.sampled_from([[""], ["", ".json"], [".json"], [".json", ""]]))
    return _connector(routes, bases, suffixes)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_index_agrees_with_a_scan_for_any_connector(data: st.DataObject) -> None:
    connector = data.draw(_connectors())
    fast, slow = Matcher({"fixture": connector}), _scanning({"fixture": connector})
    for _ in range(5):
        query = data.draw(st.sampled_from([[], [("operation", "delete")]]))
        _agree(fast, slow, connector, data.draw(_paths(connector)), query)
