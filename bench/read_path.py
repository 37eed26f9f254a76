"""What each read pays for: every hook mitmproxy dispatches per GET, in plain mitmproxy and in
`hitl-proxy run`, timed inside the running proxies (bench/hookprobe.py), in one run.

    .venv/bin/python -m bench.read_path [--clients 16] [--duration 10]
                                        [--tree NAME=PATH[:VAR=VALUE,...]] ...

Starts bench/upstream.py, `mitmdump` and `hitl-proxy run` (today's tree, plus any `--tree`:
e.g. a worktree of an older commit, or a patched copy in /tmp to measure a proposal, with
environment variables for it), each with the probe loaded, sends keep-alive GETs through
each, stops them and prints, per read:
- per event (requestheaders, request, responseheaders, response, update, ...): dispatches and
  microseconds of the whole dispatch over the addon chain;
- per addon hook that ran: calls and microseconds inside the hook;
- the chain: how many addons, and which define a hook that a read dispatches;
- CPU milliseconds per read of each proxy process (with the probe's own cost in it).
Writes bench/results/read-path-<date>.json. The probe adds about a microsecond per hook call,
to both proxies alike; throughput is bench/run.py's job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.processes import ROOT, Processes, Proxy, Tls, load_measured, tree_version

PROBE = ROOT / "bench" / "hookprobe.py"
# What mitmproxy dispatches for a GET on an open keep-alive connection; the connection's own
# events (client_connected, http_connect, tls_*, server_connect, next_layer) come once per
# connection and are listed apart.
READ_EVENTS = ("requestheaders", "request", "responseheaders", "response", "update")


def parse_tree(spec: str) -> tuple[str, Path, dict[str, str]]:
    name, _, rest = spec.partition("=")
    path, _, variables = rest.partition(":")
    env = dict(pair.split("=", 1) for pair in variables.split(",") if pair)
    if not name or not path:
        raise SystemExit(f"--tree {spec!r}: expected NAME=PATH[:VAR=VALUE,...]")
    return name, Path(path), env


def per_read(probe: dict[str, Any], reads: int) -> dict[str, Any]:
    """The probe's totals divided by the reads that ran (the `request` events)."""
    reads = max(1, reads)
    events = {name: {"per_read": round(n / reads, 3), "us_per_read": round(ns / reads / 1000, 2)}
              for name, (n, ns) in sorted(probe["events"].items())}
    hooks = {key: {"per_read": round(n / reads, 3), "us_per_read": round(ns / reads / 1000, 2)}
             for key, (n, ns) in sorted(probe["hooks"].items(), key=lambda kv: -kv[1][1]) if n}
    dispatch_us = sum(events[e]["us_per_read"] for e in READ_EVENTS if e in events)
    in_hooks_us = sum(row["us_per_read"] for key, row in hooks.items()
                      if key.rsplit(".", 1)[1] in READ_EVENTS)
    ours = {key: row for key, row in hooks.items() if not key.startswith("mitmproxy.")}
    read_hooks = [row for row in probe["chain"]
                  if any(hook in READ_EVENTS for hook in row["hooks"])]
    return {
        "reads": reads,
        "chain_addons": len(probe["chain"]),
        "addons_with_read_hooks": len(read_hooks),
        "read_dispatch_us_per_read": round(dispatch_us, 1),
        "inside_read_hooks_us_per_read": round(in_hooks_us, 1),
        "chain_overhead_us_per_read": round(dispatch_us - in_hooks_us, 1),
        "our_hooks_us_per_read": round(sum(
            row["us_per_read"] for key, row in ours.items()
            if key.rsplit(".", 1)[1] in READ_EVENTS), 1),
        "events": events,
        "hooks": hooks,
        "chain": probe["chain"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds interleave the proxies, so a busy moment hits all alike")
    parser.add_argument("--tree", action="append", default=[],
                        help="another hitl-proxy source tree to measure, NAME=PATH[:VAR=V,...]")
    parser.add_argument("--no-today", action="store_true",
                        help="measure only the --tree proxies (and mitmproxy)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-readpath-"))
    tls = Tls.make(work)
    trees = [parse_tree(spec) for spec in args.tree]
    if not args.no_today:
        trees.insert(0, ("hitl-proxy", ROOT, {}))
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "clients": args.clients,
        "duration_s": args.duration, "rounds": args.rounds,
        "trees": {name: tree_version(tree) for name, tree, _ in trees}, "proxies": {}}
    with Processes(work) as processes:
        url = f"https://127.0.0.1:{processes.upstream(tls)}/api/v2/tickets/1.json"
        probe_set = f"scripts={PROBE}"
        outs: dict[str, Path] = {}
        proxies: list[tuple[Proxy, Any]] = []
        outs["mitmproxy"] = work / "probe-mitmproxy.json"
        mitm = processes.mitmdump(tls, probe_set, env={"HOOKPROBE_OUT": str(outs["mitmproxy"])})
        proxies.append((mitm, processes.running[-1]))
        for name, tree, env in trees:
            outs[name] = work / f"probe-{name}.json"
            proxy = processes.hitl(tls, name, tree=tree, args=("--set", probe_set),
                                   env={**env, "HOOKPROBE_OUT": str(outs[name])})
            proxies.append((proxy, processes.running[-1]))
        time.sleep(1)
        for proxy, _ in proxies:
            load_measured(url, proxy, args.clients, 1.0)  # warm: connections, caches, imports
        rounds: dict[str, list[dict[str, float]]] = {proxy.name: [] for proxy, _ in proxies}
        for _ in range(args.rounds):
            for proxy, _ in proxies:
                rounds[proxy.name].append(
                    load_measured(url, proxy, args.clients, args.duration))
        loads = {name: {key: statistics.median(run[key] for run in runs)
                        for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_read")}
                 for name, runs in rounds.items()}
        for _, process in proxies:
            processes.stop(process)  # the probe writes its file on `done`
    for proxy, _ in proxies:
        probe = json.loads(outs[proxy.name].read_text())
        requests = probe["events"].get("request", [0, 0])[0]
        results["proxies"][proxy.name] = {"load": loads[proxy.name],
                                          **per_read(probe, requests)}
    out = ROOT / "bench" / "results" / f"read-path-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print_report(results)
    print(f"wrote {out.relative_to(ROOT)}")


def print_report(results: dict[str, Any]) -> None:
    proxies = results["proxies"]
    names = list(proxies)
    print(f"\nper read, {results['clients']} clients "
          "(µs inside the proxy, measured by bench/hookprobe.py)")
    print("| | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for key, label in (("chain_addons", "addons in the chain"),
                       ("addons_with_read_hooks", "addons defining a read hook"),
                       ("read_dispatch_us_per_read", "dispatch of read events, µs"),
                       ("inside_read_hooks_us_per_read", "  of which inside hooks, µs"),
                       ("chain_overhead_us_per_read", "  of which the chain itself, µs"),
                       ("our_hooks_us_per_read", "  of which our hooks, µs")):
        print(f"| {label} | " + " | ".join(str(proxies[n][key]) for n in names) + " |")
    print("| CPU per read, ms (median of rounds) | " + " | ".join(
        str(proxies[n]["load"]["cpu_ms_per_read"]) for n in names) + " |")
    for event in READ_EVENTS:
        print(f"| {event}: dispatches, µs | " + " | ".join(
            "{per_read} x, {us_per_read}".format(**proxies[n]["events"].get(
                event, {"per_read": 0, "us_per_read": 0})) for n in names) + " |")
    for name in names:
        print(f"\n{name}: hooks by time per read")
        for key, row in list(proxies[name]["hooks"].items())[:25]:
            print(f"  {row['us_per_read']:8.2f} µs  {row['per_read']:5.2f} x  {key}")


if __name__ == "__main__":
    main()
