"""A site's own internal billing API, the kind no shipped connector knows: the proxy learns it only
from the OpenAPI file beside it (`billing-openapi.yaml`), which this fake follows exactly.

- invoices are `{"id", "customer", "amount", "currency", "memo", "status"}`; `status` is `draft`,
  `open` or `void`
- `GET/PATCH/DELETE /v2/invoices/{invoiceId}`, `POST /v2/invoices`, `POST .../void`,
  `POST /v2/invoices/search` (a read: `{"status": ...}` -> `{"results": [...]}`)
- auth is `Authorization: Bearer <token>`; failures answer 401 `{"error": "unauthorized"}`,
  missing invoices 404 `{"error": "not_found"}`
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

DESCRIPTION = Path(__file__).with_name("billing-openapi.yaml")
TOKEN = "billing-agent-token"
WRITABLE = {"customer", "amount", "currency", "memo"}


class FakeBilling:
    def __init__(self) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}
        self.log = RequestLog()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.app = Starlette(routes=[
            Route("/v2/invoices", self._create, methods=["POST"]),
            Route("/v2/invoices/search", self._search, methods=["POST"]),
            Route("/v2/invoices/{invoice_id}", self._one, methods=["GET", "PATCH", "DELETE"]),
            Route("/v2/invoices/{invoice_id}/void", self._void, methods=["POST"]),
        ])

    def seed_invoice(self, customer: str, amount: int, memo: str = "") -> str:
        with self._lock:
            invoice_id = f"inv_{next(self._ids)}"
            self.invoices[invoice_id] = {"id": invoice_id, "customer": customer,
                                         "amount": amount, "currency": "usd", "memo": memo,
                                         "status": "open"}
        return invoice_id

    async def _seen(self, request: Request) -> tuple[Any, Response | None]:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return None, JSONResponse({"error": "unauthorized"}, status_code=401)
        try:
            return (json.loads(body) if body else None), None
        except ValueError:
            return None, JSONResponse({"error": "invalid_json"}, status_code=400)

    def _found(self, invoice_id: str) -> dict[str, Any] | None:
        return self.invoices.get(invoice_id)

    async def _create(self, request: Request) -> Response:
        body, refused = await self._seen(request)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or "customer" not in body or "amount" not in body:
            return JSONResponse({"error": "customer and amount are required"}, status_code=400)
        invoice_id = self.seed_invoice(str(body["customer"]), int(body["amount"]),
                                       str(body.get("memo", "")))
        return JSONResponse(self.invoices[invoice_id], status_code=201)

    async def _search(self, request: Request) -> Response:
        body, refused = await self._seen(request)
        if refused is not None:
            return refused
        status = body.get("status") if isinstance(body, dict) else None
        found = [i for i in self.invoices.values() if status is None or i["status"] == status]
        return JSONResponse({"results": found})

    async def _one(self, request: Request) -> Response:
        body, refused = await self._seen(request)
        if refused is not None:
            return refused
        invoice = self._found(request.path_params["invoice_id"])
        if invoice is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        if request.method == "DELETE":
            del self.invoices[invoice["id"]]
            return Response(status_code=204)
        if request.method == "PATCH":
            if not isinstance(body, dict) or not set(body) <= WRITABLE:
                return JSONResponse({"error": f"writable fields: {sorted(WRITABLE)}"},
                                    status_code=400)
            invoice.update(body)
        return JSONResponse(invoice)

    async def _void(self, request: Request) -> Response:
        _body, refused = await self._seen(request)
        if refused is not None:
            return refused
        invoice = self._found(request.path_params["invoice_id"])
        if invoice is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        invoice["status"] = "void"
        return JSONResponse(invoice)
