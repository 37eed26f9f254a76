"""A fake Stripe API (customers, invoices, invoice items, charges, refunds, PaymentIntents,
products, prices, subscriptions).

Named `stripe_api` so that it never shadows the real `stripe` package on import.
https://docs.stripe.com/api
- requests are application/x-www-form-urlencoded with Rack-style bracketed keys
  (`metadata[plan]=pro`, `items[0][price]=p`, `expand[]=customer`); answers are JSON objects
  carrying `id`, `object`, `created`, `livemode` and `metadata`
- auth: `Authorization: Bearer sk_test_...` or Basic with the key as user name
- errors: {"error": {"type", "code", "message", "param", "doc_url", "request_log_url"}}, every
  response carries `Request-Id`
- POSTs honour `Idempotency-Key`: a replay returns the stored answer (`Idempotent-Replayed`),
  other parameters or another endpoint with the same key answer 400 `idempotency_error`
- products, prices and subscriptions answer with the objects as the shipped description
  (connectors_schemas/descriptions/stripe-openapi-spec3.yaml.gz, API 2023-08-16) documents them:
  a subscription carries its period, `items` (a list of subscription items, each with its full
  price) and `cancellation_details`; `DELETE /v1/subscriptions/{id}` cancels it and answers the
  canceled subscription
"""

from __future__ import annotations

import base64
import copy
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import RequestLog, Seen

Params = dict[str, Any]
Handler = Callable[[Params, dict[str, str]], dict[str, Any]]

NO_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)
FORM_ONLY_MESSAGE = (
    "Invalid request (check that your POST content type is "
    "application/x-www-form-urlencoded). If you have any questions, we can help at "
    "https://support.stripe.com/."
)
INT_FIELDS = {
    "amount", "balance", "amount_to_capture", "days_until_due", "due_date", "quantity",
    "application_fee_amount", "next_invoice_sequence", "unit_amount", "effective_at",
    "automatically_finalizes_at", "limit", "start", "end", "amount_to_confirm",
    "interval_count", "proration_date", "billing_cycle_anchor", "trial_period_days",
}
BOOL_FIELDS = {
    "auto_advance", "capture", "confirm", "paid_out_of_band", "forgive", "off_session",
    "discountable", "validate", "error_on_requires_action", "use_stripe_sdk", "final_capture",
    "refund_application_fee", "reverse_transfer", "enabled", "pending",
    "cancel_at_period_end", "invoice_now", "prorate", "active", "deleted", "shippable",
    "trial_from_plan", "clear_usage",
}
MIN_AMOUNT = {"usd": (50, "$0.50 usd"), "eur": (50, "€0.50 eur"), "gbp": (30, "£0.30 gbp")}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}
PI_CANCEL_REASONS = {"duplicate", "fraudulent", "requested_by_customer", "abandoned"}
PI_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
                 "requires_action", "processing")
PI_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
DECLINING = {"tok_chargeDeclined", "pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"}
LIST = {"limit", "starting_after", "ending_before", "created", "expand"}

CUSTOMER_CREATE = {
    "address", "balance", "business_name", "cash_balance", "description", "email", "expand",
    "individual_name", "invoice_prefix", "invoice_settings", "metadata", "name",
    "next_invoice_sequence", "payment_method", "phone", "preferred_locales", "shipping",
    "source", "tax", "tax_exempt", "tax_id_data", "test_clock", "validate",
}
CUSTOMER_UPDATE = (CUSTOMER_CREATE - {"payment_method", "tax_id_data", "test_clock"}) | {
    "default_source"}
INVOICE_UPDATE = {
    "account_tax_ids", "application_fee_amount", "auto_advance", "automatic_tax",
    "automatically_finalizes_at", "collection_method", "custom_fields", "days_until_due",
    "default_payment_method", "default_source", "default_tax_rates", "description",
    "discounts", "due_date", "effective_at", "expand", "footer", "issuer", "metadata", "number",
    "on_behalf_of", "payment_settings", "rendering", "shipping_cost", "shipping_details",
    "statement_descriptor", "transfer_data",
}
INVOICE_CREATE = INVOICE_UPDATE | {
    "currency", "customer", "customer_account", "from_invoice", "pending_invoice_items_behavior",
    "subscription"}
# What a finalized (open/uncollectible) invoice still lets you change; money and
# collection_method are frozen at finalization.
INVOICE_FINALIZED_EDITABLE = {
    "auto_advance", "custom_fields", "description", "due_date", "days_until_due", "expand",
    "footer", "metadata", "rendering", "statement_descriptor", "payment_settings",
}
INVOICE_PREVIEW = {
    "automatic_tax", "currency", "customer", "customer_account", "customer_details",
    "discounts", "expand", "invoice_items", "issuer", "on_behalf_of", "preview_mode",
    "schedule", "schedule_details", "subscription", "subscription_details",
}
INVOICE_PAY = {"expand", "forgive", "mandate", "off_session", "paid_out_of_band",
               "payment_method", "source"}
INVOICEITEM_CREATE = {
    "amount", "currency", "customer", "customer_account", "description", "discountable",
    "discounts", "expand", "invoice", "metadata", "period", "price_data", "pricing", "quantity",
    "quantity_decimal", "subscription", "tax_behavior", "tax_code", "tax_rates",
    "unit_amount_decimal",
}
REFUND_CREATE = {
    "amount", "charge", "currency", "customer", "expand", "instructions_email", "metadata",
    "origin", "payment_intent", "reason", "refund_application_fee", "reverse_transfer",
}
CHARGE_CREATE = {
    "amount", "application_fee", "application_fee_amount", "capture", "currency", "customer",
    "description", "destination", "expand", "metadata", "on_behalf_of", "radar_options",
    "receipt_email", "shipping", "source", "statement_descriptor",
    "statement_descriptor_suffix", "transfer_data", "transfer_group",
}
CHARGE_UPDATE = {"customer", "description", "expand", "fraud_details", "metadata",
                 "receipt_email", "shipping", "transfer_group"}
CHARGE_CAPTURE = {"amount", "application_fee", "application_fee_amount", "expand",
                  "receipt_email", "statement_descriptor", "statement_descriptor_suffix",
                  "transfer_data", "transfer_group"}
PI_UPDATE = {
    "allowed_payment_method_types", "amount", "amount_details", "application_fee_amount",
    "capture_method", "currency", "customer", "customer_account", "description",
    "excluded_payment_method_types", "expand", "hooks", "metadata", "payment_details",
    "payment_method", "payment_method_configuration", "payment_method_data",
    "payment_method_options", "receipt_email", "setup_future_usage", "shipping",
    "statement_descriptor", "statement_descriptor_suffix", "transfer_data", "transfer_group",
}
PI_CREATE = PI_UPDATE | {
    "automatic_payment_methods", "confirm", "confirmation_method", "confirmation_token",
    "error_on_requires_action", "mandate", "mandate_data", "off_session", "on_behalf_of",
    "payment_method_types", "radar_options", "return_url", "use_stripe_sdk",
}
PI_CONFIRM = {
    "allowed_payment_method_types", "amount_details", "amount_to_confirm", "capture_method",
    "confirmation_token", "error_on_requires_action", "excluded_payment_method_types",
    "expand", "hooks", "mandate", "mandate_data", "off_session", "payment_details",
    "payment_method", "payment_method_data", "payment_method_options", "radar_options",
    "receipt_email", "return_url", "setup_future_usage", "shipping", "use_stripe_sdk",
}
PI_CAPTURE = {"amount_details", "amount_to_capture", "application_fee_amount", "expand",
              "final_capture", "hooks", "metadata", "payment_details", "statement_descriptor",
              "statement_descriptor_suffix", "transfer_data"}
# Fields a succeeded/canceled PaymentIntent still lets you change.
PI_ALWAYS_EDITABLE = {"description", "metadata", "receipt_email", "shipping", "expand",
                      "statement_descriptor", "statement_descriptor_suffix", "transfer_group"}
# Parameters as the shipped description documents them (tests/fakes/test_fake_stripe.py checks).
PRODUCT_CREATE = {
    "active", "default_price_data", "description", "expand", "features", "id", "images",
    "metadata", "name", "package_dimensions", "shippable", "statement_descriptor", "tax_code",
    "unit_label", "url",
}
PRODUCT_UPDATE = (PRODUCT_CREATE - {"default_price_data", "id"}) | {"default_price"}
PRICE_CREATE = {
    "active", "billing_scheme", "currency", "currency_options", "custom_unit_amount", "expand",
    "lookup_key", "metadata", "nickname", "product", "product_data", "recurring",
    "tax_behavior", "tiers", "tiers_mode", "transfer_lookup_key", "transform_quantity",
    "unit_amount", "unit_amount_decimal",
}
PRICE_UPDATE = {"active", "currency_options", "expand", "lookup_key", "metadata", "nickname",
                "tax_behavior", "transfer_lookup_key"}
SUBSCRIPTION_UPDATE = {
    "add_invoice_items", "application_fee_percent", "automatic_tax", "billing_cycle_anchor",
    "billing_thresholds", "cancel_at", "cancel_at_period_end", "cancellation_details",
    "collection_method", "coupon", "days_until_due", "default_payment_method",
    "default_source", "default_tax_rates", "description", "expand", "items", "metadata",
    "off_session", "on_behalf_of", "pause_collection", "payment_behavior", "payment_settings",
    "pending_invoice_item_interval", "promotion_code", "proration_behavior", "proration_date",
    "transfer_data", "trial_end", "trial_from_plan", "trial_settings",
}
SUBSCRIPTION_CREATE = (SUBSCRIPTION_UPDATE - {
    "cancellation_details", "pause_collection", "proration_date"}) | {
    "backdate_start_date", "currency", "customer", "trial_period_days"}
