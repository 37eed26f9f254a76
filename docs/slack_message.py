"""Renders the Slack message of a held write to docs/slack-message.png, with Debian's Chromium.

    .venv/bin/python docs/slack_message.py

The message is the one the real poster sends: a held write in a throwaway SQLite store, posted
by `SlackPoster` to the fake Slack (tests/fakes/slack.py) over HTTP. The Block Kit blocks the
fake received are drawn as an HTML approximation of Slack's layout. It is a rendering of the
blocks, not a screenshot of Slack: fonts, spacing and colours are Slack-like, not Slack's.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from review_api.models import (  # noqa: E402
    Change,
    Context,
    IdentityField,
    OldValues,
    Proposal,
    Risk,
    RiskLevel,
)
from review_api.slack import SlackApi, SlackPoster, SlackSettings  # noqa: E402
from review_api.store.sqlite import SqliteStore  # noqa: E402
from tests.fakes.server import HTTPSFake  # noqa: E402
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"]
STYLE = """
body { font: 15px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1d1c1d;
       background: #fff; margin: 0; padding: 20px; width: 720px; }
.note { color: #616061; font-size: 12px; margin-bottom: 14px; }
.msg { display: flex; gap: 10px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #4a154b; color: #fff;
          font-weight: 700; display: flex; align-items: center; justify-content: center; }
.who { font-weight: 900; } .app { background: #e8e8e8; font-size: 10px; padding: 1px 3px;
       border-radius: 2px; color: #616061; margin-left: 4px; } .time { color: #616061;
       font-size: 12px; margin-left: 6px; }
.header { font-weight: 900; font-size: 18px; margin: 6px 0; }
.section { margin: 6px 0; } .fields { display: grid; grid-template-columns: 1fr 1fr;
           gap: 4px 24px; margin: 6px 0; }
.context { color: #616061; font-size: 13px; margin: 6px 0; }
code { font: 12px monospace; color: #e01e5a; background: #f6f6f6; border: 1px solid #ddd;
       border-radius: 3px; padding: 0 3px; }
.actions { display: flex; gap: 8px; margin: 10px 0 4px; }
.button { border: 1px solid #bbb; border-radius: 4px; padding: 4px 14px; font-weight: 700;
          font-size: 14px; }
.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.danger { background: #e01e5a; color: #fff; border-color: #e01e5a; }
"""


def mrkdwn(text: str) -> str:
    """Slack's mrkdwn as HTML. The text is already escaped as Slack wants (&amp; &lt; &gt;),
    which is HTML's escaping too; dates show their fallback text."""
    text = re.sub(r"<!date\^\d+\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"`([^`]*)`", r"<code>\1</code>", text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+)\*", r"<b>\1</b>", text)
    text = re.sub(r"(?<![\w_])_([^_\n]+)_", r"<i>\1</i>", text)
    return text.replace("\n", "<br>")


def block_html(block: dict[str, Any]) -> str:
    kind = block["type"]
    if kind == "header":
        return f'<div class="header">{html.escape(block["text"]["text"])}</div>'
    if kind == "section":
        if "fields" in block:
            cells = "".join(f"<div>{mrkdwn(f['text'])}</div>" for f in block["fields"])
            return f'<div class="fields">{cells}</div>'
        return f'<div class="section">{mrkdwn(block["text"]["text"])}</div>'
    if kind == "context":
        return '<div class="context">' + " ".join(
            mrkdwn(e["text"]) for e in block["elements"]) + "</div>"
    if kind == "actions":
        buttons = "".join(
            f'<span class="button {e.get("style", "")}">{html.escape(e["text"]["text"])}'
            + (" ↗" if "url" in e else "") + "</span>" for e in block["elements"])
        return f'<div class="actions">{buttons}</div>'
    return ""


def page(blocks: list[dict[str, Any]]) -> str:
    body = "".join(block_html(block) for block in blocks)
    return (f"<!doctype html><meta charset=utf-8><style>{STYLE}</style>"
            '<div class="note">A rendering of the Block Kit blocks hitl-proxy posts, drawn by '
            "docs/slack_message.py: not a screenshot of Slack.</div>"
            '<div class="msg"><div class="avatar">H</div><div><span class="who">hitl-proxy'
            '</span><span class="app">APP</span><span class="time">10:42</span>'
            f"{body}</div></div>")


async def posted_blocks(work: Path) -> list[dict[str, Any]]:
    fake = FakeSlack()
    with HTTPSFake(fake.app) as server:
        settings = SlackSettings(bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
                                 channels={"support": "C0SUPPORT"},
                                 api_url=f"http://127.0.0.1:{server.port}/api/")
        store = SqliteStore(work / "hitl.sqlite3")
        await store.open()
        try:
            approval = await store.create(Proposal(
                method="PUT", url="https://acme.zendesk.com/api/v2/tickets/4821.json",
                system="Zendesk", object_type="ticket", operation="update", record_id="4821",
                fingerprint="f" * 64, reviewer_groups=["support"],
                changes=[Change(field="status", old="open", new="solved"),
                         Change(field="priority", old="high", new="normal")],
                identity=[IdentityField(field="subject", label="Subject",
                                        value="Refund not received for order 7731"),
                          IdentityField(field="requester.email", label="Requester",
                                        value="m***@example.com")],
                old_values=OldValues(known=True),
                risk=Risk(level=RiskLevel.medium, customer_facing=True,
                          reasons=["the customer sees the status"]),
                context=Context(agent="support-bot", task="close-resolved",
                                reason="The customer confirmed the refund arrived.",
                                trigger="https://acme.zendesk.com/agent/tickets/4821")))
            poster = SlackPoster(SlackApi(settings), settings,
                                 "https://review.example.com", store)
            await poster.show(approval)
        finally:
            await store.close()
    (message,) = fake.messages.values()
    return message.blocks


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="hitl-slack-shot-"))
    blocks = asyncio.run(posted_blocks(work))
    target = work / "message.html"
    target.write_text(page(blocks))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        view = browser.new_page(viewport={"width": 760, "height": 400}, device_scale_factor=2)
        view.goto(target.as_uri())
        view.screenshot(path=str(HERE / "slack-message.png"), full_page=True)
        browser.close()
    print(HERE / "slack-message.png")


if __name__ == "__main__":
    main()
