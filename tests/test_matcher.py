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


# Routes derived from the vendors' OpenAPI descriptions (connectors_schemas/derived/*.json),
# merged under the hand-written files: object, operation, record id and the documented GET.
_FORM, _JSON = "application/x-www-form-urlencoded", "application/json"
_STRIPE, _GITHUB = "api.stripe.com", "api.github.com"
_JIRA, _HUBSPOT = "acme.atlassian.net", "api.hubapi.com"


@pytest.mark.parametrize(("host", "method", "path", "body", "expected", "fetch"), [
    (_STRIPE, "POST", "/v1/subscriptions/sub_1", b"metadata[a]=b",
     ("subscription", Operation.update, "sub_1", None), ["/v1/subscriptions/sub_1"]),
    (_STRIPE, "DELETE", "/v1/subscriptions/sub_1", b"",
     ("subscription", Operation.action, "sub_1", "cancel"), ["/v1/subscriptions/sub_1"]),
    (_STRIPE, "POST", "/v1/subscriptions", b"customer=cus_1",
     ("subscription", Operation.create, None, None), []),
    (_STRIPE, "POST", "/v1/products/prod_1", b"name=x",
     ("product", Operation.update, "prod_1", None), ["/v1/products/prod_1"]),
    (_STRIPE, "POST", "/v1/prices/price_1", b"nickname=x",
     ("price", Operation.update, "price_1", None), ["/v1/prices/price_1"]),
    (_STRIPE, "POST", "/v1/invoiceitems/ii_1", b"amount=5",
     ("invoiceitem", Operation.update, "ii_1", None), ["/v1/invoiceitems/ii_1"]),
    (_STRIPE, "POST", "/v1/checkout/sessions", b"mode=payment",
     ("checkout.session", Operation.create, None, None), []),
    (_STRIPE, "POST", "/v1/checkout/sessions/cs_1/expire", b"",
     ("checkout.session", Operation.action, "cs_1", "expire"), ["/v1/checkout/sessions/cs_1"]),
    (_STRIPE, "POST", "/v1/credit_notes", b"invoice=in_1",
     ("credit_note", Operation.create, None, None), []),
    (_STRIPE, "POST", "/v1/credit_notes/cn_1/void", b"",
     ("credit_note", Operation.action, "cn_1", "void"), ["/v1/credit_notes/cn_1"]),
    (_STRIPE, "POST", "/v1/payment_methods/pm_1/attach", b"customer=cus_1",
     ("payment_method", Operation.action, "pm_1", "attach"), ["/v1/payment_methods/pm_1"]),
    (_STRIPE, "POST", "/v1/payment_methods/pm_1/detach", b"",
     ("payment_method", Operation.action, "pm_1", "detach"), ["/v1/payment_methods/pm_1"]),
    (_GITHUB, "POST", "/repos/o/r/labels", b'{"name": "bug"}',
     ("label", Operation.create, None, None), []),
    (_GITHUB, "PATCH", "/repos/o/r/labels/bug", b'{"color": "f00"}',
     ("label", Operation.update, "bug", None), ["/repos/o/r/labels/bug"]),
    (_GITHUB, "PUT", "/repos/o/r/issues/5/labels", b'{"labels": ["bug"]}',
     ("issue", Operation.update, "5", None), ["/repos/o/r/issues/5"]),
    (_GITHUB, "POST", "/repos/o/r/issues/5/assignees", b'{"assignees": ["al"]}',
     ("issue", Operation.update, "5", None), ["/repos/o/r/issues/5"]),
    (_GITHUB, "POST", "/repos/o/r/pulls/5/requested_reviewers", b'{"reviewers": ["al"]}',
     ("pull_request", Operation.update, "5", None), ["/repos/o/r/pulls/5"]),
    (_GITHUB, "POST", "/repos/o/r/pulls/5/reviews", b'{"event": "APPROVE"}',
     ("pull_request_review", Operation.create, None, None), []),
    (_GITHUB, "PUT", "/repos/o/r/pulls/5/reviews/8", b'{"body": "ok"}',
     ("pull_request_review", Operation.update, "8", None), ["/repos/o/r/pulls/5/reviews/8"]),
    (_GITHUB, "POST", "/repos/o/r/pulls/5/comments", b'{"body": "x"}',
     ("pull_request_review_comment", Operation.create, None, None), []),
    (_GITHUB, "PATCH", "/repos/o/r/pulls/comments/9", b'{"body": "x"}',
     ("pull_request_review_comment", Operation.update, "9", None),
     ["/repos/o/r/pulls/comments/9"]),
    (_GITHUB, "POST", "/repos/o/r/releases", b'{"tag_name": "v1"}',
     ("release", Operation.create, None, None), []),
    (_GITHUB, "PATCH", "/repos/o/r/releases/3", b'{"name": "v1"}',
     ("release", Operation.update, "3", None), ["/repos/o/r/releases/3"]),
    (_GITHUB, "POST", "/repos/o/r/git/refs", b'{"ref": "refs/heads/x", "sha": "a"}',
     ("git_ref", Operation.create, None, None), []),
    (_GITHUB, "PATCH", "/repos/o/r/git/refs/heads/main", b'{"sha": "a"}',
     ("git_ref", Operation.update, "heads/main", None), ["/repos/o/r/git/ref/heads/main"]),
    (_GITHUB, "POST", "/user/repos", b'{"name": "x"}',
     ("repository", Operation.create, None, None), []),
    (_GITHUB, "PATCH", "/repos/o/r", b'{"description": "x"}',
     ("repository", Operation.update, "r", None), ["/repos/o/r"]),
    (_GITHUB, "DELETE", "/repos/o/r", b"",
     ("repository", Operation.delete, "r", None), ["/repos/o/r"]),
    (_GITHUB, "POST", "/repos/o/r/actions/workflows/ci.yml/dispatches", b'{"ref": "main"}',
     ("workflow", Operation.action, "ci.yml", "dispatch"),
     ["/repos/o/r/actions/workflows/ci.yml"]),
    (_JIRA, "POST", "/rest/api/3/issue/P-1/worklog", b'{"timeSpent": "1h"}',
     ("issue", Operation.update, "P-1", None), ["/rest/api/3/issue/P-1"]),
    (_JIRA, "PUT", "/rest/api/2/issue/P-1/worklog/10", b'{"timeSpent": "2h"}',
     ("Worklog", Operation.update, "10", None), ["/rest/api/2/issue/P-1/worklog/10"]),
    (_JIRA, "POST", "/rest/api/3/issue/P-1/watchers", b'"5b10ac8d82e05b22cc7d4ef5"',
     ("Watchers", Operation.update, "P-1", None), ["/rest/api/3/issue/P-1/watchers"]),
    (_JIRA, "POST", "/rest/api/latest/issue/P-1/votes", b"",
     ("Votes", Operation.action, "P-1", "vote"), ["/rest/api/latest/issue/P-1/votes"]),
    (_JIRA, "POST", "/rest/api/3/issueLink", b'{"type": {"name": "Blocks"}}',
     ("IssueLink", Operation.create, None, None), []),
    (_JIRA, "DELETE", "/rest/api/3/issueLink/10", b"",
     ("IssueLink", Operation.delete, "10", None), ["/rest/api/3/issueLink/10"]),
    (_JIRA, "PUT", "/rest/api/3/issue/P-1/remotelink/4", b'{"object": {"url": "u"}}',
     ("RemoteIssueLink", Operation.update, "4", None), ["/rest/api/3/issue/P-1/remotelink/4"]),
    (_JIRA, "DELETE", "/rest/api/3/attachment/12", b"",
     ("AttachmentMetadata", Operation.delete, "12", None), ["/rest/api/3/attachment/12"]),
    (_JIRA, "PUT", "/rest/api/3/issue/P-1/assignee", b'{"accountId": "a1"}',
     ("issue", Operation.update, "P-1", None), ["/rest/api/3/issue/P-1"]),
    (_JIRA, "PUT", "/rest/api/3/issue/P-1/properties/flag", b'{"x": 1}',
     ("EntityProperty", Operation.update, "flag", None),
     ["/rest/api/3/issue/P-1/properties/flag"]),
    (_JIRA, "PUT", "/rest/api/3/project/PRJ", b'{"name": "x"}',
     ("Project", Operation.update, "PRJ", None), ["/rest/api/3/project/PRJ"]),
    (_JIRA, "PUT", "/rest/api/3/version/7", b'{"name": "x"}',
     ("Version", Operation.update, "7", None), ["/rest/api/3/version/7"]),
    (_JIRA, "PUT", "/rest/api/3/component/7", b'{"name": "x"}',
     ("ProjectComponent", Operation.update, "7", None), ["/rest/api/3/component/7"]),
    (_JIRA, "PUT", "/rest/api/3/filter/7", b'{"name": "x"}',
     ("Filter", Operation.update, "7", None), ["/rest/api/3/filter/7"]),
    # a pair named by both records, its labels read from the from-record's associations
    (_HUBSPOT, "PUT", "/crm/v4/objects/contacts/1/associations/companies/2",
     b'[{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1}]',
     ("association", Operation.update, "contacts/1/companies/2", None),
     ["/crm/v4/objects/contacts/1/associations/companies"]),
    (_HUBSPOT, "DELETE", "/crm/v4/objects/contacts/1/associations/companies/2", b"",
     ("association", Operation.delete, "contacts/1/companies/2", None),
     ["/crm/v4/objects/contacts/1/associations/companies"]),
    (_HUBSPOT, "POST", "/crm/v3/objects/contacts/merge",
     b'{"primaryObjectId": "1", "objectIdToMerge": "2"}',
     ("contacts", Operation.action, "1", "merge"), ["/crm/v3/objects/contacts/1"]),
    (_HUBSPOT, "POST", "/crm/v3/objects/contacts/gdpr-delete", b'{"objectId": "1"}',
     ("contacts", Operation.delete, "1", None), ["/crm/v3/objects/contacts/1"]),
    (_HUBSPOT, "PATCH", "/crm/v3/properties/contacts/email", b'{"label": "E"}',
     ("Property", Operation.update, "email", None), ["/crm/v3/properties/contacts/email"]),
    (_HUBSPOT, "PATCH", "/crm/objects/2026-03/deals/1", b'{"properties": {"amount": "5"}}',
     ("deals", Operation.update, "1", None), ["/crm/objects/2026-03/deals/1"]),
])
def test_derived_routes_of_the_shipped_connectors(
        matcher: Matcher, host: str, method: str, path: str, body: bytes,
        expected: tuple[str, Operation, str | None, str | None], fetch: list[str]) -> None:
    content_type = _FORM if host == _STRIPE else _JSON
    found = matcher.classify(method, host, path, [], body, content_type)
    assert found is not None and not found.read
    [record] = found.records
    assert (record.object_type, record.operation, record.record_id, record.action) == expected
    assert [request.path for request in found.fetch_requests([])] == fetch


