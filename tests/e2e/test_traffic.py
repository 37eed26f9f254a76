"""The traffic record through the real proxy: several agents, decisions, secrets, exports."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held, hitl_proxy_command
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.zendesk import FakeZendesk

SAM, FIN, ADA = "sam-support-token-00001", "fin-finance-token-000003", "ada-auditor-token-00004"
TRIAGE_SECRET, BILLING_SECRET = "triage-bot-secret-0001", "billing-bot-secret-0002"
STRIPE_KEY = "sk_test_fake_123"
ZENDESK_TOKEN = "zd-api-token-123"
CONFIG = f"""
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support]}}
  - {{name: fin, token: "{FIN}", groups: [finance]}}
  - {{name: ada, token: "{ADA}", groups: [auditor]}}
agents:
  - {{name: triage-bot, secret: "{TRIAGE_SECRET}", task: ticket-triage}}
  - {{name: billing-bot, secret: "{BILLING_SECRET}", task: billing}}
policy:
  - match: {{task: ticket-triage, system: Zendesk, object: ticket, fields: [tags]}}
    action: allow
  - match: {{system: Zendesk, operation: delete}}
    action: deny
  - match: {{system: Stripe, object: customer}}
    action: hold
    reviewers: [finance]
    hold_timeout: 1
  - match: {{system: Stripe}}
    action: hold
    reviewers: [finance]
  - match: {{system: Zendesk}}
    action: hold
    reviewers: [support]
traffic:
  bodies: writes
  body_hosts: ["acme.zendesk.com"]
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("traffic"), upstream_tls, vendors,
                          "--hold-timeout", "30", config=CONFIG)
    process.token = SAM  # held() looks for approvals as this reviewer
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def zendesk(vendors: dict[str, Vendor]) -> FakeZendesk:
    return vendors["zendesk"].fake


@pytest.fixture
def stripe_fake(vendors: dict[str, Vendor]) -> FakeStripe:
    return vendors["stripe"].fake


def session(gate: ProxyProcess, agent: str, secret: str) -> requests.Session:
    """An agent configured only by its proxy URL (with its name and secret) and our CA."""
    found = requests.Session()
    found.trust_env = False
    proxy = f"http://{agent}:{secret}@127.0.0.1:{gate.listen_port}"
    found.proxies = {"https": proxy, "http": proxy}
    found.verify = str(gate.ca_cert)
    return found


def triage(gate: ProxyProcess) -> requests.Session:
    found = session(gate, "triage-bot", TRIAGE_SECRET)
    found.auth = ("agent@acme.test/token", ZENDESK_TOKEN)
    return found


def billing(gate: ProxyProcess) -> requests.Session:
    found = session(gate, "billing-bot", BILLING_SECRET)
    found.headers["Authorization"] = f"Bearer {STRIPE_KEY}"
    return found


def ticket_url(ticket: int) -> str:
    return f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json"


def traffic(gate: ProxyProcess, token: str = ADA, **params: Any) -> httpx.Response:
    return gate.api("GET", "/api/traffic", token=token, params=params)


def entries(gate: ProxyProcess, **params: Any) -> list[dict[str, Any]]:
    response = traffic(gate, **params)
    assert response.status_code == 200, response.text
    return response.json()["entries"]


def wait_for(gate: ProxyProcess, check: Callable[[list[dict[str, Any]]], bool],
             timeout: float = 10, **params: Any) -> list[dict[str, Any]]:
    """Entries land in batches a fraction of a second after the request ends."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = entries(gate, **params)
        if check(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"traffic record never matched: {json.dumps(found, indent=1)[:3000]}")


def every_entry(gate: ProxyProcess) -> list[dict[str, Any]]:
    """All of it, oldest first, following the cursor."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"order": "asc", "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = traffic(gate, **params).json()
        found += page["entries"]
        cursor = page["next"]
        if cursor is None:
            return found


