from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from connectors_schemas import (
    Classification,
    ConnectorFileError,
    Matcher,
    Operation,
    load_connectors,
)
from connectors_schemas.loader import load_connector


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_connectors())


def classify(matcher: Matcher, method: str, path: str, body: bytes = b"",
             host: str = "acme.zendesk.com") -> Classification:
    query = parse_qsl(urlsplit(path).query)
    found = matcher.classify(method, host, urlsplit(path).path, query, body, "application/json")
    assert found is not None
    return found


@pytest.mark.parametrize(("method", "path", "operation", "record_id", "fetch"), [
    ("POST", "/api/v2/tickets", Operation.create, None, None),
    ("POST", "/api/v2/tickets.json", Operation.create, None, None),
    ("PUT", "/api/v2/tickets/42", Operation.update, "42", "/api/v2/tickets/42.json"),
    ("PUT", "/api/v2/tickets/42.json", Operation.update, "42", "/api/v2/tickets/42.json"),
    ("DELETE", "/api/v2/tickets/7.json", Operation.delete, "7", "/api/v2/tickets/7.json"),
])
def test_zendesk_ticket_routes(matcher: Matcher, method: str, path: str, operation: Operation,
                               record_id: str | None, fetch: str | None) -> None:
    body = b'{"ticket": {"status": "solved"}}' if method != "DELETE" else b""
    found = classify(matcher, method, path, body)
    assert (found.system, found.object_type, found.read) == ("Zendesk", "ticket", False)
    [record] = found.records
    assert (record.operation, record.record_id) == (operation, record_id)
    assert record.values == (None if method == "DELETE" else {"status": "solved"})
    requests = found.fetch_requests([])
    assert [request.path for request in requests] == ([fetch] if fetch else [])


@pytest.mark.parametrize(("method", "host", "path"), [
    ("PUT", "acme.zendesk.com", "/api/v2/groups/1"),  # a route the connector does not list
    ("PATCH", "acme.zendesk.com", "/api/v2/tickets/1"),  # a method the route does not take
    ("PUT", "acme.zendesk.com", "/api/v2/tickets/1/comments"),
    ("PUT", "zendesk.com.evil.test", "/api/v2/tickets/1"),
    ("PUT", "example.com", "/api/v2/tickets/1"),
])
def test_no_match(matcher: Matcher, method: str, host: str, path: str) -> None:
    assert matcher.classify(method, host, path, []) is None


def test_host_match_is_case_insensitive_and_knows_its_connector(matcher: Matcher) -> None:
    assert matcher.classify("DELETE", "ACME.Zendesk.COM", "/api/v2/tickets/1", []) is not None
    connector = matcher.connector_for("support.zendesk.com")
    assert connector is not None and connector.system == "Zendesk"
    assert matcher.connector_for("example.com") is None


def test_extra_hosts_from_config() -> None:
    matcher = Matcher(load_connectors(extra_hosts={"zendesk": ["support.example.com"]}))
    assert matcher.classify("DELETE", "support.example.com", "/api/v2/tickets/1", []) is not None
    with pytest.raises(ConnectorFileError, match=r"connectors\.nosuch: no such connector"):
        load_connectors(extra_hosts={"nosuch": ["x"]})


def test_record_id_is_percent_decoded_but_fetch_path_keeps_the_wire_form(
        matcher: Matcher) -> None:
    found = classify(matcher, "DELETE", "/api/v2/tickets/a%20b")
    assert found.records[0].record_id == "a b"
    assert found.fetch_requests([])[0].path == "/api/v2/tickets/a%20b.json"


def test_bodies_that_do_not_fit_the_route_say_why(matcher: Matcher) -> None:
    assert "under 'ticket'" in (classify(matcher, "PUT", "/api/v2/tickets/1",
                                         b'{"status": "solved"}').body_problem or "")
    assert "not valid JSON" in (classify(matcher, "PUT", "/api/v2/tickets/1",
                                         b'{"ticket": ').body_problem or "")
    broken = classify(matcher, "PUT", "/api/v2/tickets/1", b"\xff\xfe")
    assert "UTF-8" in (broken.body_problem or "")
    assert broken.records[0].record_id == "1"  # still names the record for the reviewer


@pytest.mark.parametrize(("text", "message"), [
    ("system: X\nhosts: [a.test]\nobjects: {}\n", r"field objects: .*at least 1"),
    ("system: X\nhosts: [a.test]\nobjects:\n  t:\n    routes:\n"
     "      - {method: GET, path: /t, operation: create}\n",
     r"field objects\.t\.routes\.0\.method: .*must be one of"),
    ("system: X\nhosts: [a.test]\nobjects:\n  t:\n    routes:\n"
     "      - {method: PUT, path: /t, operation: update}\n",
     r"needs '\{id\}'"),
    ("system: X\nhosts: [a.test]\nobjects:\n  t:\n    colour: red\n    routes:\n"
     "      - {method: POST, path: /t, operation: create}\n",
     r"field objects\.t\.colour: Extra inputs"),
    ("system: [unclosed\n", "cannot read it"),
])
def test_bad_connector_files_name_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ConnectorFileError, match=message) as caught:
        load_connector(path)
    assert str(path) in str(caught.value)