def test_github_label_writes_are_the_issues_labels(matcher: Matcher) -> None:
    """Old labels -> new labels: the issue is fetched and its labels compared by name."""
    found = matcher.classify("PUT", _GITHUB, "/repos/o/r/issues/5/labels", [],
                             b'{"labels": ["bug"]}', _JSON)
    assert found is not None and found.spec.list_keys == {"labels": "name", "assignees": "login"}
    assert found.records[0].values == {"labels": ["bug"]}
    added = matcher.classify("POST", _GITHUB, "/repos/o/r/issues/5/labels", [], b'["bug"]',
                             _JSON)
    assert added is not None and added.records[0].ops == {"labels": [{"add": "bug"}]}
    removed = matcher.classify("DELETE", _GITHUB, "/repos/o/r/issues/5/labels/bug", [], b"",
                               None)
    assert removed is not None and removed.records[0].ops == {"labels": [{"remove": "bug"}]}


def test_jira_assignee_is_the_issues_field_under_fields(matcher: Matcher) -> None:
    found = matcher.classify("PUT", _JIRA, "/rest/api/2/issue/P-1/assignee", [],
                             b'{"accountId": "a1"}', _JSON)
    assert found is not None and found.spec.record_path == "fields"  # inherited from `issue`
    assert found.records[0].values == {"assignee": {"accountId": "a1"}}


