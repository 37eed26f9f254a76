"""Hold latencies through the real `hitl-proxy run`: arrival -> visible, approve -> upstream.

    .venv/bin/python bench/holds.py [--writes 50]

Starts a fake Zendesk over HTTPS on loopback and the proxy in front of it, sends sequential ticket
updates with httpx through the proxy, and for each one measures
- arrival -> committed: from the agent sending the PUT to the approval's created_at, the moment
  it is committed and visible to the API (includes the current-record fetch, diff, SQLite commit);
- arrival -> seen by poll: the same, until a client polling GET /api/approvals every 1 ms sees it
  (adds the polling client's own cost in this one process, GIL shared with the fake);
- approve -> upstream: from POST .../approve being sent to the fake receiving the PUT.
Prints p50/p99 in milliseconds. Run by hand; numbers go in README and closing notes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ProxyProcess
from tests.fakes.server import HTTPSFake
from tests.fakes.zendesk import FakeZendesk

TOKEN = "bench-reviewer-token-0001"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(writes: int) -> dict[str, dict[str, float]]:
    """p50/p99 in ms of arrival -> committed, -> seen by a poll, and approve -> upstream."""
    workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("acme.zendesk.com")
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(workdir / "server.pem"))
    (workdir / "hitl.yaml").write_text(
        f"reviewers: [{{name: bench, token: {TOKEN}, groups: []}}]\n")
    fake = FakeZendesk()
    fake.seed(1, status="open")
    arrival: list[float] = []
    committed: list[float] = []
    release: list[float] = []
    with HTTPSFake(fake.app, workdir / "server.pem", workdir / "server.pem") as server:
        proxy = ProxyProcess(workdir, [
            "--config", str(workdir / "hitl.yaml"), "--upstream-ca", str(workdir / "ca.pem"),
            "--resolve", f"acme.zendesk.com=127.0.0.1:{server.port}", "--hold-timeout", "30",
        ], token=TOKEN).start()
        try:
            agent = httpx.Client(proxy=proxy.proxy_url, verify=str(proxy.ca_cert), timeout=60)
            review = httpx.Client(base_url=proxy.review_url, timeout=10,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            auth = ("agent@acme.test/token", "zd-api-token-123")
            for index in range(writes):
                status = "solved" if index % 2 == 0 else "open"
                puts_before = len(fake.log.of("PUT"))
                thread = threading.Thread(target=agent.put, args=(
                    "https://acme.zendesk.com/api/v2/tickets/1.json",),
                    kwargs={"json": {"ticket": {"status": status}}, "auth": auth})
                sent, sent_wall = time.perf_counter(), time.time()
                thread.start()
                while not (pending := review.get("/api/approvals",
                                                 params={"status": "pending"}).json()["approvals"]):
                    time.sleep(0.001)
                arrival.append(time.perf_counter() - sent)
                created = datetime.fromisoformat(pending[0]["created_at"]).timestamp()
                committed.append(created - sent_wall)
                approve_sent = time.perf_counter()
                review.post(f"/api/approvals/{pending[0]['id']}/approve", json={})
                thread.join()
                release.append(fake.log.of("PUT")[puts_before].at - approve_sent)
        finally:
            proxy.stop()
    return {name: {"p50_ms": round(percentile(values, 0.5) * 1000, 2),
                   "p99_ms": round(percentile(values, 0.99) * 1000, 2), "n": len(values)}
            for name, values in (("arrival_to_committed", committed),
                                 ("arrival_to_seen_by_poll", arrival),
                                 ("approve_to_upstream", release))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=50)
    for name, found in measure(parser.parse_args().writes).items():
        print(f"{name:24s} p50 {found['p50_ms']:7.1f} ms   p99 {found['p99_ms']:7.1f} ms   "
              f"(n={found['n']})")


if __name__ == "__main__":
    main()
