"""Large writes on one hitl-proxy: what a ~10 MB write costs concurrent reads, and peak memory.

    .venv/bin/python bench/large_writes.py [--duration 4] [--rounds 3] [--clients 4]

One `hitl-proxy run` process, `limits.max_body` at its default (10 MiB), in front of a fake
Zendesk (tests/fakes/zendesk.py, its own process) for the writes and bench/upstream.py for the
reads. Measured in one run:
- reads (p50, p99, max, req/s) from keep-alive clients (bench/client.py, its own process), alone
  and while one more client PUTs ~10 MB Zendesk tickets back to back; each write is parsed,
  the current ticket fetched, diffed, sealed and held, and answered 202 after --hold-timeout;
  rounds alternate which of the two goes first, the ratio is p99(during) / p99(alone);
- peak RSS of the proxy (VmHWM after a reset through clear_refs, and VmRSS every 10 ms) for a
  256 MiB chunked PUT and a 64 MiB declared PUT (both must be 413) and one 10 MB write held.
Writes bench/results/large-writes-<date>.json and prints a table. Run by hand, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import json
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import trustme

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.client import _connect  # noqa: E402
from bench.run import percentile, rss_kib, wait_port  # noqa: E402
from tests.e2e.harness import ProxyProcess  # noqa: E402
from tests.fakes.server import HTTPSFake, free_port  # noqa: E402
from tests.fakes.zendesk import FakeZendesk  # noqa: E402

TOKEN = "bench-reviewer-token-0001"
MAX_BODY = 10 * 1024 * 1024  # limits.max_body's default, left unset in the config
WRITE_BYTES = 10_000_000  # "~10 MB": the whole JSON body, just under max_body
HOST = "acme.zendesk.com"
EMAIL, API_TOKEN = "agent@acme.test", "zd-api-token-123"
AUTH = (f"{EMAIL}/token", API_TOKEN)
BASIC = "Basic " + base64.b64encode(f"{EMAIL}/token:{API_TOKEN}".encode()).decode()
READS_HOST = "reads.bench.test"  # no connector knows it: reads pass; --resolve to upstream.py
TICKETS = 2000  # seeded; each write goes to the next one, so no two writes are alike
# A support comment with an emoji: any non-BMP character makes CPython hold the whole string
# at 4 bytes a character. ASCII is the same text without it, for the memory comparison.
MIXED = "Customer wrote: the printer on floor 3 is on fire again — «ça brûle» 🔥, see log.\n"
ASCII = "Customer wrote: the printer on floor 3 is on fire again - it burns!!, see log.\n"
SNDBUF = 64 * 1024  # the oversized PUTs' socket send buffer, so "sent" is close to "received"
HEAD, TAIL = b'{"ticket": {"comment": {"body": "', b'"}}}'


# -- the fake Zendesk, in a process of its own ---------------------------------------------------

def serve_zendesk(pem: Path) -> None:
    """Seeds tickets 1..TICKETS, prints the port, serves until stdin closes."""
    fake = FakeZendesk()
    for ticket in range(1, TICKETS + 1):
        fake.seed(ticket, status="open")
    with HTTPSFake(fake.app, pem, pem) as server:
        print(server.port, flush=True)
        sys.stdin.read()


# -- bodies and helpers --------------------------------------------------------------------------

class Bodies:
    """Zendesk-shaped ticket updates of exactly `size` bytes, each with a distinct comment."""

    def __init__(self, text: str = MIXED, size: int = WRITE_BYTES) -> None:
        line = json.dumps(text, ensure_ascii=False)[1:-1].encode()
        room = size - len(HEAD) - len(TAIL) - 9  # 9: "#nnnnnnn " in front
        self.filler = line * (room // len(line)) + b" " * (room % len(line))
        self.serial = 0

    def next(self) -> tuple[int, bytes]:
        """(ticket id, body) of the next write."""
        self.serial += 1
        body = HEAD + f"#{self.serial:07d} ".encode() + self.filler + TAIL
        return self.serial % TICKETS + 1, body


def status_kib(pid: int, key: str) -> int:
    """One kB field of /proc/PID/status (VmHWM, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Peak:
    """Peak RSS of a process over a `with` block: VmHWM reset at entry, VmRSS every 10 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.samples.append(rss_kib(self.pid))

    def __enter__(self) -> Peak:
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.before_kib = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.after_kib = rss_kib(self.pid)
        self.sampled_peak_kib = max(self.samples, default=self.after_kib)
        self.hwm_kib = status_kib(self.pid, "VmHWM") if self.hwm_reset else 0
        self.peak_kib = max(self.sampled_peak_kib, self.hwm_kib)

    def summary(self, idle_kib: int) -> dict[str, Any]:
        """Raw kB numbers and the peak above idle as a multiple of max_body."""
        return {"before_kib": self.before_kib, "after_kib": self.after_kib,
                "sampled_peak_kib": self.sampled_peak_kib, "hwm_kib": self.hwm_kib,
                "hwm_reset": self.hwm_reset, "peak_kib": self.peak_kib,
                "peak_above_idle_x_max_body": round((self.peak_kib - idle_kib) * 1024
                                                    / MAX_BODY, 2),
                "peak_above_before_x_max_body": round((self.peak_kib - self.before_kib) * 1024
                                                      / MAX_BODY, 2)}


def reads(url: str, proxy: str, cafile: Path, clients: int, duration: float) -> dict[str, Any]:
    """bench/client.py in its own process: GETs back to back on `clients` keep-alive tunnels."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "client.py"), url, proxy,
                           str(cafile), str(clients), str(duration)],
                          capture_output=True, check=True, timeout=duration + 120)
    found = json.loads(done.stdout)
    if found["errors"]:
        print(f"warning: {found['errors']} reads were not 200", flush=True)
    latencies = [seconds * 1000 for seconds in found["latencies"]]
    return {"n": len(latencies), "rps": round(len(latencies) / found["elapsed"], 1),
            "p50_ms": round(percentile(latencies, 0.5), 3),
            "p99_ms": round(percentile(latencies, 0.99), 3),
            "max_ms": round(max(latencies, default=0.0), 3), "errors": found["errors"],
            "slowest_ms": [round(value, 1) for value in sorted(latencies)[-12:]]}


