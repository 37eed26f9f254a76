"""Who sent a request and why: the X-HITL-* headers, weighed against proxy authentication."""

from __future__ import annotations

import re

from mitmproxy import http

from proxy_addon.agent_auth import AgentAuth
from proxy_addon.flow_note import peek
from proxy_addon.redact import MASK, mask_url
from review_api.models import Context

CONTEXT_HEADERS = {"x-hitl-reason": "reason", "x-hitl-task": "task", "x-hitl-agent": "agent",
                   "x-hitl-trigger": "trigger"}
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s<>\"'`]+")
# `Bearer xyz`, `token=xyz`, `api_key: xyz`, `password=xyz` in free text: the value is masked.
_SECRET = re.compile(
    r"(?i)\b((?:bearer|basic)\s+)\S+"
    r"|\b([\w.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|credential|session"
    r"|signature|auth)[\w.-]*\s*[=:]\s*)[^\s&;,#]+")


def masked_text(text: str) -> str:
    """Free text an agent sends (a trigger): every URL in it masked as URLs are (userinfo,
    secret-named query parameters), and secret-looking `name=value` pairs masked too."""
    text = _URL.sub(lambda found: mask_url(found.group(0)), text)
    return _SECRET.sub(lambda found: (found.group(1) or found.group(2)) + MASK, text)


def take_context(headers: http.Headers) -> Context:
    """Our explanation headers, removed so they never reach upstream."""
    values: dict[str, str] = {}
    for name in dict.fromkeys(name.lower() for name in headers
                              if name.lower().startswith("x-hitl-")):
        key = CONTEXT_HEADERS.get(name)
        given = headers.get_all(name)
        headers.pop(name, None)  # every copy of it
        if key is not None:
            values[key] = " | ".join(given)[:2000]
    if "trigger" in values:
        # Often a link (a ticket, a chat thread), sometimes text around one: a token in a
        # URL's query or userinfo, or a secret-looking pair in the text, is shown masked.
        values["trigger"] = masked_text(values["trigger"])
    return Context(**values)


def context_of(flow: http.HTTPFlow, auth: AgentAuth | None) -> Context:
    """The X-HITL-* headers (taken off the request), with the authenticated agent and its
    default task."""
    context = take_context(flow.request.headers)
    found = peek(flow)
    name = found.agent if found is not None else None
    if name is None and auth is not None and auth.configured:
        # No proxy authentication named this flow (SOCKS5, reverse mode): the headers are
        # claims, shown to the reviewer, never what policy or the status page go by.
        return context.model_copy(update={
            "agent": None, "task": None, "claimed_agent": context.agent,
            "claimed_task": context.task})
    if name is None:
        return context
    agent = auth.agent(name) if auth else None
    if agent is None or agent.task is None:
        return context.model_copy(update={"agent": name})
    # A header the agent controls never widens what policy allows: its configured task
    # decides, and a different claim is only shown.
    claimed = context.task if context.task not in (None, agent.task) else None
    return context.model_copy(update={"agent": name, "task": agent.task,
                                      "claimed_task": claimed})
