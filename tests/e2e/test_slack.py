"""Slack approvals through the real `hitl-proxy run`: the held write is posted to the routed
group's channel on the fake Slack (its Web API over plain HTTP on loopback,
`notifications.slack.api_url`), signed clicks are POSTed to the review port's
/slack/interactions as Slack would send them, and a decision taken through the API updates the
message in place. One proxy for the module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests

from review_api.slack.blocks import APPROVE_ACTION, OPEN_ACTION, REJECT_ACTION, ButtonRef
from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess, held
from tests.fakes.server import HTTPSFake
from tests.fakes.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    Posted,
    User,
    block_kit_problem,
)
from tests.fakes.zendesk import FakeZendesk

ALICE = "alice-slack-e2e-token-01"
CAROL = "carol-slack-e2e-token-02"
USERS = (User("U0ALICE", "alice"), User("U0CAROL", "carol"), User("U0MALLORY", "mallory"))


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[FakeSlack, HTTPSFake]]:
    fake = FakeSlack(users=USERS)
    with HTTPSFake(fake.app) as server:  # plain HTTP on loopback
        yield fake, server


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor],
         slack: tuple[FakeSlack, HTTPSFake]) -> Iterator[ProxyProcess]:
    config = f"""
reviewers:
  - {{name: alice, token: "{ALICE}", groups: [support], slack_id: U0ALICE}}
  - {{name: carol, token: "{CAROL}", groups: [finance], slack_id: U0CAROL}}
policy:
  - name: tickets-to-support
    match: {{system: Zendesk, object: ticket}}
    action: hold
    reviewers: [support]
notifications:
  review_url: https://review.example.test
  slack:
    bot_token: "{BOT_TOKEN}"
    signing_secret: "{SIGNING_SECRET}"
    api_url: "http://127.0.0.1:{slack[1].port}/api/"
    channels: {{support: C0SUPPORT, finance: C0FINANCE}}
"""
    process = start_proxy(tmp_path_factory.mktemp("slack"), upstream_tls, vendors,
                          "--hold-timeout", "60", config=config)
    process.token = ALICE
    yield process
    assert process.stop() == 0, process.log()


def solve(gate: ProxyProcess, zendesk: FakeZendesk, ticket: int) -> tuple[Background, dict]:
    """The agent's write, held: a ticket set to solved."""
    zendesk.seed(ticket, status="open")
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": gate.proxy_url}
    session.verify = str(gate.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    return held(gate, lambda: session.put(
        f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json",
        json={"ticket": {"status": "solved"}}, headers={"X-HITL-Agent": "triage-bot"},
        timeout=90))


def message_of(fake: FakeSlack, approval_id: str, timeout: float = 15) -> Posted:
    """The one message posted for the approval (found by its Open link)."""
    link = f"https://review.example.test/approvals/{approval_id}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in list(fake.messages.values()) if link in json.dumps(m.blocks)]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no Slack message for {approval_id}: {fake.calls.by_method}")


def until(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError("not reached")


def buttons(posted: Posted) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in posted.blocks if b["type"] == "actions"
            for e in b["elements"]}


def post(gate: ProxyProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=30) as client:
        return client.post(f"{gate.review_url}/slack/interactions", content=body,
                           headers=headers)


def told(fake: FakeSlack, user: str) -> list[str]:
    return [e["text"] for e in fake.ephemeral if e["user"] == user]


def test_a_held_write_is_posted_and_a_signed_approve_click_sends_it(
        gate: ProxyProcess, vendors: dict[str, Vendor],
        slack: tuple[FakeSlack, HTTPSFake]) -> None:
    fake = slack[0]
    call, approval = solve(gate, vendors["zendesk"].fake, 9101)
    posted = message_of(fake, approval["id"])
    assert posted.channel == "C0SUPPORT" and block_kit_problem(posted.blocks) is None
    assert posted.text.startswith("Held for review: Zendesk ticket 9101")
    assert list(buttons(posted)) == [APPROVE_ACTION, REJECT_ACTION, OPEN_ACTION]
    text = json.dumps(posted.blocks, ensure_ascii=False)
    assert "`open` → `solved`" in text and "triage-bot" in text

    body = fake.form(fake.click(posted.channel, posted.ts, APPROVE_ACTION, "U0ALICE"))
    answer = post(gate, body, fake.sign(body))
    assert (answer.status_code, answer.content) == (200, b"")
    assert call.join().result.status_code == 200  # upstream's answer reached the agent
    done = gate.wait_for_status(approval["id"], "executed")
    assert done["decided_by"] == "alice"
    final = until(lambda: posted.text.startswith("Approved and sent") and posted)
    assert "by alice in Slack" in json.dumps(final.blocks)
    assert list(buttons(final)) == [OPEN_ACTION]
    assert len(fake.posted_in("C0SUPPORT")) >= 1 and posted.updates >= 1


