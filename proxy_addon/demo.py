"""`hitl-proxy demo`: the whole loop in a minute, with no SaaS account.

Starts a small local SaaS (Zendesk-, Salesforce- and QuickBooks-shaped, over HTTPS with a demo
CA of its own), the proxy in front of it, and a scripted agent that proposes realistic changes.
The reviewer opens the printed URL, signs in with the printed token and decides.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import ssl
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy.certs import CertStore
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

HOSTS = ["demo.zendesk.com", "demo.my.salesforce.com", "sandbox-quickbooks.api.intuit.com"]
REALM = "4620816365"
SF = "/services/data/v59.0"
QBO = f"/v3/company/{REALM}"


class DemoSaaS:
    """In-memory records with each vendor's wrapping, so the proxy reads them as it would."""

    def __init__(self) -> None:
        self.tickets: dict[int, dict[str, Any]] = {
            4012: {"id": 4012, "subject": "Can't log in after password reset", "status": "new",
                   "priority": "normal", "tags": ["login"], "group_id": 1, "assignee_id": None},
            4013: {"id": 4013, "subject": "Invoice shows wrong VAT number", "status": "open",
                   "priority": "normal", "tags": ["billing"], "group_id": 2, "assignee_id": 77},
        }
        self.leads: dict[str, dict[str, Any]] = {
            "00Q5e00000DemoAAA": {"Id": "00Q5e00000DemoAAA", "LastName": "Okafor",
                                  "Company": "Brightline Logistics", "Status": "Open",
                                  "OwnerId": "0055e000001QueueA", "Rating": "Warm"},
        }
        self.invoices: dict[str, dict[str, Any]] = {
            "1042": {"Id": "1042", "SyncToken": "3", "DocNumber": "INV-1042",
                     "CustomerRef": {"value": "58", "name": "Northwind Traders"},
                     "Line": [{"Amount": 120.0, "DetailType": "SalesItemLineDetail",
                               "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
                     "TotalAmt": 120.0, "DueDate": "2026-12-15"},
        }
        self.app = Starlette(routes=[
            Route("/api/v2/tickets/{ticket_id:int}.json", self.ticket,
                  methods=["GET", "PUT", "DELETE"]),
            Route(SF + "/sobjects/Lead/{lead_id}", self.lead, methods=["GET", "PATCH"]),
            Route(QBO + "/invoice/{invoice_id}", self.invoice, methods=["GET"]),
            Route(QBO + "/invoice", self.invoice_write, methods=["POST"]),
        ])

    async def ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return JSONResponse({"error": "RecordNotFound", "description": "Not found"}, 404)
        if request.method == "DELETE":
            del self.tickets[ticket["id"]]
            return Response(status_code=204)
        if request.method == "PUT":
            fields = (await request.json()).get("ticket", {})
            fields.pop("comment", None)
            ticket.update(fields)
        return JSONResponse({"ticket": copy.deepcopy(ticket)})

    async def lead(self, request: Request) -> Response:
        lead = self.leads.get(request.path_params["lead_id"])
        if lead is None:
            return JSONResponse([{"errorCode": "NOT_FOUND",
                                  "message": "The requested resource does not exist"}], 404)
        if request.method == "PATCH":
            lead.update(await request.json())
            return Response(status_code=204)
        return JSONResponse({"attributes": {"type": "Lead"}, **copy.deepcopy(lead)})

    async def invoice(self, request: Request) -> Response:
        invoice = self.invoices.get(request.path_params["invoice_id"])
        if invoice is None:
            return JSONResponse({"Fault": {"Error": [{"Message": "Object Not Found",
                                                      "code": "610"}]}}, 400)
        return JSONResponse({"Invoice": copy.deepcopy(invoice), "time": "2026-11-25T09:00:00Z"})

    async def invoice_write(self, request: Request) -> Response:
        body = await request.json()
        invoice = self.invoices[str(body["Id"])]
        invoice.update({k: v for k, v in body.items() if k not in ("sparse", "SyncToken")})
        invoice["TotalAmt"] = sum(line.get("Amount", 0) for line in invoice["Line"])
        invoice["SyncToken"] = str(int(invoice["SyncToken"]) + 1)
        return JSONResponse({"Invoice": copy.deepcopy(invoice), "time": "2026-11-25T09:00:00Z"})


def demo_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA of the demo SaaS's own (trusted by the proxy through --upstream-ca) and its cert."""
    directory.mkdir(parents=True, exist_ok=True)
    store = CertStore.from_store(directory, "demo-saas", 2048)
    entry = store.get_cert(HOSTS[0], [x509.DNSName(host) for host in HOSTS])
    cert, key = directory / "demo-saas-cert.pem", directory / "demo-saas-key.pem"
    cert.write_bytes(entry.cert.to_pem())
    key.write_bytes(entry.privatekey.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return directory / "demo-saas-ca-cert.pem", cert, key


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


def demo_config(token: str) -> str:
    return json.dumps({"reviewers": [{"name": "demo-reviewer", "token": token}]})


async def start_saas(saas: DemoSaaS, cert: Path, key: Path) -> tuple[uvicorn.Server, int]:
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(saas.app, log_level="warning", lifespan="off",
                                           ssl_certfile=str(cert), ssl_keyfile=str(key)))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return server, sock.getsockname()[1]


def new_token() -> str:
    return "demo-" + secrets.token_urlsafe(16)
