"""Starts mitmproxy and the review API on one event loop in one process, and stops them."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from mitmproxy import exceptions
from mitmproxy.certs import CertStore
from mitmproxy.options import Options
from mitmproxy.tools.dump import DumpMaster

from connectors_schemas import Connector, Matcher
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.cli import RunSettings
from proxy_addon.config import HitlConfig, loosening_criteria
from proxy_addon.guard import ReviewApiGuard
from proxy_addon.hold import HoldSettings, HoldWrites
from proxy_addon.host_binding import HostBinding
from proxy_addon.hygiene import RequestHygiene
from proxy_addon.layers import HttpOnly, UnsafeOptionError, check_options
from proxy_addon.mcp import McpRules, endpoints_from_config
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder
from proxy_addon.resolve import Resolve
from proxy_addon.review_server import ReviewServer
from proxy_addon.sealing import (
    Sealer,
    SealError,
    audit_key,
    key_location_warning,
    load_or_create_key,
)
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.upstream import UpstreamClient, combined_ca_bundle
from proxy_addon.websocket_gate import WebSocketGate
from review_api import ReviewApp, Reviewers, Store, StoreError
from review_api.audit import AuditWitness
from review_api.metrics import Metrics
from review_api.notify import Notifier, Webhook
from review_api.traffic import TrafficError, TrafficStore

logger = logging.getLogger("hitl_proxy")
DB_FILE = "hitl.sqlite3"
TRAFFIC_FILE = "traffic.sqlite3"
CA_BUNDLE_FILE = "upstream-ca-bundle.pem"
# mitmproxy closes idle server connections after tcp_timeout, even while a hook holds a flow.
TCP_TIMEOUT_MARGIN = 60


class StartupError(RuntimeError):
    pass


def _configure_logging() -> None:
    """As mitmdump does: mitmproxy's termlog filters by --set termlog_verbosity."""
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("asyncio", "hpack", "aiosqlite", "httpcore", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def serve(settings: RunSettings, config: HitlConfig, connectors: dict[str, Connector],
                review_socket: socket.socket, token_note: str) -> int:
    _configure_logging()
    try:
        seal_key = load_or_create_key(settings.data_dir)
    except (SealError, OSError) as exc:
        review_socket.close()
        raise StartupError(str(exc)) from exc
    store = Store(settings.data_dir / DB_FILE, busy_timeout=config.limits.store_timeout,
                  audit_key=audit_key(seal_key))
    traffic_store = TrafficStore(settings.data_dir / TRAFFIC_FILE,
                                 approvals=settings.data_dir / DB_FILE,
                                 max_file_bytes=config.traffic.max_file_size,
                                 busy_timeout=config.limits.store_timeout)
    try:
        await store.open()
        await traffic_store.open()
        sealer = Sealer(seal_key)
        settings.certs_dir.mkdir(parents=True, exist_ok=True)
        CertStore.from_store(settings.certs_dir, "mitmproxy", 2048)
    except (StoreError, TrafficError, SealError, OSError) as exc:
        review_socket.close()
        await store.close()
        await traffic_store.close()
        raise StartupError(str(exc)) from exc

    opts = Options(listen_host=settings.listen_host, listen_port=settings.listen_port,
                   mode=[settings.mode], confdir=str(settings.certs_dir))
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    if warning := key_location_warning(settings.data_dir):
        logger.warning(warning)
    upstream = UpstreamClient(settings.resolve, settings.upstream_ca, config.fetch_timeout)
    review_url = f"http://{settings.review_host}:{settings.review_port}"
    resolve = Resolve(settings.resolve)
    metrics = Metrics()
    auth = AgentAuth(config.agents)
    matcher = Matcher(connectors)
    recorder = (TrafficRecorder(traffic_store, matcher, config.traffic, metrics, resolve)
                if config.traffic.enabled else None)
    mcp = McpRules(endpoints_from_config(config.mcp.servers))
    hold = HoldWrites(
        store,
        ProposalBuilder(matcher, upstream, Policy(config.policy), config.risk.money_threshold),
        sealer,
        upstream,
        resolve,
        HoldSettings(settings.hold_timeout, config.defaults.expire_after, review_url,
                     config.limits.max_pending, config.limits.max_body,
                     config.limits.max_pending_per_agent, config.limits.send_within),
        auth,
        metrics,
        recorder,
        mcp,
    )
    ready = (f"hitl-proxy ready: proxy {settings.listen_host}:{settings.listen_port} "
             f"({settings.mode}), review API {review_url}{token_note}, agents trust "
             f"{settings.certs_dir / 'mitmproxy-ca-cert.pem'}")
    review_app = ReviewApp(store, Reviewers(config.reviewers), loosening_criteria(config),
                           hold.propose_revert, metrics, traffic_store)
    review = ReviewServer(review_app.app, review_socket, ready, review_app.broadcaster.closing)
    notifier = Notifier(
        [Webhook(h.url, h.format, dict(h.headers)) for h in config.notifications.webhooks],
        config.notifications.review_url or review_url,
        on_failure=metrics.webhook_failures.inc, audit_head=lambda: store.head)
    store.subscribe(notifier.publish)
    master.addons.add(AuditWitness(store))  # the audit chain's head, logged off the data dir
    guard = ReviewApiGuard(settings.review_host, settings.review_port)
    # Order matters: refusals (authentication, host binding, upgrades) come before the hold,
    # and the review API guard sees the address --resolve chose.
    master.addons.add(notifier, HttpOnly(config.limits.max_body, config.passthrough_hosts),
                      auth, RequestHygiene(), HostBinding(resolve),
                      WebSocketGate(config.websocket_hosts),
                      resolve, guard, hold, mcp,
                      *([recorder] if recorder else []), review)

    updates: dict[str, object] = {
        # Bytes that do not look like HTTP are parsed as HTTP (and refused), never piped.
        "rawtcp": False,
        "tcp_timeout": max(600, int(max([settings.hold_timeout] + [
            rule.hold_timeout or 0 for rule in config.policy])) + TCP_TIMEOUT_MARGIN),
    }
    if settings.upstream_ca is not None:
        bundle = combined_ca_bundle(settings.upstream_ca, settings.data_dir / CA_BUNDLE_FILE)
        updates["ssl_verify_upstream_trusted_ca"] = str(bundle)
    try:
        opts.update(**updates)
        if settings.sets:
            opts.set(*settings.sets)
        check_options(opts)
    except (exceptions.OptionsError, UnsafeOptionError) as exc:
        review_socket.close()
        await store.close()
        await traffic_store.close()
        raise StartupError(f"--set: {exc}" if isinstance(exc, exceptions.OptionsError)
                           else str(exc)) from exc

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    try:
        await master.run()
    finally:
        await traffic_store.close()
        await store.close()
    return 0
