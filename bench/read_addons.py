"""Issue 16's read target: one hitl-proxy replica (SQLite) against plain mitmdump of the same
version, before and after folding our addons and leaving out mitmproxy's idle built-ins.

    .venv/bin/python -m bench.read_addons --before /tmp/s-before --after /tmp/s-tree \
        [--clients 1 16 64] [--duration 5] [--rounds 3]

`--before` and `--after` are source trees (worktrees of a commit, the second with the
runner patch applied, or this work tree once it lands); every set-up runs in one run on one
upstream, in interleaved rounds (`bench.replicas.read_rounds`): medians of requests/s, p50,
p99 and CPU per read, and ratios to mitmdump. Writes results/read-addons-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import Processes, Tls, tree_version  # noqa: E402
from bench.replicas import Setup, read_rounds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-read-addons-"))
    with Processes(work) as processes:
        tls = Tls.make(work)
        url = f"https://127.0.0.1:{processes.upstream(tls)}/api/v2/tickets/1.json"
        setups = {
            "mitmproxy": Setup(processes.mitmdump(tls), ()),
            "hitl before": Setup(processes.hitl(tls, "before", tree=args.before), ()),
            "hitl after": Setup(processes.hitl(tls, "after", tree=args.after), ()),
        }
        reads = read_rounds(url, setups, args.clients, args.duration, args.rounds, None)
    for rows in reads.values():
        base = rows["mitmproxy"]["cpu_ms_per_read"]
        for row in rows.values():
            row["x_mitmproxy_cpu"] = round(row["cpu_ms_per_read"] / base, 3) if base else None
    now = datetime.now(UTC)
    results = {"date": now.strftime("%Y-%m-%dT%H:%MZ"),
               "before": tree_version(args.before), "after": tree_version(args.after),
               "duration": args.duration, "rounds": args.rounds, "reads": reads}
    out = ROOT / "bench" / "results" / f"read-addons-{now:%Y-%m-%d}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
