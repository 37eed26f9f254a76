from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.e2e.harness import ProxyProcess
from tests.fakes.server import HTTPSFake
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


@pytest.fixture(scope="session")
def upstream_tls(tmp_path_factory: pytest.TempPathFactory) -> UpstreamTLS:
    """A test CA of the fake vendors' own, trusted by the proxy through --upstream-ca only."""
    directory = tmp_path_factory.mktemp("upstream-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("acme.zendesk.com", "*.zendesk.com", "api.unknown-vendor.test")
    tls = UpstreamTLS(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca_pem))
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_pem))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(tls.cert_pem), append=True)
    cert.private_key_pem.write_to_path(str(tls.key_pem))
    return tls


@pytest.fixture(scope="module")
def zendesk(upstream_tls: UpstreamTLS) -> Iterator[tuple[FakeZendesk, HTTPSFake]]:
    fake = FakeZendesk()
    with HTTPSFake(fake.app, upstream_tls.cert_pem, upstream_tls.key_pem) as server:
        yield fake, server


def start_proxy(workdir: Path, upstream_tls: UpstreamTLS, zendesk_port: int,
                *extra: str, config: str = CONFIG) -> ProxyProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "hitl.yaml").write_text(config)
    return ProxyProcess(workdir, [
        "--config", str(workdir / "hitl.yaml"),
        "--upstream-ca", str(upstream_tls.ca_pem),
        "--resolve", f"acme.zendesk.com=127.0.0.1:{zendesk_port}",
        "--resolve", f"api.unknown-vendor.test=127.0.0.1:{zendesk_port}",
        *extra,
    ], token=ALICE).start()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream_tls: UpstreamTLS,
          zendesk: tuple[FakeZendesk, HTTPSFake]) -> Iterator[ProxyProcess]:
    process = start_proxy(tmp_path_factory.mktemp("proxy"), upstream_tls, zendesk[1].port,
                          "--hold-timeout", "30")
    yield process
    assert process.stop() == 0, process.log()
