"""The reviewer's page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess
from tests.fakes.zendesk import FakeZendesk

SAM, FIONA = "sam-support-token-00001", "fiona-finance-token-0001"
CONFIG = f"""
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support]}}
  - {{name: fiona, token: "{FIONA}", groups: [finance]}}
policy:
  - {{match: {{system: Zendesk}}, action: hold, reviewers: [support]}}
  - {{match: {{system: QuickBooks}}, action: hold, reviewers: [finance]}}
"""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("page"), upstream_tls, vendors,
                          "--hold-timeout", "40", config=CONFIG)
    process.token = SAM
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


def sign_in(browser: Browser, gate: ProxyProcess, token: str, **context: object) -> Page:
    page = browser.new_context(**context).new_page()
    page.goto(gate.review_url + "/")
    expect(page.get_by_role("heading", name="Sign in to review")).to_be_visible()
    page.get_by_label("Reviewer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Waiting for your review")).to_be_visible()
    return page


def agent_put(gate: ProxyProcess, ticket: int, fields: dict[str, object]) -> Background:
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": gate.proxy_url}
    session.verify = str(gate.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    session.headers["X-HITL-Reason"] = "customer confirmed by phone"
    return Background(lambda: session.put(
        f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json",
        json={"ticket": fields}, timeout=60))


def test_a_held_write_appears_live_shows_old_and_new_and_approving_completes_the_call(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(901, status="open", subject="Refund for order 1234")
    page = sign_in(browser, gate, SAM)
    expect(page.get_by_text("Nothing waits for you")).to_be_visible()
    page.wait_for_timeout(300)  # the event stream is open

    agent = agent_put(gate, 901, {"status": "solved", "subject": "Refund for order 1234 (sent)"})
    item = page.locator("#queue a.item").first
    expect(item).to_contain_text("Zendesk · ticket 901", timeout=15_000)  # no reload
    expect(item).to_contain_text("customer confirmed by phone")
    item.click()

    rows = page.locator("table.changes tbody tr")
    expect(rows.filter(has_text="status")).to_contain_text("open")
    expect(rows.filter(has_text="status")).to_contain_text("solved")
    expect(rows.filter(has_text="subject").locator("ins")).to_have_text("(sent)")
    expect(page.get_by_text("Basic ***")).to_be_visible()  # the request, secrets masked
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")

    response = agent.join().result
    assert response.status_code == 200
    assert fake.tickets[901]["status"] == "solved"


def test_rejecting_with_a_note_gives_the_agent_the_note(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(902, status="open")
    page = sign_in(browser, gate, SAM)
    agent = agent_put(gate, 902, {"status": "closed"})
    page.locator("#queue a.item", has_text="ticket 902").click(timeout=15_000)
    page.get_by_label("Note").fill("Keep it open until the part arrives")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text("Rejected")
    response = agent.join().result
    assert response.status_code == 403
    assert response.json()["note"] == "Keep it open until the part arrives"
    assert fake.log.of("PUT") == []

    page.goto(gate.review_url + "/history?status=rejected")
    expect(page.locator("table tbody")).to_contain_text("Keep it open until the part arrives")


def test_a_reviewer_of_another_group_does_not_see_it_and_the_page_fits_a_phone(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(903, status="open")
    agent = agent_put(gate, 903, {"priority": "high"})
    phone = sign_in(browser, gate, SAM, viewport={"width": 390, "height": 844})
    expect(phone.locator("#queue a.item", has_text="ticket 903")).to_be_visible(timeout=15_000)
    assert phone.evaluate("document.scrollingElement.scrollWidth") <= 391
    approval_id = phone.locator("#queue a.item", has_text="ticket 903").get_attribute("data-id")

    finance = sign_in(browser, gate, FIONA)
    expect(finance.get_by_text("Nothing waits for you")).to_be_visible()
    finance.goto(f"{gate.review_url}/approvals/{approval_id}")
    expect(finance.get_by_role("status")).to_contain_text("No such approval for you")

    phone.locator("#queue a.item", has_text="ticket 903").click()
    expect(phone.get_by_role("button", name="Approve")).to_be_in_viewport()
    phone.get_by_role("button", name="Reject").click()
    assert agent.join().result.status_code == 403


def test_signing_in_with_a_wrong_token_and_forged_forms_are_refused(
        browser: Browser, gate: ProxyProcess) -> None:
    page = browser.new_context().new_page()
    page.goto(gate.review_url + "/login")
    page.get_by_label("Reviewer token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("status")).to_contain_text("not a reviewer's token")
    forged = requests.post(f"{gate.review_url}/approvals/x/decide",
                           data={"decision": "approve", "csrf": "guess"},
                           allow_redirects=False, timeout=10)
    assert forged.status_code == 303 and forged.headers["location"] == "/login"


def test_editing_a_value_and_leaving_a_field_out_on_the_page(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(904, status="open", priority="low")
    page = sign_in(browser, gate, SAM)
    agent = agent_put(gate, 904, {"status": "solved", "priority": "urgent"})
    page.locator("#queue a.item", has_text="ticket 904").click(timeout=15_000)
    page.get_by_text("Change values before approving").click()
    page.get_by_label("new priority").fill('"high"')
    page.get_by_label("approve status").uncheck()
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    assert agent.join().result.status_code == 200
    assert (fake.tickets[904]["status"], fake.tickets[904]["priority"]) == ("open", "high")


def test_the_page_offers_revert_on_executed_changes(
        browser: Browser, gate: ProxyProcess, fake: FakeZendesk) -> None:
    fake.seed(905, status="open")
    page = sign_in(browser, gate, SAM)
    agent = agent_put(gate, 905, {"status": "pending"})
    page.locator("#queue a.item", has_text="ticket 905").click(timeout=15_000)
    page.get_by_role("button", name="Approve").click()
    # The decision's own navigation must land before the reload, or the two race.
    expect(page.get_by_role("status")).to_contain_text("Approved")
    assert agent.join().result.status_code == 200
    page.reload()
    page.get_by_role("button", name="Revert").click()
    expect(page.get_by_role("status")).to_contain_text("The revert waits for review")
    expect(page.get_by_text("Reverts")).to_be_visible()
    rows = page.locator("table.changes tbody tr")
    expect(rows.filter(has_text="status")).to_contain_text("open")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    deadline = time.monotonic() + 10
    while fake.tickets[905]["status"] != "open" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.tickets[905]["status"] == "open"
