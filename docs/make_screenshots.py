"""Regenerates the README's screenshots from `hitl-proxy demo`, with Debian's Chromium.

    .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hitl-shots-"))
    command = [str(Path(sys.executable).parent / "hitl-proxy"), "demo", "--listen-port", "18480",
               "--review-port", "18481", "--data-dir", str(work / "data"), "--certs-dir",
               str(work / "certs")]
    log = work / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        token = None
        for _ in range(100):
            time.sleep(0.2)
            if found := re.search(r"\n  (demo-\S+)\n", log.read_text()):
                token = found.group(1)
                try:
                    pending = httpx.get("http://127.0.0.1:18481/api/approvals?status=pending",
                                        headers={"Authorization": f"Bearer {token}"}).json()
                except httpx.HTTPError:
                    continue
                if len(pending["approvals"]) == 4:
                    break
        assert token, log.read_text()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.goto("http://127.0.0.1:18481/login")
            page.get_by_label("Reviewer token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("#queue a.item")
            page.screenshot(path=str(HERE / "review-queue.png"))
            page.locator("#queue a.item", has_text="QuickBooks · invoice").click()
            page.wait_for_selector("table.changes")
            page.screenshot(path=str(HERE / "review-page.png"), full_page=True)
            browser.close()
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(20)


if __name__ == "__main__":
    main()
