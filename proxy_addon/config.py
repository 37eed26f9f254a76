"""The YAML config file, parsed at the edge into typed values; unknown keys are errors."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from proxy_addon.settings import check_store_url
from review_api.auth import Reviewer
from review_api.slack.settings import SlackSettings
from review_api.stats import LooseningCriteria

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and problem."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_UNIT_BYTES = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2,
               "gb": 1000**3, "gib": 1024**3}


def _amount(value: object, pattern: re.Pattern[str], units: dict[str, int], example: str,
            zero: bool = False) -> float:
    """A number, or a number with one of the units, as a finite float above zero (or zero)."""
    if isinstance(value, bool):
        raise ValueError(f"expected {example}")
    if isinstance(value, int | float):
        amount = float(value)
    else:
        found = pattern.match(str(value))
        if not found:
            raise ValueError(f"expected {example}, got {value!r}")
        amount = float(found.group(1)) * units[(found.group(2) or "").lower()]
    if not math.isfinite(amount) or amount < 0 or (amount == 0 and not zero):
        raise ValueError(f"expected {example}, {'zero or more' if zero else 'more than zero'}")
    return amount


def parse_duration(value: object) -> float:
    """Seconds from 90, "90s", "15m", "72h" or "7d"."""
    return _amount(value, _DURATION, _UNIT_SECONDS,
                   "a duration such as 90, '15m', '72h' or '7d'")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def parse_size(value: object, zero: bool = False) -> int:
    """Bytes from 65536, "64KiB", "500MB" or "1GB"."""
    return int(_amount(value, _SIZE, _UNIT_BYTES,
                       "a size such as 65536, '64KiB', '500MB' or '1GB'", zero))


def _size_or_zero(value: object) -> int:
    return parse_size(value, zero=True)


Size = Annotated[int, BeforeValidator(parse_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_one_or_many)]


class ChangeCondition(_Strict):
    """A condition on one changed field; every key given must hold."""

    field: Annotated[str, Field(min_length=1)]  # dotted path, as in an approval's changes
    to: Any = None  # the new value equals this
    from_: Annotated[Any, Field(alias="from")] = None  # the old value equals this
    above: float | None = None  # the new value is a number above this
    below: float | None = None  # the new value is a number below this
    increase_above: float | None = None  # new - old is above this

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleMatch(_Strict):
    """Every key given must match; a missing key matches anything."""

    agent: Names | None = None
    task: Names | None = None
    system: Names | None = None
    object: Names | None = None
    operation: Names | None = None  # create, update, delete, upsert, action
    action: Names | None = None  # for operation "action": void, send, merge, ...
    host: str | None = None  # glob, e.g. "*.example.com"
    fields: list[str] | None = None  # the write touches only these fields (or fields below them)
    risk: Literal["low", "medium", "high"] | None = None  # the write's risk is at least this
    changes: list[ChangeCondition] = []  # value conditions, all must hold


class Rule(_Strict):
    match: RuleMatch = RuleMatch()
    action: Literal["allow", "hold", "deny"]
    reviewers: list[str] = []  # groups who may decide; empty: any reviewer
    quorum: Annotated[int, Field(ge=1, le=20)] = 1  # distinct approvals needed
    hold_timeout: Duration | None = None  # how long the agent is held (default: --hold-timeout)
    expire_after: Duration | None = None
    name: str | None = None
    # Nobody decided: remind the routed groups after this long; from escalate_after on, the
    # escalate_to groups may decide too (and are told).
    remind_after: Duration | None = None
    escalate_after: Duration | None = None
    escalate_to: list[str] = []

    @model_validator(mode="after")
    def _escalation(self) -> Self:
        if bool(self.escalate_after) != bool(self.escalate_to):
            raise ValueError("escalate_after and escalate_to go together")
        return self


class Agent(_Strict):
    """An agent identified by proxy authentication (HTTPS_PROXY=http://name:secret@host:port)."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[^:\s]+$")]
    secret: Annotated[str | None, Field(min_length=16, repr=False)] = None
    secret_sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$", repr=False)] = None
    task: str | None = None  # default task type when the agent sends no X-HITL-Task
    # The reviewer answerable for this agent: they never approve its writes (review_api.routing).
    owner: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret is None) == (self.secret_sha256 is None):
            raise ValueError("give exactly one of secret or secret_sha256")
        return self

    @property
    def digest(self) -> bytes:
        if self.secret_sha256 is not None:
            return bytes.fromhex(self.secret_sha256)
        assert self.secret is not None
        return hashlib.sha256(self.secret.encode()).digest()


