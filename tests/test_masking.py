"""What is ever kept of a request: allow-listed header values, bodies only as parsed and masked.

Each case plants its own canary and checks it is in nothing the proxy keeps, while what a
reviewer needs (names, non-secret values, a hash) is still there.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import pytest

from proxy_addon import redact
from proxy_addon.proposals import WriteRequest, _request_summary
from proxy_addon.redact import MASK, ShownBody, WithheldBody, mask_request_body

BOUNDARY = "hitl-boundary-7f3a"


def multipart(*parts: tuple[str, dict[str, str], bytes]) -> bytes:
    """A multipart/form-data body of (disposition parameters, extra headers, data) parts."""
    chunks = []
    for disposition, headers, data in parts:
        lines = [f"--{BOUNDARY}", f"Content-Disposition: form-data; {disposition}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        chunks.append("\r\n".join(lines).encode() + b"\r\n\r\n" + data + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"

# -- headers -------------------------------------------------------------------------------------

HIDDEN_HEADERS = [
    ("Ocp-Apim-Subscription-Key", "canary-ocp-1"),
    ("X-Honeycomb-Team", "canary-honeycomb-2"),
    ("X-Algolia-API-Key", "canary-algolia-3"),
    ("X-Algolia-Application-Id", "canary-algolia-app-4"),
    ("X-Figma-Token", "canary-figma-5"),
    ("X-Acme-Sig", "canary-acme-6"),
    ("X-Atlassian-Token", "no-check"),
    ("Cookie", "sid=canary-cookie-7"),
    ("X-Api-Key", "canary-apikey-8"),
    ("PRIVATE-TOKEN", "canary-gitlab-9"),
    ("DD-API-KEY", "canary-datadog-10"),
    ("X-Postmark-Server-Token", "canary-postmark-11"),
    ("Api-Token", "canary-api-token-12"),
    ("X-Custom", "canary-custom-13"),
    ("Referer", "https://app.test/?token=canary-referer-14"),
    ("Tracestate", "vendor=canary-tracestate-15"),
]


@pytest.mark.parametrize(("name", "value"), HIDDEN_HEADERS)
def test_a_header_not_known_to_be_safe_keeps_its_name_but_not_its_value(
        name: str, value: str) -> None:
    assert redact.mask_headers([(name, value)]) == {name: MASK}


@pytest.mark.parametrize(("value", "shown"), [
    ("Bearer canary-bearer-1", "Bearer ***"),
    ("Basic Y2FuYXJ5OmNhbmFyeQ==", "Basic ***"),
    ("token canary-gh-2", "token ***"),
    ("AWS4-HMAC-SHA256 Credential=canary/2026, Signature=canary-3", "AWS4-HMAC-SHA256 ***"),
    ("canary-bare-4", "***"),
    ("canary-scheme-5 canary-rest-5", "***"),  # an unknown first word could be the secret
    ("Bearer", "***"),
])
def test_authorization_keeps_only_a_known_scheme(value: str, shown: str) -> None:
    assert redact.mask_headers([("Authorization", value)]) == {"Authorization": shown}


@pytest.mark.parametrize(("name", "value"), [
    ("Content-Type", "application/json; charset=utf-8"),
    ("Content-Length", "12"),
    ("Accept", "application/json"),
    ("User-Agent", "zenpy/2.0"),
    ("Idempotency-Key", "retry-1"),
    ("Stripe-Version", "2024-06-20"),
    ("Stripe-Account", "acct_1"),
    ("X-GitHub-Api-Version", "2022-11-28"),
    ("Notion-Version", "2022-06-28"),
    ("Sforce-Call-Options", "client=agent"),
    ("If-Match", '"etag-1"'),
    ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("X-HTTP-Method-Override", "DELETE"),
])
def test_headers_known_to_carry_no_secret_are_shown(name: str, value: str) -> None:
    assert redact.mask_headers([(name, value)]) == {name: value}


def test_a_content_type_keeps_only_its_encoding_parameters() -> None:
    assert redact.shown_content_type("text/plain; charset=utf-8; key=canary-ct-1") == (
        "text/plain; charset=utf-8; key=***")
    assert redact.shown_content_type(MULTIPART) == MULTIPART


# -- bodies ----------------------------------------------------------------------------------------

WITHHELD = [
    pytest.param(b'{"user": "ann", "password": "canary-trailing-1",}', "application/json",
                 id="json-trailing-comma"),
    pytest.param(b'{"password": "canary-dup-2", "password": "x"}', "application/json",
                 id="json-repeated-key"),
    pytest.param(b"<user><password>canary-xml-3</password></user>", "application/xml",
                 id="xml"),
    pytest.param(b"<Password>canary-textxml-4</Password>", "text/xml", id="text-xml"),
    pytest.param(b"the password is canary-text-5", "text/plain", id="text-plain"),
    pytest.param(b'{"password": "canary-textjson-6"}', "text/plain", id="json-as-text"),
    pytest.param(b"user=ann&password=canary-formjson-7", "application/json",
                 id="form-as-json"),
    pytest.param(b'{"password": "canary-notype-8"}', None, id="no-content-type"),
    pytest.param(b"password=canary-octet-9", "application/octet-stream", id="octet-stream"),
    pytest.param(b'{"password": "canary-utf8-10", "x": "\xff"}', "application/json",
                 id="invalid-utf8"),
    pytest.param(b"password canary-form-11", "application/x-www-form-urlencoded",
                 id="form-without-equals"),
    pytest.param(b"=canary-form-12", "application/x-www-form-urlencoded", id="form-no-name"),
    pytest.param(b"password=canary-%ff-13", "application/x-www-form-urlencoded",
                 id="form-bad-escape"),
    pytest.param(multipart(('name="password"', {}, b"canary-multipart-14"))[:-12], MULTIPART,
                 id="multipart-truncated"),
    pytest.param(b'--x\r\nContent-Disposition: form-data; name="password"\r\n\r\n'
                 b"canary-multipart-15\r\n--x--\r\n", "multipart/form-data", id="no-boundary"),
    pytest.param(b'{"query": "mutation { login(token: \\"canary-gql-16\\") {", '
                 b'"variables": {}}', "application/json", id="graphql-broken"),
    pytest.param(b'mutation { login(password: "canary-gql-17" ', "application/graphql",
                 id="graphql-raw-broken"),
    pytest.param(b'{"query": "mutation { a }", "variables": "{\\"p\\": \\"canary-gql-18\\""}',
                 "application/json", id="graphql-variables-broken"),
    pytest.param(b'{"a": ' * 50_000 + b"1" + b"}" * 50_000, "application/json",
                 id="absurd-nesting"),
    pytest.param(b"\x89PNG\r\n\x1a\ncanary-png-19", "image/png", id="binary"),
]


@pytest.mark.parametrize(("content", "content_type"), WITHHELD)
def test_a_body_the_proxy_cannot_parse_and_mask_is_kept_as_type_size_and_hash(
        content: bytes, content_type: str | None) -> None:
    found = mask_request_body(content, content_type)
    assert isinstance(found, WithheldBody), found
    assert (found.size, found.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert "canary" not in repr(found) and "canary" not in found.describe()


def test_a_body_too_large_to_mask_is_withheld() -> None:
    content = b'{"a": "' + b"x" * redact.MAX_PARSED + b'"}'
    found = mask_request_body(content, "application/json")
    assert isinstance(found, WithheldBody) and found.reason == "too large to mask"


def shown(content: bytes, content_type: str | None, graphql: bool = False) -> ShownBody:
    found = mask_request_body(content, content_type, graphql_expected=graphql)
    assert isinstance(found, ShownBody), found
    assert "canary" not in json.dumps(found.value), found.value
    return found


@pytest.mark.parametrize(("body", "masked"), [
    ({"user": {"password": "canary-j1", "name": "Ann"}}, {"user": {"password": MASK,
                                                                   "name": "Ann"}}),
    ({"items": [{"api_key": "canary-j2"}, {"note": "hi"}]},
     {"items": [{"api_key": MASK}, {"note": "hi"}]}),
    ({"a": [[{"deep": {"client_secret": "canary-j3"}}]]},
     {"a": [[{"deep": {"client_secret": MASK}}]]}),
    ({"pass\u0077ord": "canary-j4"}, {"password": MASK}),
    ({"otp": "canary-j5", "card": {"cvc": "canary-j6"}}, {"otp": MASK, "card": {"cvc": MASK}}),
])
def test_json_is_masked_by_key_at_any_depth(body: Any, masked: Any) -> None:
    content = json.dumps(body).encode().replace(b"password", b"pass\\u0077ord")
    found = shown(content, "application/vnd.api+json; charset=utf-8")
    assert (found.form, found.value) == ("json", masked)


def test_ndjson_lines_are_masked_one_by_one() -> None:
    found = shown(b'{"token": "canary-n1"}\n{"ok": 1}\n', "application/x-ndjson")
    assert (found.form, found.value) == ("ndjson", [{"token": MASK}, {"ok": 1}])


def test_a_form_is_masked_by_field_name_and_by_the_json_in_its_values() -> None:
    found = shown(b"email=a%40b.test&password=canary-f1&metadata[api_token]=canary-f2"
                  b"&payload=" + quote('{"secret": "canary-f3", "n": 1}').encode(),
                  "application/x-www-form-urlencoded")
    assert (found.form, found.value) == ("form", {
        "email": "a@b.test", "password": MASK, "metadata": {"api_token": MASK},
        "payload": '{"secret": "***", "n": 1}'})


def test_multipart_text_fields_are_masked_and_files_kept_as_size_and_hash() -> None:
    picture = b"\x89PNG canary-m3 \x00\xff"
    content = multipart(
        ('name="password"', {}, b"canary-m1"),
        ('name="note"', {"Content-Type": "text/plain; charset=utf-8"}, b"printer jam"),
        ('name="metadata"', {"Content-Type": "application/json"},
         b'{"note": "canary-m2"}'),
        ('name="upload"; filename="shot.png"', {"Content-Type": "image/png"}, picture),
        ('name="notes"; filename="notes.txt"', {"Content-Type": "text/plain"},
         b"canary-m4 in a text file"),
        ('name="api_key"', {"Content-Transfer-Encoding": "base64"}, b"Y2FuYXJ5LW01"),
        ('name="latin"', {}, b"caf\xe9 canary-m6"),
    )
    found = shown(content, MULTIPART)
    assert found.form == "multipart"
    parts = found.value["parts"]
    assert parts[:2] == [{"name": "password", "value": MASK},
                         {"name": "note", "value": "printer jam"}]
    assert parts[3] == {"name": "upload", "filename": "shot.png", "content_type": "image/png",
                        "bytes": len(picture), "sha256": hashlib.sha256(picture).hexdigest()}
    assert all("value" not in part and part["sha256"] for part in (parts[2], *parts[4:]))


# -- GraphQL ---------------------------------------------------------------------------------------


def graphql_body(query: str, variables: dict[str, Any] | None = None, **extra: Any) -> bytes:
    return json.dumps({"query": query, "variables": variables, **extra}).encode()


@pytest.mark.parametrize(("query", "variables"), [
    pytest.param('mutation { login(token: "canary-g1") { ok } }', None, id="inline-literal"),
    pytest.param('mutation { login(password: """canary-g2""") { ok } }', None,
                 id="block-string"),
    pytest.param('mutation { customerUpdate(input: {id: 1, password: "canary-g3"}) { ok } }',
                 None, id="literal-in-input-object"),
    pytest.param('mutation { a(input: {nested: {list: [{apiKey: "canary-g4"}]}}) { ok } }',
                 None, id="literal-deep-in-input"),
    pytest.param("mutation($p: String!) { renamed: login(password: $p) { ok } }",
                 {"p": "canary-g5"}, id="variable-under-an-alias"),
    pytest.param("mutation($x: String!) { a(input: {secret: $x}) { ok } }",
                 {"x": "canary-g6"}, id="variable-bound-to-input-field"),
    pytest.param("mutation($input: In!) { a(input: $input) { ok } }",
                 {"input": {"password": "canary-g7"}}, id="variable-holding-secret-key"),
    pytest.param('mutation($p: String = "canary-g8") { login(password: $p) { ok } }', None,
                 id="variable-default"),
    pytest.param('mutation { login(credentials: {user: "u", pw: "canary-g9"}) { ok } }', None,
                 id="object-under-secret-name"),
    pytest.param('mutation { login(pin: 123456, otp: CANARYENUM) { ok } }', None,
                 id="non-string-literals"),
    pytest.param('mutation { a(title: "x") { ok } } # token canary-g10', None,
                 id="comment"),
    pytest.param('mutation A { a(token: "canary-g11") { ok } } '
                 'mutation B { b(token: "canary-g11") { ok } }', None, id="two-operations"),
    pytest.param('mutation { ...F } fragment F on Mutation { a(token: "canary-g12") { ok } }',
                 None, id="inside-a-fragment"),
])
def test_graphql_literals_and_variables_are_masked_by_the_argument_they_bind_to(
        query: str, variables: dict[str, Any] | None) -> None:
    found = shown(graphql_body(query, variables, operationName=None), "application/json")
    assert found.form == "graphql"
    assert "CANARYENUM" not in found.value["query"] and "123456" not in found.value["query"]


def test_graphql_keeps_what_is_not_secret_for_the_reviewer() -> None:
    found = shown(graphql_body('mutation($id: ID!) { issueUpdate(id: $id, input: {title: "New"}) '
                               "{ success } }", {"id": "ISSUE-1"}), "application/json")
    assert 'title: "New"' in found.value["query"]
    assert found.value["variables"] == {"id": "ISSUE-1"}


def test_graphql_as_a_raw_document_and_in_a_batch() -> None:
    raw = shown(b'mutation { login(password: "canary-r1") { ok } }', "application/graphql")
    assert raw.form == "graphql" and MASK in raw.value["query"]
    batch = shown(json.dumps([{"query": 'mutation { a(token: "canary-b1") { ok } }'},
                              {"query": "query { me { id } }"}]).encode(), "application/json")
    assert batch.form == "graphql" and len(batch.value) == 2


def test_a_json_query_that_is_no_graphql_is_plain_json_unless_the_route_is_graphql() -> None:
    search = shown(b'{"query": "status:open printer"}', "application/json")
    assert search.value == {"query": "status:open printer"}
    graphql_route = mask_request_body(b'{"query": "status:open canary-s1"}', "application/json",
                                      graphql_expected=True)
    assert isinstance(graphql_route, WithheldBody)


@pytest.mark.parametrize(("url", "canary"), [
    ("https://api.test/graphql?query=" + quote('mutation { login(token: "canary-u1") { ok } }'),
     "canary-u1"),
    ("https://api.test/graphql?query=" + quote("query($t: String) { a(token: $t) { ok } }")
     + "&variables=" + quote('{"t": "canary-u2"}'), "canary-u2"),
    ("https://api.test/graphql?query=" + quote("mutation { a") + "&variables="
     + quote('{"password": "canary-u3"}'), "canary-u3"),
    ("https://api.test/graphql?query=" + quote("query { a }") + "&variables=canary-u4",
     "canary-u4"),
    ("https://api.test/x?api_key=canary-u5&page=2", "canary-u5"),
    ("https://user:canary-u6@api.test/x", "canary-u6"),
])
def test_urls_mask_secret_parameters_and_graphql_documents(url: str, canary: str) -> None:
    assert canary not in redact.mask_url(url)


def test_a_url_with_nothing_to_mask_is_kept_as_sent() -> None:
    for url in ("https://acme.zendesk.com/api/v2/search.json?query=status:open%20printer",
                "https://api.test/graphql?query=" + quote("query { me { id } }")):
        assert redact.mask_url(url) == url


def test_a_graphql_syntax_error_quotes_nothing_of_the_document() -> None:
    problem = ("the GraphQL document does not parse: Syntax Error: Unexpected Name "
               "'canaryword'.")
    assert "canary" not in redact.mask_problem(problem)
    assert redact.mask_problem("the body is not valid JSON: Expecting value") == (
        "the body is not valid JSON: Expecting value")


# -- the approval's request summary ----------------------------------------------------------------


def write(content: bytes, content_type: str | None, *headers: tuple[str, str]) -> WriteRequest:
    all_headers = [*headers, *([("Content-Type", content_type)] if content_type else [])]
    return WriteRequest(method="POST", url="https://api.unknown-vendor.test/v1/things",
                        host="api.unknown-vendor.test", path="/v1/things", headers=all_headers,
                        content=content, raw_content=content)


def test_the_summary_of_a_withheld_body_is_its_type_size_and_hash() -> None:
    content = b"<password>canary-sum-1</password>"
    summary = _request_summary(write(content, "application/xml",
                                     ("X-Honeycomb-Team", "canary-sum-2")), None, None)
    assert summary.body is None and summary.body_form is None
    assert (summary.content_type, summary.body_bytes, summary.body_sha256) == (
        "application/xml", len(content), hashlib.sha256(content).hexdigest())
    assert summary.body_withheld == "application/xml is not a form the proxy can mask"
    assert summary.headers["X-Honeycomb-Team"] == MASK
    assert "canary" not in summary.model_dump_json()


def test_the_summary_of_a_parsed_body_shows_it_masked() -> None:
    summary = _request_summary(write(b"name=widget&password=canary-sum-3",
                                     "application/x-www-form-urlencoded"), None, None)
    assert (summary.body_form, summary.body) == ("form", {"name": "widget", "password": MASK})
    assert summary.body_withheld is None and summary.body_sha256


# -- the red team's variants (each confirmed against a real proxy before the fix) ---------------

FORM = "application/x-www-form-urlencoded"


def form(**fields: str) -> bytes:
    return "&".join(f"{quote(name)}={quote(value)}" for name, value in fields.items()).encode()


def nothing_kept(found: ShownBody | WithheldBody | None) -> None:
    """Whatever the proxy kept of the body holds no canary."""
    assert found is not None
    kept = found.describe() if isinstance(found, WithheldBody) else json.dumps(found.value)
    assert "canary" not in kept.lower(), kept


GRAPHQL_IN_FORMS = [
    pytest.param(form(query='mutation{login(password:"canary-a1-1"){id}}'), FORM, id="literal"),
    pytest.param(form(query="mutation($p:String){login(password:$p){id}}",
                      variables='{"p":"canary-a1-2"}'), FORM, id="bound-variable"),
    pytest.param(form(Query='mutation{login(token:"canary-a1-3"){id}}'), FORM, id="case-folded"),
    pytest.param(form(QUERY="mutation($p:String){login(pin:$p){id}}",
                      Variables='{"p":"canary-a1-4"}'), FORM, id="case-folded-variables"),
    pytest.param(form(query='mutation{login(password:"canary-a1-5"'), FORM, id="broken"),
    pytest.param(form(query="{a}", variables='{"password":"canary-a1-6"'), FORM,
                 id="broken-variables"),
    pytest.param(b"query=" + quote('{a(token:"x")}').encode() + b"&query="
                 + quote('mutation{login(password:"canary-a1-7"){id}}').encode(), FORM,
                 id="repeated-query"),
    pytest.param(b"query=" + quote("query($p:String){a(secret:$p)}").encode() + b"&query="
                 + quote("{b}").encode() + b"&variables=" + quote('{"p":"canary-a1-8"}').encode(),
                 FORM, id="two-documents-one-variables"),
]


@pytest.mark.parametrize(("content", "content_type"), GRAPHQL_IN_FORMS)
def test_a1_graphql_sent_as_a_form_is_masked_as_graphql(content: bytes,
                                                        content_type: str) -> None:
    nothing_kept(mask_request_body(content, content_type))


def test_a1_a_form_query_that_is_no_graphql_stays_a_form_unless_the_route_is_graphql() -> None:
    search = shown(form(query="status:open printer"), FORM)
    assert search.value == {"query": "status:open printer"}
    assert isinstance(mask_request_body(form(query="status:open canary-a1-9"), FORM,
                                        graphql_expected=True), WithheldBody)
    masked = shown(form(query="mutation($p:String){login(password:$p){id}}",
                        variables='{"p":"canary-a1-10","id":"x"}'), FORM)
    assert json.loads(masked.value["variables"]) == {"p": MASK, "id": "x"}


MULTIPART_GRAPHQL = [
    pytest.param(('name="operations"', {}, json.dumps({
        "query": "mutation($p:String,$f:Upload){login(password:$p,file:$f){id}}",
        "variables": {"p": "canary-a2-1", "f": None}}).encode()), id="operations-variable"),
    pytest.param(('name="operations"', {}, json.dumps({
        "query": 'mutation{login(password:"canary-a2-2"){id}}'}).encode()),
        id="operations-literal"),
    pytest.param(('name="operations"', {}, json.dumps([
        {"query": 'mutation{a(token:"canary-a2-3"){id}}'}, {"x": 1}]).encode()),
        id="operations-batch"),
    pytest.param(('name="operations"', {}, json.dumps({
        "query": 'mutation{login(password:"canary-a2-4"'}).encode()), id="operations-broken"),
    pytest.param(('name="query"', {}, b'mutation{login(password:"canary-a2-5"){id}}'),
                 id="query-part"),
    pytest.param(('name="Query"', {}, b'mutation{login(password:"canary-a2-6"'),
                 id="query-part-broken"),
]


@pytest.mark.parametrize("part", MULTIPART_GRAPHQL)
def test_a2_multipart_graphql_is_masked_as_graphql(
        part: tuple[str, dict[str, str], bytes]) -> None:
    nothing_kept(mask_request_body(multipart(part, ('name="map"', {}, b'{"0":["variables.f"]}'),
                                             ('name="0"; filename="a.txt"', {}, b"x")),
                                   MULTIPART))


def test_a2_a_query_part_binds_the_variables_part() -> None:
    found = shown(multipart(('name="query"', {}, b"mutation($p:String){login(password:$p){id}}"),
                            ('name="variables"', {}, b'{"p":"canary-a2-7","n":1}')), MULTIPART)
    assert json.loads(found.value["parts"][1]["value"]) == {"p": MASK, "n": 1}


URL_GRAPHQL = [
    pytest.param("?query=%7Ba%7D&query=" + quote('mutation{login(password:"canary-a3-1"){id}}'),
                 id="repeated-query"),
    pytest.param("?Query=" + quote('mutation{login(password:"canary-a3-2"){id}}'),
                 id="case-changed-query"),
    pytest.param("?query=" + quote("query($p:String){a(password:$p)}") + "&Variables="
                 + quote('{"p":"canary-a3-3"}'), id="case-changed-variables"),
    pytest.param("?query=%7Ba%7D&query=" + quote("query($p:String){a(password:$p)}")
                 + "&variables=" + quote('{"p":"canary-a3-4"}'), id="two-documents"),
    pytest.param("?query=" + quote('mutation{a(password:"canary-a3-5"){id}}')
                 + "&variables=not-json", id="variables-not-json"),
    pytest.param("?query=" + quote('mutation{login(password:"canary-a3-6"'), id="broken"),
    pytest.param("?variables=" + quote('{"p":"canary-a3-7"}') + "&extensions=x",
                 id="variables-without-a-document"),
]


@pytest.mark.parametrize("query", URL_GRAPHQL)
def test_a3_every_graphql_document_and_variables_in_a_url_is_masked(query: str) -> None:
    assert "canary" not in redact.mask_url("https://api.linear.app/graphql" + query)


BATCHES = [
    pytest.param([{"query": 'mutation{login(password:"canary-a4-1"){id}}'}, {"x": 1}],
                 id="one-item-no-graphql"),
    pytest.param([{"query": 'mutation{login(password:"canary-a4-2"){id}}'}, 7], id="a-number"),
    pytest.param([{"x": 1}, {"query": 'mutation{login(password:"canary-a4-3"'}], id="broken"),
    pytest.param({"data": {"query": 'mutation{login(password:"canary-a4-4"){id}}'}},
                 id="nested-query"),
    pytest.param({"query": 'mutation{login(password:"canary-a4-5"'}, id="broken-no-variables"),
    pytest.param({"query": '{ a(password: "canary-a4-6") '}, id="broken-shorthand"),
    pytest.param({"operationName": "A", "variables": {"p": "canary-a4-7"},
                  "extensions": {"persistedQuery": {"sha256Hash": "ab"}}}, id="persisted"),
]


@pytest.mark.parametrize("body", BATCHES)
def test_a4_every_item_that_looks_like_graphql_is_masked_as_graphql(body: Any) -> None:
    nothing_kept(mask_request_body(json.dumps(body).encode(), "application/json"))


def test_a4_a_batch_keeps_its_plain_items() -> None:
    found = shown(json.dumps([{"query": "{ me { id } }"}, {"x": 1}]).encode(), "application/json")
    assert found.form == "graphql" and found.value[1] == {"x": 1}


BRACKETS = [
    pytest.param(b"type=card&card[number]=4242&card[cvc]=canary-a5-1", FORM, id="card-cvc"),
    pytest.param(b"x[key]=canary-a5-2", FORM, id="x-key"),
    pytest.param(b"x[pin]=canary-a5-3&y=1", FORM, id="x-pin"),
    pytest.param(b"x[0][sig]=canary-a5-4", FORM, id="x-sig"),
    pytest.param(b"card=x&card[cvc]=canary-a5-5", FORM, id="flat-fallback"),
    pytest.param(b"a[]=1&a[key]=canary-a5-6", FORM, id="flat-fallback-list"),
    pytest.param(b"a[b]=1&a[b][c]=2&a[key]=canary-a5-7", FORM, id="value-and-container"),
    pytest.param(multipart(('name="card[cvc]"', {}, b"canary-a5-8")), MULTIPART,
                 id="multipart-name"),
    pytest.param(b"user.pwd=canary-a5-9", FORM, id="dotted"),
]


@pytest.mark.parametrize(("content", "content_type"), BRACKETS)
def test_a5_a_field_is_secret_when_any_bracket_segment_of_its_name_is(
        content: bytes, content_type: str) -> None:
    nothing_kept(mask_request_body(content, content_type))


@pytest.mark.parametrize("url", [
    "https://api.test/x?x[key]=canary-a5-10", "https://api.test/x?card[cvc]=canary-a5-11&a=1"])
def test_a5_url_parameters_are_masked_by_their_bracket_segments(url: str) -> None:
    assert "canary" not in redact.mask_url(url)


def test_a5_a_form_servers_read_differently_is_withheld(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bodies.parse_form` refuses a repeated key as ambiguous: nothing of the form is shown."""
    from connectors_schemas.bodies import AmbiguousBodyError

    def ambiguous(text: str) -> Any:
        raise AmbiguousBodyError("the form repeats the key 'a'")

    monkeypatch.setattr(redact, "parse_form", ambiguous)
    found = mask_request_body(b"a=1&a=canary-a5-12", FORM)
    assert isinstance(found, WithheldBody) and "differently" in found.reason
    nothing_kept(found)