class Writer(threading.Thread):
    """One agent PUTting ~10 MB tickets back to back until stopped; keeps (status, seconds)."""

    def __init__(self, proxy: ProxyProcess, bodies: Bodies) -> None:
        super().__init__(daemon=True)
        self.proxy, self.bodies = proxy, bodies
        self.stop = threading.Event()
        self.writes: list[tuple[int, float]] = []

    def run(self) -> None:
        with agent(self.proxy) as client:
            while not self.stop.is_set():
                self.writes.append(put(client, *self.bodies.next()))


def agent(proxy: ProxyProcess) -> httpx.Client:
    """An agent's client that knows only the proxy and its CA."""
    trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
    return httpx.Client(proxy=proxy.proxy_url, verify=trust, timeout=300, trust_env=False)


def put(client: httpx.Client, ticket: int, body: bytes) -> tuple[int, float]:
    """One ticket update through the proxy: (status, seconds until the answer)."""
    started = time.perf_counter()
    response = client.put(f"https://{HOST}/api/v2/tickets/{ticket}.json", content=body,
                          headers={"Content-Type": "application/json"}, auth=AUTH)
    return response.status_code, time.perf_counter() - started


async def oversized(proxy: ProxyProcess, total: int, chunked: bool) -> dict[str, Any]:
    """Streams a `total`-byte ticket PUT (chunked, or declared) until the proxy answers.

    `sent_before_answer` counts body bytes handed to the socket (asyncio's buffer drained)
    when the answer's head arrived: it includes what sat in kernel buffers on loopback.
    """
    trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
    reader, writer = await _connect(f"https://{HOST}/", proxy.proxy_url, trust)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    writer.write((f"PUT /api/v2/tickets/1.json HTTP/1.1\r\nHost: {HOST}\r\n"
                  f"Authorization: {BASIC}\r\nContent-Type: application/json\r\n"
                  f"{framing}\r\n\r\n").encode())
    await writer.drain()
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
    sent, seen = 0, dict[str, float]()
    started = time.perf_counter()

    async def answer() -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        unsent = bytearray(4)  # TLS bytes still in this side's kernel queue (SIOCOUTQ)
        with contextlib.suppress(OSError):
            fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, unsent)
        seen.update(sent=sent, seconds=time.perf_counter() - started,
                    unsent=int.from_bytes(unsent, sys.byteorder))
        return head

    waiting = asyncio.create_task(answer())
    piece = b"a" * 65536
    error = None
    try:
        while sent < total and not waiting.done():
            data = HEAD + piece[len(HEAD):] if sent == 0 else piece[:total - sent]
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drained, waiting}, timeout=30,
                               return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                break
            drained.result()
            sent += len(data)
        if chunked and not waiting.done():
            writer.write(b"0\r\n\r\n")
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        error = repr(exc)
    try:
        head = await asyncio.wait_for(waiting, 30)
        status: int | None = int(head.split(b" ", 2)[1])
    except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
        status, error = None, f"{error}; reading the answer: {exc!r}"
    writer.close()
    return {"bytes_declared_or_offered": total, "chunked": chunked, "status": status,
            "sent_before_answer": seen.get("sent", sent),
            "sent_before_answer_x_max_body": round(seen.get("sent", sent) / MAX_BODY, 3),
            "client_kernel_unsent_at_answer": seen.get("unsent"),
            "seconds_to_answer": round(seen.get("seconds", 0.0), 3), "sent_total": sent,
            "client_error": error}


