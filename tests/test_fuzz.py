"""Property tests: no body and no request line makes the parsers or the matcher raise."""

from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors_schemas import BodyError, Matcher, load_connectors
from connectors_schemas.bodies import parse_body, parse_form
from connectors_schemas.models import BodyFormat
from proxy_addon import redact

MATCHER = Matcher(load_connectors())
HOSTS = ["acme.zendesk.com", "acme.my.salesforce.com", "quickbooks.api.intuit.com",
         "api.hubapi.com", "api.stripe.com", "acme.atlassian.net", "api.github.com",
         "acme.myshopify.com", "api.linear.app", "unknown.example"]
SEGMENTS = st.sampled_from(["api", "v2", "tickets", "1", "1.json", "crm", "v3", "objects",
                            "contacts", "batch", "upsert", "services", "data", "v59.0",
                            "composite", "sobjects", "Account", "company", "9", "invoice",
                            "rest", "issue", "OPS-1", "repos", "a", "b", "issues", "contents",
                            "graphql", "admin", "2024-10", "graphql.json", "v1", "customers"])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, "application/json", "text/plain",
                                                 "application/x-www-form-urlencoded",
                                                 "application/graphql"]),
       st.sampled_from(list(BodyFormat)))
def test_parse_body_only_raises_body_error(content: bytes, content_type: str | None,
                                           expected: BodyFormat) -> None:
    try:
        parse_body(content, content_type, expected)
    except BodyError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_form_parsing_only_raises_body_error(text: str) -> None:
    try:
        parse_form(text)
    except BodyError:
        pass


@settings(max_examples=500, deadline=None)
@given(method=st.sampled_from(["POST", "PUT", "PATCH", "DELETE"]), host=st.sampled_from(HOSTS),
       segments=st.lists(SEGMENTS, min_size=1, max_size=7), body=JSONISH,
       query=st.lists(st.tuples(st.sampled_from(["ids", "operation", "minorversion", "x"]),
                                st.text(max_size=6)), max_size=3))
def test_the_matcher_answers_every_write(method: str, host: str, segments: list[str],
                                         body: object, query: list[tuple[str, str]]) -> None:
    import json

    path = "/" + "/".join(quote(segment) for segment in segments)
    found = MATCHER.classify(method, host, path, query, json.dumps(body).encode(),
                             "application/json")
    if found is not None:
        assert found.read or found.records or found.body_problem is not None
        found.fetch_requests(query)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_masking_keeps_shape_and_hides_secret_fields(body: object) -> None:
    masked = redact.mask_body({"password": body, "data": body})
    assert masked["password"] == (redact.MASK if body is not None else None)
