"""Self-test of the fake Stripe API: every endpoint, every error shape, and stripe-python 16."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
import trustme

from tests.fakes import described, stripe_api
from tests.fakes.server import HTTPSFake
from tests.fakes.stripe_api import FakeStripe, parse_form

KEY = "sk_test_fake_123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return d


@pytest.fixture(scope="module")
def served(tls: Path) -> Iterator[tuple[FakeStripe, httpx.Client, str]]:
    fake = FakeStripe()
    with HTTPSFake(fake.app, tls / "server.pem", tls / "server.pem") as server:
        base = f"https://127.0.0.1:{server.port}"
        verify = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        with httpx.Client(base_url=base, verify=verify, headers=AUTH,
                          trust_env=False) as client:
            yield fake, client, base


def post(client: httpx.Client, path: str, data: Any = None, **headers: str) -> httpx.Response:
    return client.post(path, data=data or {}, headers=headers)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Request-Id"].startswith("req_")
    return response.json()["error"]


# ------------------------------------------------------------------------------ form decoding


def test_parse_form_follows_stripe_bracket_rules() -> None:
    parsed = parse_form(
        "metadata[plan]=pro&items[0][price]=price_1&items[0][quantity]=2&items[1][price]=p2"
        "&expand[]=customer&expand[]=lines.data&address[line1]=1+Main&a[][x]=1&a[][y]=2"
        "&a[][x]=3&metadata[0]=zero&description=")
    assert parsed == {
        "metadata": {"plan": "pro", "0": "zero"},
        "items": [{"price": "price_1", "quantity": "2"}, {"price": "p2"}],
        "expand": ["customer", "lines.data"], "address": {"line1": "1 Main"},
        "a": [{"x": "1", "y": "2"}, {"x": "3"}], "description": "",
    }


# ------------------------------------------------------------------------------------- auth


def test_auth_errors_and_basic_auth(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    bare = client.get("/v1/customers", headers={"Authorization": ""})
    error = error_of(bare, 401)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("You did not provide an API key.")
    wrong = client.get("/v1/customers", headers={"Authorization": "Bearer sk_test_fake_456"})
    assert error_of(wrong, 401)["message"] == "Invalid API Key provided: sk_test_****_456"
    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert client.get("/v1/customers", headers={"Authorization": basic}).status_code == 200
    assert fake.log.of("GET", "/v1/customers")


def test_unknown_url_unknown_param_and_json_body(
        served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    error = error_of(client.get("/v1/nothing"), 404)
    assert error["message"].startswith("Unrecognized request URL (GET: /v1/nothing).")
    assert fake.log.of("GET", "/v1/nothing")
    error_of(client.delete("/v1/charges/ch_x"), 404)
    error = error_of(post(client, "/v1/customers", {"foo": "1"}), 400)
    assert error == {
        "type": "invalid_request_error", "code": "parameter_unknown", "param": "foo",
        "message": "Received unknown parameter: foo",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-unknown",
        "request_log_url": error["request_log_url"]}
    assert error["request_log_url"].startswith("https://dashboard.stripe.com/test/logs/req_")
    as_json = client.post("/v1/customers", json={"email": "a@b.c"})
    assert "application/x-www-form-urlencoded" in error_of(as_json, 400)["message"]
    error = error_of(post(client, "/v1/charges", {"amount": "ten", "currency": "usd"}), 400)
    assert error["code"] == "parameter_invalid_integer"


# -------------------------------------------------------------------------------- customers


def test_customer_crud_metadata_and_not_found(
        served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    created = post(client, "/v1/customers", {"email": "a@example.com", "name": "Ann",
                                             "metadata[plan]": "pro", "metadata[team]": "x"})
    assert created.status_code == 200
    customer = created.json()
    assert customer["id"].startswith("cus_") and customer["object"] == "customer"
    assert customer["livemode"] is False and isinstance(customer["created"], int)
    cid = customer["id"]
    updated = post(client, f"/v1/customers/{cid}", {"metadata[team]": "", "metadata[tier]": "1",
                                                    "description": "vip", "name": ""}).json()
    assert updated["metadata"] == {"plan": "pro", "tier": "1"}
    assert updated["description"] == "vip" and updated["name"] is None
    assert client.get(f"/v1/customers/{cid}").json() == fake.objects[cid]
    assert client.delete(f"/v1/customers/{cid}").json() == {
        "id": cid, "object": "customer", "deleted": True}
    assert client.get(f"/v1/customers/{cid}").json()["deleted"] is True
    error = error_of(client.get("/v1/customers/cus_x"), 404)
    assert error["code"] == "resource_missing" and error["param"] == "id"
    assert error["message"] == "No such customer: 'cus_x'"
    assert error["doc_url"] == "https://stripe.com/docs/error-codes/resource-missing"
    fake.seed_customer()
    fake.seed_customer()
    listed = client.get("/v1/customers", params={"limit": "1"}).json()
    assert listed["object"] == "list" and len(listed["data"]) == 1


def test_idempotency(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    first = post(client, "/v1/customers", {"email": "i@example.com"}, **{"Idempotency-Key": "k1"})
    again = post(client, "/v1/customers", {"email": "i@example.com"}, **{"Idempotency-Key": "k1"})
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len([c for c in fake.of_type("customer") if c.get("email") == "i@example.com"]) == 1
    other = post(client, "/v1/customers", {"email": "j@example.com"}, **{"Idempotency-Key": "k1"})
    error = error_of(other, 400)
    assert error["type"] == "idempotency_error"
    assert error["message"].startswith("Keys for idempotent requests can only be used with the "
                                       "same parameters they were first used with.")
    moved = post(client, "/v1/charges", {"email": "i@example.com"}, **{"Idempotency-Key": "k1"})
    assert "same endpoint" in error_of(moved, 400)["message"]
    seen = fake.log.of("POST", "/v1/customers")[-1]
    assert seen.headers["idempotency-key"] == "k1"
    # a validation failure is not stored: the key stays usable
    error_of(post(client, "/v1/customers", {"bogus": "1"}, **{"Idempotency-Key": "k2"}), 400)
    assert post(client, "/v1/customers", {}, **{"Idempotency-Key": "k2"}).status_code == 200
    # a state error ran, so it is replayed
    inv = fake.seed_invoice(fake.seed_customer(), status="open")
    for _ in range(2):
        error_of(post(client, f"/v1/invoices/{inv}/finalize", **{"Idempotency-Key": "k3"}), 400)


# --------------------------------------------------------------------------------- invoices


def test_invoice_lifecycle(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    cus = fake.seed_customer(email="bill@example.com")
    invoice = post(client, "/v1/invoices", {"customer": cus, "collection_method": "send_invoice",
                                            "days_until_due": "30", "auto_advance": "false",
                                            "metadata[order]": "42"}).json()
    assert invoice["status"] == "draft" and invoice["id"].startswith("in_")
    assert invoice["auto_advance"] is False and invoice["due_date"] is not None
    iid = invoice["id"]
    item = post(client, "/v1/invoiceitems", {"customer": cus, "invoice": iid, "amount": "1500",
                                             "currency": "usd", "description": "Seats"}).json()
    assert item["object"] == "invoiceitem" and item["invoice"] == iid
    assert client.get(f"/v1/invoiceitems/{item['id']}").json()["amount"] == 1500
    draft = post(client, f"/v1/invoices/{iid}", {"description": "May"}).json()
    assert draft["amount_due"] == 1500 and draft["lines"]["data"][0]["amount"] == 1500
    assert client.get(f"/v1/invoices/{iid}/lines").json()["data"][0]["object"] == "line_item"
    expanded = client.get(f"/v1/invoices/{iid}", params={"expand[]": "customer"}).json()
    assert expanded["customer"]["id"] == cus
    opened = post(client, f"/v1/invoices/{iid}/finalize").json()
    assert opened["status"] == "open" and opened["number"]
    assert opened["status_transitions"]["finalized_at"]
    error = error_of(post(client, f"/v1/invoices/{iid}/finalize"), 400)
    assert error["message"] == ("This invoice is already finalized, you can't re-finalize a "
                                "non-draft invoice.")
    assert error_of(post(client, f"/v1/invoices/{iid}", {"collection_method":
                                                          "charge_automatically"}), 400)
    assert post(client, f"/v1/invoices/{iid}/send").json()["status"] == "open"
    assert fake.sent_invoices[-1] == (iid, "bill@example.com")
    assert error_of(client.delete(f"/v1/invoices/{iid}"), 400)["type"] == \
        "invalid_request_error"
    paid = post(client, f"/v1/invoices/{iid}/pay").json()
    assert paid["status"] == "paid" and paid["amount_paid"] == 1500
    assert paid["amount_remaining"] == 0
    error_of(post(client, f"/v1/invoices/{iid}/void"), 400)
    error_of(post(client, f"/v1/invoices/{iid}/pay"), 400)

    second = fake.seed_invoice(cus, status="open")
    assert post(client, f"/v1/invoices/{second}/mark_uncollectible").json()["status"] == \
        "uncollectible"
    assert post(client, f"/v1/invoices/{second}/void").json()["status"] == "void"
    error_of(post(client, f"/v1/invoices/{second}/mark_uncollectible"), 400)
    charge_auto = fake.seed_invoice(cus, status="open")
    assert "send_invoice" in error_of(post(client, f"/v1/invoices/{charge_auto}/send"), 400)[
        "message"]

    draft_id = fake.seed_invoice(cus)
    assert client.delete(f"/v1/invoices/{draft_id}").json() == {
        "id": draft_id, "object": "invoice", "deleted": True}
    error_of(client.get(f"/v1/invoices/{draft_id}"), 404)
    empty = fake.seed_invoice(cus, amount=None)
    assert post(client, f"/v1/invoices/{empty}/finalize").json()["status"] == "paid"
    error = error_of(post(client, "/v1/invoices", {"customer": "cus_nope"}), 400)
    assert error["code"] == "resource_missing" and error["param"] == "customer"
    assert error_of(post(client, "/v1/invoices", {}), 400)["code"] == "parameter_missing"


def test_invoice_preview(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    cus = fake.seed_customer()
    before = len(fake.objects)
    preview = post(client, "/v1/invoices/create_preview", {
        "customer": cus, "invoice_items[0][amount]": "700", "invoice_items[0][currency]": "usd",
        "subscription_details[items][0][price_data][unit_amount]": "300",
        "subscription_details[items][0][quantity]": "2"}).json()
    assert preview["object"] == "invoice" and preview["id"].startswith("upcoming_in_")
    assert preview["total"] == 1300 and len(preview["lines"]["data"]) == 2
    assert len(fake.objects) == before


# --------------------------------------------------------------------- charges and refunds


def test_charges_and_refunds(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    charge = post(client, "/v1/charges", {"amount": "2000", "currency": "usd",
                                          "source": "tok_visa", "metadata[o]": "1"}).json()
    assert charge["id"].startswith("ch_") and charge["status"] == "succeeded"
    chid = charge["id"]
    updated = post(client, f"/v1/charges/{chid}", {"description": "Order 1",
                                                   "metadata[o]": ""}).json()
    assert updated["description"] == "Order 1" and updated["metadata"] == {}
    assert client.get(f"/v1/charges/{chid}").json()["description"] == "Order 1"
    error_of(post(client, f"/v1/charges/{chid}", {"amount": "5"}), 400)
    declined = error_of(post(client, "/v1/charges", {"amount": "2000", "currency": "usd",
                                                     "source": "tok_chargeDeclined"}), 402)
    assert declined["type"] == "card_error" and declined["code"] == "card_declined"
    assert error_of(post(client, "/v1/charges", {"amount": "2000", "currency": "usd"}), 400)
    small = error_of(post(client, "/v1/charges", {"amount": "10", "currency": "usd",
                                                  "source": "tok_visa"}), 400)
    assert small["code"] == "amount_too_small"

    refund = post(client, "/v1/refunds", {"charge": chid, "amount": "500",
                                          "reason": "requested_by_customer"}).json()
    assert refund["id"].startswith("re_") and refund["status"] == "succeeded"
    assert refund["amount"] == 500 and fake.objects[chid]["amount_refunded"] == 500
    rid = refund["id"]
    assert post(client, f"/v1/refunds/{rid}", {"metadata[why]": "dup"}).json()["metadata"] == {
        "why": "dup"}
    assert error_of(post(client, f"/v1/refunds/{rid}", {"amount": "1"}), 400)["code"] == \
        "parameter_unknown"
    assert client.get(f"/v1/refunds/{rid}", params={"expand[]": "charge"}).json()["charge"][
        "id"] == chid
    error_of(post(client, "/v1/refunds", {"charge": chid, "amount": "1600"}), 400)
    post(client, "/v1/refunds", {"charge": chid})
    assert fake.objects[chid]["refunded"] is True
    again = error_of(post(client, "/v1/refunds", {"charge": chid}), 400)
    assert again["code"] == "charge_already_refunded"
    error_of(post(client, "/v1/refunds", {}), 400)
    assert error_of(client.get("/v1/refunds/re_x"), 404)["message"] == "No such refund: 're_x'"
    seeded = fake.seed_charge(amount=900)
    assert fake.objects[fake.seed_refund(seeded)]["amount"] == 900


# ---------------------------------------------------------------------------- PaymentIntents


def test_payment_intents(served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    intent = post(client, "/v1/payment_intents", {"amount": "3000", "currency": "usd"}).json()
    assert intent["status"] == "requires_payment_method" and intent["id"].startswith("pi_")
    piid = intent["id"]
    error = error_of(post(client, f"/v1/payment_intents/{piid}/confirm"), 400)
    assert error["code"] == "payment_intent_unexpected_state"
    updated = post(client, f"/v1/payment_intents/{piid}", {"payment_method": "pm_card_visa",
                                                           "description": "x"}).json()
    assert updated["status"] == "requires_confirmation"
    confirmed = post(client, f"/v1/payment_intents/{piid}/confirm").json()
    assert confirmed["status"] == "succeeded" and confirmed["amount_received"] == 3000
    assert confirmed["latest_charge"].startswith("ch_")
    error = error_of(post(client, f"/v1/payment_intents/{piid}/cancel"), 400)
    assert error["message"].startswith("You cannot cancel this PaymentIntent because it has a "
                                       "status of succeeded.")
    error_of(post(client, f"/v1/payment_intents/{piid}", {"amount": "1"}), 400)
    refund = post(client, "/v1/refunds", {"payment_intent": piid}).json()
    assert refund["payment_intent"] == piid and refund["amount"] == 3000

    manual = post(client, "/v1/payment_intents", {
        "amount": "5000", "currency": "usd", "capture_method": "manual",
        "payment_method": "pm_card_visa", "confirm": "true"}).json()
    assert manual["status"] == "requires_capture" and manual["amount_capturable"] == 5000
    captured = post(client, f"/v1/payment_intents/{manual['id']}/capture",
                    {"amount_to_capture": "4000"}).json()
    assert captured["status"] == "succeeded" and captured["amount_received"] == 4000
    error = error_of(post(client, f"/v1/payment_intents/{manual['id']}/capture"), 400)
    assert "could not be captured" in error["message"]

    pending = fake.seed_payment_intent(status="requires_confirmation")
    canceled = post(client, f"/v1/payment_intents/{pending}/cancel",
                    {"cancellation_reason": "abandoned"}).json()
    assert canceled["status"] == "canceled" and canceled["cancellation_reason"] == "abandoned"
    declined = post(client, "/v1/payment_intents", {
        "amount": "5000", "currency": "usd", "payment_method": "pm_card_chargeDeclined",
        "confirm": "true"})
    assert error_of(declined, 402)["payment_intent"]["status"] == "requires_payment_method"
    assert fake.objects[fake.seed_payment_intent(status="succeeded")]["status"] == "succeeded"


# ----------------------------------------------------------------------------- stripe-python


SDK = tuple[FakeStripe, str, stripe.HTTPClient]


@pytest.fixture
def sdk(served: tuple[FakeStripe, httpx.Client, str], tls: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[SDK]:
    """stripe-python's RequestsClient always sends verify=stripe.ca_bundle_path, so the CA
    is set there (REQUESTS_CA_BUNDLE would be ignored); loopback must bypass any proxy env.
    The HTTP client is closed afterwards so no keep-alive connection stalls server shutdown."""
    fake, _, base = served
    http = stripe.RequestsClient()
    monkeypatch.setattr(stripe, "ca_bundle_path", str(tls / "ca.pem"))
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", base)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    monkeypatch.setattr(stripe, "default_http_client", http)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    yield fake, base, http
    http.close()


def test_sdk_client_customer_crud(sdk: SDK) -> None:
    fake, base, http = sdk
    client = stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=0,
                                 stripe_account="acct_connected", http_client=http)
    customer = client.v1.customers.create({"email": "sdk@example.com",
                                           "metadata": {"plan": "pro"}})
    assert customer.id.startswith("cus_") and customer.metadata["plan"] == "pro"
    fetched = client.v1.customers.retrieve(customer.id)
    assert fetched.email == "sdk@example.com"
    updated = client.v1.customers.update(customer.id, {"metadata": {"plan": ""},
                                                       "name": "Sdk"})
    assert updated.name == "Sdk" and updated.metadata.to_dict() == {}
    deleted = client.v1.customers.delete(customer.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.customers.retrieve("cus_missing")
    assert caught.value.code == "resource_missing" and caught.value.http_status == 404
    seen = fake.log.of("POST", "/v1/customers")[-1]
    assert seen.headers["stripe-account"] == "acct_connected"
    assert seen.headers["stripe-version"] and seen.headers["idempotency-key"]
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_other_999", base_addresses={"api": base}, http_client=http,
                            max_network_retries=0).v1.customers.retrieve(customer.id)


def test_sdk_global_invoice_finalize_and_void(sdk: SDK) -> None:
    fake, _, _ = sdk
    cus = fake.seed_customer()
    invoice = stripe.Invoice.create(customer=cus, collection_method="charge_automatically")
    stripe.InvoiceItem.create(customer=cus, invoice=invoice.id, amount=2500, currency="usd")
    finalized = stripe.Invoice.finalize_invoice(invoice.id)
    assert finalized.status == "open" and finalized.amount_due == 2500
    voided = stripe.Invoice.void_invoice(invoice.id)
    assert voided.status == "void"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Invoice.finalize_invoice(invoice.id)
    assert caught.value.code == "invoice_not_editable"
    retrieved = stripe.Invoice.retrieve(invoice.id, expand=["customer"])
    assert retrieved.customer.id == cus
    customer = stripe.Customer.retrieve(cus)
    assert stripe.Customer.modify(cus, description="gold").description == "gold"
    assert customer.id == cus and stripe.Customer.delete(cus).deleted is True


# ------------------------------------------------- products, prices, subscriptions (described)

SUB = "/v1/subscriptions/{subscription_exposed_id}"


def test_documented_parameters_are_the_ones_accepted() -> None:
    documented = {
        (method, path): set(_form_fields("post" if method != "delete" else "delete", path))
        for method, path in [("post", "/v1/products"), ("post", "/v1/products/{id}"),
                             ("post", "/v1/prices"), ("post", "/v1/prices/{price}"),
                             ("post", "/v1/subscriptions"), ("post", SUB), ("delete", SUB)]}
    assert documented[("post", "/v1/products")] == stripe_api.PRODUCT_CREATE
    assert documented[("post", "/v1/products/{id}")] == stripe_api.PRODUCT_UPDATE
    assert documented[("post", "/v1/prices")] == stripe_api.PRICE_CREATE
    assert documented[("post", "/v1/prices/{price}")] == stripe_api.PRICE_UPDATE
    assert documented[("post", "/v1/subscriptions")] == stripe_api.SUBSCRIPTION_CREATE
    assert documented[("post", SUB)] == stripe_api.SUBSCRIPTION_UPDATE
    assert documented[("delete", SUB)] == stripe_api.SUBSCRIPTION_CANCEL
    assert described.required_request_fields("stripe", "post", "/v1/subscriptions") == {
        "customer"}


def _form_fields(method: str, path: str) -> list[str]:
    body = described.operation("stripe", method, path)["requestBody"]
    return list(body["content"]["application/x-www-form-urlencoded"]["schema"]["properties"])


def test_products_and_prices_answer_the_documented_objects(
        served: tuple[FakeStripe, httpx.Client, str]) -> None:
    _, client, _ = served
    product = post(client, "/v1/products", {"name": "Gold", "metadata[tier]": "1"})
    described.check("stripe", "post", "/v1/products", 200, product.json())
    pid = product.json()["id"]
    price = post(client, "/v1/prices", {"product": pid, "unit_amount": "1500",
                                        "currency": "USD", "recurring[interval]": "month"})
    described.check("stripe", "post", "/v1/prices", 200, price.json())
    assert price.json()["type"] == "recurring" and price.json()["currency"] == "usd"
    updated = post(client, f"/v1/products/{pid}", {"default_price": price.json()["id"],
                                                   "description": "the gold plan"})
    described.check("stripe", "post", "/v1/products/{id}", 200, updated.json())
    assert updated.json()["default_price"] == price.json()["id"]
    nick = post(client, f"/v1/prices/{price.json()['id']}", {"nickname": "monthly"})
    described.check("stripe", "post", "/v1/prices/{price}", 200, nick.json())
    described.check("stripe", "get", "/v1/prices/{price}", 200,
                    client.get(f"/v1/prices/{price.json()['id']}").json())
    assert error_of(post(client, "/v1/products", {}), 400)["param"] == "name"
    assert error_of(post(client, f"/v1/prices/{price.json()['id']}",
                         {"unit_amount": "1"}), 400)["code"] == "parameter_unknown"


def test_subscription_create_update_items_and_cancel(
        served: tuple[FakeStripe, httpx.Client, str]) -> None:
    fake, client, _ = served
    customer = fake.seed_customer()
    basic, pro = fake.seed_price(unit_amount=1000), fake.seed_price(unit_amount=5000)
    assert error_of(post(client, "/v1/subscriptions", {"items[0][price]": basic}),
                    400)["param"] == "customer"
    created = post(client, "/v1/subscriptions", {
        "customer": customer, "items[0][price]": basic, "items[0][quantity]": "2",
        "metadata[team]": "ops"})
    subscription = created.json()
    described.check("stripe", "post", "/v1/subscriptions", 200, subscription)
    assert subscription["status"] == "active" and len(subscription["items"]["data"]) == 1
    [item] = subscription["items"]["data"]
    assert (item["price"]["id"], item["quantity"]) == (basic, 2)
    assert subscription["current_period_end"] > subscription["current_period_start"]
    sid = subscription["id"]
    described.check("stripe", "get", SUB, 200, client.get(f"/v1/subscriptions/{sid}").json())

    updated = post(client, f"/v1/subscriptions/{sid}", {
        "items[0][id]": item["id"], "items[0][price]": pro, "items[0][quantity]": "3",
        "proration_behavior": "none", "cancel_at_period_end": "true",
        "description": "upgraded", "metadata[team]": ""}).json()
    described.check("stripe", "post", SUB, 200, updated)
    [changed] = updated["items"]["data"]
    assert (changed["id"], changed["price"]["id"], changed["quantity"]) == (item["id"], pro, 3)
    assert updated["cancel_at_period_end"] is True
    assert updated["cancel_at"] == updated["current_period_end"]
    assert (updated["description"], updated["metadata"]) == ("upgraded", {})
    error = error_of(post(client, f"/v1/subscriptions/{sid}", {
        "items[0][price]": pro}), 400)
    assert error["message"].startswith("Cannot add multiple subscription items")
    assert fake.get(sid)["items"]["data"][0]["quantity"] == 3  # a failed update changes nothing
    assert error_of(post(client, f"/v1/subscriptions/{sid}", {"collection_method": "x"}),
                    400)["param"] == "collection_method"

    canceled = client.delete(f"/v1/subscriptions/{sid}",
                             params={"cancellation_details[comment]": "too pricey",
                                     "cancellation_details[feedback]": "too_expensive"})
    assert canceled.status_code == 200
    described.check("stripe", "delete", SUB, 200, canceled.json())
    assert canceled.json()["status"] == "canceled" and canceled.json()["ended_at"]
    assert canceled.json()["cancellation_details"] == {
        "comment": "too pricey", "feedback": "too_expensive", "reason": "cancellation_requested"}
    error = error_of(post(client, f"/v1/subscriptions/{sid}", {"description": "back"}), 400)
    assert "canceled subscription" in error["message"]
    assert error_of(client.delete(f"/v1/subscriptions/{sid}"), 400)["code"] == (
        "subscription_canceled")
    assert error_of(client.get("/v1/subscriptions/sub_missing"), 404)["code"] == (
        "resource_missing")


def test_sdk_subscription_modify_and_cancel(sdk: SDK) -> None:
    fake, base, http = sdk
    customer = fake.seed_customer()
    price = fake.seed_price(unit_amount=900)
    sid = fake.seed_subscription(customer, [price], description="starter")
    client = stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=0,
                                 http_client=http)
    modified = stripe.Subscription.modify(sid, metadata={"seats": "5"}, description="team")
    assert (modified.description, modified.metadata["seats"]) == ("team", "5")
    item = modified["items"]["data"][0]
    assert item.price.unit_amount == 900
    updated = client.v1.subscriptions.update(sid, {"items": [{"id": item.id, "quantity": 4}]})
    assert updated["items"]["data"][0].quantity == 4
    canceled = client.v1.subscriptions.cancel(sid, {"cancellation_details": {
        "comment": "moving on"}})
    assert canceled.status == "canceled"
    assert canceled.cancellation_details.comment == "moving on"
    [seen] = fake.log.of("DELETE", f"/v1/subscriptions/{sid}")
    assert "cancellation_details" in seen.query  # stripe-python sends DELETE params in the URL
