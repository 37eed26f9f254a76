"""Starts the real `hitl-proxy run` process on free loopback ports and talks to its review API."""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.server import free_port


def hitl_proxy_command() -> list[str]:
    script = Path(sys.executable).parent / "hitl-proxy"
    if script.exists():
        return [str(script)]
    found = shutil.which("hitl-proxy")
    return [found] if found else [sys.executable, "-m", "proxy_addon.cli"]


class ProxyProcess:
    """One `hitl-proxy run`. Replicas pass the same `store` URL, one `certs_dir` (the CA agents
    trust) and `env` carrying the shared sealing key; everything else is this process's own."""

    def __init__(self, workdir: Path, args: list[str], token: str, *, store: str | None = None,
                 certs_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.listen_port = free_port()
        self.review_port = free_port()
        self.data_dir = workdir / "data"
        self.certs_dir = certs_dir or workdir / "certs"
        self.token = token
        self.log_path = workdir / "proxy.log"
        self.extra_args = args
        self.store = store
        self.env = env or {}
        self.args = [
            *hitl_proxy_command(), "run",
            "--listen-port", str(self.listen_port), "--review-port", str(self.review_port),
            "--data-dir", str(self.data_dir), "--certs-dir", str(self.certs_dir),
            *(["--store", store] if store else []), *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    @property
    def review_url(self) -> str:
        return f"http://127.0.0.1:{self.review_port}"

    @property
    def ca_cert(self) -> Path:
        return self.certs_dir / "mitmproxy-ca-cert.pem"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30) -> ProxyProcess:
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update(self.env)
        # A restart (after kill or stop) keeps the earlier run's log: it is part of the story.
        with self.log_path.open("ab" if self._starts else "wb") as log:
            self.process = subprocess.Popen(self.args, cwd=self.workdir, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        self._starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hitl-proxy exited with {self.process.returncode}:\n"
                                   f"{self.log()}")
            try:
                if httpx.get(f"{self.review_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"hitl-proxy did not become ready:\n{self.log()}")

    def stop(self, timeout: float = 15) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"hitl-proxy did not stop on SIGTERM:\n{self.log()}") from None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs, as when the machine under a replica dies."""
        assert self.process is not None, "never started"
        self.process.kill()
        self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets and its database sessions but does nothing,
        so a test can set up a state it would otherwise act on at once."""
        assert self.process is not None, "never started"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None, "never started"
        self.process.send_signal(signal.SIGCONT)

    # -- review API ----------------------------------------------------------------------------

    def api(self, method: str, path: str, token: str | None = None,
            **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.request(method, f"{self.review_url}{path}", headers=headers, timeout=10,
                             **kwargs)

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        response = self.api("GET", "/api/approvals", params=params)
        response.raise_for_status()
        return response.json()["approvals"]

    def wait_for_pending(self, count: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = self.approvals("pending")
            if len(pending) >= count:
                return pending
            time.sleep(0.02)
        raise AssertionError(f"no {count} pending approval(s) after {timeout}s:\n{self.log()}")

    def wait_for_status(self, approval_id: str, status: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        approval: dict[str, Any] = {}
        while time.monotonic() < deadline:
            approval = self.api("GET", f"/api/approvals/{approval_id}").json()
            if approval.get("status") == status:
                return approval
            time.sleep(0.02)
        raise AssertionError(f"approval {approval_id} is {approval.get('status')}, not {status}")

    def decide(self, approval_id: str, decision: str, note: str | None = None,
               token: str | None = None) -> httpx.Response:
        body = {"note": note} if note is not None else {}
        return self.api("POST", f"/api/approvals/{approval_id}/{decision}", token=token, json=body)


def triples(approval: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) of each change, for assertions that do not care about record ids."""
    return [(change["field"], change["old"], change["new"]) for change in approval["changes"]]


class Background:
    """Runs a blocking SDK call in a thread, as the agent would, and hands back its outcome."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 30) -> Background:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the agent's call is still waiting"
        return self


def agent_client(proxy: ProxyProcess, **headers: str) -> httpx.Client:
    """An agent's HTTP client configured only with the proxy and its CA."""
    trust = ssl.create_default_context(cafile=str(proxy.ca_cert))
    return httpx.Client(proxy=proxy.proxy_url, verify=trust, timeout=60, headers=headers)


def held(proxy: ProxyProcess, call: Callable[[], Any]) -> tuple[Background, dict[str, Any]]:
    """Starts the agent's write and returns it with the approval it is held as."""
    before = {approval["id"] for approval in proxy.approvals("pending")}
    agent = Background(call)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        new = [a for a in proxy.approvals("pending") if a["id"] not in before]
        if new:
            [approval] = new
            return agent, approval
        if not agent.running:
            break
        time.sleep(0.02)
    agent.join(1)
    raise AssertionError(f"the write was not held: {agent.result!r} {agent.error!r}")


def changes_by_record(approval: dict[str, Any]) -> dict[str | None, dict[str, tuple[Any, Any]]]:
    found: dict[str | None, dict[str, tuple[Any, Any]]] = {}
    for change in approval["changes"]:
        found.setdefault(change["record_id"], {})[change["field"]] = (change["old"], change["new"])
    return found
