"""The composition root: addons in the order mitmproxy must call them, options and settings wired
from typed values, stores opened (or refused, naming the store) before anything listens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from connectors_schemas import load_connectors
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.compose import Composition, Stores, compose, hold_settings
from proxy_addon.config import HitlConfig
from proxy_addon.guard import ReviewApiGuard
from proxy_addon.hold import HoldWrites
from proxy_addon.host_binding import HostBinding
from proxy_addon.hygiene import RequestHygiene
from proxy_addon.layers import HttpOnly
from proxy_addon.mcp import McpRules
from proxy_addon.resolve import Resolve
from proxy_addon.runner import StartupError, close_stores, open_stores
from proxy_addon.sealing import KEY_ENV, KEY_FILE
from proxy_addon.settings import RunSettings
from proxy_addon.status_host import StatusHost
from proxy_addon.sweeper import Sweeper
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.websocket_gate import WebSocketGate
from review_api import Proposal
from review_api.audit import AuditWitness
from review_api.notify import Notifier
from review_api.slack import SlackFollower

CONNECTORS = load_connectors()


def settings_for(tmp_path: Path, **changes: object) -> RunSettings:
    values: dict[str, object] = dict(
        config_path=None, listen_host="127.0.0.1", listen_port=18080, review_host="127.0.0.1",
        review_port=18081, data_dir=tmp_path / "data", certs_dir=tmp_path / "certs",
        mode="regular", upstream_ca=None, resolve={"acme.zendesk.com": ("127.0.0.1", 9443)},
        hold_timeout=42.0)
    values.update(changes)
    return RunSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    opened = await open_stores(settings_for(tmp_path), HitlConfig())
    try:
        yield opened
    finally:
        await close_stores(opened)


def text_of(path: Path) -> str:
    return path.read_text()


def kinds(composition: Composition) -> list[type]:
    return [type(addon) for addon in composition.addons]


async def test_refusals_come_before_the_hold_and_the_recorder_after_it(
        tmp_path: Path, stores: Stores) -> None:
    composition = compose(settings_for(tmp_path), HitlConfig(), CONNECTORS, stores)
    order = kinds(composition)
    assert len(order) == len(set(order)), order  # each addon once
    hold = order.index(HoldWrites)
    for refusal in (HttpOnly, AgentAuth, RequestHygiene, HostBinding, WebSocketGate,
                    ReviewApiGuard):
        assert order.index(refusal) < order.index(StatusHost) < hold, (refusal, order)
    assert composition.hold.hold is composition.addons[hold]
    assert Sweeper in order
    # The guard sees the address --resolve chose, so it comes after Resolve.
    assert order.index(Resolve) < order.index(ReviewApiGuard)
    # The recorder records what the hold decided; MCP rules are read by the hold.
    assert hold < order.index(McpRules) < order.index(TrafficRecorder)
    assert order[:2] == [AuditWitness, Notifier]
    # The review app follows the change feed from its running hook (the live page, metrics).
    assert composition.addons[-1] is composition.review_app


async def test_traffic_disabled_leaves_the_recorder_out(tmp_path: Path, stores: Stores) -> None:
    config = HitlConfig.model_validate({"traffic": {"enabled": False}})
    composition = compose(settings_for(tmp_path), config, CONNECTORS, stores)
    assert TrafficRecorder not in kinds(composition)


async def test_parts_share_the_store_the_metrics_and_the_settings(
        tmp_path: Path, stores: Stores) -> None:
    settings = settings_for(tmp_path, review_host="127.0.0.2", review_port=18099)
    config = HitlConfig.model_validate({
        "notifications": {"webhooks": [{"url": "https://hooks.example/x"}]},
        "limits": {"max_pending": 7, "max_pending_per_agent": 3, "send_within": "2m",
                   "max_body": 4096}, "defaults": {"expire_after": "1h"}})
    composition = compose(settings, config, CONNECTORS, stores)
    by_kind = {type(addon): addon for addon in composition.addons}
    assert composition.review_app.store is stores.approvals
    assert composition.review_app.metrics is composition.metrics
    assert composition.review_app.traffic is stores.traffic
    notifier = by_kind[Notifier]
    assert isinstance(notifier, Notifier)
    assert notifier.store is stores.approvals and notifier.feed is composition.feed
    assert notifier.review_url == "http://127.0.0.2:18099"  # no notifications.review_url
    assert [hook.url for hook in notifier.hooks] == ["https://hooks.example/x"]
    guard = by_kind[ReviewApiGuard]
    assert isinstance(guard, ReviewApiGuard)
    assert guard.review_port == 18099 and guard.lands_on_review_api("127.0.0.2")
    assert by_kind[HttpOnly].max_body == 4096  # type: ignore[attr-defined]
    held = hold_settings(settings, config)
    assert (held.hold_timeout, held.expire_after, held.review_url) == (
        42.0, 3600.0, "http://127.0.0.2:18099")
    assert (held.max_pending, held.max_pending_per_agent, held.send_within, held.max_body) == (
        7, 3, 120.0, 4096)


async def test_options_cover_the_longest_hold_and_trust_the_upstream_ca(
        tmp_path: Path, stores: Stores) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "upstream-ca.pem"))
    settings = settings_for(tmp_path, upstream_ca=tmp_path / "upstream-ca.pem")
    config = HitlConfig.model_validate({"policy": [
        {"match": {"system": "Stripe"}, "action": "hold", "hold_timeout": "15m"}]})
    options = compose(settings, config, CONNECTORS, stores).options
    assert options["rawtcp"] is False
    assert options["tcp_timeout"] == 900 + 60  # the longest hold, plus a margin
    bundle = Path(str(options["ssl_verify_upstream_trusted_ca"]))
    assert bundle.parent == settings.data_dir
    assert ca.cert_pem.bytes().decode().strip() in text_of(bundle)
    short = compose(settings_for(tmp_path), HitlConfig(), CONNECTORS, stores).options
    assert short["tcp_timeout"] == 600 and "ssl_verify_upstream_trusted_ca" not in short


async def test_the_ready_line_names_the_store_and_the_replica(
        tmp_path: Path, stores: Stores) -> None:
    ready = compose(settings_for(tmp_path), HitlConfig(), CONNECTORS, stores,
                    token_note=" (reviewer 'admin')").ready
    assert ready.startswith("hitl-proxy ready: proxy 127.0.0.1:18080 (regular), review API "
                            "http://127.0.0.1:18081 (reviewer 'admin'), store ")
    assert f"store {stores.approvals.location}, replica {stores.approvals.replica}," in ready
    assert "hitl.sqlite3" in stores.approvals.location and stores.approvals.replica
    assert ready.endswith(f"agents trust {tmp_path / 'certs' / 'mitmproxy-ca-cert.pem'}")


async def test_replica_lease_reaches_the_store(tmp_path: Path) -> None:
    config = HitlConfig.model_validate({"limits": {"replica_lease": "45s"}})
    opened = await open_stores(settings_for(tmp_path), config)
    try:
        assert opened.approvals.lease == 45.0
    finally:
        await close_stores(opened)


@pytest.mark.parametrize(("url", "named"), [
    ("mysql://hitl:s3cret@db.example/hitl", "store mysql://hitl:***@db.example/hitl"),
    ("postgresql://hitl:s3cret@127.0.0.1:1/hitl", "store postgresql://hitl:***@127.0.0.1:1/hitl"),
])
async def test_a_bad_store_url_fails_start_up_naming_it_without_its_password(
        tmp_path: Path, url: str, named: str) -> None:
    with pytest.raises(StartupError) as raised:
        await open_stores(settings_for(tmp_path, store_url=url), HitlConfig())
    message = str(raised.value)
    assert message.startswith(named + ": "), message
    assert "s3cret" not in message and "\n" not in message


async def test_replicas_of_a_shared_store_must_share_the_seal_key(
        tmp_path: Path, postgres_url: str) -> None:
    first = settings_for(tmp_path / "a", store_url=postgres_url)
    opened = await open_stores(first, HitlConfig())  # the first replica creates the key
    try:
        assert (first.data_dir / KEY_FILE).exists()
        await opened.approvals.create(Proposal(method="PUT", url="https://x.test/1",
                                               fingerprint="f" * 64))
    finally:
        await close_stores(opened)
    second = settings_for(tmp_path / "b", store_url=postgres_url)
    with pytest.raises(StartupError, match=f"copy {KEY_FILE} from that replica's data dir"):
        await open_stores(second, HitlConfig())
    assert not (second.data_dir / KEY_FILE).exists()  # no key of its own was made
    second.data_dir.mkdir(parents=True, exist_ok=True)
    (second.data_dir / KEY_FILE).write_bytes((first.data_dir / KEY_FILE).read_bytes())
    opened = await open_stores(second, HitlConfig())
    try:
        assert len(await opened.approvals.list()) == 1
        assert opened.approvals.replica != ""
    finally:
        await close_stores(opened)


async def test_slack_is_wired_when_configured(tmp_path: Path, stores: Stores) -> None:
    plain = compose(settings_for(tmp_path), HitlConfig(), CONNECTORS, stores)
    assert plain.slack is None and SlackFollower not in kinds(plain)
    config = HitlConfig.model_validate({
        "reviewers": [{"name": "alice", "token": "alice-token-000000000", "groups": ["support"],
                       "slack_id": "U0ALICE"}],
        "agents": [{"name": "bot", "secret": "bot-secret-0000000000", "owner": "alice"}],
        "notifications": {"slack": {"bot_token": "xoxb-test-token", "signing_secret":
                                    "test-signing-secret", "channels": {"support": "C0SUP"}}}})
    composition = compose(settings_for(tmp_path), config, CONNECTORS, stores)
    assert composition.slack is not None
    follower = composition.slack.follower
    order = kinds(composition)
    assert order[:3] == [AuditWitness, Notifier, SlackFollower]
    assert follower in composition.addons and follower.poster is composition.slack.poster
    assert composition.review_app.owners == {"bot": "alice"}
    paths = {route.path for route in composition.review_app.app.routes}  # type: ignore[attr-defined]
    assert "/slack/interactions" in paths
    assert "/slack/interactions" not in {
        route.path for route in plain.review_app.app.routes}  # type: ignore[attr-defined]