def test_jira_issue_archive_is_the_bodys_issues_not_an_issue_named_archive(
        matcher: Matcher) -> None:
    found = matcher.classify("PUT", _JIRA, "/rest/api/3/issue/archive", [],
                             b'{"issueIdsOrKeys": ["P-1", "P-2"]}', _JSON)
    assert found is not None
    assert [(r.object_type, r.operation, r.action, r.record_id) for r in found.records] == [
        ("issue", Operation.action, "archive", "P-1"),
        ("issue", Operation.action, "archive", "P-2")]
    assert [r.path for r in found.fetch_requests([])] == ["/rest/api/3/issue/P-1",
                                                          "/rest/api/3/issue/P-2"]


def test_hubspot_date_versioned_objects_are_named_and_unwrapped(matcher: Matcher) -> None:
    found = matcher.classify("PATCH", _HUBSPOT, "/crm/objects/2026-03/contacts/1", [],
                             b'{"properties": {"email": "a@b.c"}}', _JSON)
    assert found is not None and found.object_type == "contacts"
    assert found.records[0].values == {"email": "a@b.c"}  # the description's `properties` map
    assert [r.path for r in found.fetch_requests([])] == ["/crm/objects/2026-03/contacts/1"]


@pytest.mark.parametrize(("host", "path"), [
    (_JIRA, "/rest/api/3/search/jql"), (_JIRA, "/rest/api/2/jql/parse"),
    (_HUBSPOT, "/crm/objects/2026-03/contacts/search"),
    (_HUBSPOT, "/crm/v4/associations/contacts/companies/batch/read"),
])
def test_documented_post_reads_pass(matcher: Matcher, host: str, path: str) -> None:
    found = matcher.classify("POST", host, path, [], b"{}", _JSON)
    assert found is not None and found.read


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_form_write_reads_its_url_query_as_parameters_too(matcher: Matcher,
                                                            method: str) -> None:
    """A form-bodied vendor (Stripe, Rack) reads the URL's query beside the body on every
    method: `POST /v1/customers/cus_1?email=...` with `name=Bob` also sets the email, so the
    email is a change the reviewer (and a rule's fields) sees, and a name in both is
    ambiguous."""
    path = "/v1/customers/cus_1" if method == "POST" else "/v1/subscriptions/sub_1"
    found = matcher.classify(method, _STRIPE, path, [("email", "evil@example.com")],
                             b"name=Bob", "application/x-www-form-urlencoded")
    assert found is not None and not found.read and found.body_problem is None
    [record] = found.records
    assert record.values == {"email": "evil@example.com", "name": "Bob"}
    twice = matcher.classify(method, _STRIPE, path, [("name", "Eve")], b"name=Bob",
                             "application/x-www-form-urlencoded")
    assert twice is not None and not twice.read
    assert twice.body_problem is not None and "repeats" in twice.body_problem