# -- the run ------------------------------------------------------------------------------------

def memory(proxy: ProxyProcess, pid: int, bodies: Bodies, idle_kib: int) -> dict[str, Any]:
    """Peak RSS for the two oversized PUTs and a held ~10 MB write (ASCII, then mixed text)."""
    found: dict[str, Any] = {}
    for name, total, chunked in (("chunked_256MiB", 256 * 1024 * 1024, True),
                                 ("declared_64MiB", 64 * 1024 * 1024, False)):
        with Peak(pid) as peak:
            outcome = asyncio.run(oversized(proxy, total, chunked))
            time.sleep(0.3)
        found[name] = outcome | peak.summary(idle_kib)
        print(f"{name}: {found[name]}", flush=True)
        time.sleep(1)
    ascii_bodies = Bodies(ASCII)
    ascii_bodies.serial = TICKETS // 2  # other tickets than `bodies` writes to
    for name, source in (("held_10MB_ascii", ascii_bodies), ("held_10MB", bodies)):
        with Peak(pid) as peak, agent(proxy) as client:
            status, seconds = put(client, *source.next())
            time.sleep(0.3)
        found[name] = {"status": status, "seconds": round(seconds, 3),
                       "body_bytes": WRITE_BYTES} | peak.summary(idle_kib)
        print(f"{name}: {found[name]}", flush=True)
        time.sleep(1)
    return found


def latency(proxy: ProxyProcess, url: str, bodies: Bodies, args: argparse.Namespace
            ) -> dict[str, Any]:
    """Rounds of reads alone and reads during back-to-back large writes."""
    rounds: list[dict[str, Any]] = []
    for index in range(args.rounds):
        result: dict[str, Any] = {}
        order = ("alone", "during_writes") if index % 2 == 0 else ("during_writes", "alone")
        for name in order:
            if name == "alone":
                result[name] = reads(url, proxy.proxy_url, proxy.ca_cert, args.clients,
                                     args.duration)
                continue
            writer = Writer(proxy, bodies)
            writer.start()
            result[name] = reads(url, proxy.proxy_url, proxy.ca_cert, args.clients,
                                 args.duration)
            writer.stop.set()
            writer.join()
            seconds = [s for _, s in writer.writes]
            result["writes"] = {"n": len(seconds),
                                "statuses": sorted({code for code, _ in writer.writes}),
                                "median_s": round(statistics.median(seconds), 3),
                                "max_s": round(max(seconds), 3),
                                "median_minus_hold_s": round(statistics.median(seconds)
                                                             - args.hold_timeout, 3)}
            time.sleep(1)  # let the last write's leftovers settle before the next reads
        result["p99_ratio"] = round(result["during_writes"]["p99_ms"]
                                    / result["alone"]["p99_ms"], 2)
        result["max_ratio"] = round(result["during_writes"]["max_ms"]
                                    / result["alone"]["max_ms"], 2)
        rounds.append(result)
        print(f"round {index + 1}: {json.dumps(result)}", flush=True)
    return {"rounds": rounds,
            "median_p99_ratio": statistics.median(r["p99_ratio"] for r in rounds),
            "median_max_ratio": statistics.median(r["max_ratio"] for r in rounds)}


