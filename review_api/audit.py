"""Verifying and exporting the audit log, for security teams; works on a stopped proxy's data."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from review_api.store import GENESIS_HASH, entry_hash

COLUMNS = ("seq", "at", "event", "approval_id", "actor", "detail", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    at: str
    event: str
    approval_id: str | None
    actor: str
    detail: str
    prev_hash: str
    hash: str


def read_rows(database: Path) -> list[Row]:
    """Rows in storage order (rowid), not trusting seq: a reordering must show."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY rowid").fetchall()
    return [Row(*row) for row in rows]


def read_anchor(path: Path) -> tuple[int, str] | None:
    try:
        seq, digest = path.read_text().split()
        return int(seq), digest
    except (OSError, ValueError):
        return None


def verify(rows: list[Row], key: bytes, anchor: tuple[int, str] | None) -> str | None:
    """The first problem, naming the entry; None when the chain is whole."""
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
        return None if not rows else "the audit anchor (audit.head) is missing"
    if anchor[0] > last:
        return (f"entry {last + 1}: missing; the log ends at entry {last} but the anchor "
                f"names entry {anchor[0]} (the tail was cut off)")
    # The anchor is written just after each commit, so after a crash it may lag one entry.
    if anchor[0] > 0 and rows[anchor[0] - 1].hash != anchor[1]:
        return f"entry {anchor[0]}: differs from the anchor (rewritten)"
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
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in chosen:
        writer.writerow([row.seq, row.at, row.event, row.approval_id or "", row.actor,
                         row.detail, row.prev_hash, row.hash])
    yield buffer.getvalue()
