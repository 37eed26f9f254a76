"""Verifying, exporting and witnessing the audit log, for security teams.

Verify and export work on a stopped proxy's data, whichever store holds it: `store_rows` reads
the entries through the store interface (SQLite or PostgreSQL) and gives them back in the exact
text the hash was computed over. The chain's HMAC key lives with the data (or in HITL_PROXY_KEY),
so whoever holds both could rewrite history and re-sign it; the witness publishes the chain head
(seq and hash) off the data dir, in the log, and `verify --head SEQ:HASH` checks a head published
earlier: re-signing changes every hash after the first rewritten entry. SQLite also keeps an
anchor file (audit.head) beside the database, which catches a cut-off tail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from review_api.store import GENESIS_HASH, ApprovalStore, AuditHead, StoreError, entry_hash
from review_api.store.base import AuditRow
from review_api.traffic_export import csv_line

logger = logging.getLogger("hitl_proxy")
WITNESS_EVERY = 10.0  # seconds between two published heads while entries are added
_HEAD = re.compile(r"^(\d{1,18}):([0-9a-fA-F]{64})$")

COLUMNS = ("seq", "at", "event", "approval_id", "actor", "detail", "prev_hash", "hash")
Row = AuditRow  # an entry as stored: the exact text its hash covers


class AuditUnreadable(RuntimeError):
    """The store could not give back its audit entries (unreachable, or a row it cannot parse):
    the log is not known to be intact."""


async def store_rows(store: ApprovalStore) -> list[Row]:
    """Every entry of an opened store (SQLite or PostgreSQL) as stored, in chain order, the
    detail as the very text its hash covers. AuditUnreadable when the store cannot say."""
    try:
        return await store.audit_rows()
    except (StoreError, ValueError) as exc:
        raise AuditUnreadable(f"the audit log in {store.location} cannot be read: {exc}") from exc


def read_rows(database: Path) -> list[Row]:
    """A SQLite file's rows as stored, in storage order (rowid), not trusting seq: a reordering
    must show, and a row no store could parse still gets its entry named."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY rowid").fetchall()
    return [Row(*row) for row in rows]


def read_anchor(path: Path) -> tuple[int, str] | None:
    try:
        seq, digest = path.read_text().split()
        return int(seq), digest
    except (OSError, ValueError):
        return None


def verify(rows: list[Row], key: bytes, anchor: tuple[int, str] | None, *,
           anchored: bool = True) -> str | None:
    """The first problem, naming the entry; None when the chain is whole.

    `anchored`: the store keeps an anchor file (SQLite), so a missing one is a problem. A
    PostgreSQL store has none (anchored=False, anchor None): a cut-off tail there shows only
    against a witnessed head (`check_head`)."""
    previous, expected_seq = GENESIS_HASH, 1
    for row in rows:
        if row.seq != expected_seq:
            return (f"entry {row.seq}: expected entry {expected_seq} here "
                    "(entries were deleted or reordered)")
        if row.prev_hash != previous:
            return f"entry {row.seq}: does not follow entry {row.seq - 1} (chain broken)"
        if entry_hash(key, row.prev_hash, row.at, row.event, row.approval_id, row.actor,
                      row.detail) != row.hash:
            return f"entry {row.seq}: its content does not match its hash (edited)"
        previous, expected_seq = row.hash, expected_seq + 1
    last = rows[-1].seq if rows else 0
    if anchor is None:
        return None if not rows or not anchored else "the audit anchor (audit.head) is missing"
    if anchor[0] > last:
        return (f"entry {last + 1}: missing; the log ends at entry {last} but the anchor "
                f"names entry {anchor[0]} (the tail was cut off)")
    # The anchor is written just after each commit, so after a crash it may lag one entry.
    if anchor[0] > 0 and rows[anchor[0] - 1].hash != anchor[1]:
        return f"entry {anchor[0]}: differs from the anchor (rewritten)"
    return None