def test_a5_a_name_behind_a_semicolon_withholds_the_form() -> None:
    nothing_kept(mask_request_body(b"a=1;password=canary-a5-13", FORM))
    assert shown(b"a=1;b", FORM).value == {"a": "1;b"}


MULTIPART_AMBIGUOUS = [
    pytest.param(multipart(("name=\"note\"; filename*=UTF-8''a.txt", {}, b"canary-a7-1")),
                 id="filename-star-only"),
    pytest.param(b"--" + BOUNDARY.encode() + b'\r\nContent-Disposition: form-data; name="note"'
                 b'\r\nContent-Disposition: form-data; name="password"\r\n\r\ncanary-a7-2\r\n--'
                 + BOUNDARY.encode() + b"--\r\n", id="repeated-disposition"),
    pytest.param(multipart(('name="note"; name="password"', {}, b"canary-a7-3")),
                 id="repeated-name"),
    pytest.param(multipart(('name="note"; NAME="password"', {}, b"canary-a7-4")),
                 id="repeated-name-case"),
    pytest.param(multipart(("name=\"note\"; name*=UTF-8''password", {}, b"canary-a7-5")),
                 id="name-star"),
    pytest.param(multipart(('name="note; name=password', {}, b"canary-a7-6")),
                 id="broken-quote"),
]


