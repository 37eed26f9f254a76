"""Secrets that leak: what the proxy keeps of a request it could not mask.

The rule: a header's value is stored or shown only for headers known to carry no secret
(everything else reads `***`, Authorization keeps its scheme); a body only in a form the proxy
parsed and masked (JSON, forms, multipart text fields, GraphQL with literals and variables
masked by the argument they bind to), chosen by its declared content type; any other body
(malformed JSON, XML, text, a form sent as JSON, invalid UTF-8) is kept as its content type,
size and sha256 alone. The same holds for the approval's request summary, the traffic record
(`traffic.bodies: all`), URLs and log lines.

Every variant plants its own canary, goes through the real proxy, is approved, and reaches the
upstream intact; then the canary must be in no byte of the data dir (database, WAL, every
file), no API answer or export, no review page and not the proxy log.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, agent_client, held, hitl_proxy_command

ALICE, ADA = "alice-support-token-0001", "ada-auditor-token-000004"
CONFIG = f"""
reviewers:
  - {{name: alice, token: "{ALICE}", groups: [support]}}
  - {{name: ada, token: "{ADA}", groups: [auditor]}}
traffic:
  bodies: all
"""
ZENDESK = "https://acme.zendesk.com/api/v2/tickets/{}.json"
UNKNOWN = "https://api.unknown-vendor.test/v1/things"
SHOPIFY = "https://acme.myshopify.com/admin/api/2024-10/graphql.json"
LINEAR = "https://api.linear.app/graphql"
BOUNDARY = "hitl-secrets-boundary"


def canary(name: str) -> str:
    return f"cnry-{name}-5e1f0a"


def multipart(*parts: tuple[str, str, bytes]) -> bytes:
    """(disposition parameters, part content type or "", data) parts."""
    chunks = []
    for disposition, part_type, data in parts:
        head = f"--{BOUNDARY}\r\nContent-Disposition: form-data; {disposition}\r\n"
        head += f"Content-Type: {part_type}\r\n" if part_type else ""
        chunks.append(head.encode() + b"\r\n" + data + b"\r\n")
    return b"".join(chunks) + f"--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True)
class Variant:
    """One way a secret could travel: the request the agent sends, and where the canary is."""

    name: str
    vendor: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    held: bool = True

    @property
    def canary(self) -> str:
        return canary(self.name)


def zendesk(name: str, ticket: int, content: bytes, content_type: str,
            **headers: str) -> Variant:
    return Variant(name, "zendesk", "PUT", ZENDESK.format(ticket),
                   {"Content-Type": content_type, **headers}, content)


def header(name: str, ticket: int, header_name: str) -> Variant:
    return zendesk(name, ticket, b'{"ticket": {"status": "open"}}', "application/json",
                   **{header_name: canary(name)})


def graphql_post(name: str, vendor: str, url: str, query: str,
                 variables: dict[str, Any] | None = None) -> Variant:
    return Variant(name, vendor, "POST", url, {"Content-Type": "application/json"},
                   json.dumps({"query": query, "variables": variables or {}}).encode())


def graphql_get(name: str, query: str, variables: dict[str, Any] | None = None) -> Variant:
    url = f"{LINEAR}?query={quote(query)}"
    if variables is not None:
        url += f"&variables={quote(json.dumps(variables))}"
    return Variant(name, "linear", "GET", url, held=False)


def posted(name: str, url: str, content: bytes, content_type: str, vendor: str = "zendesk",
           **headers: str) -> Variant:
    return Variant(name, vendor, "POST", url, {"Content-Type": content_type, **headers}, content)


def form(**fields: str) -> bytes:
    return "&".join(f"{quote(key, safe='[]')}={quote(value)}"
                    for key, value in fields.items()).encode()


FORM = "application/x-www-form-urlencoded"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
LOGIN = "mutation($p: String!) {{ login(password: $p) {{ id }} }}"
ISSUE = "issue-for-secrets"  # replaced by the seeded issue's id at run time
# What the second red team found, one canary each. Linear answers a form, a batch or a
# document that does not parse without quoting it; an unknown host answers 404.
RED_TEAM = [
    posted("a1-form-graphql-literal", LINEAR,
           form(query=f'mutation {{ login(password: "{canary("a1-form-graphql-literal")}") '
                "{ id } }"), FORM, "linear"),
    posted("a1-form-graphql-variable", LINEAR,
           form(query=LOGIN.format(), variables=json.dumps(
               {"p": canary("a1-form-graphql-variable")})), FORM, "linear"),
    posted("a2-multipart-operations", LINEAR,
           multipart(('name="operations"', "", json.dumps({
               "query": LOGIN.format(), "variables": {
                   "p": canary("a2-multipart-operations")}}).encode()),
                     ('name="map"', "", b"{}")), MULTIPART, "linear"),
    posted("a2-multipart-query-part", LINEAR,
           multipart(('name="query"', "",
                      f'mutation {{ login(password: "{canary("a2-multipart-query-part")}") '
                      "{ id } }".encode())), MULTIPART, "linear"),
    Variant("a3-repeated-url-query", "linear", "GET",
            f"{LINEAR}?query=%7Ba%7D&query=" + quote(
                f'mutation {{ login(password: "{canary("a3-repeated-url-query")}") {{ id }} }}')),
    Variant("a3-case-changed-url-query", "linear", "GET",
            f"{LINEAR}?Query=" + quote(LOGIN.format()) + "&Variables="
            + quote(json.dumps({"p": canary("a3-case-changed-url-query")}))),
    posted("a4-batch-with-a-plain-item", LINEAR, json.dumps([
        {"query": f'mutation {{ login(password: "{canary("a4-batch-with-a-plain-item")}") '
                  "{ id } }"}, {"x": 1}]).encode(), "application/json", "linear"),
    posted("a5-form-bracket-segment", UNKNOWN,
           form(type="card", **{"card[number]": "4242",
                                "card[cvc]": canary("a5-form-bracket-segment")}), FORM),
    posted("a5-form-flat-fallback", UNKNOWN,
           form(card="x", **{"card[cvc]": canary("a5-form-flat-fallback")}), FORM),
    posted("a5-multipart-bracket-name", UNKNOWN,
           multipart(('name="x[key]"', "", canary("a5-multipart-bracket-name").encode())),
           MULTIPART),
    posted("a5-url-bracket-name", f"{UNKNOWN}?x[key]={canary('a5-url-bracket-name')}",
           b'{"a": 1}', "application/json"),
    posted("a6-unparsed-on-a-graphql-route", LINEAR,
           json.dumps({"query": f"status:open {canary('a6-unparsed-on-a-graphql-route')}"})
           .encode(), "application/json", "linear"),
    posted("a6-unparsed-looks-like-graphql", "https://api.unknown-vendor.test/graphql",
           json.dumps({"query": 'mutation { login(password: '
                                f'"{canary("a6-unparsed-looks-like-graphql")}") {{'})
           .encode(), "application/json"),
    posted("a7-filename-star", UNKNOWN,
           multipart(("name=\"note\"; filename*=UTF-8''a.txt", "",
                      canary("a7-filename-star").encode())), MULTIPART),
    posted("a7-repeated-name", UNKNOWN,
           multipart(('name="password"; name="note"', "", canary("a7-repeated-name").encode())),
           MULTIPART),
    posted("a8-names", UNKNOWN, json.dumps({
        name: canary("a8-names") for name in (
            "pwd", "passphrase", "client_assertion", "cookies", "aws_access_key_id", "hmac",
            "api.key")}).encode(), "application/json"),
    posted("a8-php-name", UNKNOWN, b"api+key=" + canary("a8-php-name").encode(), FORM),
    posted("a8-oauth-code", UNKNOWN,
           form(grant_type="authorization_code", code=canary("a8-oauth-code")), FORM),
    posted("a8-url-in-a-value", UNKNOWN, json.dumps({
        "callback": f"https://x.test/?access_token={canary('a8-url-in-a-value')}",
        "webhook": f"https://u:{canary('a8-url-in-a-value')}@x.test/hook"}).encode(),
        "application/json"),
    zendesk("a10-origin-userinfo", 1316, b'{"ticket": {"status": "open"}}', "application/json",
            Origin=f"https://u:{canary('a10-origin-userinfo')}@app.test"),
    zendesk("a10-content-type-list", 1317, b'{"ticket": {"status": "open"}}',
            f"application/json, key={canary('a10-content-type-list')}"),
]
VARIANTS = [
    zendesk("json-trailing-comma", 1301,
            f'{{"ticket": {{"status": "solved", "password": "{canary("json-trailing-comma")}"}},}}'
            .encode(), "application/json"),
    zendesk("json-secret-in-list", 1302,
            json.dumps({"ticket": {"custom_fields": [
                {"id": 1, "api_key": canary("json-secret-in-list")}]}}).encode(),
            "application/json"),
    zendesk("form-as-json", 1303,
            f"ticket[status]=solved&password={canary('form-as-json')}".encode(),
            "application/json"),
    zendesk("multipart-field", 1304,
            multipart(('name="status"', "", b"solved"),
                      ('name="password"', "", canary("multipart-field").encode())),
            f"multipart/form-data; boundary={BOUNDARY}"),
    zendesk("multipart-file", 1305,
            multipart(('name="upload"; filename="notes.txt"', "text/plain",
                       f"the key is {canary('multipart-file')}".encode())),
            f"multipart/form-data; boundary={BOUNDARY}"),
    zendesk("xml", 1306,
            f"<ticket><password>{canary('xml')}</password></ticket>".encode(),
            "application/xml"),
    zendesk("text-plain", 1307, f"password: {canary('text-plain')}".encode(), "text/plain"),
    zendesk("invalid-utf8", 1308,
            f'{{"ticket": {{"note": "{canary("invalid-utf8")}'.encode() + b'\xff"}}',
            "application/json"),
    Variant("unknown-host-text", "zendesk", "POST", UNKNOWN, {"Content-Type": "text/plain"},
            f"token={canary('unknown-host-text')}".encode()),
    zendesk("authorization-scheme", 1309, b'{"ticket": {"status": "open"}}',
            "application/json"),  # its canary is in the bearer token every variant sends
    header("ocp-apim-subscription-key", 1310, "Ocp-Apim-Subscription-Key"),
    header("x-honeycomb-team", 1311, "X-Honeycomb-Team"),
    header("x-algolia-api-key", 1312, "X-Algolia-API-Key"),
    header("x-figma-token", 1313, "X-Figma-Token"),
    header("x-acme-sig", 1314, "X-Acme-Sig"),
    zendesk("content-type-parameter", 1315, b'{"ticket": {"status": "open"}}',
            f"application/json; charset=utf-8; key={canary('content-type-parameter')}"),
    # Shopify and Linear answer a literal in an input field their schema lacks by quoting it
    # back (the upstream's own echo, kept with the response body): the literal-in-input
    # variant goes to an unknown GraphQL host instead, which answers 404.
    graphql_post("shopify-literal-argument", "shopify", SHOPIFY,
                 'mutation { productUpdate(input: {id: "gid://shopify/Product/1", '
                 f'title: "Board"}}, apiToken: "{canary("shopify-literal-argument")}") '
                 "{ product { id } userErrors { field message } } }"),
    graphql_post("graphql-literal-in-input", "zendesk", "https://api.unknown-vendor.test/graphql",
                 'mutation { userUpdate(id: 7, input: {name: "Ann", credentials: '
                 f'{{password: "{canary("graphql-literal-in-input")}"}}}}) {{ ok }} }}'),
    graphql_post("linear-inline-token", "linear", LINEAR,
                 f'mutation {{ issueUpdate(id: "{ISSUE}", token: '
                 f'"{canary("linear-inline-token")}", input: {{title: "Crash"}}) '
                 "{ success } }"),
    graphql_post("linear-variable-as-password", "linear", LINEAR,
                 "mutation($id: String!, $p: String!) { renamed: issueUpdate(id: $id, "
                 "input: {title: \"Crash\", password: $p}) { success } }",
                 {"id": ISSUE, "p": canary("linear-variable-as-password")}),
    graphql_get("graphql-get-literal",
                f'query {{ issue(id: "{ISSUE}", token: "{canary("graphql-get-literal")}") '
                "{ id } }"),
    graphql_get("graphql-get-variable",
                "query($t: String!) { issues(filter: {secret: $t}) { nodes { id } } }",
                {"t": canary("graphql-get-variable")}),
    *RED_TEAM,
]
BEARER = canary("authorization-scheme")


@dataclass
class Run:
    """Everything the proxy kept, by where it is; and what each upstream received."""

    places: dict[str, str]
    upstream: dict[str, bytes]
    approvals: dict[str, dict[str, Any]]


def _with_issue(variant: Variant, issue: str) -> Variant:
    return Variant(variant.name, variant.vendor, variant.method,
                   variant.url.replace(ISSUE, quote(issue)), variant.headers,
                   variant.content.replace(ISSUE.encode(), issue.encode()), variant.held)


def _auth(variant: Variant) -> dict[str, str]:
    if variant.vendor == "shopify":
        return {"X-Shopify-Access-Token": "shpat_fake_123"}
    if variant.vendor == "linear":
        return {"Authorization": "lin_api_fake_123"}
    return {"Authorization": f"Bearer zd-oauth-{BEARER}"}


def _send(gate: ProxyProcess, variant: Variant) -> dict[str, Any] | None:
    headers = {**_auth(variant), **variant.headers}
    with agent_client(gate) as agent:
        def call() -> httpx.Response:
            return agent.request(variant.method, variant.url, headers=headers,
                                 content=variant.content or None)
        if not variant.held:
            assert call().status_code < 500
            return None
        agent_call, approval = held(gate, call)
        assert gate.decide(approval["id"], "approve").status_code == 200
        agent_call.join()
        assert agent_call.error is None, agent_call.error
        return approval


@contextlib.contextmanager
def _signed_in(gate: ProxyProcess, token: str) -> Iterator[httpx.Client]:
    """A browser's session on the review pages: the cookie /login sets."""
    with httpx.Client(base_url=gate.review_url, timeout=10) as client:
        assert client.post("/login", data={"token": token}).status_code == 303
        yield client


