"""One addon for mitmproxy to dispatch to, calling each of our parts' hooks in order.

mitmproxy walks its whole addon chain for every event (8 per keep-alive GET: four flow hooks,
each followed by `update`), paying per top-level addon a `safecall`, a `traverse` and a
`getattr` whether or not the addon defines the hook (bench/README.md). `HookFold(*parts)`
is one top-level addon: per hook it keeps only the parts that define it, so an event no part
handles costs mitmproxy one failed `getattr`, and one a single part handles calls that part's
method directly.

What does not change against adding the parts as separate addons (mitmproxy 12's
`AddonManager.trigger_event` / `invoke_addon`):
- the order: per event, the parts in the order given (sub-addons, `addons`, after their
  parent, as `traverse` walks them);
- an exception in one part is logged as mitmproxy logs an addon's ("Addon error: ..." on
  `mitmproxy.addonmanager`, with its traceback) and the next part still runs; `AddonHalt`
  stops the rest of the chain and `OptionsError` reaches the options update, as there;
- an awaitable a part returns is awaited before the next part runs;
- `load` reaches every part, so the options they declare are declared; commands are not
  collected from parts (none of ours has any: the fold refuses one that does).
One difference: mitmproxy's synchronous triggers (`load`, `configure`) ignore what a hook
returns, so a synchronous part returning an awaitable there would stop the fold's later parts
for that event; none of ours returns one from those hooks.
"""

from __future__ import annotations

import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

# Every module that defines mitmproxy's hooks, imported before the fold reads
# `hooks.all_hooks`: a fold built before they were imported would silently have no `request`
# hook (and every write would pass unreviewed).
import mitmproxy.addonmanager
import mitmproxy.log
import mitmproxy.proxy.layers
import mitmproxy.proxy.layers.modes
import mitmproxy.proxy.server_hooks  # noqa: F401
from mitmproxy import exceptions, hooks

# mitmproxy's own logger for addon errors: an error in a folded part reads as it did before.
logger = logging.getLogger("mitmproxy.addonmanager")
PASS_THROUGH = (exceptions.AddonHalt, exceptions.OptionsError)

Hook = Callable[..., Any]


def parts_of(parts: Iterable[object]) -> Iterator[object]:
    """Each part, then its sub-addons, as mitmproxy's `traverse` orders them."""
    for part in parts:
        yield part
        if hasattr(part, "addons"):
            yield from parts_of(part.addons)


def _log_error(exc: BaseException) -> None:
    logger.error(f"Addon error: {exc}", exc_info=(type(exc), exc, exc.__traceback__))


def _hook_of(part: object, name: str) -> Hook | None:
    """The part's method for hook `name`, by mitmproxy's rules (a module of that name, as an
    `import`, is not a hook; anything else not callable is an error)."""
    func = getattr(part, name, None)
    if func is None or isinstance(func, types.ModuleType):
        return None
    if not callable(func):
        raise exceptions.AddonManagerError(f"Addon handler {name} ({part}) not callable")
    return func


async def _call_each(funcs: list[Hook], args: tuple[Any, ...]) -> None:
    """Call each part in turn, awaiting what it returns before the next, as mitmproxy does."""
    for func in funcs:
        try:
            result = func(*args)
            if result is not None and inspect.isawaitable(result):
                await result
        except PASS_THROUGH:
            raise
        except Exception as exc:
            _log_error(exc)


async def _run_rest(pending: Awaitable[Any], rest: list[Hook], args: tuple[Any, ...]) -> None:
    """Await a part's awaitable, then call the parts after it, awaiting each in turn."""
    try:
        await pending
    except PASS_THROUGH:
        raise
    except Exception as exc:
        _log_error(exc)
    await _call_each(rest, args)


def fold(funcs: list[Hook]) -> Hook:
    """One callable for mitmproxy that calls `funcs` in order.

    A coroutine function among them makes the fold a coroutine function (mitmproxy awaits it;
    a synchronous trigger refuses it, as it would refuse that part). Otherwise the fold is
    synchronous while every part returns None, and returns a coroutine for the rest of the
    parts only once one returns an awaitable, so a read's hooks create no coroutine at all.
    """
    if len(funcs) == 1:
        return funcs[0]  # mitmproxy's own safecall logs its errors
    if any(inspect.iscoroutinefunction(func) for func in funcs):
        async def folded_async(*args: Any) -> None:
            await _call_each(funcs, args)
        return folded_async

    def folded(*args: Any) -> Awaitable[None] | None:
        for index, func in enumerate(funcs):
            try:
                result = func(*args)
            except PASS_THROUGH:
                raise
            except Exception as exc:
                _log_error(exc)
                continue
            if result is not None and inspect.isawaitable(result):
                return _run_rest(result, funcs[index + 1:], args)
        return None
    return folded


def _has_commands(part: object) -> bool:
    """mitmproxy collects `@command.command` methods per registered addon, not per part."""
    return any(isinstance(getattr(getattr(type(part), name, None), "command_name", None), str)
               for name in dir(type(part)))


class HookFold:
    """Our addons as one: see the module docstring. Its hooks are instance attributes made
    once, so mitmproxy's `getattr` finds a hook only when some part has it."""

    name = "hitl"

    def __init__(self, *parts: object) -> None:
        self.parts: tuple[object, ...] = tuple(parts_of(parts))
        for part in self.parts:
            if _has_commands(part):
                raise ValueError(f"{type(part).__name__} defines mitmproxy commands: add it as "
                                 "an addon of its own, not in the fold")
        if not {"requestheaders", "request", "response", "error"} <= set(hooks.all_hooks):
            raise RuntimeError("mitmproxy's HTTP hooks are not registered: the fold would "
                               "dispatch no request hook")
        self.hooks: dict[str, list[Hook]] = {}
        for name in hooks.all_hooks:
            funcs = [f for f in (_hook_of(part, name) for part in self.parts) if f is not None]
            if funcs:
                self.hooks[name] = funcs
                setattr(self, name, fold(funcs))

    def __repr__(self) -> str:
        return f"HookFold({', '.join(type(p).__name__ for p in self.parts)})"


__all__ = ["HookFold", "fold", "parts_of"]
