"""A mitmproxy script that times every addon hook and every event dispatch in a running proxy.

Load it into `mitmdump` or `hitl-proxy run` with `--set scripts=bench/hookprobe.py` and
HOOKPROBE_OUT=FILE in the environment; it writes FILE (JSON) every second and when the proxy
stops. It knows nothing of our code, so it measures today's proxy and any later shape alike.

What it finds, per event name (requestheaders, request, update, ...): how often mitmproxy
dispatched it and the time of the whole dispatch (`AddonManager.trigger_event`: every addon in
the chain, each in a `safecall` context, whether it defines the hook or not), and per addon
and hook: calls and the time inside the hook itself. Dispatch minus hooks is what the chain's
length costs.

Times are this thread's CPU time (`time.thread_time_ns`), so a proxy preempted on a busy machine
is not charged for the wait; a hook that really awaits (a held write) is charged for whatever
else ran meanwhile, so read the figures of reads, which never await.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mitmproxy import ctx, hooks
from mitmproxy.addonmanager import traverse

# Hooks that run once at start or stop are not what a read pays for.
_LIFECYCLE = {"load", "configure", "running", "done"}
_SELF = "hookprobe"


class HookProbe:
    """Counts and times; installed on `running`, when every addon is in the chain."""

    name = _SELF

    def __init__(self) -> None:
        self.events: dict[str, list[int]] = {}  # name -> [dispatches, ns]
        self.hooks: dict[str, list[int]] = {}  # "addon.hook" -> [calls, ns]
        self.chain: list[dict[str, Any]] = []
        self.out = Path(os.environ.get("HOOKPROBE_OUT", "hookprobe.json"))
        self._writer: asyncio.Task[None] | None = None

    def running(self) -> None:
        manager = ctx.master.addons
        for addon in traverse(manager.chain):
            label = f"{type(addon).__module__}.{type(addon).__name__}"
            if label.endswith(".HookProbe") or inspect.ismodule(addon):
                continue
            defined = []
            for hook in sorted(hooks.all_hooks):
                func = getattr(addon, hook, None)
                if hook in _LIFECYCLE or not callable(func):
                    continue
                defined.append(hook)
                setattr(addon, hook, self._timed(f"{label}.{hook}", func))
            self.chain.append({"addon": label, "hooks": defined})
        trigger = manager.trigger_event

        async def timed_trigger(event: hooks.Hook) -> None:
            started = time.thread_time_ns()
            try:
                await trigger(event)
            finally:
                row = self.events.setdefault(event.name, [0, 0])
                row[0] += 1
                row[1] += time.thread_time_ns() - started

        manager.trigger_event = timed_trigger  # type: ignore[method-assign]
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    def _timed(self, key: str, func: Callable[..., Any]) -> Callable[..., Any]:
        row = self.hooks.setdefault(key, [0, 0])

        async def awaited(result: Awaitable[Any], started: int) -> Any:
            try:
                return await result
            finally:
                row[1] += time.thread_time_ns() - started

        if inspect.iscoroutinefunction(func):
            async def timed_async(*args: Any) -> Any:
                started = time.thread_time_ns()
                row[0] += 1
                try:
                    return await func(*args)
                finally:
                    row[1] += time.thread_time_ns() - started
            return timed_async

        def timed(*args: Any) -> Any:
            started = time.thread_time_ns()
            row[0] += 1
            result = func(*args)
            if result is not None and inspect.isawaitable(result):
                return awaited(result, started)  # a held write: its wait counts too
            row[1] += time.thread_time_ns() - started
            return result
        return timed

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(1)
            self.write()

    def write(self) -> None:
        data = {"chain": self.chain, "events": self.events, "hooks": self.hooks}
        self.out.write_text(json.dumps(data))

    def done(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
        self.write()


addons = [HookProbe()]
