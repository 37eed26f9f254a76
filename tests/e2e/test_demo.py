"""`hitl-proxy demo` starts, holds its sample writes, executes what is approved, stops cleanly."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.harness import hitl_proxy_command
from tests.fakes.server import free_port


def test_demo_holds_its_sample_writes_and_stops_cleanly(tmp_path: Path) -> None:
    listen, review = free_port(), free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*hitl_proxy_command(), "demo", "--listen-port", str(listen), "--review-port",
             str(review), "--data-dir", str(tmp_path / "data"), "--certs-dir",
             str(tmp_path / "certs")], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        token, pending = None, []
        while time.monotonic() < deadline and len(pending) < 4:
            time.sleep(0.2)
            assert process.poll() is None, log.read_text()
            if token is None and (found := re.search(r"\n  (demo-\S+)\n", log.read_text())):
                token = found.group(1)
            if token is not None:
                try:
                    pending = httpx.get(f"http://127.0.0.1:{review}/api/approvals",
                                        params={"status": "pending"},
                                        headers={"Authorization": f"Bearer {token}"}).json()[
                        "approvals"]
                except httpx.HTTPError:
                    pass
        assert len(pending) == 4, log.read_text()
        systems = {a["system"] for a in pending}
        assert systems == {"Zendesk", "Salesforce", "QuickBooks"}
        invoice = next(a for a in pending if a["system"] == "QuickBooks")
        assert invoice["risk"]["level"] == "high"
        [line] = [c for c in invoice["changes"] if c["field"] == "Line"]
        assert (line["old"][0]["Amount"], line["new"][0]["Amount"]) == (120.0, 1200.0)
        answer = httpx.post(f"http://127.0.0.1:{review}/api/approvals/{invoice['id']}/approve",
                            headers={"Authorization": f"Bearer {token}"}, json={})
        assert answer.status_code == 200
        deadline = time.monotonic() + 15
        while "/invoice -> 200" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "/invoice -> 200" in log.read_text(), log.read_text()
        page = httpx.get(f"http://127.0.0.1:{review}/login")
        assert page.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(20)
    assert code == 0, log.read_text()


def test_the_proxy_never_imports_the_demo() -> None:
    """The demo SaaS lives in hitl_demo, outside proxy_addon: only `hitl-proxy demo` loads it."""
    import sys

    code = ("import sys, proxy_addon.cli, proxy_addon.runner, proxy_addon.compose; "
            "from proxy_addon.cli import build_parser; build_parser(); "
            "print(sorted(name for name in sys.modules if name.startswith('hitl_demo')))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60, check=True)
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    assert not (Path(__file__).parents[2] / "proxy_addon" / "demo.py").exists()
