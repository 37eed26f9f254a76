"""`hitl-proxy approve|reject ID... --note` against the real proxy: each id decided on its own
through POST /api/approvals/decide, one line each, exit 1 when any failed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, hitl_proxy_command

SAM, FIN = "sam-support-token-cli-01", "fin-finance-token-cli-02"
CONFIG = f"""
reviewers:
  - {{name: sam, token: "{SAM}", groups: [support]}}
  - {{name: fin, token: "{FIN}", groups: [finance]}}
policy:
  - match: {{system: Zendesk}}
    action: hold
    reviewers: [support]
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if key != "HITL_REVIEW_TOKEN"}
    return subprocess.run([*hitl_proxy_command(), *args], capture_output=True, text=True,
                          timeout=60, env={**environment, **(env or {})})


def held_writes(proxy: ProxyProcess, tickets: list[int]) -> list[str]:
    """The agent's writes, answered 202 after the one-second hold: pending approvals."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": proxy.proxy_url}
    session.verify = str(proxy.ca_cert)
    session.auth = ("agent@acme.test/token", "zd-api-token-123")
    ids = []
    for ticket in tickets:
        answer = session.put(f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json",
                             json={"ticket": {"status": "solved"}}, timeout=30)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["approval_id"])
    return ids


def test_approve_and_reject_from_a_shell_with_one_id_failing(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor]) -> None:
    fake = vendors["zendesk"].fake
    for ticket in (981, 982, 983, 984):
        fake.seed(ticket, status="open")
    proxy = start_proxy(tmp_path / "proxy", upstream_tls, vendors, "--hold-timeout", "1",
                        config=CONFIG)
    proxy.token = SAM
    try:
        first, second, third, fourth = held_writes(proxy, [981, 982, 983, 984])
        (tmp_path / "sam.token").write_text(SAM + "\n")
        url = ["--review-url", proxy.review_url]

        approved = cli("approve", first, second, "no-such-id", "--note", "checked the queue",
                       "--token-file", str(tmp_path / "sam.token"), *url)
        assert approved.returncode == 1, approved.stdout + approved.stderr
        assert approved.stdout.splitlines() == [
            f"{first}: ok, approved", f"{second}: ok, approved",
            "no-such-id: failed: no approval no-such-id"]
        # Routed to support: the finance reviewer may not decide it (it is not even shown).
        refused = cli("reject", third, *url, env={"HITL_REVIEW_TOKEN": FIN})
        assert (refused.returncode, refused.stdout) == (1, f"{third}: failed: no approval "
                                                           f"{third}\n")
        rejected = cli("reject", third, fourth, "--note", "not yet", *url,
                       env={"HITL_REVIEW_TOKEN": SAM})
        assert (rejected.returncode, rejected.stdout.splitlines()) == (
            0, [f"{third}: ok, rejected", f"{fourth}: ok, rejected"])

        for approval_id in (first, second):
            approval = proxy.wait_for_status(approval_id, "executed")
            assert (approval["decided_by"], approval["note"]) == ("sam", "checked the queue")
            assert approval["result"]["status_code"] == 200
        assert proxy.api("GET", f"/api/approvals/{third}").json()["note"] == "not yet"
        assert [fake.tickets[t]["status"] for t in (981, 982, 983, 984)] == [
            "solved", "solved", "open", "open"]

        bad_token = cli("approve", first, *url, env={"HITL_REVIEW_TOKEN": "not-a-token"})
        assert bad_token.returncode == 2
        assert bad_token.stderr.strip() == (f"hitl-proxy: error: {proxy.review_url}/api/"
                                            "approvals/decide: the review API refused the "
                                            "token (401)")
        no_token = cli("approve", first, *url, "--data-dir", str(tmp_path / "nowhere"))
        assert no_token.returncode == 2 and "no reviewer token: cannot read" in no_token.stderr
        usage = cli("approve", "--note", "x", *url)
        assert usage.returncode == 2 and "required: ID" in usage.stderr
    finally:
        assert proxy.stop() == 0, proxy.log()


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_an_unreachable_review_api_fails_every_id(tmp_path: Path, decision: str) -> None:
    from tests.fakes.server import free_port

    result = cli(decision, "a1", "a2", "--review-url", f"http://127.0.0.1:{free_port()}",
                 env={"HITL_REVIEW_TOKEN": SAM})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["a1", "a2"]
    assert all(": failed: cannot reach http://127.0.0.1:" in line for line in lines)