def export(gate: ProxyProcess, *args: str) -> str:
    done = subprocess.run([*hitl_proxy_command(), "traffic", "export", "--data-dir",
                           str(gate.data_dir), *args], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_reads_and_writes_of_several_agents_carry_their_decisions(
        gate: ProxyProcess, zendesk: FakeZendesk, stripe_fake: FakeStripe) -> None:
    zendesk.seed(801, tags=["new"], status="open")
    zendesk.seed(802)
    bot = triage(gate)
    assert bot.get(ticket_url(801), timeout=30).status_code == 200
    assert bot.put(ticket_url(801), json={"ticket": {"tags": ["printer"]}},
                   timeout=30).status_code == 200
    assert bot.delete(ticket_url(802), timeout=30).status_code == 403
    call, solved = held(gate, lambda: bot.put(
        ticket_url(801), json={"ticket": {"status": "solved"}}, timeout=60))
    assert gate.decide(solved["id"], "approve", token=SAM).status_code == 200
    assert call.join().result.status_code == 200

    gate.token = FIN
    payer = billing(gate)
    charge = stripe_fake.seed_charge(amount=5000)
    customer = stripe_fake.seed_customer(email="old@acme.test")
    assert payer.get(f"https://api.stripe.com/v1/customers/{customer}",
                     timeout=30).status_code == 200
    call, refund = held(gate, lambda: payer.post(
        "https://api.stripe.com/v1/refunds", data={"charge": charge, "amount": "700"},
        timeout=60))
    assert gate.decide(refund["id"], "approve", token=FIN).status_code == 200
    assert call.join().result.status_code == 200
    call, rejected = held(gate, lambda: payer.post(
        "https://api.stripe.com/v1/refunds", data={"charge": charge, "amount": "9000"},
        timeout=60))
    assert gate.decide(rejected["id"], "reject", "too much", token=FIN).status_code == 200
    assert call.join().result.status_code == 403
    # held past its one-second window: the agent gets 202, the proxy sends it after approval
    pending = payer.post(f"https://api.stripe.com/v1/customers/{customer}",
                         data={"email": "new@acme.test"}, timeout=60)
    assert pending.status_code == 202
    later = pending.json()["approval_id"]
    assert gate.decide(later, "approve", token=FIN).status_code == 200
    gate.token = SAM

    mine = wait_for(gate, lambda found: len(found) >= 4, agent="triage-bot", order="asc")
    by_request = [(e["method"], e["decision"], e["status"], e["upstream_status"]) for e in mine]
    assert by_request == [("GET", "passed", 200, 200), ("PUT", "allowed", 200, 200),
                          ("DELETE", "denied", 403, None), ("PUT", "held", 200, 200)]
    read, allowed, denied, approved = mine
    assert (read["system"], read["object_type"], read["record_id"], read["operation"]) == (
        "Zendesk", "ticket", "801", "read")
    assert read["task"] == "ticket-triage" and read["host"] == "acme.zendesk.com"
    assert read["response_bytes"] > 0 and read["duration_ms"] > 0
    assert read["url"] == ticket_url(801)
    assert denied["approval_id"] is not None and denied["record_id"] == "802"
    assert approved["approval_id"] == solved["id"]
    assert approved["approval"] == {"status": "executed", "decided_by": "sam",
                                    "approvers": ["sam"]}
    assert allowed["request_bytes"] == len(b'{"ticket": {"tags": ["printer"]}}')

    theirs = wait_for(gate, lambda found: any(e["source"] == "proxy" for e in found),
                      agent="billing-bot", order="asc")
    assert [(e["method"], e["decision"], e["status"]) for e in theirs] == [
        ("GET", "passed", 200), ("POST", "held", 200), ("POST", "held", 403),
        ("POST", "held", 202), ("POST", "held", 200)]
    sent_later = theirs[-1]
    assert sent_later["source"] == "proxy" and sent_later["approval_id"] == later
    assert sent_later["upstream_status"] == 200 and theirs[-2]["upstream_status"] is None
    assert theirs[2]["approval"]["status"] == "rejected"

    # the filters security teams reach for
    assert [e["approval_id"] for e in entries(gate, risk="money", approvers=1,
                                              approved_by="fin")] == [refund["id"]]
    assert {e["decision"] for e in entries(gate, decision=["denied", "allowed"])} == {
        "denied", "allowed"}
    assert all(e["status"] >= 400 for e in entries(gate, status="4xx"))
    assert {e["system"] for e in entries(gate, system="Stripe")} == {"Stripe"}
    assert entries(gate, host="ACME.zendesk.com", record_id="802")[0]["decision"] == "denied"
    assert entries(gate, since="2h", agent="nobody") == []
    assert entries(gate, until="2020-01-01") == []
    newest_first = entries(gate)
    assert [e["id"] for e in newest_first] == sorted((e["id"] for e in newest_first),
                                                     reverse=True)


def test_only_auditors_read_the_traffic_record(gate: ProxyProcess) -> None:
    assert traffic(gate, token=SAM).status_code == 403
    assert "auditor" in traffic(gate, token=FIN).json()["error"]
    assert httpx.get(f"{gate.review_url}/api/traffic", timeout=10).status_code == 401
    for bad in ({"decision": "maybe"}, {"status": "4x"}, {"since": "yesterday"},
                {"limit": "0"}, {"agnet": "x"}, {"risk": "spicy"}, {"order": "up"}):
        response = traffic(gate, **bad)
        assert response.status_code == 400, bad
        assert response.json()["error"]


def test_an_unknown_agent_refused_at_connect_is_on_the_record(gate: ProxyProcess) -> None:
    intruder = session(gate, "triage-bot", "not-the-secret-at-all")
    with pytest.raises(requests.exceptions.ProxyError, match="407"):
        intruder.get(ticket_url(801), timeout=10)
    [refused] = wait_for(gate, lambda found: len(found) == 1, decision="refused",
                         method="CONNECT")
    assert (refused["host"], refused["port"], refused["status"], refused["agent"]) == (
        "acme.zendesk.com", 443, 407, None)
    assert refused["upstream_status"] is None


def test_paging_follows_the_cursor_without_gaps(gate: ProxyProcess,
                                               zendesk: FakeZendesk) -> None:
    zendesk.seed(810)
    bot = triage(gate)
    for _ in range(15):
        assert bot.get(ticket_url(810), timeout=30).status_code == 200
    wait_for(gate, lambda found: len(found) >= 15, record_id="810", limit=100)
    found = every_entry(gate)
    ids = [e["id"] for e in found]
    assert ids == sorted(set(ids)) and len(ids) >= 15


def test_secrets_never_reach_the_record_or_its_exports(
        gate: ProxyProcess, zendesk: FakeZendesk, stripe_fake: FakeStripe) -> None:
    canaries = ["CANARY-HEADER-71", "CANARY-QUERY-72", "CANARY-BODY-73", "CANARY-FORM-74"]
    zendesk.seed(820, tags=["a"])
    bot = triage(gate)
    read = bot.get(ticket_url(820), params={"api_key": canaries[1], "include": "users"},
                   headers={"X-Api-Key": canaries[0]}, timeout=30)
    assert read.status_code == 200
    write = bot.put(ticket_url(820), json={"ticket": {"tags": ["b"]}, "password": canaries[2]},
                    headers={"Cookie": f"session={canaries[0]}"}, timeout=30)
    assert write.status_code == 200
    payer = billing(gate)
    customer = stripe_fake.seed_customer()
    pending = payer.post(f"https://api.stripe.com/v1/customers/{customer}",
                         data={"metadata[api_token]": canaries[3], "description": "vip"},
                         timeout=60)
    assert pending.status_code == 202
    gate.decide(pending.json()["approval_id"], "reject", token=FIN)
    recorded = wait_for(gate, lambda found: len(found) >= 2, record_id="820", order="asc")
    assert "api_key=***" in recorded[0]["path"]
    assert recorded[0]["response_body"] and '"id": 820' in recorded[0]["response_body"]
    assert '"password": "***"' in recorded[1]["request_body"]
    [stripe_write] = wait_for(gate, lambda found: len(found) == 1, agent="billing-bot",
                              record_id=customer, decision="held")
    assert "metadata[api_token]=***" in stripe_write["request_body"]
    assert "description=vip" in stripe_write["request_body"]

    secrets = [*canaries, TRIAGE_SECRET, BILLING_SECRET, STRIPE_KEY, ZENDESK_TOKEN]
    time.sleep(0.5)  # one more batch
    places = {"api": traffic(gate, limit=1000).text}
    for fmt in ("jsonl", "csv", "har"):
        places[fmt] = export(gate, "--format", fmt)
    for path in gate.data_dir.glob("traffic.sqlite3*"):
        places[path.name] = path.read_bytes().decode("latin-1")
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"{secret} found in {where}"


HAR_SCHEMA: dict[str, Any] = {
    # The required fields of HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/).
    "type": "object", "required": ["log"],
    "properties": {"log": {
        "type": "object", "required": ["version", "creator", "entries"],
        "properties": {
            "version": {"const": "1.2"},
            "creator": {"type": "object", "required": ["name", "version"],
                        "properties": {"name": {"type": "string"},
                                       "version": {"type": "string"}}},
            "pages": {"type": "array"},
            "entries": {"type": "array", "items": {"$ref": "#/$defs/entry"}},
        }}},
    "$defs": {
        "pairs": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}},
        "entry": {
            "type": "object",
            "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
            "properties": {
                "startedDateTime": {"type": "string", "format": "date-time"},
                "time": {"type": "number", "minimum": 0},
                "request": {
                    "type": "object",
                    "required": ["method", "url", "httpVersion", "cookies", "headers",
                                 "queryString", "headersSize", "bodySize"],
                    "properties": {
                        "method": {"type": "string"}, "url": {"type": "string"},
                        "httpVersion": {"type": "string"}, "cookies": {"type": "array"},
                        "headers": {"$ref": "#/$defs/pairs"},
                        "queryString": {"$ref": "#/$defs/pairs"},
                        "headersSize": {"type": "integer"}, "bodySize": {"type": "integer"},
                        "postData": {"type": "object", "required": ["mimeType"],
                                     "properties": {"mimeType": {"type": "string"},
                                                    "text": {"type": "string"}}}}},
                "response": {
                    "type": "object",
                    "required": ["status", "statusText", "httpVersion", "cookies", "headers",
                                 "content", "redirectURL", "headersSize", "bodySize"],
                    "properties": {
                        "status": {"type": "integer"}, "statusText": {"type": "string"},
                        "httpVersion": {"type": "string"}, "cookies": {"type": "array"},
                        "headers": {"$ref": "#/$defs/pairs"},
                        "content": {"type": "object", "required": ["size", "mimeType"],
                                    "properties": {"size": {"type": "integer"},
                                                   "mimeType": {"type": "string"},
                                                   "text": {"type": "string"}}},
                        "redirectURL": {"type": "string"},
                        "headersSize": {"type": "integer"}, "bodySize": {"type": "integer"}}},
                "cache": {"type": "object"},
                "timings": {"type": "object", "required": ["send", "wait", "receive"],
                            "properties": {name: {"type": "number", "minimum": 0}
                                           for name in ("send", "wait", "receive")}},
            }},
    },
}