def git(*command: str) -> str:
    return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--hold-timeout", type=float, default=1.0)
    parser.add_argument("--serve-zendesk", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_zendesk:
        serve_zendesk(args.serve_zendesk)
        return
    work = Path(tempfile.mkdtemp(prefix="hitl-large-writes-"))
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    pem = work / "server.pem"
    ca.issue_cert(HOST, READS_HOST).private_key_and_cert_chain_pem.write_to_path(str(pem))
    (work / "hitl.yaml").write_text(f"reviewers: [{{name: bench, token: {TOKEN}}}]\n")
    upstream_port = free_port()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("log", "-1", "--format=%h").strip(),
        "uncommitted_in_checkout": git("status", "--porcelain", "proxy_addon", "review_api",
                                       "connectors_schemas").splitlines(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "duration_s": args.duration, "rounds": args.rounds, "clients": args.clients,
        "hold_timeout_s": args.hold_timeout, "max_body": MAX_BODY, "write_bytes": WRITE_BYTES,
    }
    upstream = subprocess.Popen([sys.executable, str(ROOT / "bench" / "upstream.py"), str(pem),
                                 str(pem), str(upstream_port)])
    zendesk = subprocess.Popen([sys.executable, __file__, "--serve-zendesk", str(pem)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proxy: ProxyProcess | None = None
    try:
        assert zendesk.stdout is not None
        zendesk_port = int(zendesk.stdout.readline())
        wait_port(upstream_port)
        proxy = ProxyProcess(work, [
            "--config", str(work / "hitl.yaml"), "--upstream-ca", str(work / "ca.pem"),
            "--resolve", f"{HOST}=127.0.0.1:{zendesk_port}",
            "--resolve", f"{READS_HOST}=127.0.0.1:{upstream_port}",
            "--hold-timeout", str(args.hold_timeout), "--set", "termlog_verbosity=warn",
        ], token=TOKEN).start()
        assert proxy.process is not None
        pid = proxy.process.pid
        # On port 443 as the agent sees it: bench/client.py's Host header carries no port.
        url = f"https://{READS_HOST}/api/v2/tickets/1.json"
        bodies = Bodies()
        # Warm up: reads, and one small write the whole way through to a hold.
        reads(url, proxy.proxy_url, proxy.ca_cert, args.clients, 1.0)
        with agent(proxy) as client:
            results["warm_up_write"] = put(client, TICKETS, b'{"ticket": {"status": "solved"}}')
        time.sleep(1)
        idle = rss_kib(pid)
        results["idle_rss_kib"] = idle
        print(f"commit {results['commit']}, idle RSS {idle} kB", flush=True)
        results["memory"] = memory(proxy, pid, bodies, idle)
        results["reads"] = latency(proxy, url, bodies, args)
        results["rss_end_kib"] = rss_kib(pid)
        results["pending_at_end"] = len(proxy.approvals("pending"))
    finally:
        if proxy is not None:
            try:
                results["proxy_exit"] = proxy.stop(60)
            except RuntimeError as exc:
                results["proxy_exit"] = str(exc)[:200]
        if zendesk.stdin is not None:
            zendesk.stdin.close()
        upstream.terminate()
        for process in (zendesk, upstream):
            process.wait(15)
    out = ROOT / "bench" / "results" / f"large-writes-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    print_tables(results)


def print_tables(results: dict[str, Any]) -> None:
    """Markdown: reads alone vs during writes per round; peak RSS per oversized/held body."""
    print(f"\ncommit {results['commit']}, {results['clients']} read clients, "
          f"{results['duration_s']} s per measurement, max_body {MAX_BODY} bytes\n")
    print("| round | reads | req/s | p50 ms | p99 ms | max ms | not 200 | writes (s each) "
          "| p99 ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for index, found in enumerate(results["reads"]["rounds"], 1):
        for name in ("alone", "during_writes"):
            r = found[name]
            writes = (f"{found['writes']['n']} ({found['writes']['median_s']:.2f})"
                      if name == "during_writes" else "")
            ratio = f"{found['p99_ratio']:.2f}" if name == "during_writes" else ""
            print(f"| {index} | {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                  f"| {r['max_ms']:.1f} | {r['errors']} | {writes} | {ratio} |")
    print(f"\nmedian p99 ratio over rounds: {results['reads']['median_p99_ratio']:.2f} "
          f"(max ratio {results['reads']['median_max_ratio']:.2f})\n")
    idle = results["idle_rss_kib"]
    print(f"| body | status | sent before answer | peak RSS kB | peak above idle ({idle} kB) "
          "| above RSS just before |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, m in results["memory"].items():
        sent = (f"{m['sent_before_answer'] / 2**20:.1f} MiB" if "sent_before_answer" in m
                else f"{m['body_bytes'] / 1e6:.0f} MB (all)")
        print(f"| {name} | {m['status']} | {sent} | {m['peak_kib']} | "
              f"{m['peak_above_idle_x_max_body']:.2f} x max_body | "
              f"{m['peak_above_before_x_max_body']:.2f} x max_body |")


if __name__ == "__main__":
    main()
