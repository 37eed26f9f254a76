"""A site's own API, given to the proxy only as its OpenAPI file in the config (no connector
YAML): writes are held with the object, record and old values the description names, documented
POST reads pass, and approval sends the write once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import CONFIG, UpstreamTLS, Vendor, start_proxy
from tests.e2e.harness import Background, ProxyProcess, agent_client
from tests.fakes.billing import DESCRIPTION, TOKEN, FakeBilling

BILLING = "https://billing.internal.test"
SITE_CONFIG = CONFIG + """
connectors:
  billing:
    openapi: ./billing-openapi.yaml
    hosts: [billing.internal.test]
    system: Billing
"""


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
         vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    workdir = tmp_path_factory.mktemp("site-openapi")
    (workdir / "billing-openapi.yaml").write_text(DESCRIPTION.read_text())
    process = start_proxy(workdir, upstream_tls, vendors, "--hold-timeout", "30",
                          config=SITE_CONFIG)
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture
def agent(gate: ProxyProcess) -> Iterator[httpx.Client]:
    with agent_client(gate, Authorization=f"Bearer {TOKEN}",
                      **{"X-HITL-Reason": "raise the invoice to the agreed price"}) as client:
        yield client


def billing(vendors: dict[str, Vendor]) -> FakeBilling:
    fake = vendors["billing"].fake
    assert isinstance(fake, FakeBilling)
    return fake


def test_an_update_is_held_with_old_values_from_the_documented_get_and_sent_once(
        gate: ProxyProcess, vendors: dict[str, Vendor], agent: httpx.Client) -> None:
    fake = billing(vendors)
    invoice = fake.seed_invoice("cus_9", 120, memo="March")
    fake.log.clear()
    call = Background(lambda: agent.patch(f"{BILLING}/v2/invoices/{invoice}",
                                          json={"amount": 1200, "memo": "March"}))
    [approval] = gate.wait_for_pending()
    assert (approval["system"], approval["object_type"], approval["operation"],
            approval["record_id"]) == ("Billing", "Invoice", "update", invoice)
    assert approval["old_values"]["known"] is True
    assert [(c["field"], c["old"], c["new"]) for c in approval["changes"]] == [
        ("amount", 120, 1200)]
    assert [(seen.method, seen.path) for seen in fake.log.seen] == [
        ("GET", f"/v2/invoices/{invoice}")]  # the proxy's own read, with the agent's token
    assert gate.decide(approval["id"], "approve", note="agreed in the call").status_code == 200
    answer = call.join().result
    assert answer.status_code == 200 and answer.json()["amount"] == 1200
    assert len(fake.log.of("PATCH")) == 1
    assert fake.invoices[invoice]["amount"] == 1200


def test_an_action_names_the_record_it_acts_on_and_a_documented_search_passes(
        gate: ProxyProcess, vendors: dict[str, Vendor], agent: httpx.Client) -> None:
    fake = billing(vendors)
    invoice = fake.seed_invoice("cus_7", 300)
    before = len(gate.approvals())
    found = agent.post(f"{BILLING}/v2/invoices/search", json={"status": "open"})
    assert found.status_code == 200 and invoice in [i["id"] for i in found.json()["results"]]
    assert len(gate.approvals()) == before  # a documented read sent as POST is not held
    fake.log.clear()
    call = Background(lambda: agent.post(f"{BILLING}/v2/invoices/{invoice}/void"))
    [approval] = gate.wait_for_pending()
    assert (approval["object_type"], approval["operation"], approval["action"],
            approval["record_id"]) == ("Invoice", "action", "void", invoice)
    assert approval["old_values"]["known"] is True
    assert gate.decide(approval["id"], "reject", note="still due").status_code == 200
    assert call.join().result.status_code == 403
    assert fake.log.of("POST") == [] and fake.invoices[invoice]["status"] == "open"