@pytest.mark.parametrize("content", MULTIPART_AMBIGUOUS)
def test_a7_a_part_servers_could_read_differently_shows_no_value(content: bytes) -> None:
    found = mask_request_body(content, MULTIPART)
    nothing_kept(found)
    assert isinstance(found, ShownBody) and "value" not in found.value["parts"][0]


def test_a7_a_part_with_only_filename_star_is_a_file() -> None:
    [part] = shown(multipart(("name=\"doc\"; filename*=UTF-8''a.txt", {}, b"canary-a7-7")),
                   MULTIPART).value["parts"]
    assert part["filename"] == "UTF-8''a.txt" and part["bytes"] == 11


@pytest.mark.parametrize("name", [
    "pwd", "user_pwd", "passphrase", "client_assertion", "assertion", "cookies",
    "aws_access_key_id", "AWSAccessKeyId", "key_id", "hmac", "x_hmac", "api.key", "api+key",
    "api key", "code_verifier"])
def test_a8_names_the_pattern_once_missed_are_secret(name: str) -> None:
    assert redact.is_secret_field(name)
    nothing_kept(mask_request_body(f"{quote(name, safe='+')}=canary-a8-1".encode(), FORM))
    nothing_kept(mask_request_body(json.dumps({name: "canary-a8-2"}).encode(),
                                   "application/json"))


