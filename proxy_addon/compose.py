"""The composition root: every addon of one `hitl-proxy run`, built in order from typed settings
and opened stores, and the review app.

No sockets, no mitmproxy master: `runner` opens the stores, calls `compose`, adds the addons to
its master (then the review server, which serves the review app on the bound socket) and applies
the option updates. Tests call `compose` directly to check the order and the wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors_schemas import Connector, Matcher
from proxy_addon.agent_auth import AgentAuth
from proxy_addon.config import HitlConfig, agent_owners, loosening_criteria
from proxy_addon.executor import HoldSettings
from proxy_addon.guard import ReviewApiGuard
from proxy_addon.hold import HoldAddons, hold_addons
from proxy_addon.host_binding import HostBinding
from proxy_addon.hygiene import RequestHygiene
from proxy_addon.layers import HttpOnly
from proxy_addon.mcp import McpRules, endpoints_from_config
from proxy_addon.policy import Policy
from proxy_addon.proposals import ProposalBuilder
from proxy_addon.resolve import Resolve
from proxy_addon.sealing import Sealer
from proxy_addon.settings import CA_BUNDLE_FILE, RunSettings, without_password
from proxy_addon.simulate import simulator
from proxy_addon.traffic import TrafficRecorder
from proxy_addon.upstream import UpstreamClient, combined_ca_bundle
from proxy_addon.websocket_gate import WebSocketGate
from review_api import ReviewApp, Reviewers
from review_api.audit import AuditWitness
from review_api.feed import ChangeFeed
from review_api.metrics import Metrics
from review_api.notify import Notifier, Webhook
from review_api.slack import SlackApi, SlackApprovals, SlackFollower, SlackPoster
from review_api.store import ApprovalStore
from review_api.traffic import TrafficStore

# mitmproxy closes idle server connections after tcp_timeout, even while a hook holds a flow.
TCP_TIMEOUT_MARGIN = 60
MIN_TCP_TIMEOUT = 600


@dataclass(frozen=True, slots=True)
class Stores:
    """What `runner` opened before composing: the composition itself does no I/O on them."""

    approvals: ApprovalStore
    traffic: TrafficStore
    sealer: Sealer


@dataclass(frozen=True, slots=True)
class SlackParts:
    """Slack approvals (notifications.slack): the follower posts and updates messages, the
    endpoint is served by the review app at POST /slack/interactions."""

    api: SlackApi
    poster: SlackPoster
    follower: SlackFollower
    approvals: SlackApprovals


@dataclass(frozen=True, slots=True)
class Composition:
    """One run's parts. `addons` is in the order mitmproxy must call them (the review app among
    them, for its feed follower); the review server (it needs the bound socket) goes after
    them, last."""

    addons: tuple[object, ...]
    hold: HoldAddons
    review_app: ReviewApp
    feed: ChangeFeed
    metrics: Metrics
    options: dict[str, object]  # mitmproxy option updates, applied after the addons are added
    ready: str  # the line printed once the review API listens
    slack: SlackParts | None = None


def compose(settings: RunSettings, config: HitlConfig, connectors: dict[str, Connector],
            stores: Stores, *, token_note: str = "") -> Composition:
    """Build every addon and the review app from typed settings and opened stores."""
    store = stores.approvals
    feed = ChangeFeed(store)
    upstream = UpstreamClient(settings.resolve, settings.upstream_ca, config.fetch_timeout)
    resolve = Resolve(settings.resolve)
    metrics = Metrics()
    auth = AgentAuth(config.agents)
    matcher = Matcher(connectors)
    recorder = (TrafficRecorder(stores.traffic, matcher, config.traffic, metrics, resolve)
                if config.traffic.enabled else None)
    mcp = McpRules(endpoints_from_config(config.mcp.servers))
    hold = hold_addons(
        store,
        feed,
        ProposalBuilder(matcher, upstream, Policy(config.policy), config.risk.money_threshold),
        stores.sealer,
        upstream,
        resolve,
        hold_settings(settings, config),
        auth,
        metrics,
        recorder,
        mcp,
    )
    reviewers = Reviewers(config.reviewers)
    owners = agent_owners(config)
    review_url = config.notifications.review_url or settings.review_url
    slack = slack_parts(config, store, feed, reviewers, owners, review_url)
    review_app = ReviewApp(store, reviewers, loosening_criteria(config),
                           hold.propose_revert, metrics, stores.traffic, feed=feed,
                           slack_endpoint=slack.approvals.endpoint if slack else None,
                           simulator=simulator(store), owners=owners)
    notifier = Notifier(
        store,
        [Webhook(h.url, h.format, dict(h.headers)) for h in config.notifications.webhooks],
        review_url, feed=feed, on_failure=metrics.webhook_failures.inc)
    # Order matters: refusals (proxy authentication, HTTP only, host binding, upgrades) come
    # before the hold; the review API guard sees the address --resolve chose; the traffic
    # recorder comes after the hold, so it records what the hold decided.
    addons: tuple[object, ...] = (
        AuditWitness(store),  # the audit chain's head, logged off the data dir
        notifier,
        *([slack.follower] if slack else []),  # follows the feed like the notifier
        HttpOnly(config.limits.max_body, config.passthrough_hosts),
        auth,
        RequestHygiene(),
        HostBinding(resolve),
        WebSocketGate(config.websocket_hosts),
        resolve,
        ReviewApiGuard(settings.review_host, settings.review_port),
        *hold.addons,  # the status host, the hold, the sweeper
        mcp,
        *([recorder] if recorder else []),
        # An addon for its running/done hooks only: it follows the change feed for the live
        # page and the metrics (uvicorn serves it with lifespan off).
        review_app,
    )
    return Composition(addons=addons, hold=hold, review_app=review_app, feed=feed,
                       metrics=metrics, options=mitmproxy_options(settings, config),
                       ready=ready_line(settings, store, token_note), slack=slack)


def slack_parts(config: HitlConfig, store: ApprovalStore, feed: ChangeFeed,
                reviewers: Reviewers, owners: dict[str, str],
                review_url: str) -> SlackParts | None:
    """None without notifications.slack. Everything they keep is in the store, so every
    replica runs the same parts: one claims each change, any answers a click."""
    settings = config.notifications.slack
    if settings is None:
        return None
    api = SlackApi(settings)
    poster = SlackPoster(api, settings, review_url, store)
    return SlackParts(api, poster, SlackFollower(poster, store, feed),
                      SlackApprovals(settings, reviewers, store, api, poster, owners=owners))


def hold_settings(settings: RunSettings, config: HitlConfig) -> HoldSettings:
    limits = config.limits
    return HoldSettings(settings.hold_timeout, config.defaults.expire_after,
                        settings.review_url, limits.max_pending, limits.max_body,
                        limits.max_pending_per_agent, limits.send_within)


def mitmproxy_options(settings: RunSettings, config: HitlConfig) -> dict[str, object]:
    """The options our addons need, whatever --set says (check_options refuses the unsafe)."""
    longest_hold = max([settings.hold_timeout] + [rule.hold_timeout or 0
                                                  for rule in config.policy])
    options: dict[str, object] = {
        # Bytes that do not look like HTTP are parsed as HTTP (and refused), never piped.
        "rawtcp": False,
        "tcp_timeout": max(MIN_TCP_TIMEOUT, int(longest_hold) + TCP_TIMEOUT_MARGIN),
    }
    if settings.upstream_ca is not None:
        bundle = combined_ca_bundle(settings.upstream_ca, settings.data_dir / CA_BUNDLE_FILE)
        options["ssl_verify_upstream_trusted_ca"] = str(bundle)
    return options


def ready_line(settings: RunSettings, store: ApprovalStore, token_note: str = "") -> str:
    """What `run` prints once it serves: where to point agents and reviewers, which store this
    replica uses (no password) and its replica id, as the store's claims name it."""
    ca = Path(settings.certs_dir) / "mitmproxy-ca-cert.pem"
    return (f"hitl-proxy ready: proxy {settings.listen_host}:{settings.listen_port} "
            f"({settings.mode}), review API {settings.review_url}{token_note}, store "
            f"{without_password(store.location)}, replica {store.replica}, agents trust {ca}")