def parse_head(text: str) -> AuditHead:
    """SEQ:HASH as the witness publishes it (`audit head seq=SEQ hash=HASH`)."""
    found = _HEAD.match(text.strip())
    if found is None:
        raise ValueError(f"expected SEQ:HASH (a number, a colon, 64 hex digits) as in the log "
                         f"line 'audit head seq=SEQ hash=HASH', got {text!r}")
    return int(found.group(1)), found.group(2).lower()


def check_head(rows: list[Row], head: AuditHead) -> str | None:
    """Whether the log still holds the witnessed entry with exactly that hash; the problem if not.

    A log rewritten and re-signed with a new key verifies on its own, but not against a head
    witnessed before: every hash from the first rewritten entry on changes.
    """
    seq, digest = head
    if seq == 0:
        return None if digest == GENESIS_HASH else f"entry 0: is the genesis, {GENESIS_HASH}"
    found = next((row for row in rows if row.seq == seq), None)
    if found is None:
        last = rows[-1].seq if rows else 0
        return (f"entry {seq}: missing; the log ends at entry {last}, but entry {seq} was "
                f"witnessed with hash {digest} (the tail was cut off)")
    if found.hash != digest:
        return (f"entry {seq}: its hash is {found.hash}, but the witnessed head says {digest} "
                "(the log was rewritten and re-signed, or its key replaced)")
    return None


def export(rows: list[Row], fmt: str, since: str | None = None) -> Iterator[str]:
    """JSON lines a SIEM ingests as they are, or CSV with a header."""
    chosen = [row for row in rows if since is None or row.at >= since]
    if fmt == "jsonl":
        for row in chosen:
            yield json.dumps({"seq": row.seq, "at": row.at, "event": row.event,
                              "approval_id": row.approval_id, "actor": row.actor,
                              "detail": json.loads(row.detail), "prev_hash": row.prev_hash,
                              "hash": row.hash}) + "\n"
        return
    yield csv_line(COLUMNS)
    for row in chosen:
        yield csv_line([row.seq, row.at, row.event, row.approval_id or "", row.actor,
                        row.detail, row.prev_hash, row.hash])


def check_log(rows: list[Row], key: bytes, *, anchor_file: Path | None,
              heads: Iterable[AuditHead] = ()) -> str | None:
    """`audit verify` whole: the chain, the anchor file (SQLite's audit.head beside the
    database; None for a store without one) and every head witnessed earlier."""
    anchor = read_anchor(anchor_file) if anchor_file is not None else None
    problem = verify(rows, key, anchor, anchored=anchor_file is not None)
    for head in heads:
        problem = problem or check_head(rows, head)
    return problem


def head_line(head: AuditHead | None) -> str:
    seq, digest = head or (0, GENESIS_HASH)
    return f"audit head seq={seq} hash={digest}"


class AuditWitness:
    """Publishes the chain head where the data dir's owner cannot rewrite it: the log, shipped
    off the host. Once at start, then at most every `every` seconds while entries are added
    (the latest head of each interval), and once at shutdown. An addon (running/done hooks)."""

    def __init__(self, store: ApprovalStore, every: float = WITNESS_EVERY,
                 publish: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.every = every
        self._publish = publish or logger.info
        self._latest: AuditHead | None = None
        self._published: AuditHead | None = None
        self._last_at = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        store.subscribe_head(self._on_head)

    async def running(self) -> None:
        self._latest = await self.store.audit_head()
        self._flush()

    async def done(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._latest != self._published:
            self._flush()

    def _on_head(self, seq: int, digest: str) -> None:
        """Store listener, after each commit: cheap, at most one timer pending."""
        self._latest = (seq, digest)
        if self._timer is not None:
            return
        delay = self._last_at + self.every - time.monotonic()
        if delay <= 0:
            self._flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        self._published, self._last_at = self._latest, time.monotonic()
        self._publish(head_line(self._latest))
