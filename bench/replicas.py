"""Issue 16's benchmarks: replicas on one PostgreSQL, and the SQLite default against the main
before the reshape, each measured in one run so only ratios are compared.

    .venv/bin/python -m bench.replicas approve [--writes 200]
    .venv/bin/python -m bench.replicas reads [--clients 1 16 64] [--duration 5] [--rounds 3]
    .venv/bin/python -m bench.replicas sqlite [--before /tmp/main-before] [--writes 200] ...
    .venv/bin/python -m bench.replicas all
      [--now PATH]  # the tree measured as today's (a worktree of HEAD while others edit this one)
      [--durable]   # PostgreSQL with fsync and synchronous_commit on (the test server has
                    # them off, which flatters it against SQLite)

approve: a write held on replica A (its agent still connected), approved through replica B's
  API; from the approve request being sent to the upstream receiving the write (its arrival
  log, bench/upstream.py, on the machine-wide monotonic clock), p50/p95/p99 over --writes
  writes, and until A's agent has the upstream's answer. For scale, the same with the approval
  on A itself, on PostgreSQL and on the SQLite default. Issue 16 asks p50 <= 15 ms for B -> A.
reads: keep-alive GETs (bench/client.py) through two replicas behind a TCP load balancer
  (HAProxy, `apt-get install haproxy`, else bench/balancer.py) against one replica through the
  same balancer and one replica direct, PostgreSQL and SQLite, with plain mitmproxy in the same
  run; the CPU each setup spends per read: the replicas plus the PostgreSQL server's processes.
  Issue 16 asks >= 1.5x for two replicas on this 2-core machine.
sqlite: `hitl-proxy run` with no --store, this tree against the main before the reshape (a git
  worktree, made with `git worktree add --detach /tmp/main-before f156bc5` when missing), with
  plain mitmproxy, in one run: reads (throughput, p99, CPU per read) and approve -> upstream.
  The brief named ff05b82, but that commit (the interface committed alone) does not start:
  review_api/store/__init__.py imports a SqliteStore that only its successors define; its
  parent f156bc5 runs the same code. Issue 16 asks: no slower.

Writes bench/results/replicas-<what>-<date>.json and prints tables. Run by hand, never in the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.processes import (
    ROOT,
    TOKEN,
    Processes,
    Proxy,
    Tls,
    free_port,
    load_measured,
    percentile,
    postgres,
    tree_version,
    wait_port,
)

BEFORE_REF = "f156bc5"  # main before issue 16 (see the module docstring for ff05b82)
HELD_PATH = "/bench-writes/"  # a host no connector knows: every POST there is held


# -- approve on one replica, sent by another -------------------------------------------------

@dataclass(frozen=True)
class Timed:
    """One write, in ms from the approve request being sent: until the reviewer's replica
    answered it (the decision committed), the upstream received the write, the agent had the
    upstream's answer."""

    approve_ms: float
    to_upstream_ms: float
    to_agent_ms: float


def arrival_of(arrivals: Path, path: str, timeout: float = 30) -> int:
    """The monotonic ns at which the upstream logged `path`, waiting for it to be written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in arrivals.read_text().splitlines():
            stamp, _, where = line.split(" ", 2)
            if where == path:
                return int(stamp)
        time.sleep(0.001)
    raise RuntimeError(f"the upstream never received {path}")


async def pending_id(client: httpx.AsyncClient, review_url: str, path: str,
                     timeout: float = 30) -> str:
    """The approval for the write to `path`, once the reviewer's replica lists it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = await client.get(f"{review_url}/api/approvals", params={"status": "pending"})
        answer.raise_for_status()
        for approval in answer.json()["approvals"]:
            if approval["url"].endswith(path):
                return str(approval["id"])
        await asyncio.sleep(0.002)
    raise RuntimeError(f"no pending approval for {path} on {review_url}")


