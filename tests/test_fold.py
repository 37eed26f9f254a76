"""HookFold: our addons as one for mitmproxy to dispatch to, with the same order, errors,
awaiting and options as the parts added one by one (mitmproxy's own AddonManager, taddons)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import command, exceptions, hooks
from mitmproxy.test import taddons, tflow

from proxy_addon.fold import HookFold

FLOW_EVENTS = ("requestheaders", "request", "responseheaders", "response")


class Part:
    """Records every hook it gets in `log`, under its name."""

    def __init__(self, name: str, log: list[str], *, children: tuple[object, ...] = ()) -> None:
        self.name = name
        self.log = log
        if children:
            self.addons = list(children)

    def load(self, loader: Any) -> None:
        self.log.append(f"{self.name}.load")

    def configure(self, updated: set[str]) -> None:
        self.log.append(f"{self.name}.configure")

    def running(self) -> None:
        self.log.append(f"{self.name}.running")

    def done(self) -> None:
        self.log.append(f"{self.name}.done")

    def requestheaders(self, flow: Any) -> None:
        self.log.append(f"{self.name}.requestheaders")

    async def request(self, flow: Any) -> None:
        await asyncio.sleep(0.01)  # the next part must wait for this
        self.log.append(f"{self.name}.request")

    def response(self, flow: Any) -> None:
        self.log.append(f"{self.name}.response")


class Sparse:
    """Only `request`, synchronous."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def request(self, flow: Any) -> None:
        self.log.append("sparse.request")


class ReturnsAwaitable:
    """A plain method that returns a coroutine: mitmproxy awaits it before going on."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def response(self, flow: Any) -> Any:
        async def later() -> None:
            await asyncio.sleep(0.01)
            self.log.append("returns.response")
        return later()


def parts(log: list[str]) -> list[object]:
    return [Part("a", log, children=(Part("a1", log),)), Sparse(log), ReturnsAwaitable(log),
            Part("b", log)]


async def run_events(make: Callable[[list[str]], list[object]], folded: bool) -> list[str]:
    """Load, configure, run, dispatch a flow's events and finish, recording the calls."""
    log: list[str] = []
    addons = make(log)
    with taddons.context(loadcore=False) as tctx:
        tctx.master.addons.add(HookFold(*addons) if folded else addons[0], *(
            [] if folded else addons[1:]))
        tctx.master.options.update(listen_port=9999)
        await tctx.master.addons.trigger_event(hooks.RunningHook())
        flow = tflow.tflow(resp=True)
        for event in FLOW_EVENTS:
            await tctx.master.addons.handle_lifecycle(hooks.all_hooks[event](flow))
        await tctx.master.addons.trigger_event(hooks.DoneHook())
    return log


async def test_every_part_is_called_in_the_order_separate_addons_are() -> None:
    separate = await run_events(parts, folded=False)
    folded = await run_events(parts, folded=True)
    assert folded == separate
    assert folded[:3] == ["a.load", "a1.load", "b.load"]
    assert "a.request" in folded
    request = [entry for entry in folded if entry.endswith(".request")]
    assert request == ["a.request", "a1.request", "sparse.request", "b.request"]
    response = [entry for entry in folded if entry.endswith(".response")]
    assert response == ["a.response", "a1.response", "returns.response", "b.response"]


class Raises:
    def __init__(self, log: list[str], error: BaseException) -> None:
        self.log = log
        self.raised = error

    def request(self, flow: Any) -> None:
        raise self.raised


class AsyncRaises(Raises):
    async def request(self, flow: Any) -> None:
        await asyncio.sleep(0)
        raise self.raised


def requests(log: list[str]) -> list[str]:
    return [entry for entry in log if entry.endswith(".request")]


async def dispatch_request(addons: list[object], folded: bool,
                           after: object | None = None) -> None:
    with taddons.context(loadcore=False) as tctx:
        chain = [HookFold(*addons)] if folded else list(addons)
        tctx.master.addons.add(*chain, *([after] if after else []))
        await tctx.master.addons.handle_lifecycle(hooks.all_hooks["request"](tflow.tflow()))


@pytest.mark.parametrize("raising", [Raises, AsyncRaises])
async def test_an_error_is_logged_as_mitmproxy_logs_it_and_the_next_part_runs(
        raising: type[Raises], caplog: pytest.LogCaptureFixture) -> None:
    logged: dict[bool, list[tuple[str, int, str, bool]]] = {}
    for folded in (False, True):
        log: list[str] = []
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            await dispatch_request([raising(log, ValueError("boom")), Sparse(log),
                                    Part("b", log)], folded)
        assert requests(log) == ["sparse.request", "b.request"]
        logged[folded] = [(r.name, r.levelno, r.getMessage(), r.exc_info is not None)
                          for r in caplog.records]
    assert logged[True] == logged[False] == [
        ("mitmproxy.addonmanager", logging.ERROR, "Addon error: boom", True)]


