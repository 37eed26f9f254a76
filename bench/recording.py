"""What the traffic record costs reads: two hitl-proxy processes alike but for traffic.enabled.

    .venv/bin/python bench/recording.py [--duration 4] [--rounds 7] [--concurrency 1 16 64]

Rounds alternate the two set-ups (on, off, on, off, ...) so a noisy moment on a shared machine
hits both alike; the ratio is of the medians. Reads go to a path the Zendesk connector knows
(`/api/v2/tickets/1.json`, the upstream mapped to Zendesk), so every read gets the record's
full work: the record it names, masking, a row in the batch. Besides requests/s, the CPU time
each proxy process spends per request (from /proc) is reported: on a saturated proxy it moves
less with the noise than throughput does. Writes bench/results/recording-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import load, wait_port  # noqa: E402
from tests.fakes.server import free_port  # noqa: E402

BIN = Path(sys.executable).parent
SETUPS = {"recording": "true", "unrecorded": "false"}


async def recorder_cpu(count: int = 20_000, batch: int = 50) -> dict[str, float]:
    """The recorder's own CPU per read, hooks to committed row, with nothing else running.

    Batches of 50 are what a quarter second holds at 200 reads/s. process_time counts every
    thread of this process, so SQLite's work in aiosqlite's thread is included.
    """
    from mitmproxy.test import tflow, tutils

    from connectors_schemas import Matcher, load_connectors
    from proxy_addon.config import TrafficSettings
    from proxy_addon.traffic import TrafficRecorder
    from review_api.traffic import TrafficStore

    with tempfile.TemporaryDirectory() as directory:
        store = TrafficStore(Path(directory) / "traffic.sqlite3")
        await store.open()
        recorder = TrafficRecorder(store, Matcher(load_connectors()), TrafficSettings())
        # A few hundred distinct flows, reused: a live proxy never holds thousands at once,
        # and so many idle objects would make each garbage collection look like our cost.
        flows = [tflow.tflow(
            req=tutils.treq(host="acme.zendesk.com", port=443, scheme=b"https",
                            path=f"/api/v2/tickets/{index}.json?include=users".encode()),
            resp=tutils.tresp(content=b"x" * 1024)) for index in range(batch * 4)]
        started_cpu, started = time.process_time(), time.perf_counter()
        for index in range(1, count + 1):
            recorder.response(flows[index % len(flows)])
            if index % batch == 0:
                await recorder.flush()
        await recorder.flush()
        cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
        rows = await store.count()
        await store.close()
    assert rows == count, rows
    return {"reads": count, "cpu_us_per_read": round(cpu / count * 1e6, 1),
            "wall_us_per_read": round(wall / count * 1e6, 1)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 16, 64])
    args = parser.parse_args()
    import asyncio

    own = asyncio.run(recorder_cpu())
    print(f"the recorder alone: {own}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="hitl-recording-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(work / "server.pem"))
    upstream_port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "upstream.py"), str(work / "server.pem"),
             str(work / "server.pem"), str(upstream_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        for name, enabled in SETUPS.items():
            config = work / f"{name}.yaml"
            config.write_text("reviewers: [{name: bench, token: bench-reviewer-token-0001}]\n"
                              "connectors: {zendesk: {hosts: ['127.0.0.1']}}\n"
                              f"traffic: {{enabled: {enabled}}}\n")
            ports[name], review = free_port(), free_port()
            process = subprocess.Popen(
                [str(BIN / "hitl-proxy"), "run", "--listen-port", str(ports[name]),
                 "--review-port", str(review), "--data-dir", str(work / f"{name}-data"),
                 "--certs-dir", str(work / "certs"), "--config", str(config),
                 "--upstream-ca", str(work / "ca.pem"), "--set", "termlog_verbosity=warn"],
                stdout=(work / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
            processes.append(process)
            pids[name] = process.pid
            wait_port(ports[name])
            wait_port(review)
        wait_port(upstream_port)
        time.sleep(1)
        url = f"https://127.0.0.1:{upstream_port}/api/v2/tickets/1.json"
        cafile = work / "certs" / "mitmproxy-ca-cert.pem"
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "duration_s": args.duration, "rounds": args.rounds,
            "recorder_alone": own, "by_clients": {}}
        for clients in args.concurrency:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in SETUPS}
            for _ in range(args.rounds):
                for name in SETUPS:
                    before = cpu_seconds(pids[name])
                    run = load(url, f"http://127.0.0.1:{ports[name]}", cafile, clients,
                               args.duration)
                    served = run["rps"] * args.duration
                    run["cpu_us_per_request"] = round(
                        (cpu_seconds(pids[name]) - before) / max(served, 1) * 1e6, 1)
                    runs[name].append(run)
            summary = {name: {key: statistics.median(run[key] for run in found)
                              for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_request")}
                       | {"rounds_rps": [run["rps"] for run in found],
                          "errors": sum(run["errors"] for run in found)}
                       for name, found in runs.items()}
            on, off = summary["recording"], summary["unrecorded"]
            summary["throughput_ratio"] = round(on["rps"] / off["rps"], 3)
            summary["cpu_ratio"] = round(on["cpu_us_per_request"] / off["cpu_us_per_request"], 3)
            results["by_clients"][str(clients)] = summary
            print(f"c={clients}: {json.dumps(summary)}", flush=True)
        print(f"traffic rows written: {count_rows(work / 'recording-data')}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
    out = ROOT / "bench" / "results" / f"recording-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}\n")
    per_read = statistics.median(summary["unrecorded"]["cpu_us_per_request"]
                                 for summary in results["by_clients"].values())
    print(f"The recorder alone: {own['cpu_us_per_read']} µs of CPU per read, "
          f"{own['cpu_us_per_read'] / per_read:.1%} of the {per_read:.0f} µs hitl-proxy spends "
          "on a read without it.\n")
    print("| clients | recording req/s | unrecorded req/s | ratio | CPU per request, on / off |")
    print("| --- | --- | --- | --- | --- |")
    for clients, summary in results["by_clients"].items():
        on, off = summary["recording"], summary["unrecorded"]
        print(f"| {clients} | {on['rps']:.0f} | {off['rps']:.0f} | "
              f"{summary['throughput_ratio']:.0%} | {on['cpu_us_per_request']:.0f} / "
              f"{off['cpu_us_per_request']:.0f} µs ({summary['cpu_ratio'] - 1:+.0%}) |")


def count_rows(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "traffic.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM traffic").fetchone()[0])


if __name__ == "__main__":
    main()
