"""The demo's scripted agent: realistic writes sent through the proxy, each answer printed."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from pathlib import Path
from typing import Any

import httpx

from hitl_demo.saas import QBO, SF

SAMPLE_WRITES: list[dict[str, Any]] = [
    {"task": "ticket-triage", "agent": "triage-bot", "method": "PUT",
     "url": "https://demo.zendesk.com/api/v2/tickets/4012.json",
     "reason": "Login issue after reset: known bug, route to Identity team as high",
     "json": {"ticket": {"priority": "high", "group_id": 5, "tags": ["login", "identity"]}}},
    {"task": "ticket-triage", "agent": "triage-bot", "method": "PUT",
     "url": "https://demo.zendesk.com/api/v2/tickets/4013.json",
     "reason": "VAT number corrected in billing profile; tell the customer and solve",
     "json": {"ticket": {"status": "solved", "comment": {
         "body": "We've corrected the VAT number; a fixed invoice is on its way.",
         "public": True}}}},
    {"task": "lead-routing", "agent": "lead-router", "method": "PATCH",
     "url": f"https://demo.my.salesforce.com{SF}/sobjects/Lead/00Q5e00000DemoAAA",
     "reason": "Logistics company with 500+ staff: enterprise territory (owner: Dana)",
     "json": {"OwnerId": "0055e000002DanaAAA", "Rating": "Hot", "Status": "Working"}},
    {"task": "invoice-followup", "agent": "ar-assistant", "method": "POST",
     "url": f"https://sandbox-quickbooks.api.intuit.com{QBO}/invoice?minorversion=75",
     "reason": "Customer added 9 more seats on the call; update the open invoice",
     "json": {"Id": "1042", "SyncToken": "3", "sparse": True,
              "Line": [{"Amount": 1200.0, "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]}},
]


async def run_agent(proxy_url: str, proxy_ca: Path, review_url: str,
                    on_answer: Any = None) -> list[int]:
    """The scripted agent: sends each sample write through the proxy and waits for its fate."""
    async with httpx.AsyncClient(timeout=5) as probe:
        for _ in range(200):
            try:
                if (await probe.get(f"{review_url}/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    context = ssl.create_default_context(cafile=str(proxy_ca))
    headers = {"Authorization": "Bearer demo-agent-credential", "Accept": "application/json"}
    async with httpx.AsyncClient(proxy=proxy_url, verify=context, timeout=600,
                                 trust_env=False, headers=headers) as agent:

        async def one(write: dict[str, Any]) -> int:
            response = await agent.request(write["method"], write["url"], json=write["json"],
                                           headers={"X-HITL-Task": write["task"],
                                                    "X-HITL-Agent": write["agent"],
                                                    "X-HITL-Reason": write["reason"]})
            if on_answer is not None:
                on_answer(write, response)
            return response.status_code

        return list(await asyncio.gather(*(one(write) for write in SAMPLE_WRITES)))


def print_answer(write: dict[str, Any], response: httpx.Response) -> None:
    try:
        status = response.json().get("status", response.status_code)
    except (ValueError, AttributeError):
        status = response.status_code
    print(f"  agent {write['agent']}: {write['method']} {write['url'].split('?')[0]} -> "
          f"{response.status_code} ({status})", flush=True)


def new_token() -> str:
    return "demo-" + secrets.token_urlsafe(16)