@pytest.mark.parametrize("name", ["monkey_id", "keyboard", "author_id", "code", "zip_code"])
def test_a8_names_that_only_look_close_are_shown(name: str) -> None:
    assert not redact.is_secret_field(name)


def test_a8_an_oauth_code_is_secret_beside_a_grant_type() -> None:
    body = {"grant_type": "authorization_code", "code": "canary-a8-3", "device_code": "x"}
    nothing_kept(mask_request_body(json.dumps(body).encode(), "application/json"))
    nothing_kept(mask_request_body(form(**body), FORM))
    assert "canary" not in redact.mask_url(
        "https://auth.test/token?grant_type=authorization_code&code=canary-a8-4")
    assert shown(b'{"code": "SKU-1"}', "application/json").value == {"code": "SKU-1"}


URL_VALUES = [
    pytest.param({"callback": "https://x.test/?access_token=canary-a8-5"}, id="query-token"),
    pytest.param({"webhook": "https://u:canary-a8-6@x.test/hook"}, id="userinfo"),
    pytest.param({"next": "https://x.test/?r=" + quote("https://y.test/?token=canary-a8-7")},
                 id="nested"),
    pytest.param({"redirect": "https://x.test/cb#access_token=canary-a8-8"}, id="fragment"),
    pytest.param({"db": "postgres://admin:canary-a8-9@db.test/app"}, id="other-scheme"),
    pytest.param({"query": 'mutation { hook(url: "https://x.test/?token=canary-a8-10") }'},
                 id="graphql-literal"),
]


