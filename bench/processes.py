"""The processes a benchmark runs: a local HTTPS upstream, mitmdump, `hitl-proxy run` from any
source tree (today's or a worktree of an older commit), a throwaway PostgreSQL; and the CPU
seconds each has used. Shared by bench/read_path.py and bench/replicas.py.

Every process is a child of the benchmark, listens on loopback only and is stopped when the
`Processes` context ends (terminate, then kill after 15 s).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import certifi
import trustme

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOKEN = "bench-reviewer-token-0001"
# One sealing key for every replica of a run: a write sealed on A must open on B.
SEAL_KEY = "bmV2ZXItdXNlLXRoaXMta2V5LWJlbmNobWFyay0wMDE="
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 180,
              process: subprocess.Popen[bytes] | None = None) -> None:
    """Generous: several proxies starting at once on a loaded 2-core machine take a while.
    A `process` that exits meanwhile fails at once, naming its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before "
                               f"listening on {port}: see the .log files in its work dir")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass(frozen=True)
class Tls:
    """A test CA, the upstream's certificate from it, and certifi's roots plus that CA."""

    ca: Path
    server: Path
    bundle: Path

    @classmethod
    def make(cls, work: Path) -> Tls:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(work / "server.pem"))
        bundle = work / "bundle.pem"
        bundle.write_bytes(Path(certifi.where()).read_bytes() + (work / "ca.pem").read_bytes())
        return cls(work / "ca.pem", work / "server.pem", bundle)


@dataclass(frozen=True)
class Proxy:
    """What a load client needs: the proxy URL, the CA to trust, and the pid to charge CPU to."""

    name: str
    url: str
    cafile: Path
    pid: int
    review_url: str | None = None


@dataclass
class Processes:
    """Children of this benchmark, stopped together."""

    work: Path
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop_all()

    def spawn(self, command: list[str], name: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.work,
                                   env=env)
        self.running.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        for process in self.running:
            self.stop(process)

    def upstream(self, tls: Tls, arrivals: Path | None = None) -> int:
        """bench/upstream.py: answers every request at once with one small JSON body, and
        logs when each write arrives to `arrivals`."""
        port = free_port()
        process = self.spawn([sys.executable, str(ROOT / "bench" / "upstream.py"),
                              str(tls.server), str(tls.server), str(port),
                              *([str(arrivals)] if arrivals else [])], "upstream")
        wait_port(port, process=process)
        return port

    def mitmdump(self, tls: Tls, *sets: str, env: dict[str, str] | None = None) -> Proxy:
        """Plain mitmproxy of the version installed, no addons, as quiet as the proxy."""
        port = free_port()
        certs = self.work / "mitm-certs"
        command = [str(BIN / "mitmdump"), "-q", "--listen-port", str(port),
                   "--set", f"confdir={certs}",
                   "--set", f"ssl_verify_upstream_trusted_ca={tls.bundle}"]
        for option in sets:
            command += ["--set", option]
        process = self.spawn(command, "mitmdump", env=dict(os.environ, **(env or {})))
        wait_port(port, process=process)
        return Proxy("mitmproxy", f"http://127.0.0.1:{port}", certs / "mitmproxy-ca-cert.pem",
                     process.pid)

    def hitl(self, tls: Tls, name: str, *, tree: Path = ROOT, config: str | None = None,
             store: str | None = None, certs: Path | None = None, args: tuple[str, ...] = (),
             env: dict[str, str] | None = None, wait: bool = True) -> Proxy:
        """`hitl-proxy run` from `tree` (PYTHONPATH, so a worktree of another commit runs its
        own code on this venv). Replicas of one run share `certs` (the CA agents trust) and the
        sealing key, as the README asks of replicas."""
        port, review = free_port(), free_port()
        certs = certs or self.work / f"certs-{name}"
        config_file = self.work / f"{name}.yaml"
        config_file.write_text(config or (
            f"reviewers: [{{name: bench, token: {TOKEN}}}]\nlimits: {{max_pending: 20000}}\n"))
        command = [sys.executable, "-c",
                   "import sys; from proxy_addon.cli import main; sys.exit(main())", "run",
                   "--listen-port", str(port), "--review-port", str(review),
                   "--data-dir", str(self.work / f"data-{name}"), "--certs-dir", str(certs),
                   "--config", str(config_file), "--upstream-ca", str(tls.ca),
                   "--set", "termlog_verbosity=warn", *args]
        if store is not None:
            command += ["--store", store]
        environment = dict(os.environ, PYTHONPATH=str(tree), HITL_PROXY_KEY=SEAL_KEY,
                           **(env or {}))
        process = self.spawn(command, name, env=environment)
        if wait:
            wait_port(port, process=process)
            wait_port(review, process=process)
        return Proxy(name, f"http://127.0.0.1:{port}", certs / "mitmproxy-ca-cert.pem",
                     process.pid, f"http://127.0.0.1:{review}")


def postgres(work: Path) -> tuple[object, str]:
    """A throwaway PostgreSQL (tests/postgres_server.py: Debian's binaries, run as `postgres`
    when root) and a fresh database's URL. The caller destroys the server."""
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import PostgresServer

    server = PostgresServer()
    server.start()
    return server, server.create_database("hitl_bench")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load(url: str, proxy: str | None, cafile: Path, clients: int,
         duration: float, processes: int = 1) -> dict[str, float]:
    """`clients` keep-alive connections sending GETs back to back (bench/client.py), from
    `processes` separate processes so the client is not what is measured."""
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    runs = [subprocess.Popen([sys.executable, str(ROOT / "bench" / "client.py"), url,
                              proxy or "-", str(cafile), str(n), str(duration)],
                             stdout=subprocess.PIPE) for n in per if n]
    latencies: list[float] = []
    errors, elapsed = 0, 0.0
    for process in runs:
        out, _ = process.communicate(timeout=duration + 120)
        found = json.loads(out)
        latencies += found["latencies"]
        errors += found["errors"]
        elapsed = max(elapsed, found["elapsed"])
    return {"rps": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 3),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 3), "errors": errors,
            "reads": len(latencies)}


def load_measured(url: str, proxy: Proxy, clients: int, duration: float,
                  also: tuple[int, ...] = ()) -> dict[str, float]:
    """`load` through one proxy, plus the CPU it (and the `also` pids) spent per read."""
    pids = (proxy.pid, *also)
    before = [cpu_seconds(pid) for pid in pids]
    result = load(url, proxy.url, proxy.cafile, clients, duration)
    spent = sum(cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True))
    result["cpu_ms_per_read"] = round(spent * 1000 / max(1, result["reads"]), 3)
    return result


def tree_version(tree: Path) -> str:
    """The commit a source tree runs, with "+dirty" when tracked files differ from it: a
    benchmark of the work tree measures whatever is being edited there at that moment."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True,
                              check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
