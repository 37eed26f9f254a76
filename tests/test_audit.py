"""The audit log is tamper-evident: a flipped byte, a deleted row, a reordering or a cut-off tail
makes `verify` name the first bad entry (a property test over all four, on rows read through the
store), and a head witnessed off the data dir catches a chain rewritten and re-signed with a new
key. PostgreSQL's log verifies the same way (no anchor file there: a witnessed head catches a
cut tail), also after replicas wrote to it concurrently. Reviewers read only the entries of
approvals routed to them (the auditor group reads all); no CSV cell starts a formula."""

import asyncio
import csv
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy_addon.sealing import KEY_ENV, key_location_warning
from review_api import Approval, Decision, Proposal, ReviewApp, Reviewer, Reviewers, Status
from review_api.audit import (
    AuditUnreadable,
    AuditWitness,
    Row,
    check_head,
    check_log,
    export,
    parse_head,
    read_anchor,
    read_rows,
    store_rows,
    verify,
)
from review_api.metrics import Metrics
from review_api.models import iso, utcnow
from review_api.notify import Webhook, payload
from review_api.store import GENESIS_HASH, ApprovalStore, SqliteStore, entry_hash
from review_api.traffic_export import csv_cell, csv_line
from tests.e2e.harness import hitl_proxy_command
from tests.test_web_sessions import StoreFactory, open_store  # noqa: F401 (a fixture)

KEY = b"k" * 32


async def _history(path: Path) -> None:
    store = SqliteStore(path, audit_key=KEY)
    await store.open()
    for index in range(6):
        approval = await store.create(Proposal(method="PUT", url=f"https://x.test/{index}",
                                               fingerprint="f" * 64))
        decision = Decision.approve if index % 2 else Decision.reject
        await store.decide(approval.id, decision, "sam", f"note {index}")
    await store.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit") / "hitl.sqlite3"
    asyncio.run(_history(path))
    return path


def _copy(history: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("hitl.sqlite3", "audit.head"):
        shutil.copy(history.parent / name, target / name)
    return target / "hitl.sqlite3"


async def _store_rows(database: Path) -> list[Row]:
    store = SqliteStore(database, audit_key=KEY)
    await store.open()
    try:
        return await store_rows(store)
    finally:
        await store.close()


def _check(database: Path) -> str | None:
    """What `audit verify` does on a SQLite data dir: the store's rows and the anchor file."""
    return check_log(asyncio.run(_store_rows(database)), KEY,
                     anchor_file=database.with_name("audit.head"))


def test_an_untouched_log_verifies(history: Path) -> None:
    assert _check(history) is None
    assert asyncio.run(_store_rows(history)) == read_rows(history)  # the text as stored
    assert len(read_rows(history)) == 12
    assert verify(read_rows(history), KEY, None) == "the audit anchor (audit.head) is missing"


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["flip", "delete", "reorder", "cut"]),
       index=st.integers(min_value=1, max_value=12), position=st.integers(min_value=0))
