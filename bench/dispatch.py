"""What mitmproxy's hook dispatch alone costs per read, by the shape of the addon chain.

    .venv/bin/python -m bench.dispatch [--reads 2000] [--repeats 9]

No sockets and nothing of our code: masters are built in this process and one GET flow's
events (requestheaders, request, responseheaders, response, each followed by `update`, as
`AddonManager.handle_lifecycle` does) are dispatched `--reads` times; the best of `--repeats`
is kept (this thread's CPU time), which a busy machine disturbs least. Our addons are stood in
for by no-op addons that define the same hooks as today's (HOOKS_OF_OURS, from
bench/read_path.py's chain listing), so the figures are the chain's own cost: what folding our
addons into one, or dropping mitmproxy's addons that hitl-proxy never uses, would save.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.addons import (
    block,
    blocklist,
    core,
    disable_h2c,
    dns_resolver,
    errorcheck,
    next_layer,
    proxyauth,
    proxyserver,
    script,
    tlsconfig,
    upstream_auth,
)
from mitmproxy.master import Master
from mitmproxy.options import Options
from mitmproxy.proxy.layers.http import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.test import tflow
from mitmproxy.tools.dump import DumpMaster

ROOT = Path(__file__).resolve().parents[1]
# Today's (f156bc5) addons in chain order and the hooks each defines (AuditWitness, Notifier
# and ReviewServer define only running/done).
HOOKS_OF_OURS: dict[str, tuple[str, ...]] = {
    "AuditWitness": (), "Notifier": (), "HttpOnly": ("next_layer",),
    "AgentAuth": ("requestheaders", "http_connect"), "RequestHygiene": ("requestheaders",),
    "HostBinding": ("requestheaders", "http_connect"),
    "WebSocketGate": ("requestheaders", "responseheaders"),
    "Resolve": ("server_connect", "server_disconnected"),
    "ReviewApiGuard": ("requestheaders", "server_connect", "http_connect"),
    "HoldWrites": ("request", "response", "client_disconnected", "error"),
    "McpRules": ("responseheaders", "response"), "TrafficRecorder": ("response", "http_connect",
                                                                     "error"),
    "ReviewServer": (),
}


def _noop(*args: Any) -> None:
    return None


class StandIn:
    """An addon with our addon's name and hooks, doing nothing in them."""

    def __init__(self, name: str, hooks: tuple[str, ...]) -> None:
        self.name = name.lower()
        for hook in hooks:
            setattr(self, hook, _noop)


class Folded:
    """One addon for all of ours: each hook calls our hooks of that name in order."""

    name = "hitl"

    def __init__(self, parts: dict[str, tuple[str, ...]]) -> None:
        for hook in {h for hooks in parts.values() for h in hooks}:
            calls = [_noop for hooks in parts.values() if hook in hooks]
            setattr(self, hook, self._fold(calls))

    @staticmethod
    def _fold(calls: list[Callable[..., None]]) -> Callable[..., None]:
        def each(*args: Any) -> None:
            for call in calls:
                call(*args)
        return each


def ours() -> list[StandIn]:
    return [StandIn(name, hooks) for name, hooks in HOOKS_OF_OURS.items()]


def lean_builtins() -> list[object]:
    """mitmproxy's addons that hitl-proxy needs (proxying, TLS, upstream/proxy auth, blocking,
    h2c refusal, scripts, start-up error check); the other ~20 serve mitmproxy's own UIs and
    features the gate refuses or never uses (map/modify, replay, save, anticache, onboarding)."""
    return [core.Core(), block.Block(), blocklist.BlockList(), disable_h2c.DisableH2C(),
            proxyauth.ProxyAuth(), proxyserver.Proxyserver(), dns_resolver.DnsResolver(),
            next_layer.NextLayer(), tlsconfig.TlsConfig(), upstream_auth.UpstreamAuth(),
            script.ScriptLoader(), errorcheck.ErrorCheck()]


def chains() -> dict[str, Callable[[], Master]]:
    def mitmdump() -> Master:
        master = DumpMaster(Options(), with_termlog=True, with_dumper=True)
        master.options.update(flow_detail=0)  # mitmdump -q
        return master

    def today() -> Master:
        master = DumpMaster(Options(), with_termlog=True, with_dumper=False)
        master.addons.add(*ours())
        return master

    def folded() -> Master:
        master = DumpMaster(Options(), with_termlog=True, with_dumper=False)
        master.addons.add(Folded(HOOKS_OF_OURS))
        return master

    def lean(*extra: object) -> Callable[[], Master]:
        def build() -> Master:
            master = Master(Options(), with_termlog=True)
            master.addons.add(*lean_builtins(), *extra)
            return master
        return build

    return {"mitmdump -q": mitmdump, "hitl-proxy today (13 addons)": today,
            "ours folded into one": folded, "lean mitmproxy + our 13": lean(*ours()),
            "lean mitmproxy + ours folded": lean(Folded(HOOKS_OF_OURS))}


async def per_read_us(master: Master, reads: int, repeats: int) -> float:
    # mitmproxy's addons read the one global ctx, which names the master built last.
    ctx.master, ctx.options = master, master.options
    flow: http.HTTPFlow = tflow.tflow(resp=True)
    events = [HttpRequestHeadersHook(flow), HttpRequestHook(flow),
              HttpResponseHeadersHook(flow), HttpResponseHook(flow)]
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time_ns()
        for _ in range(reads):
            for event in events:
                await master.addons.handle_lifecycle(event)
        best = min(best, (time.thread_time_ns() - started) / reads / 1000)
    return best


async def measure(reads: int, repeats: int) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    built = {name: build() for name, build in chains().items()}
    # Two passes, interleaved, keeping each chain's best: a busy moment hits all alike.
    for _ in range(2):
        for name, master in built.items():
            us = await per_read_us(master, reads, repeats)
            row = found.setdefault(name, {"chain": len(master.addons.chain), "us": us})
            row["us"] = round(min(row["us"], us), 1)
    base = found["mitmdump -q"]["us"]
    for row in found.values():
        row["x_mitmdump"] = round(row["us"] / base, 3)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    found = asyncio.run(measure(args.reads, args.repeats))
    print("| chain | addons | dispatch µs per read | vs mitmdump |")
    print("| --- | --- | --- | --- |")
    for name, row in found.items():
        print(f"| {name} | {row['chain']} | {row['us']} | {row['x_mitmdump']} |")
    out = ROOT / "bench" / "results" / f"dispatch-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps({"date": datetime.now(UTC).isoformat(timespec="seconds"),
                               **vars(args), "chains": found}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