def test_har_export_is_har_1_2_lists_every_request_and_replays_in_a_browser(
        gate: ProxyProcess, zendesk: FakeZendesk, tmp_path: Path) -> None:
    zendesk.seed(830, subject="Replayed from HAR")
    assert triage(gate).get(ticket_url(830), timeout=30).status_code == 200
    wait_for(gate, lambda found: len(found) == 1, record_id="830")
    har = json.loads(export(gate, "--format", "har"))
    jsonschema_rs.validator_for(HAR_SCHEMA, validate_formats=True).validate(har)
    recorded = every_entry(gate)
    assert [e["_hitl"]["id"] for e in har["log"]["entries"]] == [e["id"] for e in recorded]
    assert [e["request"]["url"] for e in har["log"]["entries"]] == [e["url"] for e in recorded]
    # a HAR consumer: Playwright serves the recorded answer in Chromium from the file alone
    path = tmp_path / "traffic.har"
    path.write_text(json.dumps(har))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.route_from_har(str(path), not_found="abort")
            page.goto(ticket_url(830))
            assert "Replayed from HAR" in page.content()
        finally:
            browser.close()


def test_auditors_browse_filter_and_download_the_record_on_the_page(
        gate: ProxyProcess, tmp_path: Path, zendesk: FakeZendesk,
        stripe_fake: FakeStripe) -> None:
    from playwright.sync_api import expect

    zendesk.seed(860)
    assert triage(gate).get(ticket_url(860), timeout=30).status_code == 200
    customer = stripe_fake.seed_customer()
    pending = billing(gate).post(f"https://api.stripe.com/v1/customers/{customer}",
                                 data={"description": "from the page test"}, timeout=60)
    assert pending.status_code == 202
    gate.decide(pending.json()["approval_id"], "reject", token=FIN)
    wait_for(gate, lambda found: len(found) == 1, record_id=customer)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=["--no-sandbox"])
        try:
            def sign_in(token: str):  # type: ignore[no-untyped-def]
                page = browser.new_context(accept_downloads=True).new_page()
                page.goto(gate.review_url + "/login")
                page.get_by_label("Reviewer token").fill(token)
                page.get_by_role("button", name="Sign in").click()
                expect(page.get_by_role("heading", name="Waiting for your review")).to_be_visible()
                return page

            page = sign_in(ADA)
            page.get_by_role("link", name="Traffic").click()
            expect(page.get_by_role("heading", name="Traffic")).to_be_visible()
            expect(page.locator("table.traffic")).to_contain_text("acme.zendesk.com")
            page.get_by_label("Agent").fill("billing-bot")
            page.get_by_label("Decision").select_option("held")
            page.get_by_role("button", name="Filter").click()
            rows = page.locator("table.traffic tbody tr")
            expect(rows.first).to_contain_text("billing-bot")
            assert rows.count() == len(entries(gate, agent="billing-bot", decision="held"))
            for text in rows.all_inner_texts():
                assert "billing-bot" in text and "held" in text
            with page.expect_download() as download:
                page.get_by_role("link", name="HAR").click()
            path = tmp_path / "page.har"
            download.value.save_as(path)
            har = json.loads(path.read_text())
            jsonschema_rs.validator_for(HAR_SCHEMA, validate_formats=True).validate(har)
            assert {e["_hitl"]["agent"] for e in har["log"]["entries"]} == {"billing-bot"}

            other = sign_in(SAM)
            expect(other.get_by_role("link", name="Traffic")).to_have_count(0)
            assert other.goto(gate.review_url + "/traffic").status == 403
            expect(other.get_by_text("for reviewers in the auditor group")).to_be_visible()
        finally:
            browser.close()