def _every_entry(gate: ProxyProcess) -> list[str]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"order": "asc", "limit": 50, **({"cursor": cursor}
                                                                   if cursor else {})}
        page = gate.api("GET", "/api/traffic", token=ADA, params=params)
        assert page.status_code == 200, page.text
        pages.append(page.text)
        cursor = page.json()["next"]
        if cursor is None:
            return pages


def _wait(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
        vendors: dict[str, Vendor]) -> Iterator[Run]:
    for ticket in range(1301, 1318):
        vendors["zendesk"].fake.seed(ticket, status="new")
    issue = vendors["linear"].fake.seed_issue("Crash on start")
    for vendor in vendors.values():
        vendor.fake.log.clear()
    gate = start_proxy(tmp_path_factory.mktemp("secrets"), upstream_tls, vendors,
                       "--hold-timeout", "30", config=CONFIG)
    approvals: dict[str, dict[str, Any]] = {}
    places: dict[str, str] = {}
    try:
        for variant in VARIANTS:
            approval = _send(gate, _with_issue(variant, issue))
            if approval is not None:
                approvals[variant.name] = approval
        for variant_name, approval in approvals.items():
            gate.wait_for_status(approval["id"], "executed")
            approvals[variant_name] = gate.api("GET", f"/api/approvals/{approval['id']}").json()
        _wait(lambda: sum(len(json.loads(page)["entries"]) for page in _every_entry(gate))
              >= len(VARIANTS))
        for path in ("/api/approvals", "/api/audit", "/api/stats"):
            places[f"GET {path}"] = gate.api("GET", path).text
        for variant_name, approval in approvals.items():
            places[f"API approval {variant_name}"] = gate.api(
                "GET", f"/api/approvals/{approval['id']}").text
        places["GET /api/traffic"] = "\n".join(_every_entry(gate))
        for fmt in ("jsonl", "csv", "har"):
            places[f"traffic export {fmt}"] = gate.api(
                "GET", "/api/traffic/export", token=ADA, params={"format": fmt}).text
        with _signed_in(gate, ALICE) as page:
            for path in ("/", "/history", "/history.csv", "/history.jsonl"):
                places[f"page {path}"] = page.get(path).text
            for variant_name, approval in approvals.items():
                places[f"page {variant_name}"] = page.get(f"/approvals/{approval['id']}").text
        with _signed_in(gate, ADA) as page:
            for path in ("/traffic", "/traffic.jsonl", "/traffic.csv", "/traffic.har"):
                places[f"page {path}"] = page.get(path).text
    finally:
        assert gate.stop() == 0, gate.log()
    for command in (["traffic", "export"], ["audit", "export"]):
        done = subprocess.run([*hitl_proxy_command(), *command, "--data-dir",
                               str(gate.data_dir), "--config", str(gate.workdir / "hitl.yaml")],
                              capture_output=True, text=True, timeout=60, check=False)
        places[" ".join(command)] = done.stdout + done.stderr
    places["proxy log"] = gate.log()
    for file in sorted(gate.data_dir.rglob("*")):
        if file.is_file():
            places[str(file)] = file.read_bytes().decode("latin-1")
    upstream = {name: b"\n".join(seen.method.encode() + b" " + seen.path.encode() + b"?"
                                 + seen.query.encode() + b"\n"
                                 + json.dumps(seen.headers).encode() + b"\n" + seen.body
                                 for seen in vendor.fake.log.seen)
                for name, vendor in vendors.items()}
    yield Run(places, upstream, approvals)


