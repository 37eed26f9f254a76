"""The audit log is tamper-evident: a flipped byte, a deleted row, a reordering or a cut-off tail
makes `verify` name the first bad entry (a property test over all four)."""

import asyncio
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from review_api import Decision, Proposal, Store
from review_api.audit import export, read_anchor, read_rows, verify
from tests.e2e.harness import hitl_proxy_command

KEY = b"k" * 32


async def _history(path: Path) -> None:
    store = Store(path, audit_key=KEY)
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


def _check(database: Path) -> str | None:
    return verify(read_rows(database), KEY, read_anchor(database.with_name("audit.head")))


def test_an_untouched_log_verifies(history: Path) -> None:
    assert _check(history) is None
    assert len(read_rows(history)) == 12


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
        store = Store(tmp_path / "hitl.sqlite3", audit_key=store_key)
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
