"""What the agent says about a write (X-HITL-* headers) through the real proxy process: shown
to the reviewer, never sent upstream."""

from __future__ import annotations

import json

from tests.e2e.harness import ProxyProcess, agent_client, held
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

BASIC = "Basic YWdlbnRAYWNtZS50ZXN0L3Rva2VuOnpkLWFwaS10b2tlbi0xMjM="  # agent@acme.test/token:…


def test_the_trigger_is_shown_with_the_reason_and_never_reaches_upstream(
        proxy: ProxyProcess, zendesk: tuple[FakeZendesk, HTTPSFake]) -> None:
    fake = zendesk[0]
    fake.seed(1701, subject="Invoice copy", status="open")
    trigger = "https://acme.slack.com/archives/C1/p17?token=canary-trigger-secret&thread=1"
    fake.log.clear()
    with agent_client(proxy, Authorization=BASIC) as client:
        call, approval = held(proxy, lambda: client.put(
            "https://acme.zendesk.com/api/v2/tickets/1701.json",
            json={"ticket": {"status": "solved"}},
            headers={"X-HITL-Reason": "customer confirmed", "X-HITL-Trigger": trigger}))
        assert approval["context"]["reason"] == "customer confirmed"
        # A link's token is masked as any URL's is; the rest of it is what the reviewer opens.
        assert approval["context"]["trigger"] == (
            "https://acme.slack.com/archives/C1/p17?token=***&thread=1")
        assert not any(name.lower().startswith("x-hitl-")
                       for name in approval["request"]["headers"])
        assert approval["identity"][0] == {"field": "subject", "label": "Subject",
                                           "value": "Invoice copy"}
        assert "canary-trigger-secret" not in json.dumps(approval)
        proxy.decide(approval["id"], "approve")
        assert call.join().result.status_code == 200
    [seen] = fake.log.of("PUT", "/api/v2/tickets/1701")
    assert not any(name.startswith("x-hitl-") for name in seen.headers)
    for stored in proxy.data_dir.iterdir():  # approvals, traffic record, their WAL files
        if stored.is_file():
            assert b"canary-trigger-secret" not in stored.read_bytes(), stored