@pytest.mark.parametrize(("method", "host", "path", "query", "body"), [
    # an encoded '?' in a parent's key: the fetch read issue ABC as comment 5's old values
    ("PUT", "acme.atlassian.net", "/rest/api/3/issue/ABC%3Fx=/comment/5", [],
     b'{"body": "x"}'),
    ("PUT", "acme.atlassian.net", "/rest/api/3/issue/ABC%23/comment/5", [], b'{"body": "x"}'),
    # ids from the body with dot segments: the fetch read another resource as the record
    ("PUT", "acme.atlassian.net", "/rest/api/3/issue/archive", [],
     b'{"issueIdsOrKeys": ["../../myself"]}'),
    ("POST", "quickbooks.api.intuit.com", "/v3/company/1/invoice", [("operation", "delete")],
     b'{"Id": "../../companyinfo/1", "SyncToken": "0"}'),
])
def test_the_proxys_own_fetch_reads_only_the_record_the_write_names(
        matcher: Matcher, method: str, host: str, path: str, query: list[tuple[str, str]],
        body: bytes) -> None:
    """Values from the agent's path or body never make the proxy's fetch another URL: each
    is encoded in its segment, and a fetch path with more than one reading is not sent."""
    found = matcher.classify(method, host, path, query, body, "application/json")
    assert found is not None and not found.read
    for fetch in found.fetch_requests([]):
        assert "?" not in fetch.path and "#" not in fetch.path
        assert "/../" not in fetch.path + "/" and "/./" not in fetch.path + "/"


def test_two_connectors_of_one_system_name_keep_their_own_routes() -> None:
    """A site's own API named like a built-in (`system: Stripe`) must not lend its routes to
    the built-in's hosts: its documented POST read at /v1/customers/{id} made Stripe's
    customer update pass unreviewed."""
    from connectors_schemas.models import Connector, ObjectSpec, Route

    site = Connector(system="Stripe", hosts=["billing.internal.example"], objects={
        "lookup": ObjectSpec(routes=[Route(method="POST", path="/v1/customers/{id}",
                                           operation=Operation.read)])})
    both = Matcher({**load_connectors(), "billing": site})
    found = both.classify("POST", _STRIPE, "/v1/customers/cus_1", [], b"name=Bob",
                          "application/x-www-form-urlencoded")
    assert found is not None and not found.read and found.object_type == "customer"
    own = both.classify("POST", "billing.internal.example", "/v1/customers/cus_1", [], b"{}",
                        "application/json")
    assert own is not None and own.read
    site_read = both.identify("billing.internal.example", "/v1/customers/cus_1")
    stripe_read = both.identify(_STRIPE, "/v1/customers/cus_1")  # not the cached site answer
    assert site_read is not None and site_read.object_type == "lookup"
    assert stripe_read is not None and stripe_read.object_type == "customer"