def test_any_tampering_is_named(history: Path, tmp_path_factory: pytest.TempPathFactory,
                                kind: str, index: int, position: int) -> None:
    database = _copy(history, tmp_path_factory.mktemp("tampered"))
    with sqlite3.connect(database) as db:
        if kind == "flip":
            column = ["at", "event", "actor", "detail"][position % 4]
            value = db.execute(f"SELECT {column} FROM audit WHERE seq = ?", (index,)).fetchone()[0]
            spot = position % len(value)
            flipped = value[:spot] + chr(ord(value[spot]) ^ 1) + value[spot + 1:]
            db.execute(f"UPDATE audit SET {column} = ? WHERE seq = ?", (flipped, index))
            first_bad = index
        elif kind == "delete":
            db.execute("DELETE FROM audit WHERE seq = ?", (index,))
            first_bad = index + 1 if index < 12 else index
        elif kind == "reorder":
            other = index % 12 + 1
            rows = {seq: db.execute("SELECT at, event, approval_id, actor, detail, prev_hash,"
                                    " hash FROM audit WHERE seq = ?", (seq,)).fetchone()
                    for seq in (index, other)}
            # seq is the rowid: reordering moves the entries' contents between positions
            for seq, source in ((index, other), (other, index)):
                db.execute("UPDATE audit SET at = ?, event = ?, approval_id = ?, actor = ?,"
                           " detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                           (*rows[source], seq))
            first_bad = min(index, other)
        else:
            db.execute("DELETE FROM audit WHERE seq >= ?", (index,))
            first_bad = index
    problem = _check(database)
    assert problem is not None
    named = int(problem.split(":")[0].removeprefix("entry "))
    assert named <= first_bad + 1, problem
    assert verify(read_rows(database), KEY, read_anchor(database.with_name("audit.head"))) == (
        problem)  # the file read raw says the same


def test_export_as_jsonl_and_csv(history: Path) -> None:
    rows = read_rows(history)
    lines = list(export(rows, "jsonl"))
    assert len(lines) == 12 and '"event": "held"' in lines[0]
    csv_text = "".join(export(rows, "csv"))
    assert csv_text.splitlines()[0] == "seq,at,event,approval_id,actor,detail,prev_hash,hash"
    assert list(export(rows, "jsonl", since="9999")) == []


def test_the_cli_verifies_and_exports_a_stopped_proxys_data(tmp_path: Path) -> None:
    import hashlib

    from cryptography.fernet import Fernet

    from proxy_addon.sealing import audit_key

    seal = Fernet.generate_key()
    (tmp_path / "seal.key").write_bytes(seal)
    store_key = audit_key(seal)
    assert store_key == hashlib.sha256(b"hitl-proxy audit:" + seal).digest()

    async def write() -> None:
        store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=store_key)
        await store.open()
        approval = await store.create(Proposal(method="PUT", url="https://x.test/1",
                                               fingerprint="f" * 64))
        await store.decide(approval.id, Decision.approve, "sam", None)
        await store.close()

    asyncio.run(write())
    command = [*hitl_proxy_command(), "audit"]
    ok = subprocess.run([*command, "verify", "--data-dir", str(tmp_path)], capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0 and "intact: 2 entries" in ok.stdout
    exported = subprocess.run([*command, "export", "--data-dir", str(tmp_path), "--format",
                               "csv", "--since", "2000-01-01"], capture_output=True, text=True,
                              timeout=60)
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 3
    with sqlite3.connect(tmp_path / "hitl.sqlite3") as db:
        db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    bad = subprocess.run([*command, "verify", "--data-dir", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert "entry 2: its content does not match its hash" in bad.stderr


def resign_chain(database: Path, key: bytes) -> None:
    """What an attacker holding the data dir does: rewrite an entry, re-sign the whole chain."""
    with sqlite3.connect(database) as db:
        db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
        previous = GENESIS_HASH
        for seq, at, event, approval_id, actor, detail in db.execute(
                "SELECT seq, at, event, approval_id, actor, detail FROM audit ORDER BY seq"
        ).fetchall():
            digest = entry_hash(key, previous, at, event, approval_id, actor, detail)
            db.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?",
                       (previous, digest, seq))
            previous = digest
            last = seq
    database.with_name("audit.head").write_text(f"{last} {previous}\n")


def test_a_witnessed_head_catches_a_chain_re_signed_with_a_new_key(
        history: Path, tmp_path: Path) -> None:
    rows = read_rows(history)
    witnessed = (rows[-1].seq, rows[-1].hash)
    assert check_head(rows, witnessed) is None
    assert check_head(rows, (3, rows[2].hash)) is None
    assert check_head(rows, (0, GENESIS_HASH)) is None
    database = _copy(history, tmp_path)
    new_key = b"n" * 32
    resign_chain(database, new_key)
    resigned = read_rows(database)
    assert verify(resigned, new_key, read_anchor(database.with_name("audit.head"))) is None
    problem = check_head(resigned, witnessed)
    assert problem is not None and problem.startswith(f"entry {witnessed[0]}: its hash is ")
    assert "re-signed" in problem
    assert check_head(resigned, (1, rows[0].hash)) is not None  # a new key changes them all
    assert "missing" in check_head(resigned[:5], witnessed)


@pytest.mark.parametrize("text", ["12", "x:" + "a" * 64, "3:" + "a" * 63, "3:" + "g" * 64, ""])
def test_a_head_is_seq_colon_hash(text: str) -> None:
    with pytest.raises(ValueError, match="SEQ:HASH"):
        parse_head(text)
    assert parse_head("7:" + "AB" * 32) == (7, "ab" * 32)


async def test_the_witness_logs_at_start_then_at_most_every_interval(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=KEY)
    await store.open()
    lines: list[str] = []
    witness = AuditWitness(store, every=0.3, publish=lines.append)
    try:
        await witness.running()
        assert lines == [f"audit head seq=0 hash={GENESIS_HASH}"]
        for index in range(5):
            await store.log_event("allowed", None, "proxy", {"n": index})
        head = await store.audit_head()
        assert len(lines) == 1  # within the interval of the last line: batched
        await asyncio.sleep(0.45)
        assert lines[1:] == [f"audit head seq={head[0]} hash={head[1]}"]
        await store.log_event("allowed", None, "proxy", {})
        await witness.done()  # the pending head is published at shutdown
        last = await store.audit_head()
        assert lines[2:] == [f"audit head seq={last[0]} hash={last[1]}"]
    finally:
        await store.close()


def test_audit_csv_cells_never_start_a_formula(tmp_path: Path) -> None:
    async def write() -> None:
        store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=KEY)
        await store.open()
        await store.log_event('=HYPERLINK("https://evil.test","x")', None, "+cmd", {})
        await store.close()

    asyncio.run(write())
    [row] = list(csv.reader(io.StringIO("".join(export(read_rows(tmp_path / "hitl.sqlite3"),
                                                          "csv")))))[1:]
    assert row[2] == '\'=HYPERLINK("https://evil.test","x")' and row[4] == "'+cmd"


@pytest.mark.parametrize(("value", "cell"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("a=1", "a=1"), ("", ""), (-1, -1), (None, None),
    (" =1", " =1"),
])
def test_csv_cell_follows_the_owasp_rule(value: object, cell: object) -> None:
    assert csv_cell(value) == cell
    assert next(csv.reader(io.StringIO(csv_line(["x", value]))))[1] == (
        "" if cell is None else str(cell))


def test_metrics_and_webhooks_carry_the_audit_head() -> None:
    rendered = Metrics().render(0, (7, "ab" * 32)).decode()
    assert "hitl_audit_head_seq 7.0" in rendered
    assert f'hitl_audit_head_info{{hash="{"ab" * 32}",seq="7"}} 1.0' in rendered
    assert "hitl_audit_head_seq 0.0" in Metrics().render(0).decode()
    approval = Approval(id="a1", status=Status.pending, created_at=utcnow(), method="PUT",
                        url="https://x.test/1", fingerprint="f" * 64)
    body = payload(Webhook("https://hooks.test"), approval, "http://review/a1", (7, "ab" * 32))
    assert body["audit_head"] == {"seq": 7, "hash": "ab" * 32}
    slack = payload(Webhook("https://hooks.test", "slack"), approval, "http://r", (7, "ab" * 32))
    assert "audit_head" not in slack
    assert "audit_head" not in payload(Webhook("https://hooks.test"), approval, "http://r")


def test_the_start_up_warns_while_the_key_sits_in_the_data_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    warning = key_location_warning(tmp_path)
    assert warning is not None and str(tmp_path / "seal.key") in warning and KEY_ENV in warning
    monkeypatch.setenv(KEY_ENV, "x")
    assert key_location_warning(tmp_path) is None


SUPPORT, FINANCE, AUDITOR = ("support-token-000000001", "finance-token-00000002",
                              "auditor-token-00000003")


async def test_the_audit_api_shows_each_reviewer_only_their_groups_entries(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=KEY)
    await store.open()
    ids = {}
    for name, groups in (("support", ["support"]), ("finance", ["finance"]), ("anyone", [])):
        created = await store.create(Proposal(method="PUT", url=f"https://x.test/{name}",
                                              fingerprint="f" * 64, reviewer_groups=groups))
        ids[name] = created.id
    await store.log_event("allowed", None, "proxy", {"url": "https://x.test/allowed"})
    reviewers = Reviewers([Reviewer(name="sam", token=SUPPORT, groups=["support"]),
                           Reviewer(name="fin", token=FINANCE, groups=["finance"]),
                           Reviewer(name="ada", token=AUDITOR, groups=["auditor"])])
    app = ReviewApp(store, reviewers).app
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://review") as client:
            async def audit(token: str, **params: str) -> httpx.Response:
                return await client.get("/api/audit", params=params,
                                        headers={"Authorization": f"Bearer {token}"})

            seen = {e["approval_id"] for e in (await audit(SUPPORT)).json()["entries"]}
            assert seen == {ids["support"], ids["anyone"]}
            seen = {e["approval_id"] for e in (await audit(FINANCE)).json()["entries"]}
            assert seen == {ids["finance"], ids["anyone"]}
            seen = {e["approval_id"] for e in (await audit(AUDITOR)).json()["entries"]}
            assert seen == {*ids.values(), None}
            hidden = await audit(SUPPORT, approval_id=ids["finance"])
            missing = await audit(SUPPORT, approval_id="no-such-approval")
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json()["error"] == f"no approval {ids['finance']}"
            mine = (await audit(FINANCE, approval_id=ids["finance"])).json()["entries"]
            assert [e["event"] for e in mine] == ["held"]
            assert (await audit(AUDITOR, approval_id=ids["support"])).status_code == 200
    finally:
        await store.close()


async def test_entries_as_the_api_shows_them_recompute_their_hash(
        open_store: StoreFactory) -> None:  # noqa: F811 (the fixture imported above)
    """A SIEM reading /api/audit can check each entry itself: the stored time is models.iso of
    `at`, and the detail is its JSON with sorted keys, whichever backend holds it."""
    store = await open_store()
    await store.log_event("allowed", None, "proxy", {"é": "ü", "n": 1.5, "big": 2**70,
                                                     "nested": {"b": [1, None], "a": True}})
    held = await store.create(Proposal(method="PUT", url="https://x.test/1", fingerprint="f" * 64))
    await store.decide(held.id, Decision.reject, "sam", "no “thanks”")
    entries = await store.audit_entries()
    assert [e.event for e in entries] == ["allowed", "held", "rejected"]
    for entry in entries:
        detail = json.dumps(entry.detail, sort_keys=True, default=str)
        assert entry_hash(KEY, entry.prev_hash, iso(entry.at), entry.event, entry.approval_id,
                          entry.actor, detail) == entry.hash
    rows = await store_rows(store)
    assert [(r.seq, r.hash) for r in rows] == [(e.seq, e.hash) for e in entries]


async def test_a_postgresql_log_written_by_two_replicas_at_once_verifies_and_shows_tampering(
        postgres_url: str) -> None:
    from review_api.store.postgres import PostgresStore

    replicas = [PostgresStore(postgres_url, audit_key=KEY, pool_size=4) for _ in range(2)]
    for replica in replicas:
        await replica.open()
    try:
        async def write(store: ApprovalStore, index: int) -> None:
            held = await store.create(Proposal(method="PUT", url=f"https://x.test/{index}",
                                               fingerprint="f" * 64))
            await store.log_event("allowed", None, "proxy", {"n": index})
            await store.decide(held.id, Decision.approve, "sam", None)

        await asyncio.gather(*(write(replicas[index % 2], index) for index in range(20)))
        rows = await store_rows(replicas[1])
        assert [row.seq for row in rows] == list(range(1, 61))
        assert check_log(rows, KEY, anchor_file=None) is None  # one chain, no anchor file
        witnessed = (rows[-1].seq, rows[-1].hash)

        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 7")
        problem = check_log(await store_rows(replicas[0]), KEY, anchor_file=None)
        assert problem == "entry 7: its content does not match its hash (edited)"

        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute("UPDATE audit SET actor = %s WHERE seq = 7", (rows[6].actor,))
            db.execute("DELETE FROM audit WHERE seq > 57")
        cut = await store_rows(replicas[0])
        assert check_log(cut, KEY, anchor_file=None) is None  # nothing but a head shows a cut
        problem = check_log(cut, KEY, anchor_file=None, heads=[witnessed])
        assert problem is not None and problem.startswith("entry 60: missing")
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_store_that_cannot_be_read_is_not_intact(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hitl.sqlite3", audit_key=KEY)  # never opened
    with pytest.raises(AuditUnreadable, match="cannot be read"):
        await store_rows(store)
