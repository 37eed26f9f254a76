"""Leaving out mitmproxy's built-in addons that do nothing in this run, and putting one back
when its option is set later.

Every addon in the chain costs each event's dispatch about the same, hooks or not
(bench/README.md), and DumpMaster adds 35. `prune_idle(master)` runs after the options are
applied (our updates, then `--set`) and removes only the built-ins listed in `REMOVABLE`, and
each of them only while every option it declares is at its default, where it has no effect:
- map/modify (`map_remote`, `map_local`, `modify_body`, `modify_headers`), `anticache`,
  `anticomp`, `stickyauth`, `stickycookie`, `save_stream_file`, `hardump`, server and client
  replay: each acts only when its option is set (read in mitmproxy 12.3's sources);
- `browser`, `comment`, `cut`, `export`, `command_history`: commands only, and nothing calls
  mitmproxy commands in hitl-proxy but a script: with `scripts` set, every built-in that
  defines commands stays.
Never removed: anything with a security role or that hitl-proxy's behaviour needs (core,
proxyauth, proxyserver, next_layer, tlsconfig, upstream_auth, block, blocklist, disable_h2c,
dns_resolver, strip_dns_https_records, script, onboarding, update_alt_svc, keepserving,
readfile, errorcheck, termlog, ...): they are simply not in `REMOVABLE`.

An option of a removed addon set afterwards (`options.update`, a script) puts the addon back
in its place in the chain, loaded, configured and running, before the option's value is used
by anyone else; nothing is lost but the dispatch it would have cost meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from mitmproxy import hooks
from mitmproxy.addons import (
    anticache,
    anticomp,
    browser,
    clientplayback,
    command_history,
    comment,
    cut,
    export,
    maplocal,
    mapremote,
    modifybody,
    modifyheaders,
    save,
    savehar,
    serverplayback,
    stickyauth,
    stickycookie,
)
from mitmproxy.master import Master

logger = logging.getLogger("hitl_proxy")

REMOVABLE: tuple[type, ...] = (
    anticache.AntiCache, anticomp.AntiComp, browser.Browser, clientplayback.ClientPlayback,
    command_history.CommandHistory, comment.Comment, cut.Cut, export.Export,
    maplocal.MapLocal, mapremote.MapRemote, modifybody.ModifyBody,
    modifyheaders.ModifyHeaders, save.Save, savehar.SaveHar, serverplayback.ServerPlayback,
    stickyauth.StickyAuth, stickycookie.StickyCookie,
)


class _OptionNames:
    """A stand-in `Loader`: records the names of the options an addon's `load` declares."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def add_option(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.names.add(name)

    def add_command(self, path: str, func: Callable[..., Any]) -> None:
        pass


def declared_options(addon: object) -> set[str]:
    """The options `addon` declares, from its `load` run on a fresh instance."""
    loader = _OptionNames()
    load = getattr(type(addon)(), "load", None)
    if load is not None:
        load(loader)
    return loader.names


def has_commands(addon: object) -> bool:
    return any(isinstance(getattr(getattr(type(addon), name, None), "command_name", None), str)
               for name in dir(type(addon)))


def idle(addon: object, master: Master) -> bool:
    """Removable now: a listed built-in whose options are all at their defaults, and, while
    scripts are loaded (they may call commands), one without commands."""
    if type(addon) not in REMOVABLE:
        return False
    if master.options.scripts and has_commands(addon):
        return False
    return not any(master.options.has_changed(name) for name in declared_options(addon))


class IdleBuiltins:
    """The built-ins `prune_idle` removed, and what puts each back when one of its options
    changes. Keep a reference: mitmproxy's options signal holds its receivers weakly."""

    def __init__(self, master: Master, removed: Iterable[tuple[object, set[str]]],
                 order: list[object]) -> None:
        self.master = master
        self.removed: dict[int, tuple[object, set[str]]] = {id(a): (a, o) for a, o in removed}
        self._order = order  # the chain as it was: where a restored addon goes back
        master.options.changed.connect(self._changed)

    @property
    def names(self) -> list[str]:
        return sorted(type(addon).__name__ for addon, _ in self.removed.values())

    def _changed(self, updated: set[str]) -> None:
        for key, (addon, options) in list(self.removed.items()):
            if options & updated and any(self.master.options.has_changed(o) for o in options):
                del self.removed[key]
                self._restore(addon)

    def _restore(self, addon: object) -> None:
        """Back in the chain as it was loaded: not loaded again, since `load` re-declares its
        options, and mitmproxy, finding the help text reflowed, resets them to defaults."""
        addons = self.master.addons
        addons.lookup[getattr(addon, "name", type(addon).__name__.lower())] = addon
        later = {id(a) for a in self._order[self._order.index(addon) + 1:]}
        at = next((i for i, a in enumerate(addons.chain) if id(a) in later), len(addons.chain))
        addons.chain.insert(at, addon)
        addons.invoke_addon_sync(addon, hooks.ConfigureHook(set(self.master.options.keys())))
        addons.invoke_addon_sync(addon, hooks.RunningHook())
        logger.info("mitmproxy addon %s put back: one of its options is set",
                    type(addon).__name__)


def prune_idle(master: Master) -> IdleBuiltins:
    """Remove the idle built-ins from `master`'s chain: after every option is applied, just
    before `master.run()` (an addon put back later gets `running` at once)."""
    order = list(master.addons.chain)
    removed = []
    for addon in order:
        if idle(addon, master):
            removed.append((addon, declared_options(addon)))
    for addon, _ in removed:
        _remove_quietly(master, addon)
    return IdleBuiltins(master, removed, order)


def _remove_quietly(master: Master, addon: object) -> None:
    """`AddonManager.remove` without its `done` call: the addon never ran, and one put back
    must find its state as load left it (mitmproxy's `done` of save/savehar/browser only
    closes what their options or commands opened)."""
    addons = master.addons
    addons.chain = [a for a in addons.chain if a is not addon]
    addons.lookup = {name: a for name, a in addons.lookup.items() if a is not addon}


__all__ = ["REMOVABLE", "IdleBuiltins", "declared_options", "idle", "prune_idle"]