def test_refused_clicks_decide_nothing_and_say_why(
        gate: ProxyProcess, vendors: dict[str, Vendor],
        slack: tuple[FakeSlack, HTTPSFake]) -> None:
    fake = slack[0]
    call, approval = solve(gate, vendors["zendesk"].fake, 9102)
    posted = message_of(fake, approval["id"])

    def click(user: str, **change: Any) -> bytes:
        payload = fake.click(posted.channel, posted.ts, APPROVE_ACTION, user)
        if "fingerprint" in change:  # a button of an earlier version of the write
            payload["actions"][0]["value"] = ButtonRef(approval["id"],
                                                       change["fingerprint"]).value()
        return fake.form(payload)

    # Untrusted requests: 401 with the reason, and nobody in Slack is told anything.
    body = click("U0ALICE")
    before = len(fake.ephemeral)
    forged = post(gate, body, fake.sign(body, secret="someone-elses-secret"))
    assert forged.status_code == 401 and "signing secret" in forged.json()["error"]
    stale = post(gate, body, fake.sign(body, timestamp=int(time.time()) - 600))
    assert stale.status_code == 401 and "five minutes" in stale.json()["error"]
    assert len(fake.ephemeral) == before
    # Genuine requests that may not decide: 200 for Slack, an ephemeral reason for the user.
    for user, body, words in (
            ("U0MALLORY", click("U0MALLORY"), "not mapped to a reviewer"),
            ("U0CAROL", click("U0CAROL"), "carol is in none of them"),
            ("U0ALICE", click("U0ALICE", fingerprint="e" * 64), "earlier version")):
        answer = post(gate, body, fake.sign(body))
        assert answer.status_code == 200, answer.text
        reason = until(lambda user=user: told(fake, user))[-1]
        assert reason.startswith("Nothing was decided:") and words in reason, reason
    current = gate.api("GET", f"/api/approvals/{approval['id']}").json()
    assert current["status"] == "pending" and current["votes"] == []

    # The genuine click decides; the same request again (a replay) is refused.
    body = click("U0ALICE")
    headers = fake.sign(body)
    assert post(gate, body, headers).status_code == 200
    replay = post(gate, body, headers)
    assert replay.status_code == 401 and "already received" in replay.json()["error"]
    assert call.join().result.status_code == 200
    done = gate.wait_for_status(approval["id"], "executed")
    assert [vote["reviewer"] for vote in done["votes"]] == ["alice"]
    assert "slack" in gate.log().lower() and "refused" in gate.log()


def test_a_decision_through_the_api_updates_the_message_in_place(
        gate: ProxyProcess, vendors: dict[str, Vendor],
        slack: tuple[FakeSlack, HTTPSFake]) -> None:
    fake = slack[0]
    call, approval = solve(gate, vendors["zendesk"].fake, 9103)
    posted = message_of(fake, approval["id"])
    ts = posted.ts
    assert gate.decide(approval["id"], "reject", "wrong ticket", token=ALICE
                       ).status_code == 200
    assert call.join().result.status_code == 403
    final = until(lambda: posted.text.startswith("Rejected") and posted)
    text = json.dumps(final.blocks, ensure_ascii=False)
    assert "Rejected* by alice through the API" in text and "wrong ticket" in text
    assert final.ts == ts and list(buttons(final)) == [OPEN_ACTION]  # the same message
    assert message_of(fake, approval["id"]) is posted  # never posted twice
