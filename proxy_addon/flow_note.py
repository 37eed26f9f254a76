"""What our addons learn about one flow, for one another: one typed note per flow.

The note is kept beside the flow, not in `flow.metadata`: mitmproxy saves metadata with a flow
(`save_stream_file`, `io.FlowWriter`) in a format that takes only plain values, so a dataclass
there (or the MCP reading it holds) would break saving flows. Kept in a weak map, a note lives
exactly as long as its flow; a saved flow carries none of it (nor the agent's name), and a copy
of a flow (a replay) starts with an empty note, so it is decided afresh.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mitmproxy import flow as mitmflow

if TYPE_CHECKING:
    from proxy_addon.mcp import Classified, Endpoint
    from review_api.models import Context, Proposal

# passed (a read, or a POST read): what the traffic record assumes when nobody decided.
Decided = Literal["passed", "held", "allowed", "denied", "refused", "proxy"]


@dataclass(slots=True, weakref_slot=False)
class FlowNote:
    agent: str | None = None  # the agent named by proxy authentication
    context: Context | None = None  # from the X-HITL-* headers or the agent's config
    decision: Decided = "passed"
    proposal: Proposal | None = None  # a write's proposal, for the traffic record
    held: str | None = None  # the approval id of a held or denied write
    released: str | None = None  # set only when an approved write is released upstream
    requested: tuple[str, int] | None = None  # what the agent asked for, when --resolve moved it
    websocket: bool = False  # the upgrade was to a host in websocket_hosts
    mcp: Classified | None = None  # the MCP reading of the request
    tools_list: Endpoint | None = None  # a tools/list answer to learn tool annotations from


_notes: weakref.WeakKeyDictionary[mitmflow.Flow, FlowNote] = weakref.WeakKeyDictionary()


def note(flow: mitmflow.Flow) -> FlowNote:
    """The flow's note, created empty on first use."""
    found = _notes.get(flow)
    if found is None:
        found = _notes[flow] = FlowNote()
    return found


def peek(flow: mitmflow.Flow) -> FlowNote | None:
    """The flow's note if an addon wrote one: reads that nobody noted create nothing."""
    return _notes.get(flow)