@pytest.mark.parametrize("raising", [Raises, AsyncRaises])
async def test_addon_halt_stops_the_rest_of_the_chain_as_it_does_for_addons(
        raising: type[Raises]) -> None:
    for folded in (False, True):
        log: list[str] = []
        await dispatch_request([Sparse(log), raising(log, exceptions.AddonHalt()),
                                Part("b", log)], folded, after=Part("after", log))
        assert requests(log) == ["sparse.request"]


class Declares:
    """Declares an option and refuses a bad value for it, as an addon does."""

    def __init__(self) -> None:
        self.seen: list[set[str]] = []

    def load(self, loader: Any) -> None:
        loader.add_option("hitl_fold_test", int, 1, "An option a part declares.")

    def configure(self, updated: set[str]) -> None:
        self.seen.append(set(updated))
        from mitmproxy import ctx
        if ctx.options.hitl_fold_test < 0:
            raise exceptions.OptionsError("hitl_fold_test must not be negative")


async def test_options_parts_declare_are_declared_configured_and_refused() -> None:
    declares = Declares()
    log: list[str] = []
    with taddons.context(loadcore=False) as tctx:
        tctx.master.addons.add(HookFold(Part("a", log), declares))
        assert tctx.options.hitl_fold_test == 1
        tctx.options.update(hitl_fold_test=5)
        assert declares.seen[-1] == {"hitl_fold_test"}
        assert "a.configure" in log
        with pytest.raises(exceptions.OptionsError):
            tctx.options.update(hitl_fold_test=-1)
        assert tctx.options.hitl_fold_test == 5  # refused: rolled back as for an addon


async def test_a_part_without_a_hook_costs_nothing_for_that_event() -> None:
    log: list[str] = []
    a, sparse = Part("a", log), Sparse(log)
    fold = HookFold(a, sparse)
    # No part has it: the fold has no attribute, mitmproxy's getattr finds nothing.
    assert not hasattr(fold, "responseheaders")
    assert "responseheaders" not in fold.hooks
    # One part has it: that part's method itself, no wrapper in between.
    assert fold.requestheaders == a.requestheaders
    assert fold.response == a.response
    # Several: only those that define it.
    assert fold.hooks["request"] == [a.request, sparse.request]
    with taddons.context(loadcore=False) as tctx:
        tctx.master.addons.add(fold)
        assert tctx.master.addons.chain == [fold]  # one addon for mitmproxy to walk


class HasCommand:
    @command.command("hitl.fold.test")
    def test_command(self) -> None:
        """A command: mitmproxy collects these per addon, so the fold refuses it."""


def test_a_part_with_mitmproxy_commands_is_refused() -> None:
    with pytest.raises(ValueError, match="commands"):
        HookFold(Sparse([]), HasCommand())


def test_a_non_callable_hook_is_an_error_as_in_mitmproxy() -> None:
    class Broken:
        request = "not a function"

    with pytest.raises(exceptions.AddonManagerError):
        HookFold(Broken())


def test_our_code_never_looks_an_addon_up_by_name() -> None:
    """Folded, our addons are not in mitmproxy's lookup: nothing of ours may rely on it."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("proxy_addon", "review_api") for p in (root / d).rglob("*.py")]
    offending = [str(p) for p in sources if "addons.get(" in p.read_text()]
    assert sources and offending == []


async def test_the_real_composition_folds_in_its_order(tmp_path: Path) -> None:
    """Every addon `compose` builds folds (no commands, callable hooks), and each hook's
    parts come in compose's order: the status host before the hold."""
    from proxy_addon.compose import compose
    from proxy_addon.config import HitlConfig
    from proxy_addon.runner import close_stores, open_stores
    from proxy_addon.settings import RunSettings
    from tests.test_compose import CONNECTORS, settings_for

    settings: RunSettings = settings_for(tmp_path)
    stores = await open_stores(settings, HitlConfig())
    try:
        composition = compose(settings, HitlConfig(), CONNECTORS, stores)
        fold = HookFold(*composition.addons)
        assert fold.parts == composition.addons
        position = {id(part): index for index, part in enumerate(composition.addons)}
        for name, funcs in fold.hooks.items():
            owners = [position[id(func.__self__)] for func in funcs]
            assert owners == sorted(owners), name
        request = [type(func.__self__).__name__ for func in fold.hooks["request"]]
        assert request == ["StatusHost", "HoldWrites"]
        assert "ReviewApiGuard" in [type(f.__self__).__name__ for f in fold.hooks["requestheaders"]]
    finally:
        await close_stores(stores)