async def approve_writes(holder: Proxy, reviewer: Proxy, upstream: str, arrivals: Path,
                         writes: int, tag: str) -> list[Timed]:
    """Sequential writes held on `holder` with the agent waiting, each approved on `reviewer`
    as soon as it lists it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timed: list[Timed] = []
    trust = str(holder.cafile)
    async with httpx.AsyncClient(proxy=holder.url, verify=trust, timeout=60,
                                 trust_env=False) as agent, \
            httpx.AsyncClient(headers=headers, timeout=30, trust_env=False) as api:
        for index in range(writes):
            path = f"{HELD_PATH}{tag}-{index}"
            sent = asyncio.ensure_future(agent.post(f"{upstream}{path}", json={"n": index}))
            approval = await pending_id(api, str(reviewer.review_url), path)
            started = time.monotonic_ns()
            decided = await api.post(f"{reviewer.review_url}/api/approvals/{approval}/approve",
                                     json={"note": "bench"})
            decided.raise_for_status()
            committed = time.monotonic_ns()
            answer = await sent
            answered = time.monotonic_ns()
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: the agent got {answer.status_code}, not the "
                                   f"upstream's 200: {answer.text[:200]}")
            received = arrival_of(arrivals, path)
            timed.append(Timed((committed - started) / 1e6, (received - started) / 1e6,
                               (answered - started) / 1e6))
    return timed


def summary(timed: list[Timed]) -> dict[str, float]:
    ups = [t.to_upstream_ms for t in timed]
    agents = [t.to_agent_ms for t in timed]
    approves = [t.approve_ms for t in timed]
    return {"writes": len(timed),
            "approve_answered_p50_ms": round(percentile(approves, 0.5), 2),
            "to_upstream_p50_ms": round(percentile(ups, 0.5), 2),
            "to_upstream_p95_ms": round(percentile(ups, 0.95), 2),
            "to_upstream_p99_ms": round(percentile(ups, 0.99), 2),
            "to_agent_p50_ms": round(percentile(agents, 0.5), 2),
            "to_agent_p95_ms": round(percentile(agents, 0.95), 2)}


HOLD_ARGS = ("--hold-timeout", "60")


def run_approve(processes: Processes, tls: Tls, pg_url: str, writes: int,
                now: Path = ROOT) -> dict[str, Any]:
    arrivals = processes.work / "arrivals.log"
    arrivals.touch()
    upstream = f"https://127.0.0.1:{processes.upstream(tls, arrivals)}"
    certs = processes.work / "certs-shared"
    a = processes.hitl(tls, "pg-a", tree=now, store=pg_url, certs=certs, args=HOLD_ARGS)
    b = processes.hitl(tls, "pg-b", tree=now, store=pg_url, certs=certs, args=HOLD_ARGS)
    lone = processes.hitl(tls, "sqlite", tree=now, args=HOLD_ARGS)
    cases = {"postgres: held on A, approved on B": (a, b, "ab"),
             "postgres: held and approved on A": (a, a, "aa"),
             "sqlite: held and approved on one process": (lone, lone, "lone")}
    found: dict[str, Any] = {}
    for name, (holder, reviewer, tag) in cases.items():
        asyncio.run(approve_writes(holder, reviewer, upstream, arrivals, 5, f"warm-{tag}"))
        found[name] = summary(asyncio.run(
            approve_writes(holder, reviewer, upstream, arrivals, writes, tag)))
        print(f"approve  {name:42} {found[name]}", flush=True)
    return found


# -- reads through a load balancer ---------------------------------------------------------

def balancer(processes: Processes, frontends: dict[str, list[int]]) -> tuple[dict[str, int], int]:
    """TCP round-robin per connection: HAProxy when installed, else bench/balancer.py. Returns
    the port of each frontend and the balancer's pid (its CPU is counted apart)."""
    ports = {name: free_port() for name in frontends}
    haproxy = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                          if Path("/usr/sbin/haproxy").exists() else None)
    if haproxy:
        lines = ["global", "  maxconn 4096", "defaults", "  mode tcp", "  timeout connect 5s",
                 "  timeout client 300s", "  timeout server 300s", "  balance roundrobin"]
        for name, backends in frontends.items():
            lines += [f"listen {name}", f"  bind 127.0.0.1:{ports[name]}"]
            lines += [f"  server b{i} 127.0.0.1:{port}" for i, port in enumerate(backends)]
        config = processes.work / "haproxy.cfg"
        config.write_text("\n".join(lines) + "\n")
        process = processes.spawn([haproxy, "-db", "-f", str(config)], "haproxy")
    else:
        specs = [f"{ports[name]}=" + ",".join(map(str, backends))
                 for name, backends in frontends.items()]
        process = processes.spawn([sys.executable, str(ROOT / "bench" / "balancer.py"), *specs],
                                  "balancer")
    for port in ports.values():
        wait_port(port, process=process)
    return ports, process.pid