SUBSCRIPTION_CANCEL = {"cancellation_details", "expand", "invoice_now", "prorate"}
# What a canceled subscription still lets you change
SUBSCRIPTION_CANCELED_EDITABLE = {"cancellation_details", "metadata", "expand"}
CANCELLATION_FEEDBACK = {"customer_service", "low_quality", "missing_features", "other",
                         "switched_service", "too_complex", "too_expensive", "unused"}
PRORATION_BEHAVIORS = {"always_invoice", "create_prorations", "none"}
INTERVAL_SECONDS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}
NOT_UNSETTABLE = {"amount", "currency", "collection_method", "auto_advance", "customer",
                  "capture_method", "charge", "payment_intent"}


class StripeError(Exception):
    """An error answer; `replayable` errors are stored under their Idempotency-Key."""

    def __init__(self, status: int, error: dict[str, Any], *, replayable: bool = False,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error.get("message"))
        self.status = status
        self.error = error
        self.replayable = replayable
        self.headers = headers or {}


def _invalid(message: str, param: str | None = None, code: str | None = None, *,
             replayable: bool = False, status: int = 400) -> StripeError:
    error: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
    return StripeError(status, error, replayable=replayable)


def _state(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    """A request that was valid but the object's state forbids: it ran, so it is replayable."""
    return _invalid(message, param, code, replayable=True)


def _mask(key: str) -> str:
    if len(key) <= 12:
        return key
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


# ---------------------------------------------------------------- form decoding (Rack-style)

_KEY = re.compile(r"\A[\[\]]*([^\[\]]+)\]*")
_ARRAY_CHILD = re.compile(r"\A\[\]\[([^\[\]]+)\]\Z")
_ARRAY_NESTED = re.compile(r"\A\[\](.+)\Z")


def _conflict(name: str) -> StripeError:
    return _invalid(f"Invalid array or hash for parameter: {name}", name)


def _has_key(target: dict[str, Any], key: str) -> bool:
    parts = [p for p in re.split(r"[\[\]]+", key) if p]
    node: Any = target
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _normalize(params: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    match = _KEY.match(name)
    if not match:
        return params
    key, after = match.group(1), name[match.end():]
    if after == "":
        params[key] = value
    elif after == "[":
        params[name] = value
    elif after == "[]":
        items = params.setdefault(key, [])
        if not isinstance(items, list):
            raise _conflict(key)
        items.append(value)
    elif child := (_ARRAY_CHILD.match(after) or _ARRAY_NESTED.match(after)):
        child_key = child.group(1)
        items = params.setdefault(key, [])
        if not isinstance(items, list):
            raise _conflict(key)
        if items and isinstance(items[-1], dict) and not _has_key(items[-1], child_key):
            _normalize(items[-1], child_key, value)
        else:
            items.append(_normalize({}, child_key, value))
    else:
        sub = params.setdefault(key, {})
        if not isinstance(sub, dict):
            raise _conflict(key)
        _normalize(sub, after, value)
    return params


def _arrays(value: Any, key: str = "") -> Any:
    """Stripe reads a hash whose keys are all integers (`items[0][price]`) as an array."""
    if isinstance(value, list):
        return [_arrays(v) for v in value]
    if not isinstance(value, dict) or key == "metadata":
        return value
    converted = {k: _arrays(v, k) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def parse_form(raw: str) -> Params:
    """Decode a Stripe form body or query string into nested dicts and lists."""
    params: Params = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        _normalize(params, name, value)
    return _arrays(params)


def _coerce(value: Any, path: str = "", key: str = "") -> Any:
    """Turn form strings into integers and booleans where the API schema says so."""
    if isinstance(value, dict):
        if key == "metadata":
            return value
        return {k: _coerce(v, f"{path}[{k}]" if path else k, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_coerce(v, f"{path}[{i}]", key) for i, v in enumerate(value)]
    if not isinstance(value, str) or value == "":
        return value
    if key in INT_FIELDS:
        if not re.fullmatch(r"-?\d+", value):
            raise _invalid(f"Invalid integer: {value}", path, "parameter_invalid_integer")
        return int(value)
    if key in BOOL_FIELDS:
        if value not in ("true", "false"):
            raise _invalid(f"Invalid boolean: {value}", path)
        return value == "true"
    return value


def _blank_to_none(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, dict):
        return {k: _blank_to_none(v) for k, v in value.items()}
    return value


def _empty_error(param: str) -> StripeError:
    return _invalid(
        f"You passed an empty string for '{param}'. We assume empty values are an attempt to "
        f"unset a parameter; however '{param}' cannot be unset. You should remove '{param}' "
        "from your request or supply a non-empty value.", param, "parameter_invalid_empty")


def _check(params: Params, allowed: set[str], *, creating: bool = False) -> None:
    unknown = [name for name in params if name not in allowed]
    if len(unknown) == 1:
        raise _invalid(f"Received unknown parameter: {unknown[0]}", unknown[0],
                       "parameter_unknown")
    if unknown:
        raise _invalid(f"Received unknown parameters: {', '.join(unknown)}", unknown[0],
                       "parameter_unknown")
    for name, value in params.items():
        if value == "" and name != "metadata" and (creating or name in NOT_UNSETTABLE):
            raise _empty_error(name)
    metadata = params.get("metadata")
    if metadata is not None and metadata != "":
        if not isinstance(metadata, dict):
            raise _invalid("Invalid hash", "metadata")
        for k, v in metadata.items():
            if not isinstance(v, str):
                raise _invalid(f"Invalid value for metadata[{k}]: must be a string",
                               f"metadata[{k}]")


def _require(params: Params, *names: str) -> None:
    for name in names:
        if params.get(name) in (None, ""):
            raise _invalid(f"Missing required param: {name}.", name, "parameter_missing")


def _merge_metadata(target: dict[str, Any], metadata: Any) -> None:
    """Metadata merges key by key; an empty value unsets a key, `metadata=` unsets all."""
    if metadata == "":
        target["metadata"] = {}
        return
    for k, v in metadata.items():
        if v == "":
            target["metadata"].pop(k, None)
        else:
            target["metadata"][k] = v


def _list(data: list[dict[str, Any]], url: str, has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


# ---------------------------------------------------------------------------------- the fake


class FakeStripe:
    """In-memory Stripe: `objects` holds every record keyed by id (`cus_`, `in_`, `ii_`, ...)."""

    def __init__(self, api_key: str = "sk_test_fake_123", host: str = "api.stripe.com",
                 api_version: str = "2026-10-28.endive",
                 account_id: str = "acct_Fake0000000001") -> None:
        self.api_key = api_key
        self.host = host
        self.api_version = api_version
        self.account_id = account_id
        self.log = RequestLog()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self.objects: dict[str, dict[str, Any]] = {}
        # (api key, Stripe-Account, Idempotency-Key) -> stored first answer
        self.idempotency: dict[tuple[str, str, str], dict[str, Any]] = {}
        # (invoice id, recipient email) for every /send
        self.sent_invoices: list[tuple[str, str | None]] = []
        self.app = Starlette(routes=[
            self._route("/v1/customers", GET=self._list_of("customer", {"email"}),
                        POST=self._create_customer),
            self._route("/v1/customers/{id}", GET=self._retrieve_customer,
                        POST=self._update_customer, DELETE=self._delete_customer),
            self._route("/v1/invoices", GET=self._list_of("invoice", {"customer", "status",
                        "collection_method", "subscription", "due_date"}),
                        POST=self._create_invoice),
            self._route("/v1/invoices/create_preview", POST=self._preview_invoice),
            self._route("/v1/invoices/{id}", GET=self._retrieve("invoice"),
                        POST=self._update_invoice, DELETE=self._delete_invoice),
            self._route("/v1/invoices/{id}/lines", GET=self._invoice_lines),
            self._route("/v1/invoices/{id}/finalize", POST=self._finalize_invoice),
            self._route("/v1/invoices/{id}/pay", POST=self._pay_invoice),
            self._route("/v1/invoices/{id}/send", POST=self._send_invoice),
            self._route("/v1/invoices/{id}/void", POST=self._void_invoice),
            self._route("/v1/invoices/{id}/mark_uncollectible",
                        POST=self._mark_uncollectible),
            self._route("/v1/invoiceitems", GET=self._list_of("invoiceitem", {
                        "customer", "invoice", "pending"}), POST=self._create_invoiceitem),
            self._route("/v1/invoiceitems/{id}", GET=self._retrieve("invoiceitem")),
            self._route("/v1/refunds", GET=self._list_of("refund", {"charge", "payment_intent"}),
                        POST=self._create_refund),
            self._route("/v1/refunds/{id}", GET=self._retrieve("refund"),
                        POST=self._update_refund),
            self._route("/v1/charges", GET=self._list_of("charge", {
                        "customer", "payment_intent", "transfer_group"}),
                        POST=self._create_charge),
            self._route("/v1/charges/{id}", GET=self._retrieve("charge"),
                        POST=self._update_charge),
            self._route("/v1/charges/{id}/capture", POST=self._capture_charge),
            self._route("/v1/payment_intents", GET=self._list_of("payment_intent", {
                        "customer"}), POST=self._create_payment_intent),
            self._route("/v1/payment_intents/{id}", GET=self._retrieve("payment_intent"),
                        POST=self._update_payment_intent),
            self._route("/v1/payment_intents/{id}/confirm", POST=self._confirm_payment_intent),
            self._route("/v1/payment_intents/{id}/cancel", POST=self._cancel_payment_intent),
            self._route("/v1/payment_intents/{id}/capture", POST=self._capture_payment_intent),
            self._route("/v1/products", GET=self._list_of("product", {"active"}),
                        POST=self._create_product),
            self._route("/v1/products/{id}", GET=self._retrieve("product"),
                        POST=self._update_product),
            self._route("/v1/prices", GET=self._list_of("price", {"active", "product"}),
                        POST=self._create_price),
            self._route("/v1/prices/{id}", GET=self._retrieve("price"),
                        POST=self._update_price),
            self._route("/v1/subscriptions", GET=self._list_of("subscription", {
                        "customer", "status"}), POST=self._create_subscription),
            self._route("/v1/subscriptions/{id}", GET=self._retrieve("subscription"),
                        POST=self._update_subscription, DELETE=self._cancel_subscription),
            Route("/{path:path}", self.unknown,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    # ------------------------------------------------------------------ seeding / inspection

    def seed_customer(self, **fields: Any) -> str:
        """A customer with realistic defaults and a default card, so its invoices can be paid."""
        with self._lock:
            customer = self._new_customer({
                "name": "Jenny Rosen", "email": "jenny.rosen@example.com"})
            customer["invoice_settings"]["default_payment_method"] = "pm_card_visa"
            customer.update(copy.deepcopy(fields))
            return customer["id"]

    def seed_invoice(self, customer: str, amount: int | None = 2000, status: str = "draft",
                     **fields: Any) -> str:
        """A draft with one `amount` line, moved to `status` through the real transitions."""
        with self._lock:
            invoice = self._new_invoice({"customer": customer})
            if amount:
                self._new_invoiceitem({"customer": customer, "amount": amount,
                                       "currency": invoice["currency"],
                                       "description": "Consulting", "invoice": invoice["id"]})
            if status != "draft":
                self._finalize(invoice)
            if status == "paid" and invoice["status"] != "paid":
                self._mark_paid(invoice)
            elif status == "void":
                self._set_status(invoice, "void", "voided_at")
            elif status == "uncollectible":
                self._set_status(invoice, "uncollectible", "marked_uncollectible_at")
            invoice.update(copy.deepcopy(fields))
            return invoice["id"]

    def seed_charge(self, amount: int = 2000, currency: str = "usd", customer: str | None = None,
                    **fields: Any) -> str:
        with self._lock:
            charge = self._new_charge({"amount": amount, "currency": currency,
                                       "customer": customer, "source": "tok_visa"})
            charge.update(copy.deepcopy(fields))
            return charge["id"]

    def seed_payment_intent(self, amount: int = 2000, currency: str = "usd",
                            status: str = "requires_payment_method", **fields: Any) -> str:
        """A PaymentIntent driven to `status` (succeeded / requires_capture create a charge)."""
        with self._lock:
            params: Params = {"amount": amount, "currency": currency}
            if status == "requires_capture":
                params["capture_method"] = "manual"
            pi = self._new_payment_intent(params)
            if status in ("requires_confirmation", "succeeded", "requires_capture"):
                pi["payment_method"] = "pm_card_visa"
                pi["status"] = "requires_confirmation"
            if status in ("succeeded", "requires_capture"):
                self._confirm(pi, {})
            elif status == "canceled":
                pi.update(status="canceled", canceled_at=int(time.time()))
            elif status not in ("requires_payment_method", "requires_confirmation"):
                pi["status"] = status
            pi.update(copy.deepcopy(fields))
            return pi["id"]

    def seed_refund(self, charge: str, amount: int | None = None, **fields: Any) -> str:
        with self._lock:
            refund = self._refund(self._get("charge", charge, "charge"), amount, {})
            refund.update(copy.deepcopy(fields))
            return refund["id"]

    def seed_product(self, name: str = "Gold Plan", **fields: Any) -> str:
        with self._lock:
            product = self._new_product({"name": name})
            product.update(copy.deepcopy(fields))
            return product["id"]

    def seed_price(self, product: str | None = None, unit_amount: int = 2000,
                   currency: str = "usd", interval: str | None = "month", **fields: Any) -> str:
        """A price of `product` (a new one when not given), recurring unless `interval=None`."""
        product = product or self.seed_product()
        with self._lock:
            params: Params = {"product": product, "unit_amount": unit_amount,
                              "currency": currency}
            if interval:
                params["recurring"] = {"interval": interval}
            price = self._new_price(params)
            price.update(copy.deepcopy(fields))
            return price["id"]

    def seed_subscription(self, customer: str, prices: list[str] | None = None,
                          quantity: int = 1, **fields: Any) -> str:
        """An active subscription of `customer` to `prices` (a new monthly price if not given)."""
        prices = prices or [self.seed_price()]
        with self._lock:
            subscription = self._new_subscription({
                "customer": customer, "items": [{"price": p, "quantity": quantity}
                                                for p in prices]})
            subscription.update(copy.deepcopy(fields))
            return subscription["id"]

    def get(self, object_id: str) -> dict[str, Any]:
        """One stored object as the API answers it."""
        with self._lock:
            return copy.deepcopy(self._present(self.objects[object_id]))

    def of_type(self, object_name: str) -> list[dict[str, Any]]:
        """Every stored object of one kind ("customer", "invoice", ...), oldest first."""
        with self._lock:
            return [copy.deepcopy(self._present(o)) for o in self.objects.values()
                    if o.get("object") == object_name]

    # ---------------------------------------------------------------------------- plumbing

    def _id(self, prefix: str) -> str:
        return f"{prefix}_Fake{next(self._ids):010d}"

    def _route(self, path: str, **handlers: Handler) -> Route:
        async def endpoint(request: Request) -> Response:
            return await self._serve(request, handlers)
        return Route(path, endpoint, methods=list(handlers))

    async def _record(self, request: Request) -> bytes:
        body = await request.body()
        self.log.add(Seen(request.method, request.url.path, request.url.query,
                          dict(request.headers), body))
        return body

    def _api_key_of(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credentials.strip()).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(401, {"type": "invalid_request_error", "message": NO_KEY_MESSAGE},
                              headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        if key != self.api_key:
            raise StripeError(401, {"type": "invalid_request_error",
                                    "message": f"Invalid API Key provided: {_mask(key)}"},
                              headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        return key

    def _headers(self, request: Request, request_id: str) -> dict[str, str]:
        headers = {"Request-Id": request_id,
                   "Stripe-Version": request.headers.get("stripe-version", self.api_version)}
        if request.method == "POST" and "idempotency-key" in request.headers:
            headers["Idempotency-Key"] = request.headers["idempotency-key"]
        if "stripe-account" in request.headers:
            headers["Stripe-Account"] = request.headers["stripe-account"]
        return headers

    def _error_body(self, error: StripeError, request_id: str) -> dict[str, Any]:
        body = dict(error.error)
        if body.get("code"):
            body["doc_url"] = ("https://stripe.com/docs/error-codes/"
                               + body["code"].replace("_", "-"))
        if error.status != 401:
            body["request_log_url"] = (f"https://dashboard.stripe.com/test/logs/{request_id}"
                                       f"?t={int(time.time())}")
        return {"error": body}

    async def _serve(self, request: Request, handlers: dict[str, Handler]) -> Response:
        body = await self._record(request)
        request_id = f"req_Fake{next(self._request_ids):010d}"
        headers = self._headers(request, request_id)
        try:
            api_key = self._api_key_of(request)
            handler = handlers.get(request.method)
            if handler is None:
                raise self._unrecognized(request)
            content_type = request.headers.get("content-type", "")
            if (request.method == "POST" and body
                    and not content_type.startswith("application/x-www-form-urlencoded")):
                raise _invalid(FORM_ONLY_MESSAGE)
            raw = body.decode("utf-8", "replace") if request.method == "POST" else \
                request.url.query
            params = _coerce(parse_form(raw))
            key = request.headers.get("idempotency-key") if request.method == "POST" else None
            with self._lock:
                if key:
                    slot = (api_key, request.headers.get("stripe-account", ""), key)
                    stored = self.idempotency.get(slot)
                    if stored is not None:
                        return self._replay(stored, request, key, params, headers)
                try:
                    result = handler(params, dict(request.path_params))
                    answer = (200, self._expanded(self._present(result),
                                                  params.get("expand")))
                except StripeError as error:
                    if not (key and error.replayable):
                        raise
                    answer = (error.status, self._error_body(error, request_id))
                if key:
                    self.idempotency[slot] = {"path": request.url.path, "params": params,
                                              "status": answer[0], "body": answer[1],
                                              "request_id": request_id}
            return JSONResponse(answer[1], status_code=answer[0], headers=headers)
        except StripeError as error:
            return JSONResponse(self._error_body(error, request_id), status_code=error.status,
                                headers={**headers, **error.headers})

    def _replay(self, stored: dict[str, Any], request: Request, key: str, params: Params,
                headers: dict[str, str]) -> Response:
        if stored["path"] != request.url.path:
            raise StripeError(400, {"type": "idempotency_error", "message": (
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{request.url.path}' vs '{stored['path']}'). Try using a key "
                f"other than '{key}' if you meant to execute a different request.")})
        if stored["params"] != params:
            raise StripeError(400, {"type": "idempotency_error", "message": (
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.")})
        return JSONResponse(copy.deepcopy(stored["body"]), status_code=stored["status"],
                            headers={**headers, "Idempotent-Replayed": "true",
                                     "Original-Request": stored["request_id"]})

    @staticmethod
    def _unrecognized(request: Request) -> StripeError:
        return _invalid(f"Unrecognized request URL ({request.method}: {request.url.path}). "
                        "Please see https://stripe.com/docs or we can help at "
                        "https://support.stripe.com/.", status=404)

    async def unknown(self, request: Request) -> Response:
        return await self._serve(request, {})

    def _present(self, result: dict[str, Any]) -> dict[str, Any]:
        """Stored objects as answered: a subscription embeds its items' prices."""
        if result.get("object") == "list":
            return {**result, "data": [self._present(o) for o in result["data"]]}
        if result.get("object") == "subscription" and "_items" in result:
            return self._rendered_subscription(result)
        return result

    def _expanded(self, result: dict[str, Any], expand: Any) -> dict[str, Any]:
        result = copy.deepcopy(result)
        if expand in (None, ""):
            return result
        paths = expand if isinstance(expand, list) else [expand]
        for path in paths:
            if not isinstance(path, str):
                raise _invalid("Invalid array", "expand")
            self._expand_path(result, path.split("."), path)
        return result

    def _expand_path(self, node: Any, parts: list[str], full: str) -> None:
        if isinstance(node, list):
            for item in node:
                self._expand_path(item, parts, full)
            return
        head, rest = parts[0], parts[1:]
        if not isinstance(node, dict) or head not in node:
            raise _invalid(f"This property cannot be expanded ({head}).", "expand")
        value = node[head]
        if rest:
            self._expand_path(value, rest, full)
            return
        if value is None or isinstance(value, dict):
            return
        if not isinstance(value, str) or value not in self.objects:
            raise _invalid(f"This property cannot be expanded ({head}).", "expand")
        node[head] = copy.deepcopy(self.objects[value])

    def _get(self, object_name: str, ident: str, param: str = "id", *,
             allow_deleted: bool = False) -> dict[str, Any]:
        found = self.objects.get(ident)
        if (found is None or found.get("object") != object_name
                or (found.get("deleted") and not allow_deleted)):
            raise _invalid(f"No such {object_name}: '{ident}'", param, "resource_missing",
                           status=404 if param == "id" else 400)
        return found

    def _retrieve(self, object_name: str) -> Handler:
        def handler(params: Params, path: dict[str, str]) -> dict[str, Any]:
            _check(params, {"expand"})
            return self._get(object_name, path["id"])
        return handler

    def _list_of(self, object_name: str, filters: set[str]) -> Handler:
        def handler(params: Params, path: dict[str, str]) -> dict[str, Any]:
            _check(params, LIST | filters)
            limit = params.get("limit", 10)
            if not isinstance(limit, int) or not 1 <= limit <= 100:
                raise _invalid("This value must be between 1 and 100 (it currently is "
                               f"{limit}).", "limit")
            found = [o for o in reversed(self.objects.values())
                     if o.get("object") == object_name and not o.get("deleted")]
            for name in filters - {"pending"}:
                if name in params:
                    found = [o for o in found if o.get(name) == params[name]]
            if "pending" in params:
                found = [o for o in found if (o.get("invoice") is None) == params["pending"]]
            if after := params.get("starting_after"):
                self._get(object_name, after, "starting_after")
                ids = [o["id"] for o in found]
                found = found[ids.index(after) + 1:] if after in ids else []
            url = "/v1/" + {"invoiceitem": "invoiceitems"}.get(object_name, object_name + "s")
            return _list(found[:limit], url, len(found) > limit)
        return handler

    # ---------------------------------------------------------------------------- customers

    def _new_customer(self, params: Params) -> dict[str, Any]:
        ident = self._id("cus")
        customer: dict[str, Any] = {
            "id": ident, "object": "customer", "address": None, "balance": 0,
            "business_name": None, "created": int(time.time()), "currency": None,
            "customer_account": None, "default_source": None, "delinquent": False,
            "description": None, "discount": None, "email": None, "individual_name": None,
            "invoice_prefix": ident[-8:].upper(),
            "invoice_settings": {"custom_fields": None, "default_payment_method": None,
                                 "footer": None, "rendering_options": None},
            "livemode": False, "metadata": {}, "name": None, "next_invoice_sequence": 1,
            "phone": None, "preferred_locales": [], "shipping": None, "tax_exempt": "none",
            "test_clock": None,
        }
        self._apply_customer(customer, params)
        self.objects[ident] = customer
        return customer

    @staticmethod
    def _apply_customer(customer: dict[str, Any], params: Params) -> None:
        for name, value in params.items():
            if name in ("expand", "source", "payment_method", "tax", "tax_id_data", "validate",
                        "cash_balance"):
                continue
            if name == "metadata":
                _merge_metadata(customer, value)
            elif name == "invoice_settings" and isinstance(value, dict):
                customer["invoice_settings"].update(_blank_to_none(value))
            else:
                customer[name] = _blank_to_none(value)
        if params.get("source"):
            customer["default_source"] = "card_" + customer["id"][4:]

    def _create_customer(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, CUSTOMER_CREATE, creating=True)
        return self._new_customer(params)

    def _retrieve_customer(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"expand"})
        return self._get("customer", path["id"], allow_deleted=True)

    def _update_customer(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, CUSTOMER_UPDATE)
        customer = self._get("customer", path["id"])
        self._apply_customer(customer, params)
        return customer

    def _delete_customer(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, set())
        customer = self._get("customer", path["id"])
        stub = {"id": customer["id"], "object": "customer", "deleted": True}
        self.objects[customer["id"]] = stub
        return stub

    # ----------------------------------------------------------------------------- invoices

    def _new_invoice(self, params: Params, *, ident: str | None = None) -> dict[str, Any]:
        customer = self._get("customer", params["customer"], "customer")
        now = int(time.time())
        ident = ident or self._id("in")
        invoice: dict[str, Any] = {
            "id": ident, "object": "invoice", "account_country": "US",
            "account_name": "Fake Stripe Account", "account_tax_ids": None, "amount_due": 0,
            "amount_overpaid": 0, "amount_paid": 0, "amount_remaining": 0, "amount_shipping": 0,
            "application": None, "attempt_count": 0, "attempted": False, "auto_advance": False,
            "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None,
                              "provider": None, "status": None},
            "automatically_finalizes_at": None, "billing_reason": "manual",
            "collection_method": "charge_automatically", "confirmation_secret": None,
            "created": now, "currency": customer.get("currency") or "usd",
            "custom_fields": None, "customer": customer["id"], "customer_account": None,
            "customer_address": customer.get("address"),
            "customer_email": customer.get("email"), "customer_name": customer.get("name"),
            "customer_phone": customer.get("phone"),
            "customer_shipping": customer.get("shipping"),
            "customer_tax_exempt": customer.get("tax_exempt", "none"), "customer_tax_ids": [],
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discounts": [], "due_date": None, "effective_at": None,
            "ending_balance": None, "footer": None, "from_invoice": None,
            "hosted_invoice_url": None, "invoice_pdf": None,
            "issuer": {"type": "self"}, "last_finalization_error": None,
            "latest_revision": None,
            "lines": _list([], f"/v1/invoices/{ident}/lines"),
            "livemode": False, "metadata": {}, "next_payment_attempt": None, "number": None,
            "on_behalf_of": None, "parent": None,
            "payment_settings": {"default_mandate": None, "payment_method_options": None,
                                 "payment_method_types": None},
            "period_end": now, "period_start": now, "post_payment_credit_notes_amount": 0,
            "pre_payment_credit_notes_amount": 0, "receipt_number": None, "rendering": None,
            "shipping_cost": None, "shipping_details": None, "starting_balance": 0,
            "statement_descriptor": None, "status": "draft",
            "status_transitions": {"finalized_at": None, "marked_uncollectible_at": None,
                                   "paid_at": None, "voided_at": None},
            "subtotal": 0, "subtotal_excluding_tax": 0, "test_clock": None, "total": 0,
            "total_discount_amounts": [], "total_excluding_tax": 0,
            "total_pretax_credit_amounts": [], "total_taxes": [],
            "webhooks_delivered_at": None,
        }
        self._apply_invoice(invoice, {k: v for k, v in params.items() if k not in (
            "customer", "pending_invoice_items_behavior", "from_invoice", "subscription")})
        if invoice["collection_method"] == "send_invoice" and invoice["due_date"] is None:
            days = params.get("days_until_due")
            if days is None:
                raise _invalid("Missing required param: days_until_due. Invoices with "
                               "`collection_method=send_invoice` need `days_until_due` or "
                               "`due_date`.", "days_until_due", "parameter_missing")
        if not ident.startswith("upcoming_"):
            self.objects[ident] = invoice
            if params.get("pending_invoice_items_behavior") == "include":
                for item in list(self.objects.values()):
                    if (item.get("object") == "invoiceitem" and item["invoice"] is None
                            and item["customer"] == customer["id"]):
                        item["invoice"] = ident
        self._recalculate(invoice)
        return invoice

    @staticmethod
    def _apply_invoice(invoice: dict[str, Any], params: Params) -> None:
        for name, value in params.items():
            if name in ("expand", "days_until_due"):
                continue
            if name == "metadata":
                _merge_metadata(invoice, value)
            elif name == "currency":
                invoice[name] = str(value).lower()
            else:
                invoice[name] = _blank_to_none(value)
        if params.get("days_until_due") is not None:
            invoice["due_date"] = invoice["created"] + 86400 * int(params["days_until_due"])
        if invoice["collection_method"] not in ("charge_automatically", "send_invoice"):
            raise _invalid("Invalid collection_method: must be one of charge_automatically or "
                           "send_invoice", "collection_method")

    def _line(self, invoice: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "il_" + item["id"][3:], "object": "line_item", "amount": item["amount"],
            "currency": item["currency"], "description": item["description"],
            "discount_amounts": [], "discountable": item["discountable"], "discounts": [],
            "invoice": invoice["id"], "livemode": False, "metadata": dict(item["metadata"]),
            "parent": {"type": "invoice_item_details", "subscription_item_details": None,
                       "invoice_item_details": {"invoice_item": item["id"], "proration": False,
                                                "proration_details": {"credited_items": None},
                                                "subscription": None}},
            "period": dict(item["period"]), "pretax_credit_amounts": [],
            "pricing": item["pricing"], "quantity": item["quantity"],
            "subtotal": item["amount"], "taxes": [],
        }

    def _recalculate(self, invoice: dict[str, Any], extra: list[dict[str, Any]] | None = None,
                     ) -> None:
        """Totals follow the attached invoice items while the invoice is a draft."""
        if invoice["status"] != "draft":
            return
        items = [o for o in self.objects.values()
                 if o.get("object") == "invoiceitem" and o["invoice"] == invoice["id"]]
        lines = [self._line(invoice, item) for item in [*items, *(extra or [])]]
        total = sum(line["amount"] for line in lines)
        invoice["lines"] = _list(lines, f"/v1/invoices/{invoice['id']}/lines")
        invoice["lines"]["total_count"] = len(lines)
        invoice.update(subtotal=total, subtotal_excluding_tax=total, total=total,
                       total_excluding_tax=total, amount_due=max(total, 0),
                       amount_remaining=max(total, 0) - invoice["amount_paid"])

    def _set_status(self, invoice: dict[str, Any], status: str, stamp: str) -> None:
        invoice["status"] = status
        invoice["status_transitions"][stamp] = int(time.time())

    def _finalize(self, invoice: dict[str, Any]) -> None:
        customer = self.objects.get(invoice["customer"], {})
        sequence = customer.get("next_invoice_sequence", 1)
        if customer:
            customer["next_invoice_sequence"] = sequence + 1
        token = "test_" + invoice["id"][3:]
        invoice.update(
            number=invoice["number"] or f"{customer.get('invoice_prefix', 'FAKE')}-{sequence:04d}",
            hosted_invoice_url=f"https://invoice.stripe.com/i/{self.account_id}/{token}",
            invoice_pdf=f"https://pay.stripe.com/invoice/{self.account_id}/{token}/pdf",
            effective_at=invoice["effective_at"] or int(time.time()),
            ending_balance=0, customer_email=customer.get("email"),
            customer_name=customer.get("name"))
        self._set_status(invoice, "open", "finalized_at")
        if invoice["amount_due"] == 0:
            self._mark_paid(invoice)  # Stripe settles zero-amount invoices on finalization

    def _mark_paid(self, invoice: dict[str, Any]) -> None:
        invoice.update(amount_paid=invoice["amount_due"], amount_remaining=0, attempted=True,
                       attempt_count=invoice["attempt_count"] + (1 if invoice["amount_due"]
                                                                 else 0),
                       next_payment_attempt=None)
        self._set_status(invoice, "paid", "paid_at")

    def _create_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, INVOICE_CREATE, creating=True)
        _require(params, "customer")
        if params.get("pending_invoice_items_behavior") not in (None, "include", "exclude"):
            raise _invalid("Invalid pending_invoice_items_behavior: must be one of exclude or "
                           "include", "pending_invoice_items_behavior")
        return self._new_invoice(params)

    def _update_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, INVOICE_UPDATE)
        invoice = self._get("invoice", path["id"])
        if invoice["status"] != "draft":
            editable = (INVOICE_FINALIZED_EDITABLE if invoice["status"] in
                        ("open", "uncollectible") else {"metadata", "expand", "description"})
            for name in params:
                if name not in editable:
                    raise _state(f"You can only update `{name}` on a draft invoice; this "
                                 f"invoice is {invoice['status']}.", name,
                                 "invoice_not_editable")
        self._apply_invoice(invoice, params)
        return invoice

    def _delete_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, set())
        invoice = self._get("invoice", path["id"])
        if invoice["status"] != "draft":
            raise _state("You can only delete draft invoices. To cancel an open invoice, void "
                         "it instead.", "id", "invoice_not_editable")
        for ident, item in list(self.objects.items()):
            if item.get("object") == "invoiceitem" and item["invoice"] == invoice["id"]:
                del self.objects[ident]
        del self.objects[invoice["id"]]
        return {"id": invoice["id"], "object": "invoice", "deleted": True}

    def _invoice_lines(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, LIST)
        return self._get("invoice", path["id"])["lines"]

    def _finalize_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"auto_advance", "expand"})
        invoice = self._get("invoice", path["id"])
        if invoice["status"] != "draft":
            raise _state("This invoice is already finalized, you can't re-finalize a "
                         "non-draft invoice.", None, "invoice_not_editable")
        if "auto_advance" in params:
            invoice["auto_advance"] = params["auto_advance"]
        self._finalize(invoice)
        return invoice

    def _pay_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, INVOICE_PAY)
        invoice = self._get("invoice", path["id"])
        if invoice["status"] == "paid":
            raise _state("Invoice is already paid", None, "invoice_already_paid")
        if invoice["status"] == "void":
            raise _state("This invoice can't be paid because it has been voided.", None,
                         "invoice_not_editable")
        customer = self.objects.get(invoice["customer"], {})
        can_charge = (params.get("paid_out_of_band") or params.get("payment_method")
                      or params.get("source") or invoice["default_payment_method"]
                      or invoice["default_source"] or customer.get("default_source")
                      or (customer.get("invoice_settings") or {}).get("default_payment_method"))
        if invoice["status"] == "draft" and invoice["amount_due"] == 0:
            self._finalize(invoice)  # settles as paid
            return invoice
        if not can_charge:
            raise _state("This customer has no attached payment source or default payment "
                         "method. Please consider adding a default payment method.")
        if invoice["status"] == "draft":
            self._finalize(invoice)
        if params.get("paid_out_of_band"):
            invoice["amount_paid_off_stripe"] = invoice["amount_due"]
        self._mark_paid(invoice)
        return invoice

    def _send_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"expand"})
        invoice = self._get("invoice", path["id"])
        if invoice["collection_method"] != "send_invoice":
            raise _state("You can only manually send an invoice if its collection method is "
                         "'send_invoice'.")
        if invoice["status"] != "open":
            raise _state(f"You can only send an open invoice; this invoice is "
                         f"{invoice['status']}.")
        self.sent_invoices.append((invoice["id"], invoice["customer_email"]))
        return invoice

    def _void_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"expand"})
        invoice = self._get("invoice", path["id"])
        if invoice["status"] not in ("open", "uncollectible"):
            raise _state(f"You can only void an open or uncollectible invoice; this invoice is "
                         f"{invoice['status']}.")
        self._set_status(invoice, "void", "voided_at")
        invoice["amount_remaining"] = 0
        return invoice

    def _mark_uncollectible(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"expand"})
        invoice = self._get("invoice", path["id"])
        if invoice["status"] != "open":
            raise _state(f"You can only mark an open invoice as uncollectible; this invoice is "
                         f"{invoice['status']}.")
        self._set_status(invoice, "uncollectible", "marked_uncollectible_at")
        return invoice

    def _preview_invoice(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        """A read: an unsaved invoice (id `upcoming_in_...`) for a customer's next charges."""
        _check(params, INVOICE_PREVIEW)
        _require(params, "customer")
        items = params.get("invoice_items") or []
        subscription_items = (params.get("subscription_details") or {}).get("items") or []
        if not isinstance(items, list) or not isinstance(subscription_items, list):
            raise _invalid("Invalid array", "invoice_items")
        ident = "upcoming_in_" + self._id("in")[3:]
        invoice = self._new_invoice({"customer": params["customer"],
                                     **({"currency": params["currency"]}
                                        if params.get("currency") else {})}, ident=ident)
        now = int(time.time())
        extra: list[dict[str, Any]] = []
        pending = [o for o in self.objects.values() if o.get("object") == "invoiceitem"
                   and o["invoice"] is None and o["customer"] == invoice["customer"]]
        for index, spec in enumerate([*items, *subscription_items]):
            price = spec.get("price_data") or {}
            quantity = int(spec.get("quantity") or 1)
            amount = spec.get("amount")
            if amount is None:
                amount = int(price.get("unit_amount") or 0) * quantity
            extra.append({"id": f"ii_preview{index}", "amount": int(amount),
                          "currency": spec.get("currency") or invoice["currency"],
                          "description": spec.get("description"), "discountable": True,
                          "metadata": spec.get("metadata") or {}, "pricing": None,
                          "period": {"start": now, "end": now}, "quantity": quantity})
        self._recalculate(invoice, [*pending, *extra])
        invoice["billing_reason"] = "upcoming"
        return invoice

    # ------------------------------------------------------------------------ invoice items

    def _new_invoiceitem(self, params: Params) -> dict[str, Any]:
        customer = self._get("customer", params["customer"], "customer")
        invoice = None
        if params.get("invoice"):
            invoice = self._get("invoice", params["invoice"], "invoice")
            if invoice["status"] != "draft":
                raise _state("You can only add invoice items to draft invoices.", "invoice",
                             "invoice_not_editable")
        quantity = params.get("quantity") or 1
        amount = params.get("amount")
        price = params.get("price_data") or {}
        if amount is None:
            if "unit_amount" not in price:
                raise _invalid("Missing required param: amount.", "amount", "parameter_missing")
            amount = int(price["unit_amount"]) * quantity
        now = int(time.time())
        item: dict[str, Any] = {
            "id": self._id("ii"), "object": "invoiceitem", "amount": amount,
            "currency": str(params.get("currency") or price.get("currency")
                            or (invoice or {}).get("currency") or "usd").lower(),
            "customer": customer["id"], "customer_account": None, "date": now,
            "description": params.get("description"),
            "discountable": params.get("discountable", True), "discounts": [],
            "invoice": invoice["id"] if invoice else None, "livemode": False, "metadata": {},
            "net_amount": amount, "parent": None,
            "period": params.get("period") or {"end": now, "start": now}, "pricing": None,
            "proration": False, "quantity": quantity, "tax_rates": [], "test_clock": None,
        }
        if params.get("metadata"):
            _merge_metadata(item, params["metadata"])
        self.objects[item["id"]] = item
        if invoice:
            self._recalculate(invoice)
        return item

    def _create_invoiceitem(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, INVOICEITEM_CREATE, creating=True)
        _require(params, "customer")
        if params.get("amount") is not None:
            _require(params, "currency")
        return self._new_invoiceitem(params)

    # ------------------------------------------------------------------------------ charges

    def _check_amount(self, params: Params) -> None:
        _require(params, "amount", "currency")
        currency = str(params["currency"]).lower()
        minimum, text = MIN_AMOUNT.get(currency, (1, "1"))
        if params["amount"] < minimum:
            raise _invalid(f"Amount must be at least {text}", "amount", "amount_too_small")

    def _new_charge(self, params: Params, payment_intent: str | None = None,
                    capture: bool = True) -> dict[str, Any]:
        ident = self._id("ch")
        amount = params["amount"]
        customer = params.get("customer")
        method = params.get("payment_method") or "card_" + ident[3:]
        charge: dict[str, Any] = {
            "id": ident, "object": "charge", "amount": amount,
            "amount_captured": amount if capture else 0, "amount_refunded": 0,
            "application": None, "application_fee": None, "application_fee_amount": None,
            "balance_transaction": "txn_" + ident[3:] if capture else None,
            "billing_details": {"address": {"city": None, "country": None, "line1": None,
                                            "line2": None, "postal_code": None, "state": None},
                                "email": None, "name": None, "phone": None},
            "calculated_statement_descriptor": "FAKE STRIPE", "captured": capture,
            "created": int(time.time()), "currency": str(params["currency"]).lower(),
            "customer": customer, "description": params.get("description"), "disputed": False,
            "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "fraud_details": {}, "livemode": False, "metadata": {}, "on_behalf_of": None,
            "outcome": {"advice_code": None, "network_advice_code": None,
                        "network_decline_code": None, "network_status": "approved_by_network",
                        "reason": None, "risk_level": "normal", "risk_score": 32,
                        "seller_message": "Payment complete.", "type": "authorized"},
            "paid": True, "payment_intent": payment_intent, "payment_method": method,
            "payment_method_details": {"card": {"brand": "visa", "country": "US",
                                                "exp_month": 12, "exp_year": 2034,
                                                "funding": "credit", "last4": "4242",
                                                "network": "visa"}, "type": "card"},
            "radar_options": {}, "receipt_email": params.get("receipt_email"),
            "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/payment/{ident}",
            "refunded": False, "review": None, "shipping": params.get("shipping"),
            "source_transfer": None, "statement_descriptor": params.get("statement_descriptor"),
            "statement_descriptor_suffix": None, "status": "succeeded", "transfer_data": None,
            "transfer_group": params.get("transfer_group"),
        }
        if params.get("metadata"):
            _merge_metadata(charge, params["metadata"])
        self.objects[ident] = charge
        return charge

    @staticmethod
    def _declined(payment_intent: dict[str, Any] | None = None) -> StripeError:
        error: dict[str, Any] = {"type": "card_error", "code": "card_declined",
                                 "decline_code": "generic_decline",
                                 "message": "Your card was declined."}
        if payment_intent is not None:
            error["payment_intent"] = copy.deepcopy(payment_intent)
        return StripeError(402, error, replayable=True)

    def _create_charge(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, CHARGE_CREATE, creating=True)
        self._check_amount(params)
        if params.get("customer"):
            customer = self._get("customer", params["customer"], "customer")
            if not params.get("source") and not customer["default_source"]:
                raise _state("Cannot charge a customer that has no active card", "card",
                             "missing")
        elif not params.get("source"):
            raise _invalid("Must provide source or customer.")
        if params.get("source") in DECLINING:
            raise self._declined()
        return self._new_charge(params, capture=params.get("capture", True))

    def _update_charge(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, CHARGE_UPDATE)
        charge = self._get("charge", path["id"])
        if params.get("customer"):
            self._get("customer", params["customer"], "customer")
        for name, value in params.items():
            if name == "metadata":
                _merge_metadata(charge, value)
            elif name != "expand":
                charge[name] = _blank_to_none(value)
        return charge

    def _capture_charge(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, CHARGE_CAPTURE)
        charge = self._get("charge", path["id"])
        if charge["captured"]:
            raise _state(f"Charge {charge['id']} has already been captured.", None,
                         "charge_already_captured")
        amount = params.get("amount", charge["amount"])
        if amount > charge["amount"]:
            raise _invalid("Amount must be no more than the charge's amount.", "amount")
        charge.update(captured=True, amount_captured=amount,
                      amount_refunded=charge["amount"] - amount,
                      balance_transaction="txn_" + charge["id"][3:])
        return charge

    # ------------------------------------------------------------------------------ refunds

    def _refund(self, charge: dict[str, Any], amount: int | None, params: Params,
                ) -> dict[str, Any]:
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if remaining <= 0 or charge["refunded"]:
            raise _state(f"Charge {charge['id']} has already been refunded.", None,
                         "charge_already_refunded")
        amount = remaining if amount is None else amount
        if amount <= 0:
            raise _invalid("Invalid positive integer", "amount")
        if amount > remaining:
            raise _state(f"Refund amount (${amount / 100:.2f}) is greater than unrefunded "
                         f"amount on charge (${remaining / 100:.2f})", "amount")
        ident = self._id("re")
        refund: dict[str, Any] = {
            "id": ident, "object": "refund", "amount": amount,
            "balance_transaction": "txn_" + ident[3:], "charge": charge["id"],
            "created": int(time.time()), "currency": charge["currency"],
            "customer": charge["customer"], "description": None,
            "destination_details": {"card": {"reference": None, "reference_status": "pending",
                                             "reference_type": "acquirer_reference_number",
                                             "type": "refund"}, "type": "card"},
            "metadata": {}, "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"), "receipt_number": None,
            "source_transfer_reversal": None, "status": "succeeded",
            "transfer_reversal": None,
        }
        if params.get("metadata"):
            _merge_metadata(refund, params["metadata"])
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        self.objects[ident] = refund
        return refund

    def _create_refund(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, REFUND_CREATE, creating=True)
        if params.get("reason") not in (None, *REFUND_REASONS):
            raise _invalid("Invalid reason: must be one of duplicate, fraudulent, or "
                           "requested_by_customer", "reason")
        if params.get("charge"):
            charge = self._get("charge", params["charge"], "charge")
        elif params.get("payment_intent"):
            pi = self._get("payment_intent", params["payment_intent"], "payment_intent")
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise _state(f"This PaymentIntent ({pi['id']}) does not have a successful "
                             "charge to refund.", "payment_intent")
            charge = self.objects[pi["latest_charge"]]
        else:
            raise _invalid("One of the following params should be provided for this request: "
                           "payment_intent or charge.")
        return self._refund(charge, params.get("amount"), params)

    def _update_refund(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"expand", "metadata"})
        refund = self._get("refund", path["id"])
        if "metadata" in params:
            _merge_metadata(refund, params["metadata"])
        return refund

    # ---------------------------------------------------------------------- payment intents

    def _new_payment_intent(self, params: Params) -> dict[str, Any]:
        ident = self._id("pi")
        types = params.get("payment_method_types")
        intent: dict[str, Any] = {
            "id": ident, "object": "payment_intent", "amount": params["amount"],
            "amount_capturable": 0, "amount_details": {"tip": {}}, "amount_received": 0,
            "application": None, "application_fee_amount": None,
            "automatic_payment_methods": params.get("automatic_payment_methods") or (
                None if types else {"allow_redirects": "always", "enabled": True}),
            "canceled_at": None, "cancellation_reason": None,
            "capture_method": params.get("capture_method", "automatic_async"),
            "client_secret": f"{ident}_secret_Fake{ident[-6:]}",
            "confirmation_method": params.get("confirmation_method", "automatic"),
            "created": int(time.time()), "currency": str(params["currency"]).lower(),
            "customer": None, "description": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "metadata": {}, "next_action": None,
            "on_behalf_of": params.get("on_behalf_of"), "payment_method": None,
            "payment_method_configuration_details": None, "payment_method_options": {},
            "payment_method_types": types or ["card"], "processing": None,
            "receipt_email": None, "review": None, "setup_future_usage": None,
            "shipping": None, "source": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": "requires_payment_method",
            "transfer_data": None, "transfer_group": None,
        }
        self._apply_payment_intent(intent, {k: v for k, v in params.items() if k in PI_UPDATE})
        self.objects[ident] = intent
        return intent

    def _apply_payment_intent(self, intent: dict[str, Any], params: Params) -> None:
        if params.get("customer"):
            self._get("customer", params["customer"], "customer")
        if params.get("capture_method") not in (None, "automatic", "automatic_async", "manual"):
            raise _invalid("Invalid capture_method: must be one of automatic, automatic_async, "
                           "or manual", "capture_method")
        for name, value in params.items():
            if name == "metadata":
                _merge_metadata(intent, value)
            elif name == "currency":
                intent[name] = str(value).lower()
            elif name not in ("expand", "payment_method_data"):
                intent[name] = _blank_to_none(value)
        if params.get("payment_method") and intent["status"] == "requires_payment_method":
            intent["status"] = "requires_confirmation"

    def _confirm(self, intent: dict[str, Any], params: Params) -> None:
        if params.get("payment_method"):
            intent["payment_method"] = params["payment_method"]
        for name in ("receipt_email", "shipping", "setup_future_usage", "capture_method"):
            if name in params:
                intent[name] = _blank_to_none(params[name])
        if not intent["payment_method"]:
            raise _state("You cannot confirm this PaymentIntent because it's missing a payment "
                         "method. You can either update the PaymentIntent with a payment method "
                         "and then confirm it again, or confirm it again directly with a payment "
                         "method.", None, "payment_intent_unexpected_state")
        if intent["payment_method"] in DECLINING:
            intent.update(status="requires_payment_method", payment_method=None,
                          last_payment_error={"code": "card_declined",
                                              "decline_code": "generic_decline",
                                              "message": "Your card was declined.",
                                              "type": "card_error"})
            raise self._declined(intent)
        manual = intent["capture_method"] == "manual"
        charge = self._new_charge({"amount": intent["amount"], "currency": intent["currency"],
                                   "customer": intent["customer"],
                                   "description": intent["description"],
                                   "payment_method": intent["payment_method"]},
                                  payment_intent=intent["id"], capture=not manual)
        intent.update(latest_charge=charge["id"], last_payment_error=None)
        if manual:
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])

    def _create_payment_intent(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PI_CREATE, creating=True)
        self._check_amount(params)
        intent = self._new_payment_intent(params)
        if params.get("confirm"):
            self._confirm(intent, params)
        return intent

    def _update_payment_intent(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PI_UPDATE)
        intent = self._get("payment_intent", path["id"])
        if intent["status"] in ("succeeded", "canceled", "processing", "requires_capture"):
            for name in params:
                if name not in PI_ALWAYS_EDITABLE:
                    raise _state(
                        f"This PaymentIntent's {name} could not be updated because it has a "
                        f"status of {intent['status']}. You may only update the {name} of a "
                        "PaymentIntent with one of the following statuses: "
                        "requires_payment_method, requires_confirmation, requires_action.",
                        name, "payment_intent_unexpected_state")
        self._apply_payment_intent(intent, params)
        return intent

    def _confirm_payment_intent(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PI_CONFIRM)
        intent = self._get("payment_intent", path["id"])
        if intent["status"] not in PI_CONFIRMABLE:
            raise _state(f"You cannot confirm this PaymentIntent because it has a status of "
                         f"{intent['status']}. Only a PaymentIntent with one of the following "
                         f"statuses may be confirmed: {', '.join(PI_CONFIRMABLE)}.", None,
                         "payment_intent_unexpected_state")
        self._confirm(intent, params)
        return intent

    def _cancel_payment_intent(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, {"cancellation_reason", "expand"})
        intent = self._get("payment_intent", path["id"])
        reason = params.get("cancellation_reason")
        if reason not in (None, *PI_CANCEL_REASONS):
            raise _invalid("Invalid cancellation_reason: must be one of duplicate, fraudulent, "
                           "requested_by_customer, or abandoned", "cancellation_reason")
        if intent["status"] not in PI_CANCELABLE:
            raise _state(f"You cannot cancel this PaymentIntent because it has a status of "
                         f"{intent['status']}. Only a PaymentIntent with one of the following "
                         f"statuses may be canceled: {', '.join(PI_CANCELABLE)}.", None,
                         "payment_intent_unexpected_state")
        if intent["status"] == "requires_capture" and intent["latest_charge"]:
            charge = self.objects[intent["latest_charge"]]
            charge.update(refunded=True, amount_refunded=charge["amount"])
        intent.update(status="canceled", canceled_at=int(time.time()),
                      cancellation_reason=reason, amount_capturable=0)
        return intent

    def _capture_payment_intent(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PI_CAPTURE)
        intent = self._get("payment_intent", path["id"])
        if intent["status"] != "requires_capture":
            raise _state(f"This PaymentIntent could not be captured because it has a status of "
                         f"{intent['status']}. Only a PaymentIntent with one of the following "
                         "statuses may be captured: requires_capture.", None,
                         "payment_intent_unexpected_state")
        amount = params.get("amount_to_capture", intent["amount_capturable"])
        if amount > intent["amount_capturable"]:
            raise _invalid(f"The amount to capture ({amount}) is greater than the amount "
                           f"capturable ({intent['amount_capturable']}).", "amount_to_capture")
        if "metadata" in params:
            _merge_metadata(intent, params["metadata"])
        charge = self.objects[intent["latest_charge"]]
        charge.update(captured=True, amount_captured=amount,
                      amount_refunded=intent["amount"] - amount,
                      balance_transaction="txn_" + charge["id"][3:])
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        return intent

    # ------------------------------------------------------------------ products and prices

    def _new_product(self, params: Params) -> dict[str, Any]:
        ident = params.get("id") or self._id("prod")
        if ident in self.objects:
            raise _invalid("Product already exists.", "id", "resource_already_exists")
        now = int(time.time())
        product: dict[str, Any] = {
            "id": ident, "object": "product", "active": True, "created": now,
            "default_price": None, "description": None, "features": [], "images": [],
            "livemode": False, "metadata": {}, "name": params["name"],
            "package_dimensions": None, "shippable": None, "statement_descriptor": None,
            "tax_code": None, "unit_label": None, "updated": now, "url": None,
        }
        self.objects[ident] = product
        self._apply_product(product, {k: v for k, v in params.items()
                                      if k not in ("id", "default_price_data")})
        if isinstance(params.get("default_price_data"), dict):
            data = params["default_price_data"]
            price = self._new_price({**data, "product": ident})
            product["default_price"] = price["id"]
        return product

    def _apply_product(self, product: dict[str, Any], params: Params) -> None:
        for name, value in params.items():
            if name == "expand":
                continue
            if name == "metadata":
                _merge_metadata(product, value)
            elif name == "default_price" and value not in (None, ""):
                price = self._get("price", value, "default_price")
                if price["product"] != product["id"]:
                    raise _invalid(f"The price `{value}` does not belong to this product.",
                                   "default_price")
                product[name] = value
            elif name in ("features", "images"):
                product[name] = [] if value == "" else value
            else:
                product[name] = _blank_to_none(value)
        product["updated"] = int(time.time())

    def _create_product(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PRODUCT_CREATE, creating=True)
        _require(params, "name")
        return self._new_product(params)

    def _update_product(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PRODUCT_UPDATE)
        if params.get("name") == "":
            raise _empty_error("name")
        product = self._get("product", path["id"])
        self._apply_product(product, params)
        return product

    def _new_price(self, params: Params) -> dict[str, Any]:
        if isinstance(params.get("product_data"), dict):
            _require(params["product_data"], "name")
            params = {**params, "product": self._new_product(params["product_data"])["id"]}
        _require(params, "currency", "product")
        self._get("product", params["product"], "product")
        ident = self._id("price")
        recurring = params.get("recurring")
        if recurring is not None:
            if not isinstance(recurring, dict) or recurring.get("interval") not in (
                    INTERVAL_SECONDS):
                raise _invalid("Invalid recurring[interval]: must be one of day, month, week, "
                               "or year", "recurring[interval]")
            recurring = {"aggregate_usage": recurring.get("aggregate_usage"),
                         "interval": recurring["interval"],
                         "interval_count": recurring.get("interval_count", 1),
                         "usage_type": recurring.get("usage_type", "licensed")}
        amount = params.get("unit_amount")
        price: dict[str, Any] = {
            "id": ident, "object": "price", "active": params.get("active", True),
            "billing_scheme": params.get("billing_scheme", "per_unit"),
            "created": int(time.time()), "currency": str(params["currency"]).lower(),
            "custom_unit_amount": None, "livemode": False,
            "lookup_key": params.get("lookup_key"), "metadata": {},
            "nickname": params.get("nickname"), "product": params["product"],
            "recurring": recurring, "tax_behavior": params.get("tax_behavior", "unspecified"),
            "tiers_mode": None, "transform_quantity": None,
            "type": "recurring" if recurring else "one_time", "unit_amount": amount,
            "unit_amount_decimal": None if amount is None else str(amount),
        }
        if params.get("metadata"):
            _merge_metadata(price, params["metadata"])
        self.objects[ident] = price
        return price

    def _create_price(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PRICE_CREATE, creating=True)
        if not params.get("product") and not params.get("product_data"):
            raise _invalid("Missing required param: product.", "product", "parameter_missing")
        return self._new_price(params)

    def _update_price(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, PRICE_UPDATE)
        price = self._get("price", path["id"])
        for name, value in params.items():
            if name == "metadata":
                _merge_metadata(price, value)
            elif name in ("active", "nickname", "lookup_key", "tax_behavior"):
                price[name] = _blank_to_none(value)
        return price

    # -------------------------------------------------------------------------- subscriptions

    def _subscription_item(self, subscription: dict[str, Any], spec: Params) -> dict[str, Any]:
        price = self._get("price", spec.get("price", ""), "items[0][price]")
        if price["type"] != "recurring":
            raise _invalid("The price specified is set to `type=one_time` but this field only "
                           "accepts prices with `type=recurring`.", "items[0][price]")
        quantity = spec.get("quantity", 1)
        if not isinstance(quantity, int) or quantity < 0:
            raise _invalid("Invalid integer", "items[0][quantity]")
        item: dict[str, Any] = {
            "id": self._id("si"), "object": "subscription_item", "billing_thresholds": None,
            "created": int(time.time()), "metadata": {}, "price": price["id"],
            "quantity": quantity, "subscription": subscription["id"], "tax_rates": [],
        }
        if spec.get("metadata"):
            _merge_metadata(item, spec["metadata"])
        return item

    def _check_items(self, items: list[dict[str, Any]]) -> None:
        prices = [item["price"] for item in items]
        if len(set(prices)) != len(prices):
            raise _invalid("Cannot add multiple subscription items with the same price.",
                           "items")
        currencies = {self.objects[p]["currency"] for p in prices}
        if len(currencies) > 1:
            raise _invalid("The price specified only supports a single currency.", "items")

    def _rendered_subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        """The stored subscription keeps item ids and price ids; answers embed the prices."""
        out = copy.deepcopy(subscription)
        data = [{**item, "price": copy.deepcopy(self.objects[item["price"]])}
                for item in subscription["_items"]]
        out.pop("_items")
        out["items"] = _list(data, f"/v1/subscription_items?subscription={subscription['id']}")
        return out

    def _new_subscription(self, params: Params) -> dict[str, Any]:
        customer = self._get("customer", params.get("customer", ""), "customer")
        items = params.get("items")
        if not isinstance(items, list) or not items:
            raise _invalid("Missing required param: items.", "items", "parameter_missing")
        now = int(time.time())
        ident = self._id("sub")
        subscription: dict[str, Any] = {
            "id": ident, "object": "subscription", "application": None,
            "application_fee_percent": None, "automatic_tax": {"enabled": False},
            "billing_cycle_anchor": now, "billing_thresholds": None, "cancel_at": None,
            "cancel_at_period_end": False, "canceled_at": None,
            "cancellation_details": {"comment": None, "feedback": None, "reason": None},
            "collection_method": "charge_automatically", "created": now, "currency": "usd",
            "current_period_end": now, "current_period_start": now,
            "customer": customer["id"], "days_until_due": None,
            "default_payment_method": None, "default_source": None, "default_tax_rates": [],
            "description": None, "discount": None, "ended_at": None, "_items": [],
            "latest_invoice": None, "livemode": False, "metadata": {},
            "next_pending_invoice_item_invoice": None, "on_behalf_of": None,
            "pause_collection": None,
            "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                                 "save_default_payment_method": "off"},
            "pending_invoice_item_interval": None, "pending_setup_intent": None,
            "pending_update": None, "schedule": None, "start_date": now, "status": "active",
            "test_clock": None, "transfer_data": None, "trial_end": None,
            "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
            "trial_start": None,
        }
        subscription["_items"] = [self._subscription_item(subscription, spec) for spec in items]
        self._check_items(subscription["_items"])
        first = self.objects[subscription["_items"][0]["price"]]
        subscription["currency"] = first["currency"]
        subscription["current_period_end"] = now + INTERVAL_SECONDS[
            first["recurring"]["interval"]] * first["recurring"]["interval_count"]
        self._apply_subscription(subscription, {k: v for k, v in params.items()
                                                if k not in ("customer", "items", "currency")})
        if params.get("trial_period_days"):
            subscription.update(status="trialing", trial_start=now,
                                trial_end=now + 86400 * params["trial_period_days"])
        self.objects[ident] = subscription
        return subscription

    def _apply_subscription(self, subscription: dict[str, Any], params: Params) -> None:
        if params.get("proration_behavior") not in (None, *PRORATION_BEHAVIORS):
            raise _invalid("Invalid proration_behavior: must be one of always_invoice, "
                           "create_prorations, or none", "proration_behavior")
        for name in ("coupon", "promotion_code"):
            if params.get(name):
                raise _invalid(f"No such {name.replace('_', ' ')}: '{params[name]}'", name,
                               "resource_missing")
        for name, value in params.items():
            if name in ("expand", "proration_behavior", "proration_date", "payment_behavior",
                        "off_session", "trial_from_plan", "trial_period_days",
                        "backdate_start_date", "add_invoice_items", "coupon",
                        "promotion_code"):
                continue
            if name == "metadata":
                _merge_metadata(subscription, value)
            elif name == "items":
                self._update_items(subscription, value)
            elif name == "cancellation_details":
                details = _blank_to_none(value) or {}
                if details.get("feedback") not in (None, *CANCELLATION_FEEDBACK):
                    raise _invalid("Invalid cancellation_details[feedback]",
                                   "cancellation_details[feedback]")
                subscription["cancellation_details"].update(
                    {k: details[k] for k in ("comment", "feedback") if k in details})
            elif name == "cancel_at_period_end":
                subscription[name] = value
                subscription["cancel_at"] = (subscription["current_period_end"] if value
                                             else None)
            elif name == "cancel_at":
                subscription[name] = None if value == "" else value
                subscription["cancel_at_period_end"] = False
            elif name == "trial_end":
                if value == "now":
                    subscription.update(trial_end=int(time.time()), status="active")
                elif not re.fullmatch(r"\d+", str(value)):
                    raise _invalid("Invalid timestamp: must be an integer Unix timestamp in "
                                   "the future, or `now`.", "trial_end")
                else:
                    subscription.update(trial_end=int(value), status="trialing",
                                        trial_start=subscription["trial_start"]
                                        or int(time.time()))
            elif name == "pause_collection":
                if value == "":
                    subscription[name] = None
                elif not isinstance(value, dict) or value.get("behavior") not in (
                        "keep_as_draft", "mark_uncollectible", "void"):
                    raise _invalid("Invalid pause_collection[behavior]",
                                   "pause_collection[behavior]")
                else:
                    subscription[name] = {"behavior": value["behavior"],
                                          "resumes_at": value.get("resumes_at")}
            elif name == "collection_method":
                if value not in ("charge_automatically", "send_invoice"):
                    raise _invalid("Invalid collection_method: must be one of "
                                   "charge_automatically or send_invoice", "collection_method")
                subscription[name] = value
                if value == "charge_automatically":
                    subscription["days_until_due"] = None
            elif name == "default_payment_method" and value not in (None, ""):
                subscription[name] = value
            elif name in ("payment_settings", "automatic_tax", "trial_settings") and isinstance(
                    value, dict):
                merged = subscription[name] or {}
                merged.update(_blank_to_none(value))
                subscription[name] = merged
            elif name == "default_tax_rates":
                subscription[name] = [] if value == "" else value
            else:
                subscription[name] = _blank_to_none(value)
        if (subscription["collection_method"] == "send_invoice"
                and subscription["days_until_due"] is None):
            raise _invalid("Missing required param: days_until_due.", "days_until_due",
                           "parameter_missing")

    def _update_items(self, subscription: dict[str, Any], specs: Any) -> None:
        if not isinstance(specs, list):
            raise _invalid("Invalid array", "items")
        items = {item["id"]: item for item in subscription["_items"]}
        order = list(items)
        for index, spec in enumerate(specs):
            if not isinstance(spec, dict):
                raise _invalid("Invalid hash", f"items[{index}]")
            if spec.get("id"):
                item = items.get(spec["id"])
                if item is None:
                    raise _invalid(f"No such subscription item: '{spec['id']}'",
                                   f"items[{index}][id]", "resource_missing")
                if spec.get("deleted"):
                    items.pop(spec["id"])
                    continue
                if spec.get("price"):
                    self._get("price", spec["price"], f"items[{index}][price]")
                    item["price"] = spec["price"]
                if "quantity" in spec:
                    item["quantity"] = spec["quantity"]
                if "metadata" in spec:
                    _merge_metadata(item, spec["metadata"])
            else:
                item = self._subscription_item(subscription, spec)
                items[item["id"]] = item
                order.append(item["id"])
        remaining = [items[i] for i in order if i in items]
        if not remaining:
            raise _invalid("A subscription must have at least one active plan. To cancel a "
                           "subscription, please use the cancel API endpoint on "
                           "/v1/subscriptions.", "items")
        self._check_items(remaining)
        subscription["_items"] = remaining

    def _create_subscription(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, SUBSCRIPTION_CREATE, creating=True)
        _require(params, "customer")
        return self._new_subscription(params)

    def _update_subscription(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, SUBSCRIPTION_UPDATE)
        subscription = self._get("subscription", path["id"])
        if subscription["status"] in ("canceled", "incomplete_expired"):
            for name in params:
                if name not in SUBSCRIPTION_CANCELED_EDITABLE:
                    raise _state("A canceled subscription can only update its "
                                 "cancellation_details and metadata.", name)
        # validate on a copy, so a failing update changes nothing
        working = copy.deepcopy(subscription)
        self._apply_subscription(working, params)
        subscription.clear()
        subscription.update(working)
        return subscription

    def _cancel_subscription(self, params: Params, path: dict[str, str]) -> dict[str, Any]:
        _check(params, SUBSCRIPTION_CANCEL)
        subscription = self._get("subscription", path["id"])
        if subscription["status"] == "canceled":
            raise _state("This subscription has already been canceled.", None,
                         "subscription_canceled")
        details = params.get("cancellation_details") or {}
        if details.get("feedback") not in (None, "", *CANCELLATION_FEEDBACK):
            raise _invalid("Invalid cancellation_details[feedback]",
                           "cancellation_details[feedback]")
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now,
                            cancel_at_period_end=False, cancel_at=None)
        subscription["cancellation_details"] = {
            "comment": _blank_to_none(details.get("comment")),
            "feedback": _blank_to_none(details.get("feedback")),
            "reason": "cancellation_requested"}
        return subscription