def test_jsonl_round_trips_and_csv_lists_the_same_requests(gate: ProxyProcess) -> None:
    triage(gate).get("https://acme.zendesk.com/api/v2/users.json", timeout=30)
    time.sleep(0.5)
    lines = export(gate, "--format", "jsonl").splitlines()
    parsed = [json.loads(line) for line in lines]
    assert parsed == every_entry(gate)
    assert [json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
            for entry in parsed] == lines
    rows = list(csv.DictReader(io.StringIO(export(gate, "--format", "csv"))))
    assert [int(row["id"]) for row in rows] == [entry["id"] for entry in parsed]
    assert {row["decision"] for row in rows} >= {"passed", "held", "allowed", "denied"}
    only = [json.loads(line) for line in export(
        gate, "--format", "jsonl", "--agent", "billing-bot", "--since", "1h").splitlines()]
    assert only and {entry["agent"] for entry in only} == {"billing-bot"}


def test_the_api_streams_the_same_exports(gate: ProxyProcess) -> None:
    time.sleep(0.5)
    response = gate.api("GET", "/api/traffic/export", token=ADA,
                        params={"format": "jsonl", "agent": "triage-bot"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert 'filename="traffic.jsonl"' in response.headers["content-disposition"]
    streamed = [json.loads(line) for line in response.text.splitlines()]
    assert streamed == [json.loads(line) for line in export(
        gate, "--format", "jsonl", "--agent", "triage-bot").splitlines()]
    har = gate.api("GET", "/api/traffic/export", token=ADA, params={"format": "har"}).json()
    jsonschema_rs.validator_for(HAR_SCHEMA, validate_formats=True).validate(har)
    assert gate.api("GET", "/api/traffic/export", token=SAM).status_code == 403
    assert gate.api("GET", "/api/traffic/export", token=ADA,
                    params={"format": "xml"}).status_code == 400
    assert gate.api("GET", "/api/traffic/export", token=ADA,
                    params={"limit": "5"}).status_code == 400  # exports are whole


def test_export_refuses_bad_arguments_with_one_line(gate: ProxyProcess, tmp_path: Path) -> None:
    for args, message in ((["--since", "last tuesday"], "ISO 8601"),
                          (["--decision", "maybe"], "decision"),
                          (["--data-dir", str(tmp_path)], "traffic.sqlite3")):
        done = subprocess.run([*hitl_proxy_command(), "traffic", "export",
                               "--data-dir", str(gate.data_dir), *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_metrics_count_recorded_traffic(gate: ProxyProcess) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def recorded() -> float:
        text = httpx.get(f"{gate.review_url}/metrics", timeout=10).text
        return next(sample.value for family in text_string_to_metric_families(text)
                    for sample in family.samples
                    if sample.name == "hitl_traffic_recorded_total")

    before = recorded()
    for _ in range(3):
        triage(gate).get("https://acme.zendesk.com/api/v2/users.json", timeout=30)
    deadline = time.monotonic() + 10
    while recorded() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded() >= before + 3


SMALL_CONFIG = f"""
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support, auditor]}}
agents:
  - {{name: triage-bot, secret: "{TRIAGE_SECRET}", task: ticket-triage}}
"""


def test_retention_prunes_traffic_and_never_the_approvals_audit_log(
        tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
        vendors: dict[str, Vendor], zendesk: FakeZendesk) -> None:
    config = SMALL_CONFIG + "traffic: {retention: {max_age: 3s, max_size: null}, prune_every: 1s}"
    gate = start_proxy(tmp_path_factory.mktemp("retention"), upstream_tls, vendors,
                       "--hold-timeout", "30", config=config)
    gate.token = SAM
    try:
        zendesk.seed(840, subject="Old")
        bot = triage(gate)
        assert bot.get(ticket_url(840), timeout=30).status_code == 200
        call, approval = held(gate, lambda: bot.put(
            ticket_url(840), json={"ticket": {"subject": "New"}}, timeout=60))
        gate.decide(approval["id"], "approve")
        assert call.join().result.status_code == 200
        old = wait_for(gate, lambda found: len(found) == 2, token=SAM)
        audit_before = gate.api("GET", "/api/audit").json()["entries"]
        assert {e["approval_id"] for e in audit_before} == {approval["id"]}

        wait_for(gate, lambda found: found == [], timeout=15, token=SAM)  # older than 3 s
        assert bot.get(ticket_url(840), timeout=30).status_code == 200
        fresh = wait_for(gate, lambda found: len(found) == 1, token=SAM)
        assert fresh[0]["id"] > max(e["id"] for e in old)
        assert gate.api("GET", "/api/audit").json()["entries"] == audit_before
        assert gate.api("GET", f"/api/approvals/{approval['id']}").json()["status"] == "executed"
        verified = subprocess.run([*hitl_proxy_command(), "audit", "verify", "--data-dir",
                                   str(gate.data_dir)], capture_output=True, text=True,
                                  timeout=60, check=False)
        assert verified.returncode == 0, verified.stderr
        assert "pruned 2 entries" in gate.log()
    finally:
        assert gate.stop() == 0, gate.log()


def test_a_full_record_warns_for_reads_and_refuses_writes(
        tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
        vendors: dict[str, Vendor], zendesk: FakeZendesk) -> None:
    """SQLite's max_page_count gives the same SQLITE_FULL as a full disk would."""
    config = SMALL_CONFIG + ("traffic: {bodies: all, max_file_size: 64KiB, "
                             "retention: {max_age: null, max_size: null}}")
    gate = start_proxy(tmp_path_factory.mktemp("full"), upstream_tls, vendors,
                       "--hold-timeout", "30", config=config)
    gate.token = SAM
    try:
        zendesk.seed(850, description="x" * 2000)
        bot = triage(gate)

        def full() -> bool:
            notes = [line for line in gate.log().splitlines() if "traffic record:" in line]
            return bool(notes) and "cannot write" in notes[-1]

        for attempt in range(400):  # reads go on, whether they are recorded or not
            assert bot.get(ticket_url(850), timeout=30).status_code == 200
            if attempt % 10 == 9:
                time.sleep(0.4)  # a batch or two later: full to the last page?
                if full():
                    break
        else:
            raise AssertionError(f"the record never filled:\n{gate.log()}")
        before = len(zendesk.log.seen)
        refused = bot.put(ticket_url(850), json={"ticket": {"subject": "x"}}, timeout=30)
        assert refused.status_code == 503
        assert "traffic record cannot be written" in refused.json()["message"]
        assert [seen.method for seen in zendesk.log.seen[before:]] == ["GET"]  # the fetch only
        assert gate.approvals() == []
        metrics = httpx.get(f"{gate.review_url}/metrics", timeout=10).text
        assert "hitl_traffic_dropped_total" in metrics
        dropped = next(line for line in metrics.splitlines()
                       if line.startswith("hitl_traffic_dropped_total"))
        assert float(dropped.split()[-1]) > 0
    finally:
        assert gate.stop() == 0, gate.log()
