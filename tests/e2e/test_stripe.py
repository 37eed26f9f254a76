"""Stripe through the real proxy with the real stripe-python SDK (HTTPS_PROXY, ca_bundle_path)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from tests.e2e.conftest import Vendor
from tests.e2e.harness import ProxyProcess, held, triples
from tests.fakes.stripe_api import FakeStripe

KEY = "sk_test_fake_123"


@pytest.fixture
def fake(vendors: dict[str, Vendor]) -> FakeStripe:
    found = vendors["stripe"].fake
    found.log.clear()
    return found


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, proxy: ProxyProcess) -> Iterator[stripe.StripeClient]:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.proxy_url)
    # stripe-python verifies against its own bundle unless told otherwise (its documented setting)
    monkeypatch.setattr(stripe, "ca_bundle_path", str(proxy.ca_cert))
    http_client = stripe.RequestsClient()
    yield stripe.StripeClient(KEY, http_client=http_client, max_network_retries=0)
    http_client.close()


def test_customer_update_parses_the_form_and_carries_stripe_headers_onto_the_fetch(
        proxy: ProxyProcess, fake: FakeStripe, client: stripe.StripeClient) -> None:
    customer = fake.seed_customer(email="old@acme.test", metadata={"plan": "basic", "seats": "3"})
    call, approval = held(proxy, lambda: client.v1.customers.update(
        customer, {"email": "new@acme.test", "metadata": {"plan": "pro"}},
        {"stripe_version": "2024-06-20"}))
    assert (approval["system"], approval["object_type"], approval["record_id"]) == (
        "Stripe", "customer", customer)
    assert set(triples(approval)) == {("email", "old@acme.test", "new@acme.test"),
                                      ("metadata.plan", "basic", "pro")}
    assert approval["request"]["body"] == {"email": "new@acme.test", "metadata": {"plan": "pro"}}
    [fetch] = fake.log.of("GET", f"/v1/customers/{customer}")
    assert fetch.headers["stripe-version"] == "2024-06-20"
    proxy.decide(approval["id"], "approve")
    assert call.join().error is None
    assert fake.get(customer)["metadata"] == {"plan": "pro", "seats": "3"}


def test_create_and_delete_customer(
        proxy: ProxyProcess, fake: FakeStripe, client: stripe.StripeClient) -> None:
    call, approval = held(proxy, lambda: client.v1.customers.create(
        {"email": "fresh@acme.test", "name": "Fresh"}))
    assert approval["operation"] == "create"
    assert ("email", None, "fresh@acme.test") in triples(approval)
    proxy.decide(approval["id"], "approve")
    created = call.join().result
    call, approval = held(proxy, lambda: client.v1.customers.delete(created.id))
    assert approval["operation"] == "delete"
    assert ("email", "fresh@acme.test", None) in triples(approval)
    proxy.decide(approval["id"], "approve")
    assert call.join().result.deleted is True


def test_invoice_void_is_a_money_action_and_a_rejection_stops_sdk_retries(
        proxy: ProxyProcess, fake: FakeStripe, client: stripe.StripeClient) -> None:
    invoice = fake.seed_invoice(fake.seed_customer(), status="open")
    call, approval = held(proxy, lambda: client.v1.invoices.void_invoice(invoice))
    assert (approval["operation"], approval["action"]) == ("action", "void")
    assert triples(approval) == [("status", "open", "void")]
    assert approval["risk"]["level"] == "high"
    assert "voids the invoice" in approval["risk"]["reasons"]
    proxy.decide(approval["id"], "reject", "customer is paying by wire")
    error = call.join().error
    assert isinstance(error, stripe.PermissionError)
    assert error.http_status == 403
    assert error.headers["stripe-should-retry"] == "false"
    assert fake.get(invoice)["status"] == "open"
    assert fake.log.of("POST", f"/v1/invoices/{invoice}/void") == []


def test_refund_is_held_as_money_and_create_preview_is_a_read(
        proxy: ProxyProcess, fake: FakeStripe, client: stripe.StripeClient) -> None:
    charge = fake.seed_charge(amount=5000)
    call, approval = held(proxy, lambda: client.v1.refunds.create(
        {"charge": charge, "amount": 1500}))
    assert approval["object_type"] == "refund"
    assert ("amount", None, "1500") in triples(approval)
    assert "refunds money to the customer" in approval["risk"]["reasons"]
    proxy.decide(approval["id"], "approve")
    assert call.join().result.amount == 1500

    customer = fake.seed_customer()
    before = len(proxy.approvals())
    preview = client.v1.invoices.create_preview({"customer": customer})
    assert preview.object == "invoice"
    assert len(proxy.approvals()) == before
