from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e.harness import ProxyProcess
from tests.fakes.billing import FakeBilling
from tests.fakes.github import FakeGitHub
from tests.fakes.graphql_apis import FakeLinear, FakeShopify
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.jira import FakeJira
from tests.fakes.quickbooks import FakeQuickBooks
from tests.fakes.salesforce import FakeSalesforce
from tests.fakes.server import HTTPSFake
from tests.fakes.stripe_api import FakeStripe
from tests.fakes.zendesk import FakeZendesk

ALICE = "alice-support-token-0001"
BOB = "bob-finance-token-000002"
CONFIG = f"""
reviewers:
  - name: alice
    token: "{ALICE}"
    groups: [support]
  - name: bob
    token: "{BOB}"
    groups: [finance]
"""


@dataclass(frozen=True)
class UpstreamTLS:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


@dataclass(frozen=True)
class Vendor:
    fake: Any
    server: HTTPSFake
    hosts: list[str]


# name -> (fake factory, the hostnames agents use for it)
VENDORS: dict[str, tuple[Callable[[], Any], list[str]]] = {
    "zendesk": (FakeZendesk, ["acme.zendesk.com", "api.unknown-vendor.test"]),
    "hubspot": (FakeHubSpot, ["api.hubapi.com"]),
    "quickbooks": (FakeQuickBooks, ["quickbooks.api.intuit.com",
                                    "sandbox-quickbooks.api.intuit.com"]),
    "jira": (FakeJira, ["acme.atlassian.net"]),
    "stripe": (FakeStripe, ["api.stripe.com"]),
    "salesforce": (FakeSalesforce, ["acme.my.salesforce.com"]),
    "github": (FakeGitHub, ["api.github.com"]),
    "shopify": (FakeShopify, ["acme.myshopify.com"]),
    "linear": (FakeLinear, ["api.linear.app"]),
    "billing": (FakeBilling, ["billing.internal.test"]),  # a site's own API, known by its OpenAPI
}

# tests/e2e/test_mcp.py's MCP servers (GitHub's under its own URL: its shipped mappings)
MCP_HOSTS = ["mcp.acme.test", "mcp.other.test", "api.githubcopilot.com"]


@pytest.fixture(scope="session")
def upstream_tls(tmp_path_factory: pytest.TempPathFactory) -> UpstreamTLS:
    """A test CA of the fake vendors' own, trusted by the proxy through --upstream-ca only."""
    directory = tmp_path_factory.mktemp("upstream-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("*.zendesk.com", *[host for _, hosts in VENDORS.values()
                                             for host in hosts], *MCP_HOSTS)
    tls = UpstreamTLS(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca_pem))
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tls.cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(tls.key_pem))
    return tls


@pytest.fixture(scope="session")
def vendors(upstream_tls: UpstreamTLS) -> Iterator[dict[str, Vendor]]:
    """Every fake vendor, each on its own loopback port, for the whole session."""
    with contextlib.ExitStack() as stack:
        started = {}
        for name, (factory, hosts) in VENDORS.items():
            fake = factory()
            server = stack.enter_context(
                HTTPSFake(fake.app, upstream_tls.cert_pem, upstream_tls.key_pem))
            started[name] = Vendor(fake, server, hosts)
        yield started


@pytest.fixture(scope="session")
def zendesk(vendors: dict[str, Vendor]) -> tuple[FakeZendesk, HTTPSFake]:
    return vendors["zendesk"].fake, vendors["zendesk"].server


def start_proxy(workdir: Path, upstream_tls: UpstreamTLS, vendors: dict[str, Vendor],
                *extra: str, config: str = CONFIG) -> ProxyProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "hitl.yaml").write_text(config)
    resolve = [arg for vendor in vendors.values() for host in vendor.hosts
               for arg in ("--resolve", f"{host}=127.0.0.1:{vendor.server.port}")]
    return ProxyProcess(workdir, [
        "--config", str(workdir / "hitl.yaml"),
        "--upstream-ca", str(upstream_tls.ca_pem),
        *resolve,
        *extra,
    ], token=ALICE).start()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
          vendors: dict[str, Vendor]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("proxy"), upstream_tls, vendors,
                          "--hold-timeout", "30")
    yield process
    assert process.stop() == 0, process.log()
