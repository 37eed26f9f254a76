"""The typed note per flow: shared by our addons, never in what mitmproxy saves."""

from io import BytesIO

import pytest
from mitmproxy import io as mitmproxy_io
from mitmproxy.test import tflow

from proxy_addon.flow_note import FlowNote, note, peek
from proxy_addon.mcp import Classified, Endpoint
from review_api.models import Context, Proposal


def noted_flow() -> tflow.http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    endpoint = Endpoint(name="GitHub MCP", host="api.githubcopilot.com", path="/mcp")
    found = note(flow)
    found.agent, found.decision, found.held = "triage-bot", "held", "approval-1"
    found.context = Context(agent="triage-bot", task="triage")
    found.proposal = Proposal(method="PUT", url="https://x.test/1", fingerprint="f")
    found.mcp = Classified(endpoint, "write", "a tool call", ("tools/call",))
    found.tools_list, found.requested = endpoint, ("x.test", 443)
    flow.metadata["proxyauth"] = ("someone", "their-password")  # what mitmproxy itself keeps
    return flow


def test_a_flow_with_a_full_note_still_saves_and_loads() -> None:
    """mitmproxy's flow files take only plain values: the note never goes into metadata."""
    flow = noted_flow()
    saved = BytesIO()
    mitmproxy_io.FlowWriter(saved).add(flow)
    saved.seek(0)
    [loaded] = list(mitmproxy_io.FlowReader(saved).stream())
    assert loaded.id == flow.id and set(loaded.metadata) == {"proxyauth"}
    assert peek(loaded) is None  # a loaded (or replayed) flow is decided afresh
    assert note(flow).held == "approval-1" and "triage-bot" not in repr(loaded.get_state())


def test_a_copy_of_a_flow_starts_with_an_empty_note() -> None:
    flow = noted_flow()
    copied = flow.copy()
    assert peek(copied) is None and note(copied) == FlowNote()
    assert note(flow).decision == "held"


def test_reads_nobody_noted_have_no_note_and_a_note_is_created_once() -> None:
    flow = tflow.tflow()
    assert peek(flow) is None
    first = note(flow)
    first.decision = "refused"
    assert note(flow) is first and peek(flow) is first


def test_why_the_note_is_kept_beside_the_flow() -> None:
    """A dataclass in flow.metadata would make mitmproxy's flow files refuse the flow."""
    flow = tflow.tflow()
    flow.metadata["hitl"] = FlowNote()
    with pytest.raises(ValueError, match="unserializable"):
        mitmproxy_io.FlowWriter(BytesIO()).add(flow)
