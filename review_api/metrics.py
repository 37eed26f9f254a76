"""Prometheus metrics, served at GET /metrics on the review port (no secrets in them).

Each replica serves its own: counters count what this replica did (the decisions its API
committed, the sends it made), so summing a counter over replicas counts each event once; the
pending gauge and the audit head are read from the store, so every replica shows the same.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from review_api.models import Status
from review_api.store import GENESIS_HASH, ApprovalStore, NotFound, StatusChange

DECIDED = {Status.approved, Status.rejected, Status.expired}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hitl_requests", "Requests through the proxy, by what the proxy decided",
            ["decision"], registry=self.registry)
        self.pending = Gauge("hitl_holds_pending", "Writes waiting for a reviewer",
                             registry=self.registry)
        self.time_to_decision = Histogram(
            "hitl_time_to_decision_seconds", "From a write being held to its decision",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=self.registry)
        self.upstream_errors = Counter("hitl_upstream_errors",
                                       "Approved writes whose sending failed",
                                       registry=self.registry)
        self.store_errors = Counter("hitl_store_errors", "Writes refused: the store failed",
                                    registry=self.registry)
        self.webhook_failures = Counter("hitl_webhook_failures",
                                        "Notifications given up after their retries",
                                        registry=self.registry)
        self.traffic_recorded = Counter("hitl_traffic_recorded",
                                        "Requests written to the traffic record",
                                        registry=self.registry)
        self.traffic_dropped = Counter("hitl_traffic_dropped",
                                       "Reads not recorded: the record could not be written",
                                       registry=self.registry)
        self.traffic_failures = Counter("hitl_traffic_failures",
                                        "Batches the traffic record could not write",
                                        registry=self.registry)
        # The audit chain's head, for a scraper to keep where the data dir's owner cannot
        # rewrite it: `audit verify --head SEQ:HASH` checks the log against it later.
        self.audit_head_seq = Gauge("hitl_audit_head_seq", "Sequence of the newest audit entry",
                                    registry=self.registry)
        self.audit_head = Info("hitl_audit_head", "Hash of the newest audit entry",
                               registry=self.registry)
        # Every series exists from the start; the children are looked up once, off the hot path.
        self.counted = {decision: self.requests.labels(decision)
                        for decision in ("passed", "held", "allowed", "denied", "refused")}

    async def on_change(self, change: StatusChange, store: ApprovalStore) -> None:
        """Change-feed reader: time to decision, and failed sends, of this replica's commits
        only (another replica counts its own)."""
        if change.replica != store.replica:
            return
        if change.status is Status.failed:
            self.upstream_errors.inc()
        elif change.status in DECIDED and change.event != "vote":
            try:
                approval = await store.get(change.approval_id)
            except NotFound:
                return
            if approval.decided_at is not None:
                seconds = (approval.decided_at - approval.created_at).total_seconds()
                self.time_to_decision.observe(max(seconds, 0.0))

    def render(self, pending: int, audit_head: tuple[int, str] | None = None) -> bytes:
        self.pending.set(pending)
        seq, digest = audit_head or (0, GENESIS_HASH)
        self.audit_head_seq.set(seq)
        self.audit_head.info({"seq": str(seq), "hash": digest})
        return generate_latest(self.registry)