@pytest.mark.parametrize("body", URL_VALUES)
def test_a8_a_url_in_a_value_is_masked_as_a_url(body: dict[str, str]) -> None:
    nothing_kept(mask_request_body(json.dumps(body).encode(), "application/json"))
    nothing_kept(mask_request_body(form(**body), FORM))


def test_a8_a_url_with_nothing_secret_is_shown_and_the_fragment_of_a_url_is_not() -> None:
    assert shown(b'{"u": "https://x.test/a?page=2"}', "application/json").value == {
        "u": "https://x.test/a?page=2"}
    assert redact.mask_url("https://x.test/cb#access_token=canary-a8-11") == (
        "https://x.test/cb#***")
    deep = "https://x.test/?a=" * 20 + "1"
    assert redact.mask_url(deep)  # bounded: no recursion error on a hook's path


@pytest.mark.parametrize("problem", [
    "the GraphQL document in the body does not parse: Syntax Error: Unexpected Name "
    "'canary'.",
    "the GraphQL document in the body does not parse: Syntax Error: Expected :, found String "
    "\"it's canary-a9-1\".",
    "the GraphQL document in the body does not parse: Syntax Error: Invalid character escape "
    "sequence: '\\'canary-a9-2'.",
    "the GraphQL document in the body does not parse: Syntax Error: Unexpected String "
    "\"x\" canary-a9-3\".",
])
def test_a9_a_graphql_syntax_error_keeps_nothing_after_syntax_error(problem: str) -> None:
    masked = redact.mask_problem(problem)
    assert "canary" not in masked and masked.startswith("the GraphQL document in the body")


