"""A retry joins a held write only when it is the same write, and every approval ends.

Rules: a retry joins the pending approval only when its `Idempotency-Key` and its fingerprint
(method, URL with host, body) both agree; the same key with another body is answered 409 at
once, as Stripe does, and the key of a decided write is answered 409 too. No approved write
stays unsent: within `limits.send_within` it is sent, or becomes failed or outcome_unknown
(`tests/test_hold.py::test_no_approval_stays_approved_past_send_within`).
"""

from __future__ import annotations

import time

import requests

from tests.e2e.harness import ProxyProcess, held
from tests.e2e.test_reliability import session_for, url
from tests.fakes.zendesk import FakeZendesk


def test_a_key_reused_for_another_body_is_409_and_the_first_write_executes_once(
        proxy: ProxyProcess, vendors: dict) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.log.clear()
    fake.seed(9800, status="open")
    session = session_for(proxy)
    key = {"Idempotency-Key": "retry-key-9800"}
    first, approval = held(proxy, lambda: session.put(
        url(9800), json={"ticket": {"status": "solved"}}, headers=key, timeout=60))
    other = session.put(url(9800), json={"ticket": {"status": "closed"}}, headers=key,
                        timeout=30)
    assert other.status_code == 409, other.text
    assert "different request" in other.json()["message"]
    assert [a["id"] for a in proxy.approvals("pending")
            if "9800" in a["url"]] == [approval["id"]]
    assert proxy.decide(approval["id"], "approve").status_code == 200
    assert first.join().result.status_code == 200
    executed = proxy.wait_for_status(approval["id"], "executed")
    assert executed["result"]["status_code"] == 200
    assert len(fake.log.of("PUT", "/api/v2/tickets/9800")) == 1
    assert fake.tickets[9800]["status"] == "solved"
    again = session.put(url(9800), json={"ticket": {"status": "solved"}}, headers=key,
                        timeout=30)
    assert again.status_code == 409 and "already executed" in again.json()["message"]
    time.sleep(0.2)
    assert len(fake.log.of("PUT", "/api/v2/tickets/9800")) == 1


def test_the_same_body_without_a_key_is_a_second_write_only_when_the_key_differs(
        proxy: ProxyProcess, vendors: dict) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(9801, status="open")
    session: requests.Session = session_for(proxy)
    body = {"ticket": {"status": "pending"}}
    call, approval = held(proxy, lambda: session.put(
        url(9801), json=body, headers={"Idempotency-Key": "a-9801"}, timeout=60))
    second, other = held(proxy, lambda: session.put(
        url(9801), json=body, headers={"Idempotency-Key": "b-9801"}, timeout=60))
    assert other["id"] != approval["id"]
    for found in (approval, other):
        proxy.decide(found["id"], "reject")
    assert call.join().result.status_code == 403
    assert second.join().result.status_code == 403
