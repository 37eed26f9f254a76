"""The benchmark: direct vs plain mitmproxy vs hitl-proxy, measured in one run on one upstream.

    .venv/bin/python bench/run.py [--duration 5] [--held 1000 10000]

Writes bench/results/<date>.json and prints a table. Run by hand, never in the test suite.
Everything talks over loopback; the upstream, each proxy and the load client are separate
processes (the client is this one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import httpx
import trustme

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.processes import free_port, load, rss_kib, wait_port  # noqa: E402
from connectors_schemas import Operation  # noqa: E402
from proxy_addon.diff import compute_diff  # noqa: E402

BIN = Path(sys.executable).parent
TOKEN = "bench-reviewer-token-0001"


async def hold_writes(proxy: str, trust: ssl.SSLContext, url: str, first: int,
                      count: int) -> int:
    """Distinct writes to a host no connector knows: each is held, 202 after the short window."""
    held = 0
    semaphore = asyncio.Semaphore(32)
    async with httpx.AsyncClient(proxy=proxy, verify=trust, timeout=60, trust_env=False,
                                 limits=httpx.Limits(max_connections=32)) as client:
        async def one(index: int) -> None:
            nonlocal held
            async with semaphore:
                response = await client.post(url, json={"n": index})
                held += response.status_code == 202

        await asyncio.gather(*(one(i) for i in range(first, first + count)))
    return held


def diff_timings() -> dict[str, Any]:
    found = {}
    for fields in (100, 10_000, 100_000):
        current = {f"f{i}": i for i in range(fields)}
        proposed = {f"f{i}": i + 1 for i in range(0, fields, 10)}
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            compute_diff(Operation.update, current, proposed)
            runs.append(time.perf_counter() - started)
        found[str(fields)] = {"json_bytes": len(json.dumps(current)),
                              "best_ms": round(min(runs) * 1000, 2),
                              "median_ms": round(statistics.median(runs) * 1000, 2)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--held", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 16, 64])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hitl-bench-"))
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(work / "server.pem"))
    bundle = work / "bundle.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + (work / "ca.pem").read_bytes())
    (work / "hitl.yaml").write_text(f"reviewers: [{{name: bench, token: {TOKEN}}}]\n"
                                    "limits: {max_pending: 20000}\n")
    upstream_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(command: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (work / f"{name}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        processes.append(process)
        return process

    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": shutil.os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "duration_s": args.duration, "rounds": args.rounds, "reads": {}, "holds": {},
        "held_scale": {},
    }
    # First, while nothing else runs: the diff is pure CPU.
    results["diff"] = diff_timings()
    print("diff", results["diff"], flush=True)
    try:
        spawn([sys.executable, str(ROOT / "bench" / "upstream.py"), str(work / "server.pem"),
               str(work / "server.pem"), str(upstream_port)], "upstream")
        wait_port(upstream_port)
        url = f"https://127.0.0.1:{upstream_port}/api/v2/tickets/1.json"
        upstream_ca = work / "ca.pem"

        mitm_port, hitl_port, hitl_review, pass_port, pass_review = (free_port() for _ in range(5))
        mitm = spawn([str(BIN / "mitmdump"), "-q", "--listen-port", str(mitm_port), "--set",
                      f"confdir={work / 'mitm-certs'}", "--set",
                      f"ssl_verify_upstream_trusted_ca={bundle}"], "mitmdump")
        hitl = spawn([str(BIN / "hitl-proxy"), "run", "--listen-port", str(hitl_port),
                      "--review-port", str(hitl_review), "--data-dir", str(work / "data"),
                      "--certs-dir", str(work / "hitl-certs"), "--config", str(work / "hitl.yaml"),
                      "--upstream-ca", str(work / "ca.pem"), "--hold-timeout", "0.05",
                      "--set", "termlog_verbosity=warn"], "hitl")
        passthrough = work / "pass.yaml"
        passthrough.write_text(f"reviewers: [{{name: bench, token: {TOKEN}}}]\n"
                               "passthrough_hosts: ['127.0.0.1']\n")
        spawn([str(BIN / "hitl-proxy"), "run", "--listen-port", str(pass_port),
               "--review-port", str(pass_review), "--data-dir", str(work / "pass-data"),
               "--certs-dir", str(work / "hitl-certs"), "--config", str(passthrough),
               "--upstream-ca", str(work / "ca.pem"), "--set", "termlog_verbosity=warn"],
              "passthrough")
        for port in (mitm_port, hitl_port, hitl_review, pass_port, pass_review):
            wait_port(port)
        time.sleep(1)
        mitm_ca = work / "mitm-certs" / "mitmproxy-ca-cert.pem"
        hitl_ca = work / "hitl-certs" / "mitmproxy-ca-cert.pem"
        hitl_trust = ssl.create_default_context(cafile=str(hitl_ca))
        setups = {
            "direct": (None, upstream_ca),
            "mitmproxy": (f"http://127.0.0.1:{mitm_port}", mitm_ca),
            "hitl-proxy": (f"http://127.0.0.1:{hitl_port}", hitl_ca),
            "hitl-proxy passthrough": (f"http://127.0.0.1:{pass_port}", upstream_ca),
        }
        for clients in args.concurrency:
            # Rounds interleave the set-ups, so a noisy moment hits all of them alike.
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
            for _ in range(args.rounds):
                for name, (proxy, cafile) in setups.items():
                    rounds[name].append(load(url, proxy, cafile, clients, args.duration))
            for name, runs in rounds.items():
                result = {key: statistics.median(run[key] for run in runs)
                          for key in ("rps", "p50_ms", "p99_ms")}
                result["errors"] = sum(run["errors"] for run in runs)
                result["rounds_rps"] = [run["rps"] for run in runs]
                results["reads"].setdefault(str(clients), {})[name] = result
                print(f"reads c={clients:<3} {name:24} {result}", flush=True)

        from bench.holds import measure  # the same harness as `python bench/holds.py`

        results["holds"] = measure(50)
        print("holds", results["holds"], flush=True)

        hitl_proxy = f"http://127.0.0.1:{hitl_port}"
        held_url = f"https://127.0.0.1:{upstream_port}/things"
        baseline = rss_kib(hitl.pid)
        sent = 0
        for target in sorted(args.held):
            asyncio.run(hold_writes(hitl_proxy, hitl_trust, held_url, sent, target - sent))
            sent = target
            stats = httpx.get(f"http://127.0.0.1:{hitl_review}/api/stats",
                              headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300).json()
            pending = sum(row["pending"] for row in stats["by_system"])
            grown = rss_kib(hitl.pid) - baseline
            reads = load(url, hitl_proxy, hitl_ca, 16, args.duration)
            mitm_reads = load(url, f"http://127.0.0.1:{mitm_port}", mitm_ca, 16, args.duration)
            results["held_scale"][str(target)] = {
                "pending": pending, "rss_growth_kib": grown,
                "kib_per_held_write": round(grown / max(pending, 1), 2),
                "reads_c16": reads, "mitmproxy_reads_c16": mitm_reads,
                "ratio_to_mitmproxy": round(reads["rps"] / mitm_reads["rps"], 3)}
            print(f"held {target}: {results['held_scale'][str(target)]}", flush=True)
        del mitm
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
    out = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print("\n| clients | setup | requests/s | p50 ms | p99 ms | vs mitmproxy |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clients, setups in results["reads"].items():
        base = setups["mitmproxy"]["rps"]
        for name, r in setups.items():
            print(f"| {clients} | {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['rps'] / base:.0%} |")


if __name__ == "__main__":
    main()