class RiskSettings(_Strict):
    # A money change smaller than this (|new - old|) is medium rather than high risk.
    money_threshold: float = 0.0
    # Rules whose writes move money never signal ready_to_loosen unless this is set.
    allow_loosening_money: bool = False


def _hosts_only(value: object) -> object:
    """`zendesk: ["support.example.com"]` is short for `zendesk: {hosts: [...]}`."""
    return {"hosts": value} if isinstance(value, list) else value


class ConnectorOverride(_Strict):
    """Extra hosts for a connector, or a site's own API from its OpenAPI description."""

    hosts: list[str] = []
    openapi: Names | None = None  # OpenAPI 3 file(s), relative to the config file
    system: str | None = None  # the name reviewers see (default: the key)
    base_path: str = ""

    @model_validator(mode="after")
    def _described_needs_hosts(self) -> Self:
        if self.openapi is not None and not self.hosts:
            raise ValueError("a connector given by its openapi file needs hosts")
        return self


class Defaults(_Strict):
    expire_after: Duration = 72 * 3600.0  # a pending write nobody decided is never sent after this


class LooseningSettings(_Strict):
    """When GET /api/stats says a task could need fewer approvals (it only advises)."""

    min_decisions: Annotated[int, Field(ge=1)] = 20
    recent: Annotated[int, Field(ge=1)] = 10  # no rejection among the last this many decisions
    # Of the approved writes, at most this share edited by a reviewer, and this share reverted.
    max_edit_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.1
    max_revert_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.05


class Limits(_Strict):
    max_pending: Annotated[int, Field(ge=1)] = 10_000  # more pending writes are answered 429
    store_timeout: Duration = 5.0  # a store locked longer than this refuses writes with 503
    max_body: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024  # larger request bodies get 413
    # One agent's flood must not stop the others: its writes past this many pending get 429.
    max_pending_per_agent: Annotated[int, Field(ge=1)] = 1_000
    # An approved write is sent within this long, or it becomes failed (never stuck approved).
    send_within: Duration = 300.0
    # A replica's in-flight sends outlive its last heartbeat (every third of this) this long;
    # then another replica marks them outcome_unknown. Longer: slower recovery after a crash.
    replica_lease: Annotated[Duration, Field(ge=3.0, le=3600.0)] = 30.0


