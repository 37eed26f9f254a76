from pathlib import Path

import pytest

from connectors_schemas import (
    BodyShapeError,
    ConnectorFileError,
    Matcher,
    Operation,
    load_connectors,
)
from connectors_schemas.loader import load_connector


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_connectors())


@pytest.mark.parametrize(("method", "path", "operation", "record_id", "fetch"), [
    ("POST", "/api/v2/tickets", Operation.create, None, None),
    ("POST", "/api/v2/tickets.json", Operation.create, None, None),
    ("PUT", "/api/v2/tickets/42", Operation.update, "42", "/api/v2/tickets/42.json"),
    ("PUT", "/api/v2/tickets/42.json", Operation.update, "42", "/api/v2/tickets/42.json"),
    ("DELETE", "/api/v2/tickets/7.json", Operation.delete, "7", "/api/v2/tickets/7.json"),
])
def test_zendesk_ticket_routes(matcher: Matcher, method: str, path: str, operation: Operation,
                               record_id: str | None, fetch: str | None) -> None:
    match = matcher.match(method, "acme.zendesk.com", path)
    assert match is not None
    assert (match.system, match.object_type) == ("Zendesk", "ticket")
    assert match.operation is operation
    assert match.record_id == record_id
    assert match.fetch_path == fetch


@pytest.mark.parametrize(("method", "host", "path"), [
    ("PUT", "acme.zendesk.com", "/api/v2/users/1"),  # a route the connector does not list
    ("PATCH", "acme.zendesk.com", "/api/v2/tickets/1"),  # a method the route does not take
    ("PUT", "acme.zendesk.com", "/api/v2/tickets/1/comments"),
    ("PUT", "zendesk.com.evil.test", "/api/v2/tickets/1"),
    ("PUT", "example.com", "/api/v2/tickets/1"),
])
def test_no_match(matcher: Matcher, method: str, host: str, path: str) -> None:
    assert matcher.match(method, host, path) is None


def test_host_match_is_case_insensitive_and_knows_its_connector(matcher: Matcher) -> None:
    assert matcher.match("PUT", "ACME.Zendesk.COM", "/api/v2/tickets/1") is not None
    connector = matcher.connector_for("support.zendesk.com")
    assert connector is not None and connector.system == "Zendesk"
    assert matcher.connector_for("example.com") is None


def test_extra_hosts_from_config() -> None:
    matcher = Matcher(load_connectors(extra_hosts={"zendesk": ["support.example.com"]}))
    assert matcher.match("PUT", "support.example.com", "/api/v2/tickets/1") is not None
    with pytest.raises(ConnectorFileError, match=r"connectors\.nosuch: no such connector"):
        load_connectors(extra_hosts={"nosuch": ["x"]})


def test_record_id_is_percent_decoded_but_fetch_path_keeps_the_wire_form(
        matcher: Matcher) -> None:
    match = matcher.match("PUT", "acme.zendesk.com", "/api/v2/tickets/a%20b")
    assert match is not None and match.record_id == "a b"
    assert match.fetch_path == "/api/v2/tickets/a%20b.json"


def test_proposed_values_unwrap_the_vendor_envelope(matcher: Matcher) -> None:
    match = matcher.match("PUT", "acme.zendesk.com", "/api/v2/tickets/1")
    assert match is not None
    assert match.proposed_values({"ticket": {"status": "solved"}}) == {"status": "solved"}
    with pytest.raises(BodyShapeError, match="under 'ticket'"):
        match.proposed_values({"status": "solved"})
    with pytest.raises(BodyShapeError, match="JSON object"):
        match.proposed_values(["ticket"])
    assert match.unwrap_record({"ticket": {"id": 1}}) == {"id": 1}
    assert match.unwrap_record({"error": "RecordNotFound"}) is None


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