def postgres_pids(server: Any) -> list[int]:
    """The postmaster and its children (backends, writer, WAL writer...), whose CPU a
    PostgreSQL store costs besides the replica's own."""
    postmaster = int((Path(server.data) / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            pids.append(int(stat.parent.name))
    return pids


@dataclass(frozen=True)
class Setup:
    """One way of proxying reads: where the client connects, and whose CPU the reads cost."""

    proxy: Proxy
    charged: tuple[int, ...]


def read_rounds(url: str, setups: dict[str, Setup], clients: list[int], duration: float,
                rounds: int, server: Any | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for count in clients:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
        for _ in range(rounds):  # interleaved: a noisy moment hits every setup alike
            for name, setup in setups.items():
                # PostgreSQL's backends come and go with pools: list them for every run.
                extra = tuple(postgres_pids(server)) if server and "postgres" in name else ()
                runs[name].append(load_measured(url, setup.proxy, count, duration,
                                                also=setup.charged + extra))
        base = statistics.median(run["rps"] for run in runs["mitmproxy"])
        base_p99 = statistics.median(run["p99_ms"] for run in runs["mitmproxy"])
        for name, rows in runs.items():
            result: dict[str, Any] = {key: round(statistics.median(r[key] for r in rows), 3)
                                      for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_read")}
            result["errors"] = sum(int(r["errors"]) for r in rows)
            result["rounds_rps"] = [r["rps"] for r in rows]
            result["x_mitmproxy_rps"] = round(result["rps"] / base, 3) if base else None
            result["x_mitmproxy_p99"] = round(result["p99_ms"] / base_p99, 3) if base_p99 else None
            found.setdefault(str(count), {})[name] = result
            print(f"reads c={count:<3} {name:40} {result}", flush=True)
    return found


def run_reads(processes: Processes, tls: Tls, server: Any, pg_url: str, clients: list[int],
              duration: float, rounds: int, now: Path = ROOT) -> dict[str, Any]:
    url = f"https://127.0.0.1:{processes.upstream(tls)}/api/v2/tickets/1.json"
    certs = processes.work / "certs-shared"
    mitm = processes.mitmdump(tls)
    a = processes.hitl(tls, "reads-pg-a", tree=now, store=pg_url, certs=certs)
    b = processes.hitl(tls, "reads-pg-b", tree=now, store=pg_url, certs=certs)
    lone = processes.hitl(tls, "reads-sqlite", tree=now, certs=certs)
    port_of = {proxy.name: int(proxy.url.rsplit(":", 1)[1]) for proxy in (a, b)}
    ports, lb_pid = balancer(processes, {"two": [port_of[a.name], port_of[b.name]],
                                         "one": [port_of[a.name]]})

    def via(name: str, port: int) -> Proxy:
        return Proxy(name, f"http://127.0.0.1:{port}", a.cafile, a.pid)

    setups = {
        "mitmproxy": Setup(mitm, ()),
        "sqlite: one replica": Setup(lone, ()),
        "postgres: one replica": Setup(a, ()),
        "postgres: one replica, balancer": Setup(via("one", ports["one"]), (lb_pid,)),
        "postgres: two replicas, balancer": Setup(via("two", ports["two"]), (b.pid, lb_pid)),
    }
    found = read_rounds(url, setups, clients, duration, rounds, server)
    for count, rows in found.items():
        one = rows["postgres: one replica, balancer"]["rps"]
        two = rows["postgres: two replicas, balancer"]["rps"]
        rows["two_replicas_x_one"] = round(two / one, 3) if one else None
        print(f"reads c={count:<3} two replicas / one, same balancer: "
              f"{rows['two_replicas_x_one']}", flush=True)
    return found


# -- the SQLite default against main before the reshape --------------------------------------

def before_tree(path: Path, ref: str) -> Path:
    """A worktree of `ref` at `path`, made when missing (git metadata only, in this repo)."""
    if not (path / "proxy_addon").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
                       check=True)
    return path


def run_sqlite(processes: Processes, tls: Tls, before: Path, clients: list[int],
               duration: float, rounds: int, writes: int, now_tree: Path = ROOT) -> dict[str, Any]:
    arrivals = processes.work / "arrivals-sqlite.log"
    arrivals.touch()
    port = processes.upstream(tls, arrivals)
    url = f"https://127.0.0.1:{port}/api/v2/tickets/1.json"
    mitm = processes.mitmdump(tls)
    now = processes.hitl(tls, "sqlite-now", tree=now_tree, args=HOLD_ARGS)
    old = processes.hitl(tls, "sqlite-before", tree=before, args=HOLD_ARGS)
    setups = {"mitmproxy": Setup(mitm, ()), "hitl-proxy before": Setup(old, ()),
              "hitl-proxy now": Setup(now, ())}
    found: dict[str, Any] = {"reads": read_rounds(url, setups, clients, duration, rounds, None)}
    for count, rows in found["reads"].items():
        before_rps = rows["hitl-proxy before"]["rps"]
        rows["now_x_before_rps"] = round(rows["hitl-proxy now"]["rps"] / before_rps, 3) \
            if before_rps else None
        rows["now_x_before_cpu"] = round(rows["hitl-proxy now"]["cpu_ms_per_read"]
                                         / rows["hitl-proxy before"]["cpu_ms_per_read"], 3)
        print(f"sqlite c={count:<3} now / before: rps {rows['now_x_before_rps']}, "
              f"cpu per read {rows['now_x_before_cpu']}", flush=True)
    upstream = f"https://127.0.0.1:{port}"
    found["approve"] = {}
    for _ in range(2):  # alternate halves, as reads do rounds
        for name, proxy in (("before", old), ("now", now)):
            tag = f"{name}-{len(found['approve'].get(name, {}).get('raw', []))}"
            asyncio.run(approve_writes(proxy, proxy, upstream, arrivals, 3, f"warm-{tag}"))
            timed = asyncio.run(approve_writes(proxy, proxy, upstream, arrivals,
                                               max(1, writes // 2), tag))
            found["approve"].setdefault(name, {"raw": []})["raw"] += timed
    for name in ("before", "now"):
        raw = found["approve"][name].pop("raw")
        found["approve"][name] = summary(raw)
        print(f"sqlite approve -> upstream, {name:6} {found['approve'][name]}", flush=True)
    return found


# -- the command ---------------------------------------------------------------------------

def durable(server: Any) -> None:
    """fsync, synchronous_commit and full_page_writes back on, as a production server has."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = on")
    server.restart()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["approve", "reads", "sqlite", "all"])
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, default=Path("/tmp/main-before"))
    parser.add_argument("--before-ref", default=BEFORE_REF)
    parser.add_argument("--durable", action="store_true")
    parser.add_argument("--now", type=Path, default=ROOT,
                        help="the tree measured as today's (default: this work tree; a worktree "
                             "of HEAD when others are editing this one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-replicas-"))
    tls = Tls.make(work)
    results: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "args": {k: str(v) for k, v in vars(args).items()},
                               "now": tree_version(args.now)}
    server = None
    try:
        with Processes(work) as processes:
            if args.what in ("approve", "reads", "all"):
                server, pg_url = postgres(work)
                if args.durable:
                    durable(server)
                results["postgres"] = {"durable": args.durable, "url": pg_url}
            if args.what in ("approve", "all"):
                results["approve"] = run_approve(processes, tls, pg_url, args.writes, args.now)
            if args.what in ("reads", "all"):
                results["reads"] = run_reads(processes, tls, server, pg_url, args.clients,
                                             args.duration, args.rounds, args.now)
            if args.what in ("sqlite", "all"):
                before = before_tree(args.before, args.before_ref)
                results["before"] = tree_version(before)
                results["sqlite_vs_before"] = run_sqlite(
                    processes, tls, before, args.clients, args.duration, args.rounds,
                    args.writes, args.now)
    finally:
        if server is not None:
            server.destroy()
    out = ROOT / "bench" / "results" / f"replicas-{args.what}-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)} (logs in {work})")


if __name__ == "__main__":
    main()
