"""The traffic record's store, filters, retention, masking and recorder.

Store-level tests run on both backends: a real SQLite file and a real PostgreSQL database
(tests/postgres_server.py), each with the approvals store of the same kind beside it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from mitmproxy.test import taddons, tflow, tutils

from connectors_schemas import Matcher, load_connectors
from proxy_addon.config import ConfigError, TrafficSettings, load_config
from proxy_addon.flow_note import note
from proxy_addon.traffic import TrafficRecorder, masked_body
from review_api import Decision, Proposal, Risk
from review_api.metrics import Metrics
from review_api.models import parse_moment
from review_api.store import ApprovalStore, PostgresStore, SqliteStore
from review_api.traffic import (
    POSTGRES,
    SQLITE,
    TrafficError,
    TrafficFilter,
    TrafficRow,
    TrafficStore,
    traffic_store_from_url,
)
from review_api.traffic_export import har_entry
from review_api.traffic_pg import PostgresTrafficStore
from review_api.traffic_sqlite import SqliteTrafficStore
from tests.postgres_server import PostgresServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def row(minutes_ago: float = 0, **fields: object) -> TrafficRow:
    base = TrafficRow(at=(NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="microseconds"),
                      method="GET", scheme="https", host="acme.zendesk.com", port=443,
                      path="/api/v2/tickets/1.json", decision="passed", agent="triage-bot",
                      status=200, upstream_status=200)
    return base._replace(**fields)


class Backend:
    """One kind of database: makes traffic records (replicas) and the approvals store beside
    them, and closes all it made."""

    def __init__(self, kind: str, tmp_path: Path, url: str | None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.url = url
        self.opened: list[TrafficStore | ApprovalStore] = []

    async def approvals(self) -> ApprovalStore:
        store: ApprovalStore = (SqliteStore(self.tmp_path / "hitl.sqlite3") if self.url is None
                                else PostgresStore(self.url))
        await store.open()
        self.opened.append(store)
        return store

    async def traffic(self, read_only: bool = False) -> TrafficStore:
        store = traffic_store_from_url(self.url, self.tmp_path)
        await store.open(read_only=read_only)
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in reversed(self.opened):
            await store.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    found = Backend(request.param, tmp_path, url)
    yield found
    await found.close()


@pytest.fixture
async def store(backend: Backend) -> TrafficStore:
    """A traffic record with its approvals store opened first, as `hitl-proxy run` does."""
    approvals = await backend.approvals()
    found = await backend.traffic()
    found.approvals_store = approvals  # type: ignore[attr-defined]
    return found


async def test_filters_match_what_they_say(store: TrafficStore) -> None:
    await store.append([
        row(50, agent="a", method="GET"),
        row(40, agent="b", host="api.stripe.com", system="Stripe", method="POST",
            decision="held", status=403, upstream_status=None, risk_level="high",
            risk_flags=",money,"),
        row(30, agent="a", decision="denied", status=403, upstream_status=None,
            risk_level="medium", risk_flags=",destructive,"),
        row(20, agent="c", status=502, error="upstream refused"),
    ])

    async def agents(**kwargs: object) -> list[str | None]:
        found = await store.query(TrafficFilter(**kwargs), newest_first=False)  # type: ignore[arg-type]
        return [entry["agent"] for entry in found]

    assert await agents() == ["a", "b", "a", "c"]
    assert await agents(agent=("a",)) == ["a", "a"]
    assert await agents(host=("API.STRIPE.COM", "nowhere")) == ["b"]
    assert await agents(decision=("held", "denied")) == ["b", "a"]
    assert await agents(status="4xx") == ["b", "a"]
    assert await agents(status="502") == ["c"]
    assert await agents(risk="money") == ["b"]
    assert await agents(risk="medium") == ["b", "a"]  # at least medium
    assert await agents(since=(NOW - timedelta(minutes=35)).isoformat(),
                        until=(NOW - timedelta(minutes=20)).isoformat()) == ["a"]
    assert await agents(system=("Stripe",), agent=("a",)) == []


async def test_recent_reads_are_the_agents_passed_reads_before_the_write_newest_first(
        store: TrafficStore) -> None:
    await store.append([
        row(30, record_id="too-old"),
        row(9, record_id="1", object_type="ticket", system="Zendesk"),
        row(8, record_id="other-agent", agent="billing-bot"),
        row(7, record_id="a-write", method="PUT", decision="held"),
        row(6, record_id="refused", decision="refused", status=403),
        row(5, record_id="2", method="HEAD"),
        row(4, record_id="anonymous", agent=None),
        row(3, record_id="a-post-read", method="POST"),
        row(2, record_id="3", method="OPTIONS"),
        row(-1, record_id="after-the-write"),
    ])
    before = NOW.isoformat()

    found = await store.recent_reads("triage-bot", before, within=600)

    assert [entry.record_id for entry in found] == ["3", "2", "1"]
    assert (found[-1].system, found[-1].object_type, found[-1].at) == (
        "Zendesk", "ticket", parse_moment((NOW - timedelta(minutes=9)).isoformat()))
    assert [e.record_id for e in await store.recent_reads("triage-bot", before, 600, limit=2)
            ] == ["3", "2"]
    # An agent nobody named: the reads nobody was named for, not every agent's.
    assert [e.record_id for e in await store.recent_reads(None, before, 600)] == ["anonymous"]
    # `before` in another spelling of the same moment (Z, another offset) reads the same.
    later = (NOW + timedelta(minutes=2)).astimezone(timezone(timedelta(hours=1)))
    assert [e.record_id for e in await store.recent_reads(
        "triage-bot", later.isoformat(), within=12 * 60)] == ["after-the-write", "3", "2", "1"]
    assert [e.record_id for e in await store.recent_reads(
        "triage-bot", "2026-11-25T12:00:00Z", within=150)] == ["3"]
    assert await store.recent_reads("triage-bot", "2026-11-25T12:00:00Z", within=0) == []


async def test_pages_follow_the_cursor_both_ways(store: TrafficStore) -> None:
    await store.append([row(60 - i, record_id=str(i)) for i in range(25)])
    newest = await store.query(TrafficFilter(), limit=10)
    older = await store.query(TrafficFilter(), limit=10, after=newest[-1]["id"])
    assert [e["record_id"] for e in newest + older] == [str(i) for i in range(24, 4, -1)]
    collected = [entry["id"] async for entry in store.iterate(TrafficFilter(), page=7)]
    assert collected == sorted(collected) and len(collected) == 25


async def test_held_entries_show_the_approval_as_it_stands(store: TrafficStore) -> None:
    approvals: ApprovalStore = store.approvals_store  # type: ignore[attr-defined]
    proposal = Proposal(system="Stripe", object_type="refund", operation="create",
                        method="POST", url="https://api.stripe.com/v1/refunds", quorum=2,
                        risk=Risk(level="high", money=True), fingerprint="f" * 64)
    approval = await approvals.create(proposal)
    await approvals.decide(approval.id, Decision.approve, "fin", None)
    await store.append([row(decision="held", approval_id=approval.id, risk_flags=",money,")])
    [entry] = await store.query(TrafficFilter(approved_by="fin"))
    assert entry["approval"] == {"status": "pending", "decided_by": None, "approvers": ["fin"]}
    assert await store.query(TrafficFilter(approvers=2)) == []
    await approvals.decide(approval.id, Decision.approve, "ann", None)
    [entry] = await store.query(TrafficFilter(approvers=2, risk="money"))
    assert entry["approval"]["status"] == "approved"
    assert entry["approval"]["approvers"] == ["fin", "ann"]


async def test_pruning_by_age_keeps_the_young(store: TrafficStore) -> None:
    await store.append([row(minutes) for minutes in (90, 70, 50, 10)])
    assert await store.prune(max_age=3600, max_bytes=None, now=NOW) == 2
    assert [e["at"] for e in await store.query(TrafficFilter(), newest_first=False)] == [
        row(50).at, row(10).at]


async def test_pruning_by_size_drops_the_oldest(store: TrafficStore) -> None:
    # Random bodies: PostgreSQL compresses what it can, and "x" * 2000 would be a few bytes.
    await store.append([row(1000 - i, record_id=str(i), response_body=secrets.token_urlsafe(1500))
                        for i in range(400)])
    grown = await store.size()
    assert grown > 800_000
    deleted = await store.prune(max_age=None, max_bytes=200_000)
    assert 0 < await store.size() <= 200_000
    kept = [int(e["record_id"]) async for e in store.iterate(TrafficFilter())]
    assert deleted + len(kept) == 400
    assert kept == list(range(400 - len(kept), 400))  # the newest stay
    assert await store.count() == len(kept)


async def test_pruning_gives_the_sqlite_file_space_back(tmp_path: Path) -> None:
    store = SqliteTrafficStore(tmp_path / "traffic.sqlite3")
    await store.open()
    try:
        await store.append([row(i, response_body="x" * 2000) for i in range(400)])
        grown = await store.size()
        await store.prune(max_age=None, max_bytes=200_000)
        assert store.path.stat().st_size < grown  # incremental vacuum returned pages
    finally:
        await store.close()


async def test_postgres_reuses_what_pruning_freed_and_size_tracks_the_footprint(
        postgres_url: str) -> None:
    """The table does not shrink on PostgreSQL; pruning (and its VACUUM) keeps it from growing,
    and size() estimates what the rows take on disk, whatever their bodies."""
    store = PostgresTrafficStore(postgres_url)
    await store.open()
    try:
        for body in (None, 600, 1500):
            await store.append([row(i, record_id=str(i), response_body=(
                secrets.token_urlsafe(body) if body else None)) for i in range(3000)])
            assert 0.8 < await store.size() / await store.footprint() < 1.2, body
            await store.prune(max_age=None, max_bytes=0)
            assert await store.count() == 0
        await store.append([row(i, response_body=secrets.token_urlsafe(1500))
                            for i in range(1000)])
        await store.prune(max_age=None, max_bytes=1_000_000)
        assert 990_000 < await store.size() <= 1_000_000  # the newest that fit, no fewer
        settled = await store.footprint()
        for _ in range(3):  # the same volume again and again, pruned to the same bound
            await store.append([row(i, response_body=secrets.token_urlsafe(1500))
                                for i in range(500)])
            await store.prune(max_age=None, max_bytes=1_000_000)
        assert await store.size() <= 1_000_000
        assert await store.footprint() < settled * 1.3
    finally:
        await store.close()


async def test_a_full_file_is_a_clear_error_and_loses_nothing_written(tmp_path: Path) -> None:
    store = SqliteTrafficStore(tmp_path / "traffic.sqlite3", max_file_bytes=64 * 1024)
    await store.open()
    try:
        await store.append([row(record_id="kept")])
        with pytest.raises(TrafficError, match="full"):
            await store.append([row(response_body="y" * 3000) for _ in range(40)])
        assert [e["record_id"] for e in await store.query(TrafficFilter())] == ["kept"]
        await store.append([row(record_id="after")])  # a small batch still fits
    finally:
        await store.close()


def test_moments_are_iso_or_an_age() -> None:
    assert parse_moment("2026-11-24") == "2026-11-24T00:00:00.000000+00:00"
    assert parse_moment("2026-11-24T09:00+02:00") == "2026-11-24T07:00:00.000000+00:00"
    assert parse_moment("2026-11-24T09:00Z") == "2026-11-24T09:00:00.000000+00:00"
    assert parse_moment("24h", now=NOW) == "2026-11-24T12:00:00.000000+00:00"
    assert parse_moment("90m", now=NOW) == "2026-11-25T10:30:00.000000+00:00"
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_moment("yesterday")


def test_filter_problems_name_the_parameter() -> None:
    problems = TrafficFilter(decision=("maybe",), status="99", risk="spicy",
                             source="elsewhere").problems()
    assert [p.split()[0] for p in problems] == ["decision", "status", "risk", "source"]


def test_bodies_are_kept_only_when_they_can_be_masked() -> None:
    nested = json.dumps({"user": {"password": "p1", "name": "Ann"}, "items": [{"api_key": "k"}]})
    assert json.loads(masked_body(nested.encode(), "application/json", 1000) or "") == {
        "user": {"password": "***", "name": "Ann"}, "items": [{"api_key": "***"}]}
    form = masked_body(b"amount=5&client_secret=s3&metadata[api_token]=t",
                       "application/x-www-form-urlencoded; charset=utf-8", 1000)
    assert form == "amount=5&client_secret=***&metadata[api_token]=***"
    lines = masked_body(b'{"token": "a"}\n{"ok": 1}\n', "application/x-ndjson", 1000)
    assert lines == '{"token": "***"}\n{"ok": 1}'
    graphql = masked_body(json.dumps({
        "query": 'mutation($p: String!) { a: login(password: $p, input: {token: "p1"}) { ok } }',
        "variables": {"p": "p1"}}).encode(), "application/json", 1000) or ""
    assert "p1" not in graphql and '"p": "***"' in graphql and 'token: \\"***\\"' in graphql
    parts = masked_body(b'--b\r\nContent-Disposition: form-data; name="password"\r\n\r\np1\r\n'
                        b"--b--\r\n", "multipart/form-data; boundary=b", 1000) or ""
    assert json.loads(parts) == {"parts": [{"name": "password", "value": "***"}]}
    for content, kind in ((b'{"password": "p1",}', "application/json"),  # invalid JSON
                          (b"password=p1", "application/json"),  # a form sent as JSON
                          (b'{"password": "p1"}', None),  # no declared type: not guessed
                          (b"<Password>p1</Password>", "text/xml"),
                          (b"password is p1", "text/plain"),
                          (b"\x89PNG\x00\xff", "image/png"),
                          (b'{"a": ' * 100_000, "application/json")):  # absurd nesting
        kept = masked_body(content, kind, 1000) or ""
        assert "p1" not in kept and "not kept" in kept, kept
    huge = masked_body(b'{"a": "' + b"x" * (5 * 1024 * 1024) + b'"}', "application/json", 10)
    assert huge is not None and "too large to mask" in huge
    assert masked_body(b'{"a": "' + b"x" * 50 + b'"}', "application/json", 10) == (
        '{"a": "xxx... (49 more characters not kept)')
    assert masked_body(b"", "application/json", 1000) is None
    assert masked_body(b"{}", "application/json", 0) is None


def test_har_entry_of_a_failed_request_has_status_zero_and_the_error() -> None:
    entry = {"id": 1, **{name: None for name in (
        "agent", "task", "http_version", "system", "object_type", "record_id", "operation",
        "approval_id", "approval", "upstream_status", "error", "request_type", "response_type",
        "request_body", "response_body", "risk_level", "duration_ms", "status")},
        "at": NOW.isoformat(), "method": "GET", "scheme": "https", "host": "h", "port": 443,
        "path": "/x?a=1", "url": "https://h/x?a=1", "decision": "passed", "source": "agent",
        "request_bytes": 0, "response_bytes": 0, "risk_flags": [],
        "error": "connection refused"}
    har = har_entry(entry)
    assert har["response"]["status"] == 0 and har["response"]["_error"] == "connection refused"
    assert har["request"]["queryString"] == [{"name": "a", "value": "1"}]
    assert har["time"] == 0.0 and "postData" not in har["request"]


def test_traffic_config_errors_name_the_key(tmp_path: Path) -> None:
    for text, message in (
            ("traffic: {max_file_size: 1KB, retention: {max_size: null}}", "at least 64KiB"),
            ("traffic: {max_file_size: 1MB}", "retention.max_size must be below"),
            ("traffic: {retention: {max_size: lots}}", "traffic.retention.max_size"),
            ("traffic: {bodies: some}", "traffic.bodies"),
            ("traffic: {max_body: .inf}", "traffic.max_body"),
            ("traffic: {keep: true}", "traffic.keep: unknown key")):
        path = tmp_path / "hitl.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            load_config(path)


# -- the recorder's hooks, on made-up flows ------------------------------------------------


@pytest.fixture
async def recorder(tmp_path: Path):
    store = SqliteTrafficStore(tmp_path / "traffic.sqlite3")
    await store.open()
    addon = TrafficRecorder(store, Matcher(load_connectors()),
                            TrafficSettings(bodies="writes"), Metrics())
    with taddons.context(addon):
        yield addon
    await store.close()


def flow_for(method: bytes, path: bytes, body: bytes = b"", status: int = 200):  # type: ignore[no-untyped-def]
    request = tutils.treq(method=method, scheme=b"https", host="acme.zendesk.com", port=443,
                          path=path, content=body,
                          headers=((b"content-type", b"application/json"),
                                   (b"authorization", b"Bearer SECRET-IN-HEADER")))
    response = tutils.tresp(status_code=status, content=b'{"ticket": {"id": 7}}')
    return tflow.tflow(req=request, resp=response)


async def test_a_read_is_recorded_with_the_record_it_names(recorder: TrafficRecorder) -> None:
    flow = flow_for(b"GET", b"/api/v2/tickets/7.json?api_key=SECRET-IN-QUERY&page=2")
    note(flow).agent = "triage-bot"
    recorder.response(flow)
    await recorder.flush()
    [entry] = await recorder.store.query(TrafficFilter())
    assert (entry["decision"], entry["system"], entry["object_type"], entry["record_id"],
            entry["operation"], entry["agent"]) == (
        "passed", "Zendesk", "ticket", "7", "read", "triage-bot")
    assert entry["path"] == "/api/v2/tickets/7.json?api_key=***&page=2"
    assert entry["request_body"] is None and entry["response_body"] is None  # a read
    assert "SECRET" not in json.dumps(entry)


async def test_a_held_write_carries_its_proposal_and_masked_body(
        recorder: TrafficRecorder) -> None:
    flow = flow_for(b"PUT", b"/api/v2/tickets/7.json",
                    b'{"ticket": {"status": "solved"}, "token": "SECRET-IN-BODY"}', status=403)
    noted = note(flow)
    noted.decision, noted.held = "held", "approval-1"
    noted.proposal = Proposal(
        system="Zendesk", object_type="ticket", record_id="7", operation="update",
        method="PUT", url="https://x", risk=Risk(level="medium", customer_facing=True),
        fingerprint="f" * 64)
    recorder.response(flow)
    await recorder.flush()
    [entry] = await recorder.store.query(TrafficFilter())
    assert (entry["decision"], entry["approval_id"], entry["status"], entry["upstream_status"],
            entry["risk_level"], entry["risk_flags"]) == (
        "held", "approval-1", 403, None, "medium", ["customer_facing"])
    assert '"token": "***"' in entry["request_body"]


async def test_a_broken_request_is_recorded_with_its_error(recorder: TrafficRecorder) -> None:
    flow = tflow.tflow(req=tutils.treq(host="api.unknown-vendor.test"), err=True)
    recorder.error(flow)
    await recorder.flush()
    [entry] = await recorder.store.query(TrafficFilter())
    assert entry["status"] is None and entry["error"] and entry["system"] is None


async def test_when_the_record_fails_reads_are_dropped_and_writes_kept(
        recorder: TrafficRecorder) -> None:
    await recorder.store.close()  # a record that cannot be written at all
    read = flow_for(b"GET", b"/api/v2/tickets/7.json")
    write = flow_for(b"PUT", b"/api/v2/tickets/7.json", b"{}")
    note(write).decision = "allowed"
    recorder.response(read)
    recorder.response(write)
    await recorder.flush()
    assert recorder.failure is not None and "not open" in recorder.failure
    assert [row.decision for row in recorder._retry] == ["allowed"]
    await recorder.store.open()
    await recorder.flush()
    assert recorder.failure is None
    assert [e["decision"] for e in await recorder.store.query(TrafficFilter())] == ["allowed"]


async def test_approvers_zero_means_held_writes_nobody_approved(store: TrafficStore) -> None:
    approvals: ApprovalStore = store.approvals_store  # type: ignore[attr-defined]
    proposal = Proposal(method="PUT", url="https://x", fingerprint="f" * 64)
    waiting = await approvals.create(proposal)
    await store.append([row(), row(decision="held", approval_id=waiting.id)])
    assert [e["approval_id"] for e in await store.query(TrafficFilter(approvers=0))] == [
        waiting.id]


async def test_an_answer_broken_off_after_its_headers_is_recorded(
        recorder: TrafficRecorder) -> None:
    flow = flow_for(b"GET", b"/api/v2/tickets/7.json")
    assert flow.response is not None
    flow.response.timestamp_end = None  # headers arrived, the body never finished
    flow.error = tflow.terr("connection reset")
    recorder.error(flow)
    await recorder.flush()
    [entry] = await recorder.store.query(TrafficFilter())
    assert entry["status"] == 200 and entry["error"] == "connection reset"


async def test_a_refused_connect_is_a_url_and_ipv6_hosts_are_bracketed(
        store: TrafficStore) -> None:
    await store.append([row(method="CONNECT", path="", scheme="https", status=407,
                            decision="refused"),
                        row(host="2001:db8::1", port=8443, path="/x")])
    urls = [e["url"] for e in await store.query(TrafficFilter(), newest_first=False)]
    assert urls == ["https://acme.zendesk.com", "https://[2001:db8::1]:8443/x"]


async def test_the_probe_says_whether_a_sizeable_batch_could_land(tmp_path: Path) -> None:
    store = SqliteTrafficStore(tmp_path / "traffic.sqlite3", max_file_bytes=256 * 1024)
    await store.open()
    try:
        await store.probe()  # room to spare, and the probe leaves no row behind
        assert await store.count() == 0
        for _ in range(100):
            try:
                await store.append([row(response_body="z" * 3000)])
            except TrafficError:
                break
        with pytest.raises(TrafficError, match="full"):
            await store.probe()
    finally:
        await store.close()


# -- what the red team found in the record (the approval masked these) ---------------------------

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("content", [
    b"type=card&card[number]=4242&card[cvc]=CANARY-T1",
    b"x[key]=CANARY-T2", b"x[pin]=CANARY-T3", b"x[sig]=CANARY-T4",
    b"card=x&card[cvc]=CANARY-T5", b"a[]=1&a[key]=CANARY-T6",
    b"query=" + b'mutation{login(password:"CANARY-T7"){id}}'.replace(b"{", b"%7B"),
    b"query=mutation(%24p%3AString)%7Blogin(password%3A%24p)%7Bid%7D%7D"
    b"&variables=%7B%22p%22%3A%22CANARY-T8%22%7D",
    b"grant_type=authorization_code&code=CANARY-T9",
])
def test_a_form_is_recorded_masked_as_the_approval_masks_it(content: bytes) -> None:
    kept = masked_body(content, FORM, 1000) or ""
    assert kept and "CANARY" not in kept, kept


def test_the_record_masks_a_form_by_any_bracket_segment_and_keeps_the_rest() -> None:
    assert masked_body(b"type=card&card[number]=4242&card[cvc]=CANARY", FORM, 1000) == (
        "type=card&card[number]=4242&card[cvc]=***")


def test_on_a_graphql_route_a_document_that_does_not_parse_is_not_recorded() -> None:
    content = b'{"query": "status:open CANARY"}'
    assert masked_body(content, "application/json", 1000) == '{"query": "status:open CANARY"}'
    kept = masked_body(content, "application/json", 1000, graphql_expected=True) or ""
    assert "CANARY" not in kept and "not kept" in kept


def graphql_flow(path: bytes, body: bytes, content_type: bytes = b"application/json"):  # type: ignore[no-untyped-def]
    request = tutils.treq(method=b"POST", scheme=b"https", host="api.linear.app", port=443,
                          path=path, content=body, headers=((b"content-type", content_type),))
    return tflow.tflow(req=request, resp=tutils.tresp(status_code=200, content=b"{}"))


async def test_the_recorder_knows_a_graphql_route_from_the_matcher(
        recorder: TrafficRecorder) -> None:
    recorder.response(graphql_flow(b"/graphql", b'{"query": "status:open CANARY-R1"}'))
    recorder.response(graphql_flow(b"/graphql", b"query=status%3Aopen+CANARY-R2", FORM.encode()))
    recorder.response(graphql_flow(
        b"/graphql?query=%7Ba%7D&Query=mutation%7Blogin(password%3A%22CANARY-R3%22)%7Bid%7D%7D"
        b"#access_token=CANARY-R4", b"{}"))
    await recorder.flush()
    entries = await recorder.store.query(TrafficFilter())
    assert len(entries) == 3
    assert "CANARY" not in json.dumps(entries)


# -- both backends: replicas, odd text, read-only; PostgreSQL: outages, migrations -----------


async def test_two_replicas_append_at_once_and_one_query_sees_both(backend: Backend) -> None:
    first, second = await backend.traffic(), await backend.traffic()

    async def replica(store: TrafficStore, name: str) -> None:
        for batch in range(10):
            await store.append([row(agent=name, record_id=f"{name}-{batch}-{i}")
                                for i in range(50)])

    await asyncio.gather(replica(first, "a"), replica(second, "b"))
    entries = [entry async for entry in first.iterate(TrafficFilter(), page=128)]
    assert len(entries) == 1000 and len({entry["id"] for entry in entries}) == 1000
    assert {entry["record_id"] for entry in entries} == {
        f"{name}-{batch}-{i}" for name in "ab" for batch in range(10) for i in range(50)}
    assert len(await second.query(TrafficFilter(agent=("a",)), limit=1000)) == 500
    assert await second.count() == 1000


async def test_the_probe_leaves_no_row_behind(store: TrafficStore) -> None:
    await store.probe()
    assert await store.count() == 0


async def test_text_a_database_refuses_is_kept_with_a_replacement_character(
        store: TrafficStore) -> None:
    await store.append([row(error="reset\x00by peer", agent="bot-\ud800")])
    [entry] = await store.query(TrafficFilter())
    assert entry["error"] == "reset\ufffdby peer" and entry["agent"] == "bot-?"


async def test_a_read_only_record_reads_and_never_writes(backend: Backend) -> None:
    writer = await backend.traffic()
    await writer.append([row(record_id="seen")])
    reader = await backend.traffic(read_only=True)
    assert [e["record_id"] for e in await reader.query(TrafficFilter())] == ["seen"]
    with pytest.raises(TrafficError):
        await reader.append([row()])
    assert await writer.count() == 1


def test_both_dialects_give_a_parameter_per_placeholder() -> None:
    where = TrafficFilter(agent=("a", "b"), host=("H",), decision=("held",), record_id="7",
                          status="4xx", since="2026-11-24", until="2026-11-25", risk="medium",
                          approved_by="fin", approvers=2, source="agent")
    for dialect in (SQLITE, POSTGRES):
        clause, params = where.where(dialect)
        assert clause.count(dialect.param) == len(params) == 14, dialect
    assert "%s" not in where.where(SQLITE)[0] and "?" not in where.where(POSTGRES)[0]
    assert TrafficFilter(risk="money").where(POSTGRES) == (" WHERE t.risk_flags LIKE %s",
                                                           ["%,money,%"])


def test_the_factory_picks_the_backend_the_store_url_names(tmp_path: Path) -> None:
    default = traffic_store_from_url(None, tmp_path)
    assert isinstance(default, SqliteTrafficStore)
    assert (default.path, default._approvals) == (tmp_path / "traffic.sqlite3",
                                                  tmp_path / "hitl.sqlite3")
    elsewhere = traffic_store_from_url("sqlite:///srv/hitl/approvals.sqlite3", tmp_path)
    assert isinstance(elsewhere, SqliteTrafficStore)
    assert elsewhere._approvals == Path("/srv/hitl/approvals.sqlite3")
    shared = traffic_store_from_url("postgresql://hitl:s3cret@db.internal:5432/hitl", tmp_path)
    assert isinstance(shared, PostgresTrafficStore)
    assert "s3cret" not in shared.location and "db.internal:5432/hitl" in shared.location
    with pytest.raises(TrafficError, match=r"traffic\.max_file_size"):
        traffic_store_from_url("postgres://db/hitl", tmp_path, max_file_bytes=1 << 20)
    with pytest.raises(TrafficError, match="unknown store scheme 'mysql'"):
        traffic_store_from_url("mysql://db/hitl", tmp_path)


async def test_a_postgres_database_without_a_record_is_named_when_read(
        postgres_url: str) -> None:
    store = PostgresTrafficStore(postgres_url)
    with pytest.raises(TrafficError, match="no traffic record at postgresql://"):
        await store.open(read_only=True)


async def test_held_entries_join_approvals_created_after_the_record_opened(
        postgres_url: str) -> None:
    """Either store may open first: the record joins the approvals table once it exists."""
    traffic = PostgresTrafficStore(postgres_url)
    await traffic.open()
    approvals = PostgresStore(postgres_url)
    try:
        await traffic.append([row(decision="held", approval_id="not-yet")])
        [entry] = await traffic.query(TrafficFilter(decision=("held",)))
        assert entry["approval"] is None
        await approvals.open()
        approval = await approvals.create(Proposal(method="PUT", url="https://x",
                                                   fingerprint="f" * 64))
        await approvals.decide(approval.id, Decision.approve, "fin", None)
        await traffic.append([row(decision="held", approval_id=approval.id)])
        [entry] = await traffic.query(TrafficFilter(approved_by="fin"))
        assert entry["approval"]["approvers"] == ["fin"]
    finally:
        await approvals.close()
        await traffic.close()


async def test_postgres_down_is_a_traffic_error_and_the_record_recovers_by_itself(
        postgres_server: PostgresServer, postgres_url: str) -> None:
    store = PostgresTrafficStore(postgres_url, busy_timeout=1.0)
    await store.open()
    try:
        await store.append([row(record_id="before")])
        postgres_server.stop()
        for attempt in (store.append([row(record_id="lost")]), store.probe(),
                        store.query(TrafficFilter())):
            with pytest.raises(TrafficError, match="traffic record"):
                await asyncio.wait_for(attempt, timeout=15)
        postgres_server.start()
        for _ in range(60):  # the pool reconnects in the background, with backoff
            try:
                await store.append([row(record_id="after")])
                break
            except TrafficError:
                await asyncio.sleep(0.5)
        records = [e["record_id"] for e in await store.query(TrafficFilter(),
                                                              newest_first=False)]
        assert records == ["before", "after"]
    finally:
        postgres_server.start()
        await store.close()


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    replicas = [PostgresTrafficStore(postgres_url) for _ in range(3)]
    await asyncio.gather(*(replica.open() for replica in replicas))
    try:
        await replicas[0].close()
        await replicas[0].open()  # up to date: nothing to apply
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT version FROM traffic_schema").fetchall() == [(1,)]
    finally:
        for replica in replicas:
            await replica.close()


async def test_replicas_pruning_together_delete_each_entry_once(postgres_url: str) -> None:
    replicas = [PostgresTrafficStore(postgres_url) for _ in range(2)]
    for replica in replicas:
        await replica.open()
    try:
        await replicas[0].append([row(minutes) for minutes in range(120)])
        deleted = await asyncio.gather(*(replica.prune(max_age=3600, max_bytes=None, now=NOW,
                                                       chunk=7) for replica in replicas))
        assert sum(deleted) == 59 and await replicas[1].count() == 61
    finally:
        for replica in replicas:
            await replica.close()


async def test_an_unreachable_postgres_fails_to_open_naming_it(
        postgres_server: PostgresServer) -> None:
    url = postgres_server.url("hitl").replace(f":{postgres_server.port}/", ":1/")
    store = PostgresTrafficStore(url, busy_timeout=1.0)
    with pytest.raises(TrafficError, match=r"cannot open the traffic record at postgresql://"):
        await store.open()
    with pytest.raises(TrafficError, match="not open"):  # and leaves no pool retrying
        await store.append([row()])