class WebhookConfig(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    format: Literal["json", "slack"] = "json"
    headers: dict[str, str] = {}


class Notifications(_Strict):
    review_url: str | None = None  # base of the links in messages; default: the review address
    webhooks: list[WebhookConfig] = []
    slack: SlackSettings | None = None  # approvals posted to Slack and decided there


class Retention(_Strict):
    """Traffic older or beyond this is pruned in the background (never approvals or audit)."""

    max_age: Duration | None = 90 * 86400.0
    max_size: Size | None = 1024**3


class TrafficSettings(_Strict):
    """The record of every request through the proxy, for security teams."""

    enabled: bool = True
    # Bodies are stored masked: none, those of writes, or all; body_hosts adds every body to
    # and from these hosts (globs).
    bodies: Literal["none", "writes", "all"] = "none"
    body_hosts: list[str] = []
    max_body: Annotated[int, BeforeValidator(_size_or_zero)] = 64 * 1024  # 0: no bodies
    retention: Retention = Retention()
    prune_every: Duration = 600.0
    # A hard bound on the file: past it, reads pass unrecorded and writes are refused.
    max_file_size: Size | None = None


class McpServer(_Strict):
    """A remote MCP server (streamable HTTP): what reviewers call it, which tools read."""

    url: Annotated[str, Field(pattern=r"^https://[^/?#]+(/[^?#]*)?$")]
    # Take the server's own readOnlyHint annotations as reads (default: only for the vendors'
    # servers the project ships, GitHub's and Stripe's).
    trust_annotations: bool | None = None
    read_tools: list[str] = []  # tools that only read, whatever the server says


class McpSettings(_Strict):
    servers: dict[str, McpServer] = {}


def _store_url(value: object) -> object:
    return check_store_url(value) if isinstance(value, str) else value


class HitlConfig(_Strict):
    # Where approvals, audit and traffic live (same as --store, which wins); default: SQLite
    # in the data dir. Replicas share one postgresql:// store.
    store: Annotated[str | None, BeforeValidator(_store_url)] = None
    reviewers: list[Reviewer] = []
    agents: list[Agent] = []
    policy: list[Rule] = []
    risk: RiskSettings = RiskSettings()
    loosening: LooseningSettings = LooseningSettings()
    limits: Limits = Limits()
    notifications: Notifications = Notifications()
    traffic: TrafficSettings = TrafficSettings()
    # Hosts tunnelled without TLS interception: nothing to them is seen, held or recorded.
    passthrough_hosts: list[str] = []
    # Hosts an agent may open WebSocket connections to (globs); their messages are not reviewed.
    websocket_hosts: list[str] = []
    connectors: dict[str, Annotated[ConnectorOverride, BeforeValidator(_hosts_only)]] = {}
    connectors_dir: Path | None = None  # more connector files, next to the built-in ones
    defaults: Defaults = Defaults()
    mcp: McpSettings = McpSettings()
    fetch_timeout: Duration = Field(default=10.0)

    def check(self) -> None:
        """Refuse configs that look valid but cannot work (a ValueError names the key)."""
        for kind, names in (("reviewers", [r.name for r in self.reviewers]),
                            ("agents", [a.name for a in self.agents])):
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(f"{kind}: name(s) used twice: {duplicates}")
        reviewer_digests = {reviewer.digest for reviewer in self.reviewers}
        for agent in self.agents:
            if agent.digest in reviewer_digests:
                raise ValueError(f"agents: {agent.name}'s secret is also a reviewer's token; "
                                 "an agent's credentials must never decide")
        reviewer_names = {reviewer.name for reviewer in self.reviewers}
        for agent in self.agents:
            if agent.owner is not None and agent.owner not in reviewer_names:
                raise ValueError(f"agents: {agent.name}'s owner {agent.owner!r} is not a "
                                 f"configured reviewer; known: {sorted(reviewer_names)}")
        if self.notifications.slack is not None:
            self.notifications.slack.check(self.reviewers)
        traffic = self.traffic
        if traffic.max_file_size is not None:
            if traffic.max_file_size < 64 * 1024:
                raise ValueError("traffic.max_file_size: at least 64KiB")
            bound = traffic.retention.max_size
            if bound is not None and bound >= traffic.max_file_size:
                raise ValueError("traffic.retention.max_size must be below "
                                 "traffic.max_file_size, or pruning could never make room")
        for index, rule in enumerate(self.policy):
            if rule.action != "hold" or not self.reviewers:
                continue
            able = [r.name for r in self.reviewers if r.may_decide(rule.reviewers)]
            if len(able) < rule.quorum:
                where = rule.name or f"policy[{index}]"
                groups = rule.reviewers or "any group"
                raise ValueError(
                    f"policy: {where} needs {rule.quorum} distinct approval(s) from "
                    f"{groups} but only {len(able)} reviewer(s) can decide it: {able}")


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = f" (and {error.error_count() - 1} more problems)" if error.error_count() > 1 else ""
    return f"{where}: {message}{more}"


def load_config(path: Path | None) -> HitlConfig:
    if path is None:
        return HitlConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: cannot read it: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    try:
        config = HitlConfig.model_validate(raw)
        config.check()
    except ValidationError as exc:
        raise ConfigError(f"config file {path}: {_describe(exc)}") from exc
    except ValueError as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    return config


def agent_owners(config: HitlConfig) -> dict[str, str]:
    """Agent name -> the reviewer who owns it: ReviewApp's `owners` (review_api.routing)."""
    return {agent.name: agent.owner for agent in config.agents if agent.owner is not None}


def loosening_criteria(config: HitlConfig) -> LooseningCriteria:
    loosening = config.loosening
    return LooseningCriteria(loosening.min_decisions, loosening.recent,
                             config.risk.allow_loosening_money, loosening.max_edit_rate,
                             loosening.max_revert_rate)
