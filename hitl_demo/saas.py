"""The demo's local SaaS: Zendesk-, Salesforce- and QuickBooks-shaped records over HTTPS, with
a demo CA of its own that the proxy trusts through --upstream-ca."""

from __future__ import annotations

import asyncio
import copy
import socket
from pathlib import Path
from typing import Any

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


async def start_saas(saas: DemoSaaS, cert: Path, key: Path) -> tuple[uvicorn.Server, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(saas.app, log_level="warning", lifespan="off",
                                           ssl_certfile=str(cert), ssl_keyfile=str(key)))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return server, sock.getsockname()[1]
