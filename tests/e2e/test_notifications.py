"""Webhooks in generic JSON and Slack's format on new holds and decisions; failures never block."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, held
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

ADMIN = "notify-admin-token-0001"


class Receiver:
    """A webhook endpoint; /flaky fails twice before accepting."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.flaky_calls = 0
        self.app = Starlette(routes=[Route("/{name}", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        name = request.path_params["name"]
        if name == "broken":
            return JSONResponse({"error": "down"}, status_code=503)
        if name == "flaky":
            self.flaky_calls += 1
            if self.flaky_calls <= 2:
                return JSONResponse({"error": "busy"}, status_code=500)
        self.received.append((name, await request.json()))
        return JSONResponse({"ok": True})

    def wait(self, name: str, count: int, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [body for hook, body in self.received if hook == name]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{name}: {self.received}")


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, HTTPSFake]]:
    found = Receiver()
    with HTTPSFake(found.app) as server:
        yield found, server


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor],
         receiver: tuple[Receiver, HTTPSFake]) -> Iterator[ProxyProcess]:
    base = f"http://127.0.0.1:{receiver[1].port}"
    config = f"""
reviewers: [{{name: admin, token: "{ADMIN}"}}]
notifications:
  review_url: https://review.example.test
  webhooks:
    - {{url: "{base}/generic", format: json}}
    - {{url: "{base}/slack", format: slack}}
    - {{url: "{base}/flaky", format: json}}
    - {{url: "{base}/broken", format: json}}
"""
    process = start_proxy(tmp_path_factory.mktemp("notify"), upstream_tls, vendors,
                          "--hold-timeout", "30", config=config)
    process.token = ADMIN
    yield process
    assert process.stop() == 0, process.log()


def test_new_holds_and_decisions_reach_both_formats_and_failures_never_block(
        gate: ProxyProcess, vendors: dict[str, Vendor],
        receiver: tuple[Receiver, HTTPSFake]) -> None:
    fake: FakeZendesk = vendors["zendesk"].fake
    fake.seed(951, status="open")
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": gate.proxy_url}
    session.verify = str(gate.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    started = time.monotonic()
    call, approval = held(gate, lambda: session.put(
        "https://acme.zendesk.com/api/v2/tickets/951.json",
        json={"ticket": {"status": "solved"}}, headers={"X-HITL-Agent": "triage-bot"},
        timeout=60))
    assert time.monotonic() - started < 5  # the broken webhook did not delay the hold

    hooks = receiver[0]
    [pending] = hooks.wait("generic", 1)
    link = f"https://review.example.test/approvals/{approval['id']}"
    assert (pending["event"], pending["url"]) == ("approval.pending", link)
    assert pending["approval"]["system"] == "Zendesk"
    assert pending["changes"][0]["field"] == "status"
    [slack] = hooks.wait("slack", 1)
    assert slack["text"].startswith("*Held for review*: Zendesk ticket 951")
    assert f"<{link}|Open>" in slack["text"] and "triage-bot" in slack["text"]

    gate.decide(approval["id"], "reject", "not yet")
    assert call.join().result.status_code == 403
    decided = hooks.wait("generic", 2)[1]
    assert (decided["event"], decided["approval"]["note"]) == ("approval.rejected", "not yet")
    assert "*Rejected* by admin" in hooks.wait("slack", 2)[1]["text"]
    assert len(hooks.wait("flaky", 2)) == 2  # delivered after retries
    time.sleep(1)
    assert "webhook" in gate.log() and "/broken" in gate.log()