@pytest.mark.parametrize("variant", VARIANTS, ids=[variant.name for variant in VARIANTS])
def test_the_secret_reaches_the_upstream_and_nothing_else(run: Run, variant: Variant) -> None:
    received = unquote(run.upstream[variant.vendor].decode("latin-1"))
    assert variant.canary in received, f"the upstream never received {variant.name}"
    for where, text in run.places.items():
        assert variant.canary not in text, f"{variant.name}'s canary found in {where}"
        assert quote(variant.canary) not in text, f"{variant.name}'s canary found in {where}"


def test_a_withheld_body_is_shown_as_its_type_size_and_hash(run: Run) -> None:
    request = run.approvals["xml"]["request"]
    assert request["body"] is None and request["body_form"] is None
    assert request["content_type"] == "application/xml" and request["body_bytes"] > 0
    assert len(request["body_sha256"]) == 64
    assert "not a form the proxy can mask" in request["body_withheld"]
    page = run.places["page xml"]
    assert f"{request['body_bytes']:,} bytes of application/xml" in page
    assert request["body_sha256"][:12] in page


def test_header_names_stay_and_their_values_do_not(run: Run) -> None:
    headers = run.approvals["x-honeycomb-team"]["request"]["headers"]
    assert headers["X-Honeycomb-Team"] == "***"
    assert headers["Authorization"] == "Bearer ***"
    assert headers["Content-Type"] == "application/json"


def test_parsed_bodies_are_shown_masked(run: Run) -> None:
    parts = run.approvals["multipart-field"]["request"]["body"]["parts"]
    assert parts == [{"name": "status", "value": "solved"}, {"name": "password", "value": "***"}]
    [upload] = run.approvals["multipart-file"]["request"]["body"]["parts"]
    assert (upload["filename"], upload["content_type"]) == ("notes.txt", "text/plain")
    assert len(upload["sha256"]) == 64 and "value" not in upload
    linear = run.approvals["linear-variable-as-password"]["request"]
    assert linear["body_form"] == "graphql" and linear["body"]["variables"]["p"] == "***"
    assert 'title: "Crash"' in linear["body"]["query"]
