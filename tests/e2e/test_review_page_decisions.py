"""The reviewer's page for issue 17, in a real browser against the real proxy: many writes
decided at once, away with a delegate, the record's identity, the trigger and what the agent
read before the write, and "what if this rule were allow" on the stats page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from review_api.web import away_until, trigger_link
from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess
from tests.e2e.test_review_page import CHROMIUM_ARGS
from tests.fakes.zendesk import FakeZendesk

SAM, FIONA, AUDREY = "sam-support-token-00001", "fiona-finance-token-0001", "audrey-auditor-tok-001"
TRIAGE_SECRET, BILLING_SECRET = "triage-bot-secret-0001", "billing-bot-secret-001"
# Priority alone is finance's call; everything else on a ticket is support's. The stats rule
# below names tags and type, which no other test here touches.
CONFIG = f"""
agents:
  - {{name: triage-bot, secret: "{TRIAGE_SECRET}"}}
  - {{name: billing-bot, secret: "{BILLING_SECRET}", owner: sam}}
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support]}}
  - {{name: fiona, token: "{FIONA}", groups: [finance]}}
  - {{name: audrey, token: "{AUDREY}", groups: [auditor, support, finance]}}
policy:
  - {{match: {{system: Zendesk, object: ticket, fields: [priority]}}, action: hold,
     reviewers: [finance]}}
  - {{match: {{system: Zendesk}}, action: hold, reviewers: [support]}}
"""
SECRETS = {"triage-bot": TRIAGE_SECRET, "billing-bot": BILLING_SECRET}


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("page17"), upstream_tls, vendors,
                          "--hold-timeout", "40", config=CONFIG)
    process.token = AUDREY
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                              headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeZendesk:
    found = vendors["zendesk"].fake
    found.log.clear()
    return found


def sign_in(browser: Browser, gate: ProxyProcess, token: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(gate.review_url + "/login")
    page.get_by_label("Reviewer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Waiting for your review")).to_be_visible()
    page.wait_for_timeout(300)  # the event stream is open
    return page


def agent_session(gate: ProxyProcess, agent: str = "triage-bot",
                  **headers: str) -> requests.Session:
    """The agent's Zendesk client, named by proxy authentication as a deployment would."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": gate.proxy_url.replace("://", f"://{agent}:{SECRETS[agent]}@")}
    session.verify = str(gate.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    session.headers.update(headers)
    return session


def agent_put(gate: ProxyProcess, ticket: int, fields: dict[str, Any], agent: str = "triage-bot",
              **headers: str) -> tuple[Background, dict[str, Any]]:
    """Starts the agent's write and waits until it is held: (the agent's call, its approval)."""
    session = agent_session(gate, agent, **headers)
    before = {a["id"] for a in gate.approvals("pending")}
    call = Background(lambda: session.put(
        f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json", json={"ticket": fields},
        timeout=60))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        new = [a for a in gate.approvals("pending") if a["id"] not in before]
        if new:
            return call, new[0]
        time.sleep(0.02)
    raise AssertionError(f"ticket {ticket}'s write was not held: {call.result!r}\n{gate.log()}")


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).date().isoformat()


def test_links_are_only_web_addresses_and_away_lasts_through_the_day() -> None:
    assert trigger_link("https://support.acme.test/t/1") == "https://support.acme.test/t/1"
    assert trigger_link("HTTP://chat.acme.test/x") == "HTTP://chat.acme.test/x"
    for text in ("javascript:alert(1)", " https://a.test", "https://a.test/\tx",
                 "data:text/html,x", "a customer email", "//evil.test", None):
        assert trigger_link(text) is None, text
    assert away_until("2026-12-24") == datetime(2026, 12, 25, tzinfo=UTC)
    assert away_until("2026-12-24T09:30:00") == datetime(2026, 12, 24, 9, 30, tzinfo=UTC)