@pytest.mark.parametrize(("value", "shown_as"), [
    ("https://u:canary-a10-1@app.test", "https://app.test"),
    ("https://app.test:8443", "https://app.test:8443"),
    ("https://app.test/?token=canary-a10-2", "https://app.test"),
    ("null", "null"),
    ("canary-a10-3", "***"),
])
def test_a10_an_origin_keeps_scheme_host_and_port_only(value: str, shown_as: str) -> None:
    assert redact.mask_headers([("Origin", value)]) == {"Origin": shown_as}


def test_a10_a_content_type_keeps_only_its_first_media_type() -> None:
    assert redact.shown_content_type(
        "application/json, text/plain; key=canary-a10-4; charset=utf-8") == "application/json"
    assert redact.shown_content_type("text/plain; charset=utf-8, x/y; key=canary-a10-5") == (
        "text/plain; charset=utf-8")


@pytest.mark.parametrize("name", ["card[cvc]", "x[pin]", "items[si_1].x[key]", "a.b[sig]"])
def test_a_change_or_parameter_named_with_a_secret_bracket_segment_shows_no_value(
        name: str) -> None:
    from proxy_addon.diff import Diff, FieldChange
    from proxy_addon.proposals import _masked_changes, _masked_parameters

    diff = Diff([FieldChange(name, "canary-old-b1", "canary-new-b1")], [],
                {name: "canary-param-b1"})
    kept = repr(_masked_changes(diff, None)) + repr(_masked_parameters(diff, None))
    op = {"op": "replace", "path": "/" + name.replace(".", "/"), "value": "canary-patch-b1"}
    kept += repr(redact.mask_patch_op(op))
    assert "canary" not in kept and redact.field_is_secret(name)


def test_a_webhook_and_the_history_export_carry_the_parameters_as_the_page_does() -> None:
    from datetime import UTC, datetime

    from review_api.models import Approval, Parameter, Status
    from review_api.notify import Webhook, payload
    from review_api.web import approvals_csv

    approval = Approval(id="a1", status=Status.pending, created_at=datetime.now(UTC),
                        method="DELETE", url="https://api.stripe.com/v1/subscriptions/sub_1",
                        fingerprint="f", parameters=[Parameter(name="invoice_now", value="true"),
                                                     Parameter(name="api_key", value=MASK)])
    body = payload(Webhook("https://hooks.test"), approval, "http://review/a1")
    assert body["parameters"] == [{"name": "invoice_now", "value": "true", "record_id": None},
                                  {"name": "api_key", "value": MASK, "record_id": None}]
    assert "invoice_now" in approvals_csv([approval])
