"""Leaving out mitmproxy's idle built-ins: only listed ones at their defaults go, never those
with a security role, and setting a removed one's option (before or after) still works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import hooks
from mitmproxy.addons import modifyheaders, stickycookie
from mitmproxy.options import Options
from mitmproxy.test import tflow
from mitmproxy.tools.dump import DumpMaster

from proxy_addon.builtins import REMOVABLE, declared_options, prune_idle

KEPT = {"Core", "ProxyAuth", "Proxyserver", "NextLayer", "TlsConfig", "UpstreamAuth", "Block",
        "BlockList", "DisableH2C", "DnsResolver", "StripDnsHttpsRecords", "ScriptLoader",
        "Onboarding", "UpdateAltSvc", "KeepServing", "ReadFileStdin", "ErrorCheck"}


class Ours:
    """Stands for the fold: where a put-back built-in must come before."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def requestheaders(self, flow: Any) -> None:
        self.seen.append(flow.request.headers.get("X-Added"))


@pytest.fixture
async def master() -> AsyncIterator[DumpMaster]:
    master = DumpMaster(Options(), with_termlog=False, with_dumper=False)
    yield master


def names(master: DumpMaster) -> set[str]:
    return {type(addon).__name__ for addon in master.addons.chain}


async def request_headers(master: DumpMaster) -> Any:
    flow = tflow.tflow()
    await master.addons.handle_lifecycle(hooks.all_hooks["requestheaders"](flow))
    return flow


async def test_only_idle_listed_built_ins_leave_the_chain(master: DumpMaster) -> None:
    ours = Ours()
    master.addons.add(ours)
    before = names(master)
    idle = prune_idle(master)
    after = names(master)
    assert {a.__name__ for a in REMOVABLE} == set(idle.names) == before - after
    assert KEPT <= after and "Ours" in after
    assert len(master.addons.chain) == len(before) - len(REMOVABLE)
    # Their options are still known: --set and the options file can name them.
    master.options.set("stickycookie=.*")
    assert master.options.stickycookie == ".*"


async def test_an_option_set_before_pruning_keeps_its_addon(master: DumpMaster) -> None:
    ours = Ours()
    master.addons.add(ours)
    master.options.set("modify_headers=/~q/X-Added/yes")
    idle = prune_idle(master)
    assert "ModifyHeaders" not in idle.names and "ModifyHeaders" in names(master)
    await request_headers(master)
    assert ours.seen == ["yes"]


async def test_an_option_set_later_puts_its_addon_back_in_place(master: DumpMaster) -> None:
    ours = Ours()
    master.addons.add(ours)
    order = [type(a).__name__ for a in master.addons.chain]
    idle = prune_idle(master)
    assert "ModifyHeaders" in idle.names
    await request_headers(master)
    assert ours.seen == [None]
    master.options.update(modify_headers=["/~q/X-Added/later"])
    assert "ModifyHeaders" not in idle.names
    await request_headers(master)
    assert ours.seen == [None, "later"]  # before ours, as it was: ours sees the header
    now = [type(a).__name__ for a in master.addons.chain]
    assert now == [name for name in order if name in set(now)]
    assert isinstance(master.addons.get("modifyheaders"), modifyheaders.ModifyHeaders)


async def test_scripts_keep_the_built_ins_that_have_commands(master: DumpMaster,
                                                             tmp_path: Path) -> None:
    script = tmp_path / "noop.py"
    script.write_text("def request(flow):\n    pass\n")
    master.options.set(f"scripts={script}")
    idle = prune_idle(master)
    assert {"Cut", "Export", "Save", "Browser", "ClientPlayback"} <= names(master)
    assert {"AntiCache", "AntiComp", "ModifyHeaders", "StickyCookie"} <= set(idle.names)


def test_declared_options_read_from_load() -> None:
    assert declared_options(stickycookie.StickyCookie()) == {"stickycookie"}
    assert declared_options(modifyheaders.ModifyHeaders()) == {"modify_headers"}