def test_bulk_approve_sends_those_routing_allows_and_says_why_not_the_other(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    for ticket in (911, 912, 913):
        fake.seed(ticket, status="open", priority="low", subject=f"Printer {ticket}")
    # Fiona (finance) is away and named sam: sam's queue offers her write too.
    assert gate.api("PUT", "/api/reviewers/me/away", token=FIONA,
                    json={"until": tomorrow(), "delegate": "sam"}).status_code == 200
    sam = sign_in(browser, gate, SAM)
    first, a911 = agent_put(gate, 911, {"status": "pending"})
    second, _ = agent_put(gate, 912, {"status": "solved"})
    third, a913 = agent_put(gate, 913, {"priority": "urgent"})
    queue = sam.locator("#queue")
    expect(queue.locator(".row")).to_have_count(3, timeout=15_000)
    expect(queue.locator(".row", has_text="ticket 913")).to_contain_text("acting for fiona")
    expect(queue.locator(".row", has_text="ticket 911")).not_to_contain_text("acting for")
    sam.get_by_label("Select all").check()
    expect(queue.locator("input.pick:checked")).to_have_count(3)

    # Fiona comes back before sam clicks: his page still offers her write, routing refuses it.
    assert gate.api("DELETE", "/api/reviewers/me/away", token=FIONA).status_code == 200
    sam.get_by_label("Note for every selected write").fill("printer batch checked")
    sam.get_by_role("button", name="Approve selected").click()
    expect(sam.get_by_role("status")).to_have_text("2 of 3 went through (approved).")
    results = sam.locator("[data-bulk-results] li")
    expect(results.filter(has_text="ticket 911")).to_contain_text("✓")
    expect(results.filter(has_text="ticket 912")).to_contain_text("✓")
    refused = sam.locator(f'[data-outcome="{a913["id"]}"]')
    expect(refused).to_contain_text("not decided, not routed to you")
    expect(refused).not_to_contain_text("ticket 913")  # nothing told about a write not his

    assert first.join().result.status_code == 200
    assert second.join().result.status_code == 200
    assert (fake.tickets[911]["status"], fake.tickets[912]["status"]) == ("pending", "solved")
    assert gate.api("GET", f"/api/approvals/{a913['id']}").json()["status"] == "pending"
    assert fake.tickets[913]["priority"] == "low"
    executed = gate.wait_for_status(a911["id"], "executed")
    assert executed["note"] == "printer batch checked"
    assert [(v["reviewer"], v["decision"]) for v in executed["votes"]] == [("sam", "approve")]
    assert gate.decide(a913["id"], "reject", "not now", token=FIONA).status_code == 200
    assert third.join().result.status_code == 403


def test_away_on_the_page_and_the_delegate_deciding_for_the_away_reviewer(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(915, status="open", priority="low", subject="Invoice copy")
    fiona = sign_in(browser, gate, FIONA)
    away = fiona.locator("#away")
    away.get_by_label("Away through").fill(tomorrow())
    away.get_by_label("Delegate").select_option("sam")
    away.get_by_role("button", name="Mark me away").click()
    expect(fiona.get_by_role("status")).to_have_text(
        f"You are away through {tomorrow()}; sam decides for you.")
    expect(fiona.locator("#away")).to_contain_text("sam decides the writes routed to you")
    listed = gate.api("GET", "/api/reviewers/away").json()
    assert "fiona" in str(listed) and "sam" in str(listed)

    sam = sign_in(browser, gate, SAM)
    expect(sam.locator("[data-acting-for]")).to_contain_text("fiona")
    call, approval = agent_put(gate, 915, {"priority": "high"})
    item = sam.locator("#queue .row", has_text="ticket 915")
    expect(item).to_contain_text("acting for fiona", timeout=15_000)
    item.locator("a.item").click()
    expect(sam.locator(".acting")).to_have_text("acting for fiona")
    sam.get_by_role("button", name="Approve").click()
    expect(sam.get_by_role("status")).to_contain_text("Approved")
    assert call.join().result.status_code == 200
    assert fake.tickets[915]["priority"] == "high"
    events = gate.api("GET", "/api/audit", params={"approval_id": approval["id"]}).json()
    delegated = [e for e in events["entries"] if e["event"] == "delegated_vote"]
    assert [(e["actor"], e["detail"]["on_behalf_of"]) for e in delegated] == [("sam", "fiona")]
    voted = [e for e in events["entries"] if e["event"] == "approved"]
    assert voted and voted[0]["detail"].get("via") == "page"

    fiona.reload()
    fiona.get_by_role("button", name="I'm back").click()
    expect(fiona.get_by_role("status")).to_contain_text("Welcome back")
    expect(fiona.locator("#away").get_by_label("Away through")).to_be_visible()
    sam.goto(gate.review_url + "/")
    expect(sam.locator("[data-acting-for]")).to_have_count(0)


def test_the_detail_shows_the_record_the_trigger_and_what_the_agent_read_before(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(931, status="open", subject="Printer jams on tray 2", requester_id=4242)
    fake.seed(932, status="open", subject="Toner order")
    reader = agent_session(gate)
    assert reader.get("https://acme.zendesk.com/api/v2/tickets/932.json",
                      timeout=30).status_code == 200
    assert reader.get("https://acme.zendesk.com/api/v2/tickets/931.json",
                      timeout=30).status_code == 200
    linked, approval = agent_put(
        gate, 931, {"status": "pending"}, **{
            "X-HITL-Reason": "the customer asked to wait for the part",
            "X-HITL-Trigger": "https://support.acme.test/chats/77?from=mail"})
    texted, script = agent_put(gate, 932, {"status": "pending"},
                               **{"X-HITL-Trigger": "javascript:alert(document.cookie)"})

    page = sign_in(browser, gate, SAM)
    page.goto(f"{gate.review_url}/approvals/{approval['id']}")
    identity = page.locator("[data-identity]")
    expect(identity).to_contain_text("Printer jams on tray 2")
    expect(identity).to_contain_text("Requester")
    expect(identity).to_contain_text("4242")
    trigger = page.locator("[data-trigger] a")
    expect(trigger).to_have_attribute("href", "https://support.acme.test/chats/77?from=mail")
    expect(page.get_by_text("the customer asked to wait for the part")).to_be_visible()
    reads = page.locator("[data-looked-at] table tbody tr")
    deadline = time.monotonic() + 10  # the traffic record writes in batches
    while reads.count() < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
        page.reload()
    expect(reads).to_have_count(2)
    expect(reads.nth(0)).to_contain_text("931")  # newest first
    expect(reads.nth(1)).to_contain_text("932")
    expect(reads.nth(0)).to_contain_text("ticket")
    expect(reads.nth(0)).to_contain_text("before")

    page.goto(f"{gate.review_url}/approvals/{script['id']}")
    shown = page.locator("[data-trigger]")
    expect(shown).to_contain_text("javascript:alert(document.cookie)")
    expect(shown.locator("a")).to_have_count(0)
    for held, call in ((approval, linked), (script, texted)):
        assert gate.decide(held["id"], "reject", "test over", token=SAM).status_code == 200
        assert call.join().result.status_code == 403


def test_an_agents_owner_may_reject_its_write_on_the_page_but_not_approve_it(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(951, status="open", subject="Refund request")
    sam = sign_in(browser, gate, SAM)
    call, approval = agent_put(gate, 951, {"status": "solved"}, agent="billing-bot")
    item = sam.locator("#queue .row", has_text="ticket 951")
    expect(item).to_contain_text("You may reject it, not approve it", timeout=15_000)
    expect(item).to_contain_text("sam owns the agent 'billing-bot'")
    sam.get_by_label("select Zendesk ticket 951").check()
    sam.get_by_role("button", name="Approve selected").click()
    expect(sam.get_by_role("status")).to_have_text("0 of 1 went through.")
    expect(sam.locator(f'[data-outcome="{approval["id"]}"]')).to_contain_text(
        "may not approve its writes")
    sam.locator("#queue a.item", has_text="ticket 951").click()
    expect(sam.locator("[data-not-allowed]")).to_contain_text("owns the agent")
    expect(sam.get_by_role("button", name="Approve")).to_have_count(0)
    sam.get_by_label("Note").fill("not while I own it")
    sam.get_by_role("button", name="Reject").click()
    expect(sam.get_by_role("status")).to_contain_text("Rejected")
    assert call.join().result.status_code == 403
    assert fake.tickets[951]["status"] == "open"


def test_a_selected_write_that_changed_since_the_page_showed_it_is_not_decided(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(961, status="open")
    sam = sign_in(browser, gate, SAM)
    call, approval = agent_put(gate, 961, {"status": "solved"})
    box = sam.get_by_label("select Zendesk ticket 961")
    expect(box).to_be_visible(timeout=15_000)
    # As if the page had shown an earlier write under this id (replaced since).
    box.evaluate("(box) => { box.value = box.value.split(':')[0] + ':' + '0'.repeat(64); }")
    box.check()
    sam.get_by_role("button", name="Approve selected").click()
    expect(sam.get_by_role("status")).to_have_text("0 of 1 went through.")
    expect(sam.locator(f'[data-outcome="{approval["id"]}"]')).to_contain_text(
        "not the write you saw")
    assert gate.api("GET", f"/api/approvals/{approval['id']}").json()["status"] == "pending"
    assert gate.decide(approval["id"], "reject", "test over").status_code == 200
    assert call.join().result.status_code == 403


def test_the_new_forms_refuse_a_post_without_the_sessions_csrf_token(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(971, status="open")
    sam = sign_in(browser, gate, SAM)
    call, approval = agent_put(gate, 971, {"status": "solved"})
    cookies = {c["name"]: c["value"] for c in sam.context.cookies()}
    for path, form in (("/approvals/decide", {"picked": approval["id"], "decision": "approve"}),
                       ("/away", {"action": "away", "until": tomorrow(), "delegate": "fiona"}),
                       ("/stats/simulate", {"rule": "match: {system: Zendesk}"})):
        forged = requests.post(gate.review_url + path, data={**form, "csrf": "guess"},
                               cookies=cookies, allow_redirects=False, timeout=10)
        assert forged.status_code == 403, path
        assert "The form expired" in forged.text
    assert gate.api("GET", f"/api/approvals/{approval['id']}").json()["status"] == "pending"
    assert "sam" not in str(gate.api("GET", "/api/reviewers/away").json())
    assert gate.decide(approval["id"], "reject", "test over").status_code == 200
    assert call.join().result.status_code == 403


def test_what_if_this_rule_were_allow_counts_the_seeded_history(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    for ticket in (941, 942, 943, 944):
        fake.seed(ticket, status="open", tags=["printer"], type="question")
    plain, first = agent_put(gate, 941, {"tags": ["printer", "toner"]})
    assert gate.decide(first["id"], "approve").status_code == 200
    turned_down, second = agent_put(gate, 942, {"tags": []})
    assert gate.decide(second["id"], "reject", "keep the tags").status_code == 200
    partial, third = agent_put(gate, 943, {"tags": ["printer", "vip"], "type": "incident"})
    assert gate.api("POST", f"/api/approvals/{third['id']}/approve",
                    json={"approve_fields": ["tags"]}).status_code == 200
    undone, fourth = agent_put(gate, 944, {"tags": ["printer", "escalated"]})
    assert gate.decide(fourth["id"], "approve").status_code == 200
    for call in (plain, partial, undone):
        assert call.join().result.status_code == 200
    assert turned_down.join().result.status_code == 403
    gate.wait_for_status(fourth["id"], "executed")
    assert gate.api("POST", f"/api/approvals/{fourth['id']}/revert").status_code == 201
    decided = [a for a in gate.approvals() if a["status"] not in ("pending", "expired", "denied")]

    page = sign_in(browser, gate, AUDREY)
    page.get_by_role("link", name="Stats").click()
    page.get_by_label("Rule (YAML)").fill("match: {system: Zendesk, object: ticket, "
                                          "fields: [tags, type]}")
    page.get_by_role("button", name="Simulate").click()
    numbers = page.locator("[data-simulation]")
    expect(numbers.locator('[data-count="considered"] strong')).to_have_text(str(len(decided)))
    for name, count in (("would_allow", 4), ("rejected", 1), ("edited", 1), ("reverted", 1),
                        ("as_sent", 1)):
        expect(numbers.locator(f'[data-count="{name}"] strong')).to_have_text(str(count))
    expect(page.locator("#simulate li", has_text="keep the tags")).to_contain_text("rejected")
    expect(page.get_by_label("Rule (YAML)")).to_have_value(
        "match: {system: Zendesk, object: ticket, fields: [tags, type]}")
    by_system = page.locator('[data-stats="by_system"] tbody tr', has_text="Zendesk")
    expect(by_system).to_contain_text("%")  # the edit and revert rates M's stats add

    page.get_by_label("Rule (YAML)").fill("match: {sytem: Zendesk}")
    page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_role("status")).to_contain_text("Cannot simulate that rule")
    expect(page.get_by_role("status")).to_contain_text("sytem")
    revert = [a for a in gate.approvals("pending") if a.get("reverts") == fourth["id"]]
    for held in revert:
        assert gate.decide(held["id"], "reject", "test over").status_code == 200
